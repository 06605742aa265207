import type { V1ConfigMap } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import { SHARD_MAP_KEY, ringSpec, safeParseShardMap } from '../../sharding/shard-map.ts';
import { movedRanges } from '../../sharding/ring.ts';
import { selectorLabels } from '../../tiers/labels.ts';
import type { ObservedFacts, PgClusterFacts } from '../../tiers/objects.ts';
import { pgPrimary } from '../../tiers/postgres-cluster.ts';
import {
  SHARD,
  SHARD_MAP_RESET,
  shardCluster,
  shardClusters,
  shardMap,
  shardMapName,
  shardObjects,
  shardsCredentialsName,
} from '../../tiers/shards.ts';
import { TIER_REASON } from '../conditions.ts';
import { pgCredentials } from '../generated-secrets.ts';
import { noDecisions, type Gathered, type TierContext, type TierModule } from '../tier-module.ts';
import {
  blockingOf,
  diagnosed,
  podsOf,
  primaryReplicaReadiness,
  type ChildLookup,
  type Readiness,
} from '../tier-status.ts';
import { issuedCertificates } from '../issued-certificates.ts';
import { clusterFacts, decidePgClusters, pgCertificateRequests, pgRoles, rotateLogins } from './postgres.ts';

/** Database shards: Postgres clusters routed by a published, versioned ring (docs/sharding.md). */
export const shardsTier: TierModule = {
  tier: 'shards',
  present: (app) => app.spec.shards !== undefined,
  async gather(ctx, app, earlier) {
    const shards = await shardFacts(ctx, app);
    // Every shard that runs now has its certificate, from the same CA as the database tier's.
    const requests = shardClusters(app, { ...earlier, ...shards.facts }).flatMap(pgCertificateRequests);
    const facts = requests.length
      ? { ...shards.facts, tls: await issuedCertificates(ctx, app, earlier.tls, requests) }
      : shards.facts;
    // The reset names the last version shown, so an annotation left behind never applies to a later loss.
    const floor = String(shards.facts.shardVersionFloor ?? 0);
    if (!shards.lost || app.metadata.annotations?.[SHARD_MAP_RESET] === floor) return { facts };
    return {
      facts,
      lost: `${shards.lost}; nothing is applied, so no shard is dropped and no ring is guessed. Restore the map, or annotate the app ${SHARD_MAP_RESET}=${floor} to publish the spec's ring as version ${Number(floor) + 1}`,
    };
  },
  async decide(ctx, app, facts) {
    const primaries = ctx.databasePrimary;
    const decided = primaries
      ? await decidePgClusters(
          ctx,
          facts,
          shardClusters(app, facts).map((c) => ({
            name: c.name,
            decide: (f) => primaries.decideShard(app, f, c.name),
            moved: (f, primary, lastFailover) => ({
              ...f,
              shards: { ...f.shards, [c.name]: { ...f.shards?.[c.name], primary, lastFailover } },
            }),
          })),
        )
      : noDecisions(facts);
    // One password for every shard: the URLs switch once every shard's primary lets the new login in.
    return rotateLogins(ctx, app, decided, {
      secret: shardsCredentialsName(app),
      credentials: (f) => f.shardCredentials,
      clusters: (f) => shardClusters(app, f),
      withCredentials: (f, shardCredentials) => ({ ...f, shardCredentials }),
    });
  },
  objects: (app, facts) => shardObjects(app, facts),
  retainedSecrets: (app) =>
    app.spec.shards?.deletionPolicy === 'Retain' ? [shardsCredentialsName(app)] : [],
  roles: (app, facts) => pgRoles(shardClusters(app, facts)),
  readiness: shardsReadiness,
  endpoints: (app) => ({ shardMap: shardMapName(app) }),
  status: (app, facts, children) => ({ shards: shardsStatus(app, facts, children) }),
  // The shards' primaries are kept by the same DatabasePrimary as the database tier, which forgets
  // the whole app at once (tier-modules/database.ts), as does the rotation of their login.
};

/**
 * Each shard's recorded primary and pods, the shared login, the shard map as published, and the
 * shard StatefulSets that exist (in the map or not). `lost` says why the map cannot be trusted as
 * history: missing or broken while shards exist. The reconcile then refuses rather than publish a
 * ring from the spec that may not say where the data is.
 */
async function shardFacts(
  ctx: TierContext,
  app: ScalableApp,
): Promise<Gathered & { facts: Partial<ObservedFacts> }> {
  const ns = app.metadata.namespace ?? '';
  const credentials = await pgCredentials(ctx, ns, shardsCredentialsName(app));
  const mapName = shardMapName(app);
  const published = (ctx.children.get('ConfigMap', ns, mapName) as V1ConfigMap | undefined)?.data?.[
    SHARD_MAP_KEY
  ];
  const map = published ? safeParseShardMap(published) : undefined;
  const existing = ctx.children
    .select('StatefulSet', ns, selectorLabels(app, SHARD))
    .map((o) => o.metadata!.name!)
    .sort();
  const shown = app.status?.shards;
  const floor = Math.max(shown?.ringVersion ?? 0, shown?.pendingRingVersion ?? 0);
  const lost =
    published !== undefined && !map
      ? `ConfigMap ${ns}/${mapName} holds no valid shard map`
      : // A ring status has shown may be routed by apps. (Shards without any shown version only
        // follow a first reconcile that stopped before its status write: the spec's ring is the one.)
        !published && floor > 0
        ? `ConfigMap ${ns}/${mapName} is gone, but ring v${floor} was published`
        : undefined;
  const clusters: Record<string, PgClusterFacts> = {};
  const names = new Set([
    ...[...(map?.shards ?? []), ...(map?.pending?.shards ?? [])].map((x) => x.name),
    ...existing,
  ]);
  for (const name of names)
    clusters[name] = clusterFacts(ctx, ns, shardCluster(app, name, { gatewayApi: false }));
  return {
    facts: {
      shardCredentials: credentials,
      shards: clusters,
      shardStatefulSets: existing,
      ...(floor ? { shardVersionFloor: floor } : {}),
      ...(map ? { shardMap: map } : {}),
    },
    ...(lost ? { lost } : {}),
  };
}

/**
 * Shards are ready when every shard cluster is. The one named is the shard whose pods show the most
 * severe problem (the first such shard in order), else the first shard that is not ready.
 */
export function shardsReadiness(
  app: ScalableApp,
  children: ChildLookup,
  facts: ObservedFacts,
  now: number = Date.now(),
): Readiness {
  const ns = app.metadata.namespace ?? '';
  const clusters = shardClusters(app, facts);
  const results = clusters.map((c) =>
    diagnosed(
      primaryReplicaReadiness(children, ns, c.name, pgPrimary(c)),
      podsOf(children, ns, c.selector),
      now,
    ),
  );
  const blocking = blockingOf(results);
  if (blocking) return blocking;
  const map = shardMap(app, facts);
  const pending = map.pending
    ? `; ring v${map.pending.version} pending until its data is moved and verified`
    : '';
  return {
    ready: true,
    reason: TIER_REASON.Available,
    message: `${clusters.length}/${clusters.length} shards ready, ring v${map.version}${pending}`,
  };
}

export function shardsStatus(app: ScalableApp, facts: ObservedFacts, children: ChildLookup) {
  const ns = app.metadata.namespace ?? '';
  const map = shardMap(app, facts);
  const ready = shardClusters(app, facts).filter(
    (c) => primaryReplicaReadiness(children, ns, c.name, pgPrimary(c)).ready,
  ).length;
  return {
    ready,
    ringVersion: map.version,
    ...(map.pending
      ? {
          pendingRingVersion: map.pending.version,
          movedKeyRanges: movedRanges(ringSpec(map), ringSpec(map.pending)).ranges,
        }
      : {}),
  };
}
