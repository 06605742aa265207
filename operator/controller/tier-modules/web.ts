import { selectorLabels } from '../../tiers/labels.ts';
import { WEB, webEndpoint, webName, webObjects } from '../../tiers/web.ts';
import type { ScalableApp } from '../../api/scalable-app.ts';
import type { ObservedFacts } from '../../tiers/objects.ts';
import { TIER_REASON } from '../conditions.ts';
import { deploymentTierReadiness, type Readiness } from '../tier-status.ts';
import type { TierModule } from '../tier-module.ts';

type DeploymentCounts = { spec?: { replicas?: number }; status?: { readyReplicas?: number } } | undefined;

/** The stateless web tier: a Deployment behind a Service, an autoscaler and a route. */
export const webTier: TierModule = {
  tier: 'web',
  present: (app) => app.spec.web !== undefined,
  objects: (app, facts, { connection }) => webObjects(app, facts, connection),
  readiness: (app, children, facts, now) =>
    gatewayMissing(app, facts) ??
    deploymentTierReadiness(
      children,
      app.metadata.namespace ?? '',
      webName(app),
      selectorLabels(app, WEB),
      now,
      app.spec.web?.autoscaling?.minReplicas,
    ),
  endpoints: (app) => ({ web: webEndpoint(app) }),
  status(app, _facts, children) {
    const web = children.get('Deployment', app.metadata.namespace ?? '', webName(app)) as DeploymentCounts;
    return { web: { replicas: web?.spec?.replicas ?? 0, readyReplicas: web?.status?.readyReplicas ?? 0 } };
  },
};

/**
 * A Gateway exposure on a cluster without the Gateway API gets no HTTPRoute (there is no such kind
 * to create): the tier says so instead of reporting Ready unreachable from outside. The operator
 * looks for the API when it starts, like the informers it watches routes with.
 */
function gatewayMissing(app: ScalableApp, facts: ObservedFacts): Readiness | undefined {
  if (app.spec.web?.expose.type !== 'Gateway' || facts.gatewayApi) return undefined;
  const message =
    'spec.web.expose.type is Gateway, but this cluster does not serve gateway.networking.k8s.io/v1, ' +
    'so no HTTPRoute is made; install the Gateway API CRDs and restart the operator';
  const reason = TIER_REASON.GatewayAPIMissing;
  return { ready: false, reason, message, degraded: { reason, message } };
}
