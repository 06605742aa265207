import type { V1ConfigMap, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { hotKeyDigest } from '../api/shards.ts';
import {
  RESHARD_VERIFIED_ANNOTATION,
  SHARD_MAP_KEY,
  nextShardMap,
  serializeShardMap,
  type DesiredShardMap,
  type ShardMap,
} from '../sharding/shard-map.ts';
import { childName, selectorLabels, tierLabels } from './labels.ts';
import type { Child, ObservedFacts } from './objects.ts';
import { CA_FILE } from './tls.ts';
import {
  APP_DATABASE,
  PG_PORT,
  appLoginOf,
  pgClusterObjects,
  pgCredentialsSecret,
  pgReadService,
  pgWriteService,
  type PgCluster,
} from './postgres-cluster.ts';

export const SHARD = 'shard';
/** Selects one shard's pods among the tier's: every shard is a cluster of its own. */
export const SHARD_LABEL = 'scalableapp.io/shard';
/**
 * The component label of the resharding Job's pods (examples/reshard-job.yaml): the shards admit the
 * app's pods of this component on the Postgres port, as they admit its web and consumer pods.
 */
export const SHARD_MOVER = 'shard-mover';
/**
 * Set by whoever drained the shards a flip retired (operator/reshard-main.ts delete) to the routed ring
 * version: until then those shards keep running, so readers on a not yet refreshed map file and the
 * mover's delete step still reach them.
 */
export const RESHARD_DRAINED = 'scalableapp.io/reshard-drained';
/**
 * Asks the operator to publish the shard map again from the spec after it was lost, naming the last
 * ring version status showed (the reconciler refuses until then, and says so).
 */
export const SHARD_MAP_RESET = 'scalableapp.io/shard-map-reset';

export const shardMapName = (app: ScalableApp) => childName(app, 'shard-map');
export const shardsCredentialsName = (app: ScalableApp) => childName(app, 'shards-credentials');
export const hashShardName = (app: ScalableApp, i: number) => childName(app, `shard-${i}`);
/** A hot key's shard is named by a digest of the key: stable whatever the order of the list. */
export const hotShardName = (app: ScalableApp, key: string) =>
  childName(app, `shard-hot-${hotKeyDigest(key)}`);

const host = (app: ScalableApp, service: string) => `${service}.${app.metadata.namespace}.svc`;

/** The ring the spec asks for, with every shard's addresses. */
function desiredRing(app: ScalableApp): DesiredShardMap {
  const s = app.spec.shards!;
  const names = [
    ...Array.from({ length: s.count }, (_, i) => hashShardName(app, i)),
    ...s.dedicated.map((d) => hotShardName(app, d.key)),
  ];
  return {
    key: s.key,
    virtualNodes: s.virtualNodes,
    shards: names.map((name) => ({
      name,
      host: host(app, pgWriteService({ name })),
      readHost: host(app, pgReadService({ name })),
      port: PG_PORT,
      database: APP_DATABASE,
    })),
    dedicated: s.dedicated.map((d) => ({ key: d.key, shard: hotShardName(app, d.key) })),
  };
}

/**
 * The map to publish: the previous one (read back from its ConfigMap) moved on by the spec. A new
 * ring waits as `pending` until the data mover verified its copy and said so by annotation.
 */
export function shardMap(app: ScalableApp, facts: ObservedFacts): ShardMap {
  // Computed again wherever it is asked for (objects, failover, roles, status): a pure function of
  // the app and the facts, a fraction of a millisecond each time, so no cache is kept here.
  const verified = Number(app.metadata.annotations?.[RESHARD_VERIFIED_ANNOTATION] ?? NaN);
  const previous = facts.shardMap;
  const flip = previous?.pending !== undefined && previous.pending.version === verified;
  const next = nextShardMap(previous, desiredRing(app), { flip });
  // Published again after a loss: above every version ever shown, so no old annotation applies to it.
  return previous || !facts.shardVersionFloor ? next : { ...next, version: facts.shardVersionFloor + 1 };
}

/**
 * Shards that hold data: those of the routed ring, while resharding those of the pending one, and
 * shards a flip retired until their drain is confirmed (RESHARD_DRAINED at the routed version).
 */
export function shardNames(map: ShardMap, app?: ScalableApp, facts?: ObservedFacts): string[] {
  const names = new Set(map.shards.map((s) => s.name));
  for (const s of map.pending?.shards ?? []) names.add(s.name);
  const drained = app?.metadata.annotations?.[RESHARD_DRAINED] === String(map.version);
  if (!drained) for (const name of facts?.shardStatefulSets ?? []) names.add(name);
  return [...names].sort();
}

export function shardCluster(app: ScalableApp, name: string, facts: ObservedFacts): PgCluster {
  const s = app.spec.shards!;
  const selector = { ...selectorLabels(app, SHARD), [SHARD_LABEL]: name };
  return {
    app,
    name,
    component: SHARD,
    labels: { ...tierLabels(app, SHARD), [SHARD_LABEL]: name },
    selector,
    spec: {
      version: s.version,
      image: s.image,
      resources: s.resources,
      deletionPolicy: s.deletionPolicy,
      replicas: s.replicasPerShard,
      storage: s.storage,
      // Every shard, hash or hot, replicates and fails over as spec.shards says.
      synchronousReplicas: s.synchronousReplicas,
      failover: s.failover,
      tls: s.tls,
      backup: s.backup,
    },
    credentialsName: shardsCredentialsName(app),
    tls: facts.tls,
    facts: facts.shards?.[name] ?? {},
  };
}

/** Every shard cluster that should run now (routed and pending rings). */
export function shardClusters(app: ScalableApp, facts: ObservedFacts): PgCluster[] {
  return shardNames(shardMap(app, facts), app, facts).map((name) => shardCluster(app, name, facts));
}

export function shardMapConfigMap(app: ScalableApp, map: ShardMap): V1ConfigMap & Child {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: shardMapName(app), namespace: app.metadata.namespace, labels: tierLabels(app, SHARD) },
    data: { [SHARD_MAP_KEY]: serializeShardMap(map) },
  };
}

export function shardObjects(app: ScalableApp, facts: ObservedFacts): Child[] {
  if (!app.spec.shards) return [];
  const map = shardMap(app, facts);
  return [
    // One set of credentials for every shard: the app routes with one user and password.
    pgCredentialsSecret(app, shardsCredentialsName(app), tierLabels(app, SHARD), facts.shardCredentials),
    shardMapConfigMap(app, map),
    ...shardNames(map, app, facts).flatMap((name) => pgClusterObjects(shardCluster(app, name, facts))),
  ];
}

/** What the app needs to route: the map's ConfigMap (mounted by the web and consumer pods) and a login. */
export function shardEntries(app: ScalableApp, facts: ObservedFacts): Record<string, string> {
  if (!app.spec.shards || !facts.shardCredentials) return {};
  return {
    SHARD_MAP_CONFIGMAP: shardMapName(app),
    SHARD_MAP_PATH: `${SHARD_MAP_MOUNT}/${SHARD_MAP_KEY}`,
    SHARD_KEY: app.spec.shards.key,
    SHARDS_USER: appLoginOf(facts.shardCredentials).name,
    SHARDS_PASSWORD: appLoginOf(facts.shardCredentials).password,
    // The router builds each shard's connection from these (libpq's names for them).
    ...(app.spec.shards.tls.enabled
      ? { SHARDS_SSLMODE: 'verify-full', SHARDS_SSLROOTCERT: CA_FILE }
      : { SHARDS_SSLMODE: 'disable' }),
  };
}

/** Where app pods find the shard map file (a ConfigMap volume: the kubelet swaps it on change). */
export const SHARD_MAP_MOUNT = '/etc/scalableapp/shard-map';

/** The shard map as a file in the app's pods (web, consumers), for ShardRouter.fromFile/watchShardMap. */
export function shardMapVolume(app: ScalableApp): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (!app.spec.shards) return { volumes: [], mounts: [] };
  return {
    volumes: [{ name: 'shard-map', configMap: { name: shardMapName(app) } }],
    mounts: [{ name: 'shard-map', mountPath: SHARD_MAP_MOUNT, readOnly: true }],
  };
}
