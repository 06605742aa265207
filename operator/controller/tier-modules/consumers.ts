import type { V1Deployment } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import { consumerName, consumerObjects, consumerReplicas, consumerSelector } from '../../tiers/consumers.ts';
import type { ObservedFacts } from '../../tiers/objects.ts';
import { TIER_REASON, metaTime } from '../conditions.ts';
import type { TierModule } from '../tier-module.ts';
import { blockingOf, deploymentTierReadiness, type ChildLookup, type Readiness } from '../tier-status.ts';

/** Queue consumers, each a Deployment scaled on its queue's depth (consumer-scaling.ts). */
export const consumersTier: TierModule = {
  tier: 'consumers',
  present: (app) => (app.spec.consumers?.length ?? 0) > 0,
  // After the queue's facts: the autoscaler reads the broker with its credentials.
  async gather(ctx, app, facts) {
    if (!ctx.consumerScaling) return { facts: {} };
    const ns = app.metadata.namespace ?? '';
    const current = (name: string) =>
      (ctx.children.get('Deployment', ns, name) as V1Deployment | undefined)?.spec?.replicas;
    return { facts: { consumerScale: ctx.consumerScaling.sync(app, facts, current) } };
  },
  objects: (app, facts, { connection }) => consumerObjects(app, facts, connection),
  readiness: (app, children, _facts, now) => consumersReadiness(app, children, now),
  status: (app, facts) => ({ consumers: consumersStatus(app, facts) }),
  forget: (ctx, key) => ctx.consumerScaling?.forget(key),
};

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
  const results = consumers.map((c) =>
    deploymentTierReadiness(children, ns, consumerName(app, c), consumerSelector(app, c), now),
  );
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
