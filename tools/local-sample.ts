// Turns a ScalableApp written for a real cluster (public images, the default StorageClass, production
// resource requests) into one that runs on this project's local real node: the images built here
// (tools/images.sh), the Postgres major those images hold, volumes from the node's local-path
// provisioner, and CPU requests small enough that a whole stack fits a 2-core machine.
//
//   node tools/local-sample.ts manifests/samples/12-full-stack.yaml   prints the local version
//
// Only fields the API has are set; nothing here changes what the operator does with them.
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';

/** The images tools/images.sh builds, by their images.env keys. */
export interface LocalImages {
  IMAGE_POSTGRES: string;
  IMAGE_CACHE: string;
  IMAGE_RABBITMQ: string;
  IMAGE_NGINX: string;
  IMAGE_DEMO_APP: string;
  IMAGE_DEMO_CONSUMER: string;
  IMAGE_POSTGRES_EXPORTER: string;
  IMAGE_CACHE_EXPORTER: string;
  IMAGE_NGINX_EXPORTER: string;
}

/** The Postgres major of the local image (Debian bookworm's). */
export const LOCAL_POSTGRES_MAJOR = '15';
/** The StorageClass of the real node's volumes (manifests/cluster/real-node/local-path.yaml). */
export const LOCAL_STORAGE_CLASS = 'local-path';

const imagesEnvPath = () =>
  `${process.env.SCALABLEAPP_CACHE ?? `${process.env.HOME}/.cache/scalableapp`}/images/images.env`;

/**
 * Reads images.env (KEY=value lines) as written by tools/images.sh, every key of it; throws naming
 * the file and the command that writes it when it is missing or lacks one of `required`.
 */
export function readImagesEnv(required: readonly string[], path = imagesEnvPath()): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`no local images at ${path}: run tools/images.sh build first`, { cause: err });
  }
  const env: Record<string, string> = Object.fromEntries(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#') && l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const missing = required.filter((k) => !env[k]);
  if (missing.length) throw new Error(`${path} lacks ${missing.join(', ')}: run tools/images.sh build`);
  return env;
}

const SAMPLE_IMAGES: readonly (keyof LocalImages)[] = [
  'IMAGE_POSTGRES',
  'IMAGE_CACHE',
  'IMAGE_RABBITMQ',
  'IMAGE_NGINX',
  'IMAGE_DEMO_APP',
  'IMAGE_DEMO_CONSUMER',
  'IMAGE_POSTGRES_EXPORTER',
  'IMAGE_CACHE_EXPORTER',
  'IMAGE_NGINX_EXPORTER',
];

/** The images a sample needs, from images.env. */
export function readLocalImages(path = imagesEnvPath()): LocalImages {
  const env = readImagesEnv(SAMPLE_IMAGES, path);
  return Object.fromEntries(SAMPLE_IMAGES.map((k) => [k, env[k]])) as unknown as LocalImages;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * CPU requests of each container, scaled for one 2-core node: memory stays as the spec (or the
 * default) has it, because the servers size themselves from it (maxmemory, shared_buffers).
 */
const LOCAL_CPU_REQUEST = '10m';

function shrinkCpu(tier: Obj, defaults: { memoryRequest: string; memoryLimit?: string }): void {
  const resources = isObj(tier.resources) ? tier.resources : {};
  const requests = isObj(resources.requests) ? resources.requests : {};
  const limits = isObj(resources.limits) ? resources.limits : {};
  // Whatever the sample sets stays (the schema merges the rest with the tier's defaults); the memory
  // request the node can hold where the sample leaves it to the default.
  const memoryLimit = limits.memory ?? defaults.memoryLimit;
  tier.resources = {
    ...resources,
    requests: { ...requests, memory: requests.memory ?? defaults.memoryRequest, cpu: LOCAL_CPU_REQUEST },
    ...(memoryLimit ? { limits: { ...limits, memory: memoryLimit } } : {}),
  };
}

function localStorage(tier: Obj): void {
  const storage = isObj(tier.storage) ? tier.storage : {};
  tier.storage = { ...storage, storageClassName: LOCAL_STORAGE_CLASS };
}

/** The local version of a ScalableApp manifest (a plain object as parsed from YAML). */
export function localize(app: Obj, images: LocalImages): Obj {
  const out = structuredClone(app);
  const spec = (isObj(out.spec) ? out.spec : {}) as Obj;
  out.spec = spec;
  if (isObj(spec.web)) {
    spec.web.image = images.IMAGE_DEMO_APP;
    // The demo app reads its port and health path from its environment (examples/demo-app): told
    // what the sample declares, it answers where the web tier's probes and Service look. Its health
    // path is its liveness (it also fails readiness while shutting down): `livenessPath` when given.
    const env = (Array.isArray(spec.web.env) ? spec.web.env : []).filter(
      (e) => !(isObj(e) && (e.name === 'PORT' || e.name === 'HEALTH_PATH')),
    );
    const healthCheck = isObj(spec.web.healthCheck) ? spec.web.healthCheck : {};
    // Its /readyz is its own readiness (every tier answers): a spec probing it keeps the demo's
    // liveness path where it is.
    const healthPath =
      healthCheck.livenessPath ?? (healthCheck.path === '/readyz' ? undefined : healthCheck.path);
    spec.web.env = [
      ...env,
      ...(spec.web.port !== undefined ? [{ name: 'PORT', value: String(spec.web.port) }] : []),
      ...(typeof healthPath === 'string' ? [{ name: 'HEALTH_PATH', value: healthPath }] : []),
    ];
    if ((spec.web.env as unknown[]).length === 0) delete spec.web.env;
    shrinkCpu(spec.web, { memoryRequest: '128Mi', memoryLimit: '256Mi' });
  }
  if (isObj(spec.cache)) {
    spec.cache.image = images.IMAGE_CACHE;
    shrinkCpu(spec.cache, { memoryRequest: '256Mi', memoryLimit: '256Mi' });
  }
  // The shards are Postgres clusters with the database tier's fields (image, version, resources).
  for (const pg of [spec.database, spec.shards]) {
    if (!isObj(pg)) continue;
    pg.image = images.IMAGE_POSTGRES;
    pg.version = LOCAL_POSTGRES_MAJOR;
    shrinkCpu(pg, { memoryRequest: '256Mi', memoryLimit: '512Mi' });
    localStorage(pg);
  }
  if (isObj(spec.queue)) {
    spec.queue.image = images.IMAGE_RABBITMQ;
    shrinkCpu(spec.queue, { memoryRequest: '512Mi', memoryLimit: '1Gi' });
    localStorage(spec.queue);
  }
  if (Array.isArray(spec.consumers)) {
    for (const c of spec.consumers) {
      if (!isObj(c)) continue;
      c.image = images.IMAGE_DEMO_CONSUMER;
      // The demo consumer serves its health endpoint on HEALTH_PORT: where the spec probes it.
      if (isObj(c.healthCheck) && (c.healthCheck.path ?? '/healthz') !== '/healthz') {
        throw new Error(
          `consumers[${String(c.name)}].healthCheck.path: the demo consumer serves /healthz only, not ${String(c.healthCheck.path)}`,
        );
      }
      if (isObj(c.healthCheck) && c.healthCheck.port !== undefined) {
        const env = (Array.isArray(c.env) ? c.env : []).filter(
          (e) => !(isObj(e) && e.name === 'HEALTH_PORT'),
        );
        c.env = [...env, { name: 'HEALTH_PORT', value: String(c.healthCheck.port) }];
      }
      shrinkCpu(c, { memoryRequest: '128Mi', memoryLimit: '256Mi' });
    }
  }
  if (isObj(spec.edgeCache)) {
    spec.edgeCache.image = images.IMAGE_NGINX;
    shrinkCpu(spec.edgeCache, { memoryRequest: '64Mi', memoryLimit: '128Mi' });
  }
  if (isObj(spec.monitoring)) {
    const given = isObj(spec.monitoring.exporterImages) ? spec.monitoring.exporterImages : {};
    spec.monitoring.exporterImages = {
      ...given,
      postgres: images.IMAGE_POSTGRES_EXPORTER,
      cache: images.IMAGE_CACHE_EXPORTER,
      edgeCache: images.IMAGE_NGINX_EXPORTER,
    };
  }
  return out;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node tools/local-sample.ts <scalableapp.yaml>');
    process.exit(2);
  }
  const app = parse(readFileSync(file, 'utf8')) as Obj;
  process.stdout.write(stringify(localize(app, readLocalImages())));
}
