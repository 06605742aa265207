import { selectorLabels } from '../../tiers/labels.ts';
import { WEB, webEndpoint, webName, webObjects } from '../../tiers/web.ts';
import { deploymentTierReadiness } from '../tier-status.ts';
import type { TierModule } from '../tier-module.ts';

type DeploymentCounts = { spec?: { replicas?: number }; status?: { readyReplicas?: number } } | undefined;

/** The stateless web tier: a Deployment behind a Service, an autoscaler and a route. */
export const webTier: TierModule = {
  tier: 'web',
  present: (app) => app.spec.web !== undefined,
  objects: (app, facts, { connection }) => webObjects(app, facts, connection),
  readiness: (app, children, _facts, now) =>
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
