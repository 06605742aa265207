import type { V1Deployment, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { NO_FACTS, type ObservedFacts } from '../tiers/objects.ts';
import { ROLE_LABEL, cacheName, cachePrimary } from '../tiers/cache.ts';
import { edgeName } from '../tiers/edge-cache.ts';
import { dbName, dbPrimary } from '../tiers/database.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { TIERS, type Tier } from '../api/spec.ts';
import { webName } from '../tiers/web.ts';
import { shardClusters, shardMap } from '../tiers/shards.ts';
import { pgPrimary } from '../tiers/postgres-cluster.ts';
import { movedRanges } from '../sharding/ring.ts';
import { ringSpec } from '../sharding/shard-map.ts';
import { mqName } from '../tiers/queue.ts';
import { consumerName, consumerReplicas } from '../tiers/consumers.ts';
import { cond, type ConditionInput } from './conditions.ts';

/** What the status needs from the cache: the live children by kind and name. */
export interface ChildLookup {
  get(kind: string, namespace: string, name: string): unknown;
}

export interface TierReport {
  readonly condition: ConditionInput;
  readonly ready: boolean;
  /** A failure that will not fix itself (e.g. a rollout past its deadline). */
  readonly degraded?: string;
}

const conditionType = (t: Tier) => `${t[0]!.toUpperCase()}${t.slice(1)}Ready`;

/** Readiness of a Deployment the way `kubectl rollout status` judges it. */
export function deploymentReadiness(
  d: V1Deployment | undefined,
  ref: string,
  minReplicas = 0,
): { ready: boolean; reason: string; message: string; degraded?: string } {
  if (!d) return { ready: false, reason: 'NotCreated', message: `${ref} does not exist yet` };
  const replicas = d.spec?.replicas ?? 1;
  // With an autoscaler the Deployment starts at 1 until the HPA raises it to its minimum.
  const want = Math.max(replicas, minReplicas);
  const s = d.status ?? {};
  if ((s.observedGeneration ?? 0) < (d.metadata?.generation ?? 0)) {
    return { ready: false, reason: 'RolloutPending', message: `${ref}: the new spec is not observed yet` };
  }
  const stalled = s.conditions?.find(
    (c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded',
  );
  const degraded = stalled ? `${ref}: ${stalled.message ?? 'progress deadline exceeded'}` : undefined;
  if ((s.updatedReplicas ?? 0) < replicas) {
    return {
      ready: false,
      reason: 'RollingOut',
      message: `${ref}: ${s.updatedReplicas ?? 0}/${replicas} replicas updated`,
      degraded,
    };
  }
  if ((s.availableReplicas ?? 0) < want || (s.replicas ?? 0) > replicas) {
    return {
      ready: false,
      reason: 'ReplicasUnavailable',
      message: `${ref}: ${s.availableReplicas ?? 0}/${want} replicas available`,
      degraded,
    };
  }
  return {
    ready: true,
    reason: 'Available',
    message: `${ref}: ${s.availableReplicas}/${want} replicas available`,
  };
}

/** One condition per deployed tier, each naming the object that holds it back. */
export function tierReports(
  app: ScalableApp,
  children: ChildLookup,
  facts: ObservedFacts = NO_FACTS,
): Map<Tier, TierReport> {
  const ns = app.metadata.namespace ?? '';
  const reports = new Map<Tier, TierReport>();
  for (const tier of TIERS) {
    const present =
      tier === 'consumers' ? (app.spec.consumers?.length ?? 0) > 0 : app.spec[tier] !== undefined;
    if (!present) continue;
    if (tier === 'web') {
      const name = webName(app);
      const r = deploymentReadiness(
        children.get('Deployment', ns, name) as V1Deployment | undefined,
        `Deployment ${ns}/${name}`,
        app.spec.web?.autoscaling?.minReplicas,
      );
      reports.set(tier, {
        condition: cond(conditionType(tier), r.ready, r.reason, r.message),
        ready: r.ready,
        ...(r.degraded ? { degraded: r.degraded } : {}),
      });
    } else if (tier === 'edgeCache') {
      const name = edgeName(app);
      const r = deploymentReadiness(
        children.get('Deployment', ns, name) as V1Deployment | undefined,
        `Deployment ${ns}/${name}`,
      );
      reports.set(tier, {
        condition: cond(conditionType(tier), r.ready, r.reason, r.message),
        ready: r.ready,
        ...(r.degraded ? { degraded: r.degraded } : {}),
      });
    } else if (tier === 'database') {
      const r = primaryReplicaReadiness(children, ns, dbName(app), dbPrimary(app, facts));
      reports.set(tier, {
        condition: cond(conditionType(tier), r.ready, r.reason, r.message),
        ready: r.ready,
      });
    } else if (tier === 'cache') {
      const r = cacheReadiness(app, children, facts);
      reports.set(tier, {
        condition: cond(conditionType(tier), r.ready, r.reason, r.message),
        ready: r.ready,
      });
    } else {
      const r: { ready: boolean; reason: string; message: string; degraded?: string | undefined } =
        tier === 'shards'
          ? shardsReadiness(app, children, facts)
          : tier === 'queue'
            ? statefulSetReadiness(children, ns, mqName(app))
            : consumersReadiness(app, children);
      reports.set(tier, {
        condition: cond(conditionType(tier), r.ready, r.reason, r.message),
        ready: r.ready,
        ...(r.degraded ? { degraded: r.degraded } : {}),
      });
    }
  }
  return reports;
}

const isReady = (pod: V1Pod | undefined) =>
  pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** The cache is ready when every server is ready and the primary Service has its pod. */
/**
 * A primary-and-replicas tier (cache, database) is ready when every instance of its StatefulSet is
 * ready and the recorded primary is a ready pod that carries the primary role label.
 */
export function primaryReplicaReadiness(
  children: ChildLookup,
  ns: string,
  statefulSet: string,
  primary: string,
): { ready: boolean; reason: string; message: string } {
  const sts = statefulSetReadiness(children, ns, statefulSet);
  if (!sts.ready) return sts;
  const pod = children.get('Pod', ns, primary) as V1Pod | undefined;
  if (!isReady(pod) || pod?.metadata?.labels?.[ROLE_LABEL] !== 'primary') {
    return {
      ready: false,
      reason: 'PrimaryUnavailable',
      message: `Pod ${ns}/${primary}: not a ready, labelled primary yet`,
    };
  }
  return { ready: true, reason: 'Available', message: `${sts.message}, primary ${primary}` };
}

/** Every instance of a StatefulSet updated and ready. */
export function statefulSetReadiness(
  children: ChildLookup,
  ns: string,
  statefulSet: string,
): { ready: boolean; reason: string; message: string } {
  const ref = `StatefulSet ${ns}/${statefulSet}`;
  const sts = children.get('StatefulSet', ns, statefulSet) as V1StatefulSet | undefined;
  if (!sts) return { ready: false, reason: 'NotCreated', message: `${ref} does not exist yet` };
  const want = sts.spec?.replicas ?? 1;
  const s = sts.status ?? { replicas: 0 };
  if ((s.observedGeneration ?? 0) < (sts.metadata?.generation ?? 0) || (s.updatedReplicas ?? 0) < want) {
    return {
      ready: false,
      reason: 'RollingOut',
      message: `${ref}: ${s.updatedReplicas ?? 0}/${want} instances updated`,
    };
  }
  if ((s.readyReplicas ?? 0) < want) {
    return {
      ready: false,
      reason: 'ReplicasUnavailable',
      message: `${ref}: ${s.readyReplicas ?? 0}/${want} instances ready`,
    };
  }
  return { ready: true, reason: 'Available', message: `${ref}: ${want}/${want} instances ready` };
}

/** Shards are ready when every shard cluster is; the first one that is not is named. */
export function shardsReadiness(
  app: ScalableApp,
  children: ChildLookup,
  facts: ObservedFacts,
): { ready: boolean; reason: string; message: string } {
  const ns = app.metadata.namespace ?? '';
  const clusters = shardClusters(app, facts);
  const results = clusters.map((c) => primaryReplicaReadiness(children, ns, c.name, pgPrimary(c)));
  const blocking = results.find((r) => !r.ready);
  if (blocking) return blocking;
  const map = shardMap(app, facts);
  const pending = map.pending
    ? `; ring v${map.pending.version} pending until its data is moved and verified`
    : '';
  return {
    ready: true,
    reason: 'Available',
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

/** Consumers are ready when each Deployment has the replicas it was given (0 is a valid number). */
export function consumersReadiness(
  app: ScalableApp,
  children: ChildLookup,
): { ready: boolean; reason: string; message: string; degraded?: string } {
  const ns = app.metadata.namespace ?? '';
  const consumers = app.spec.consumers ?? [];
  for (const c of consumers) {
    const name = consumerName(app, c);
    const r = deploymentReadiness(
      children.get('Deployment', ns, name) as V1Deployment | undefined,
      `Deployment ${ns}/${name}`,
    );
    if (!r.ready) return r;
  }
  return {
    ready: true,
    reason: 'Available',
    message: `${consumers.length} consumer Deployment(s) available`,
  };
}

/** Per consumer: the replicas it runs and the autoscaler's last decision with its inputs. */
export function consumersStatus(app: ScalableApp, facts: ObservedFacts) {
  return (app.spec.consumers ?? []).map((c) => {
    const d = facts.consumerScale?.[c.name]?.decision;
    return {
      name: c.name,
      replicas: consumerReplicas(c, facts),
      ...(d
        ? {
            lastDecision: {
              time: d.time.replace(/\.\d{3}Z$/, 'Z'),
              queueDepth: d.queueDepth,
              desiredReplicas: d.desiredReplicas,
              reason: d.reason,
            },
          }
        : {}),
    };
  });
}

export const cacheReadiness = (app: ScalableApp, children: ChildLookup, facts: ObservedFacts) =>
  primaryReplicaReadiness(children, app.metadata.namespace ?? '', cacheName(app), cachePrimary(app, facts));

/** Ready instances that are not the primary. */
export function readyReplicas(children: ChildLookup, ns: string, statefulSet: string): number {
  const sts = children.get('StatefulSet', ns, statefulSet) as V1StatefulSet | undefined;
  return Math.max(0, (sts?.status?.readyReplicas ?? 0) - 1);
}

export function cacheStatus(
  app: ScalableApp,
  facts: ObservedFacts,
  children: ChildLookup,
): { primary: string; readyReplicas: number } {
  return {
    primary: cachePrimary(app, facts),
    readyReplicas: readyReplicas(children, app.metadata.namespace ?? '', cacheName(app)),
  };
}
