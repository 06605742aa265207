import { selectorLabels } from '../../tiers/labels.ts';
import { EDGE, EDGE_SERVICE_PORT, edgeCacheObjects, edgeName } from '../../tiers/edge-cache.ts';
import { deploymentTierReadiness } from '../tier-status.ts';
import type { TierModule } from '../tier-module.ts';

/** The edge cache for static assets: nginx in front of the web tier. */
export const edgeCacheTier: TierModule = {
  tier: 'edgeCache',
  present: (app) => app.spec.edgeCache !== undefined,
  objects: (app) => edgeCacheObjects(app),
  readiness: (app, children, _facts, now) =>
    deploymentTierReadiness(
      children,
      app.metadata.namespace ?? '',
      edgeName(app),
      selectorLabels(app, EDGE),
      now,
    ),
  endpoints: (app) => ({ edgeCache: `${edgeName(app)}.${app.metadata.namespace}.svc:${EDGE_SERVICE_PORT}` }),
};
