import { z } from 'zod';
import { doc } from './meta.ts';
import { image, resources, type ResourceDefaults } from './common.ts';

/** One path segment that is not '.' or '..', of the characters nginx's location takes verbatim. */
const SEGMENT = '(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\\.[A-Za-z0-9_~-][A-Za-z0-9._~-]*|\\.\\.[A-Za-z0-9._~-]+)';
const PATH_PREFIX = new RegExp(`^(?:/${SEGMENT})+/?$`);

export const EDGE_CACHE_RESOURCES: ResourceDefaults = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { memory: '128Mi' },
  memoryFloor: { min: '32Mi', server: 'nginx' },
};

export const edgeCache = doc(
  z.object({
    image: image('Container image of the caching proxy (nginx, unprivileged build).').default(
      'nginxinc/nginx-unprivileged:1.29-alpine',
    ),
    replicas: doc(z.number().int().min(1).max(100), 'Proxy replicas.').default(2),
    pathPrefix: doc(
      z.string().min(2).max(256).regex(PATH_PREFIX),
      "Path of the static assets routed through the cache: a normalised path below '/' (not '/' itself, which would cache dynamic pages; no '//', '.' or '..' segments).",
    ).default('/static'),
    ttlSeconds: doc(z.number().int().min(1).max(31536000), 'How long a cached asset is fresh.').default(3600),
    staleIfErrorSeconds: doc(
      z.number().int().min(0).max(31536000),
      'How long a stale asset may be served when the origin errors or is down.',
    ).default(86400),
    assetVersion: doc(
      z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
      'Version in the asset URLs and cache key (1-64 letters, digits, . _ -, starting with a letter or digit); a new value invalidates every cached asset.',
    ).default('1'),
    cacheSize: doc(
      z.string().regex(/^[1-9][0-9]{0,6}[kmg]$/),
      'Largest size of the on-disk cache (nginx size syntax, e.g. 512m): at least 1k, at most 9999999g (nginx refuses 0 and sizes past its 64-bit offsets). The pod gets twice this as scratch space.',
    ).default('512m'),
    resources: resources('CPU and memory for each proxy container.', EDGE_CACHE_RESOURCES),
  }),
  'The edge cache (the CDN idea, inside the cluster): a caching reverse proxy in front of the web tier for static assets.',
);
