import type { V1Deployment, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { isPodReady } from '../kube/pods.ts';
import { NO_FACTS, type ObservedFacts } from '../tiers/objects.ts';
import { CACHE, cacheName, cachePrimary } from '../tiers/cache.ts';
import { ROLE_LABEL } from '../tiers/labels.ts';
import { EDGE, edgeName } from '../tiers/edge-cache.ts';
import { DATABASE, dbName, dbPrimary } from '../tiers/database.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { TIERS, type Tier } from '../api/spec.ts';
import { WEB, webName } from '../tiers/web.ts';
import { shardClusters, shardMap } from '../tiers/shards.ts';
import { pgPrimary } from '../tiers/postgres-cluster.ts';
import { movedRanges } from '../sharding/ring.ts';
import { ringSpec } from '../sharding/shard-map.ts';
import { QUEUE, mqName } from '../tiers/queue.ts';
import { consumerName, consumerReplicas, consumerSelector } from '../tiers/consumers.ts';
import { selectorLabels } from '../tiers/labels.ts';
import { TIER_REASON, cond, metaTime, type ConditionInput, type TierReason } from './conditions.ts';
import { diagnosePods } from './pod-diagnosis.ts';

/**
 * What the status needs from the cache: the live children by kind and name, and (for what their pods
 * say) the cached pods matching a selector. Without `select` no pod is diagnosed.
 */
export interface ChildLookup {
  get(kind: string, namespace: string, name: string): unknown;
  select?(kind: string, namespace: string, labels: Record<string, string>): readonly unknown[];
}

export interface TierReport {
  readonly condition: ConditionInput;
  readonly ready: boolean;
  /** A failure that will not fix itself (e.g. a rollout past its deadline). */
  readonly degraded?: string;
  /** Look again after this long: a running container's probes' budget runs out then (pod-diagnosis.ts). */
  readonly recheckAfterMs?: number;
}

/** A workload's readiness; when not ready, the most telling problem of its pods may be in it. */
export interface Readiness {
  readonly ready: boolean;
  readonly reason: TierReason;
  readonly message: string;
  readonly degraded?: string | undefined;
  /** The diagnosis' severity, when the reason comes from the pods (0 is the most severe). */
  readonly severity?: number;
  readonly recheckAfterMs?: number;
}

const conditionType = (t: Tier) => `${t[0]!.toUpperCase()}${t.slice(1)}Ready`;

/** Readiness of a Deployment the way `kubectl rollout status` judges it. */
export function deploymentReadiness(d: V1Deployment | undefined, ref: string, minReplicas = 0): Readiness {
  if (!d) return { ready: false, reason: TIER_REASON.NotCreated, message: `${ref} does not exist yet` };
  const replicas = d.spec?.replicas ?? 1;
  // With an autoscaler the Deployment starts at 1 until the HPA raises it to its minimum.
  const want = Math.max(replicas, minReplicas);
  const s = d.status ?? {};
  if ((s.observedGeneration ?? 0) < (d.metadata?.generation ?? 0)) {
    return {
      ready: false,
      reason: TIER_REASON.RolloutPending,
      message: `${ref}: the new spec is not observed yet`,
    };
  }
  const stalled = s.conditions?.find(
    (c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded',
  );
  const degraded = stalled ? `${ref}: ${stalled.message ?? 'progress deadline exceeded'}` : undefined;
  if ((s.updatedReplicas ?? 0) < replicas) {
    return {
      ready: false,
      reason: TIER_REASON.RollingOut,
      message: `${ref}: ${s.updatedReplicas ?? 0}/${replicas} replicas updated`,
      degraded,
    };
  }
  if ((s.availableReplicas ?? 0) < want || (s.replicas ?? 0) > replicas) {
    return {
      ready: false,
      reason: TIER_REASON.ReplicasUnavailable,
      message: `${ref}: ${s.availableReplicas ?? 0}/${want} replicas available`,
      degraded,
    };
  }
  return {
    ready: true,
    reason: TIER_REASON.Available,
    message: `${ref}: ${s.availableReplicas}/${want} replicas available`,
  };
}

/**
 * One condition per deployed tier, each naming the object that holds it back and, when the tier is
 * not ready and its pods say why, the pod and the reason (operator/controller/pod-diagnosis.ts).
 * `now` only decides whether a running container has had its probes' budget to become ready.
 */
export function tierReports(
  app: ScalableApp,
  children: ChildLookup,
  facts: ObservedFacts = NO_FACTS,
  now: number = Date.now(),
): Map<Tier, TierReport> {
  const ns = app.metadata.namespace ?? '';
  const reports = new Map<Tier, TierReport>();
  const pods = (selector: Record<string, string>) => podsOf(children, ns, selector);
  for (const tier of TIERS) {
    const present =
      tier === 'consumers' ? (app.spec.consumers?.length ?? 0) > 0 : app.spec[tier] !== undefined;
    if (!present) continue;
    let r: Readiness;
    if (tier === 'web') {
      const name = webName(app);
      r = diagnosed(
        deploymentReadiness(
          children.get('Deployment', ns, name) as V1Deployment | undefined,
          `Deployment ${ns}/${name}`,
          app.spec.web?.autoscaling?.minReplicas,
        ),
        pods(selectorLabels(app, WEB)),
        now,
      );
    } else if (tier === 'edgeCache') {
      const name = edgeName(app);
      r = diagnosed(
        deploymentReadiness(
          children.get('Deployment', ns, name) as V1Deployment | undefined,
          `Deployment ${ns}/${name}`,
        ),
        pods(selectorLabels(app, EDGE)),
        now,
      );
    } else if (tier === 'database') {
      r = diagnosed(
        primaryReplicaReadiness(children, ns, dbName(app), dbPrimary(app, facts)),
        pods(selectorLabels(app, DATABASE)),
        now,
      );
    } else if (tier === 'cache') {
      r = diagnosed(cacheReadiness(app, children, facts), pods(selectorLabels(app, CACHE)), now);
    } else if (tier === 'shards') {
      r = shardsReadiness(app, children, facts, now);
    } else if (tier === 'queue') {
      r = diagnosed(statefulSetReadiness(children, ns, mqName(app)), pods(selectorLabels(app, QUEUE)), now);
    } else {
      r = consumersReadiness(app, children, now);
    }
    reports.set(tier, {
      condition: cond(conditionType(tier), r.ready, r.reason, r.message),
      ready: r.ready,
      ...(r.degraded ? { degraded: r.degraded } : {}),
      ...(r.recheckAfterMs !== undefined ? { recheckAfterMs: r.recheckAfterMs } : {}),
    });
  }
  return reports;
}

/** The soonest any tier asks to be looked at again, if one does. */
export function recheckAfterMs(reports: ReadonlyMap<Tier, TierReport>): number | undefined {
  const times = [...reports.values()].flatMap((r) =>
    r.recheckAfterMs === undefined ? [] : [r.recheckAfterMs],
  );
  return times.length ? Math.max(1_000, Math.ceil(Math.min(...times))) : undefined;
}

const podsOf = (children: ChildLookup, ns: string, selector: Record<string, string>) =>
  (children.select?.('Pod', ns, selector) ?? []) as readonly V1Pod[];

/**
 * A workload that is not ready, told by its pods when they show a problem: the reason becomes the
 * problem's (ImagePullFailed, ContainerCrashLooping, ...) and the message names the pod after what
 * the workload says. A ready workload is left as it is.
 */
export function diagnosed(r: Readiness, pods: readonly V1Pod[], now: number): Readiness {
  if (r.ready) return r;
  const { diagnosis, recheckAfterMs } = diagnosePods(pods, now);
  return {
    ...r,
    ...(diagnosis
      ? {
          reason: diagnosis.reason,
          message: `${r.message}; ${diagnosis.message}`,
          severity: diagnosis.severity,
        }
      : {}),
    ...(recheckAfterMs !== undefined ? { recheckAfterMs } : {}),
  };
}

/**
 * Of several workloads of one tier (shards, consumers), the one that holds it back: the most severe
 * pod diagnosis, the first in order among equals; without any, the first that is not ready.
 */
function blockingOf(results: readonly Readiness[]): Readiness | undefined {
  const notReady = results.filter((r) => !r.ready);
  const worst = notReady
    .filter((r) => r.severity !== undefined)
    .reduce<Readiness | undefined>((a, r) => (a && a.severity! <= r.severity! ? a : r), undefined);
  const blocking = worst ?? notReady[0];
  if (!blocking) return undefined;
  const rechecks = results.flatMap((r) => (r.recheckAfterMs === undefined ? [] : [r.recheckAfterMs]));
  const { recheckAfterMs: _own, ...rest } = blocking;
  return { ...rest, ...(rechecks.length ? { recheckAfterMs: Math.min(...rechecks) } : {}) };
}

const isReady = isPodReady;

/**
 * A primary-and-replicas tier (cache, database) is ready when every instance of its StatefulSet is
 * ready and the recorded primary is a ready pod that carries the primary role label.
 */
export function primaryReplicaReadiness(
  children: ChildLookup,
  ns: string,
  statefulSet: string,
  primary: string,
): Readiness {
  const sts = statefulSetReadiness(children, ns, statefulSet);
  if (!sts.ready) return sts;
  const pod = children.get('Pod', ns, primary) as V1Pod | undefined;
  if (!isReady(pod) || pod?.metadata?.labels?.[ROLE_LABEL] !== 'primary') {
    return {
      ready: false,
      reason: TIER_REASON.PrimaryUnavailable,
      message: `Pod ${ns}/${primary}: not a ready, labelled primary yet`,
    };
  }
  return { ready: true, reason: TIER_REASON.Available, message: `${sts.message}, primary ${primary}` };
}

/** Every instance of a StatefulSet updated and ready. */
export function statefulSetReadiness(children: ChildLookup, ns: string, statefulSet: string): Readiness {
  const ref = `StatefulSet ${ns}/${statefulSet}`;
  const sts = children.get('StatefulSet', ns, statefulSet) as V1StatefulSet | undefined;
  if (!sts) return { ready: false, reason: TIER_REASON.NotCreated, message: `${ref} does not exist yet` };
  const want = sts.spec?.replicas ?? 1;
  const s = sts.status ?? { replicas: 0 };
  if ((s.observedGeneration ?? 0) < (sts.metadata?.generation ?? 0) || (s.updatedReplicas ?? 0) < want) {
    return {
      ready: false,
      reason: TIER_REASON.RollingOut,
      message: `${ref}: ${s.updatedReplicas ?? 0}/${want} instances updated`,
    };
  }
  if ((s.readyReplicas ?? 0) < want) {
    return {
      ready: false,
      reason: TIER_REASON.ReplicasUnavailable,
      message: `${ref}: ${s.readyReplicas ?? 0}/${want} instances ready`,
    };
  }
  return { ready: true, reason: TIER_REASON.Available, message: `${ref}: ${want}/${want} instances ready` };
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

/**
 * Consumers are ready when each Deployment has the replicas it was given (0 is a valid number). The
 * one named is the consumer whose pods show the most severe problem, else the first not ready.
 */
export function consumersReadiness(
  app: ScalableApp,
  children: ChildLookup,
  now: number = Date.now(),
): Readiness {
  const ns = app.metadata.namespace ?? '';
  const consumers = app.spec.consumers ?? [];
  const results = consumers.map((c) => {
    const name = consumerName(app, c);
    return diagnosed(
      deploymentReadiness(
        children.get('Deployment', ns, name) as V1Deployment | undefined,
        `Deployment ${ns}/${name}`,
      ),
      podsOf(children, ns, consumerSelector(app, c)),
      now,
    );
  });
  const blocking = blockingOf(results);
  if (blocking) return blocking;
  return {
    ready: true,
    reason: TIER_REASON.Available,
    message: `${consumers.length} consumer Deployment(s) available`,
  };
}

/** Per consumer: the replicas it runs and the autoscaler's last decision with its inputs. */
export function consumersStatus(app: ScalableApp, facts: ObservedFacts) {
  return (app.spec.consumers ?? []).map((c) => {
    const scale = facts.consumerScale?.[c.name];
    const d = scale?.decision;
    const s = scale?.lastScale;
    // A restarted operator has made no change yet: the one on record still says why, as HPA's
    // lastScaleTime does. Only while the consumer is autoscaled.
    const recorded = c.autoscaling
      ? app.status?.consumers?.find((r) => r.name === c.name)?.lastScale
      : undefined;
    const lastScale = s
      ? {
          time: metaTime(s.time),
          fromReplicas: s.currentReplicas,
          toReplicas: s.desiredReplicas,
          queueDepth: s.queueDepth,
          reason: s.reason,
        }
      : recorded;
    return {
      name: c.name,
      replicas: consumerReplicas(c, facts),
      ...(d
        ? {
            lastDecision: {
              time: metaTime(d.time),
              queueDepth: d.queueDepth,
              desiredReplicas: d.desiredReplicas,
              reason: d.reason,
            },
          }
        : {}),
      ...(lastScale ? { lastScale } : {}),
    };
  });
}

export const cacheReadiness = (app: ScalableApp, children: ChildLookup, facts: ObservedFacts) =>
  primaryReplicaReadiness(children, app.metadata.namespace ?? '', cacheName(app), cachePrimary(app, facts));

/**
 * Ready instances that are not the primary: the StatefulSet's ready count, less one only while the
 * primary is among them (a primary that is down is no replica, and leaves the count alone).
 */
export function readyReplicas(
  children: ChildLookup,
  ns: string,
  statefulSet: string,
  primary: string,
): number {
  const sts = children.get('StatefulSet', ns, statefulSet) as V1StatefulSet | undefined;
  const primaryReady = isReady(children.get('Pod', ns, primary) as V1Pod | undefined);
  return Math.max(0, (sts?.status?.readyReplicas ?? 0) - (primaryReady ? 1 : 0));
}

export function cacheStatus(
  app: ScalableApp,
  facts: ObservedFacts,
  children: ChildLookup,
): { primary: string; readyReplicas: number } {
  return {
    primary: cachePrimary(app, facts),
    readyReplicas: readyReplicas(
      children,
      app.metadata.namespace ?? '',
      cacheName(app),
      cachePrimary(app, facts),
    ),
  };
}
