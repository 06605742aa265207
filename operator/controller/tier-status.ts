import type { V1Deployment } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { TIERS, type Tier } from '../api/spec.ts';
import { webName } from '../tiers/web.ts';
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
export function tierReports(app: ScalableApp, children: ChildLookup): Map<Tier, TierReport> {
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
    } else {
      // Honest about scope: the tier is accepted by the API but this operator version builds nothing for it.
      reports.set(tier, {
        condition: cond(
          conditionType(tier),
          false,
          'NotImplemented',
          `the ${tier} tier is not built by this operator version yet; nothing was created for it`,
        ),
        ready: false,
      });
    }
  }
  return reports;
}
