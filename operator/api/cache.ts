import { z } from 'zod';
import { doc } from './meta.ts';
import { allowedClients, image, resources, tlsSetting, type ResourceDefaults } from './common.ts';

/** Redis/Valkey `maxmemory-policy` values. */
export const EVICTION_POLICIES = [
  'noeviction',
  'allkeys-lru',
  'allkeys-lfu',
  'allkeys-random',
  'volatile-lru',
  'volatile-lfu',
  'volatile-random',
  'volatile-ttl',
] as const;

export const CACHE_RESOURCES: ResourceDefaults = {
  requests: { cpu: '100m', memory: '256Mi' },
  limits: { memory: '256Mi' },
  memoryFloor: { min: '32Mi', server: 'Valkey' },
};

export const cache = doc(
  z.object({
    image: image('Container image of the cache server (Valkey, wire-compatible with Redis).').default(
      'valkey/valkey:8.1',
    ),
    replicas: doc(
      z.number().int().min(0).max(5),
      'Read replicas besides the primary. With none, losing the primary loses the cache (a single point of failure).',
    ).default(2),
    allowedClients: allowedClients('cache', 'port 6379'),
    tls: tlsSetting(
      "Serve TLS only: the servers listen for TLS alone on 6379 (no plaintext port), replicas sync from the primary over TLS, and CACHE_URL is rediss:// with the app's CA in CACHE_CA_FILE (ConfigMap <app>-ca-cert, mounted in the web and consumer pods). false serves plaintext only.",
    ),
    resources: resources(
      'CPU and memory for each cache container. `maxmemory` is derived from the memory limit.',
      CACHE_RESOURCES,
    ),
    memoryHeadroomPercent: doc(
      z.number().int().min(5).max(90),
      'Share of the memory limit kept free for replication buffers and fragmentation: maxmemory = limit × (100 − headroom) / 100.',
    ).default(20),
    evictionPolicy: doc(
      z.enum(EVICTION_POLICIES),
      'What the cache evicts when maxmemory is reached.',
    ).default('allkeys-lru'),
    defaultTTLSeconds: doc(
      z.number().int().min(0).max(31536000),
      'Default expiry the app is told to use for cache entries (0 = none).',
    ).default(300),
    minReplicasToWrite: doc(
      z.number().int().min(0).max(5),
      'Bound on the loss window: the primary refuses writes unless this many replicas are connected with lag <= maxReplicaLagSeconds.',
    ).default(0),
    maxReplicaLagSeconds: doc(
      z.number().int().min(1).max(60),
      'Replica lag accepted by minReplicasToWrite.',
    ).default(10),
  }),
  'The cache tier: a primary and replicas, across zones.',
  {
    cel: [
      {
        // A volatile-* policy evicts only keys with an expiry; with no default TTL the app sets none,
        // so a full cache evicts nothing and refuses every write (OOM command not allowed).
        rule: "!self.evictionPolicy.startsWith('volatile-') || self.defaultTTLSeconds > 0",
        message:
          'a volatile-* evictionPolicy evicts only keys with a TTL: set defaultTTLSeconds > 0 or use an allkeys-* policy',
        fieldPath: '.evictionPolicy',
      },
      {
        rule: 'self.minReplicasToWrite <= self.replicas',
        message: 'minReplicasToWrite must be <= replicas, or the primary could never accept a write',
        fieldPath: '.minReplicasToWrite',
      },
    ],
  },
);
