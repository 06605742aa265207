import type { V1Deployment, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { isPodReady } from '../kube/pods.ts';
import { ROLE_LABEL } from '../tiers/labels.ts';
import { APP_REASON, TIER_REASON, type ConditionInput, type TierReason } from './conditions.ts';
import { diagnosePods } from './pod-diagnosis.ts';

// The readiness of the workloads tiers are made of. Each tier's own rules are in its module
// (tier-modules/); the conditions they make are assembled in tier-reports.ts.

/**
 * What the status needs from the cache: the live children by kind and name, and (for what their pods
 * say) the cached pods matching a selector. Without `select` no pod is diagnosed.
 */
export interface ChildLookup {
  get(kind: string, namespace: string, name: string): unknown;
  select?(kind: string, namespace: string, labels: Record<string, string>): readonly unknown[];
}

/**
 * A failure that will not fix itself, for the app's Degraded condition: a rollout past its deadline
 * (RolloutStalled), or something the cluster lacks (the tier's own reason, e.g. GatewayAPIMissing).
 */
export interface Degradation {
  readonly reason: typeof APP_REASON.RolloutStalled | TierReason;
  readonly message: string;
}

export interface TierReport {
  readonly condition: ConditionInput;
  readonly ready: boolean;
  readonly degraded?: Degradation;
  /** Look again after this long: a running container's probes' budget runs out then (pod-diagnosis.ts). */
  readonly recheckAfterMs?: number;
}

/** A workload's readiness; when not ready, the most telling problem of its pods may be in it. */
export interface Readiness {
  readonly ready: boolean;
  readonly reason: TierReason;
  readonly message: string;
  readonly degraded?: Degradation | undefined;
  /** The diagnosis' severity, when the reason comes from the pods (0 is the most severe). */
  readonly severity?: number;
  readonly recheckAfterMs?: number;
}

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
  const degraded = stalled
    ? {
        reason: APP_REASON.RolloutStalled,
        message: `${ref}: ${stalled.message ?? 'progress deadline exceeded'}`,
      }
    : undefined;
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

export const podsOf = (children: ChildLookup, ns: string, selector: Record<string, string>) =>
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
export function blockingOf(results: readonly Readiness[]): Readiness | undefined {
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

/** A Deployment's readiness, told by its pods when they show a problem (web, edge cache, each consumer). */
export function deploymentTierReadiness(
  children: ChildLookup,
  ns: string,
  name: string,
  selector: Record<string, string>,
  now: number,
  minReplicas?: number,
): Readiness {
  const d = children.get('Deployment', ns, name) as V1Deployment | undefined;
  return diagnosed(
    deploymentReadiness(d, `Deployment ${ns}/${name}`, minReplicas),
    podsOf(children, ns, selector),
    now,
  );
}
