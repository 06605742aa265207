import { contentHash } from './content-hash.ts';
import type { V1ConfigMap, V1Deployment, V1Service } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import {
  HEALTH_PATH,
  STATUS_PATH,
  edgeCacheNginxArgs,
  edgeCacheNginxConfig,
} from '../server-config/edge-cache.ts';
import { ANNOTATION, selectorLabels, tierLabels, tierMeta } from './labels.ts';
import { restrictedPodBase, withRestrictedSecurity } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';
import { zoneSpread } from './topology.ts';
import { EDGE_STATUS_PORT, METRICS_PORT, edgeExporter, monitored, scrapeAnnotations } from './monitoring.ts';
import { disruptionBudget } from './disruption-budget.ts';
import type { Child } from './objects.ts';
import { EDGE_SERVICE_PORT, WEB_SERVICE_PORT, edgeName, webName } from './front-services.ts';

export const EDGE = 'edge-cache';
export const EDGE_PORT = 8080;
export { EDGE_SERVICE_PORT, edgeName } from './front-services.ts';
const RUN_DIR = '/tmp';

const configName = (app: ScalableApp) => `${edgeName(app)}-config`;

const meta = (app: ScalableApp, name: string) => tierMeta(app, EDGE, name);

/** nginx's `512m` as a Kubernetes quantity with the same number of bytes, doubled for temp files. */
function scratchSize(cacheSize: string): string {
  const m = /^(\d+)([kmg]?)$/i.exec(cacheSize)!;
  const unit = { '': '', k: 'Ki', m: 'Mi', g: 'Gi' }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return `${Number(m[1]) * 2}${unit}`;
}

export function edgeConfigMap(app: ScalableApp): V1ConfigMap & Child {
  const e = app.spec.edgeCache!;
  const conf = edgeCacheNginxConfig({
    listenPort: EDGE_PORT,
    originHost: `${webName(app)}.${app.metadata.namespace}.svc.cluster.local`,
    originPort: WEB_SERVICE_PORT,
    pathPrefix: e.pathPrefix,
    ttlSeconds: e.ttlSeconds,
    staleIfErrorSeconds: e.staleIfErrorSeconds,
    assetVersion: e.assetVersion,
    cacheSize: e.cacheSize,
    runDir: RUN_DIR,
    ...(monitored(app) ? { statusPort: EDGE_STATUS_PORT } : {}),
  });
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(app, configName(app)),
    data: { 'nginx.conf': conf },
  };
}

/** A new assetVersion changes the config, so the pods roll and start from an empty cache too. */
export function edgeDeployment(app: ScalableApp, config: V1ConfigMap): V1Deployment & Child {
  const e = app.spec.edgeCache!;
  const selector = selectorLabels(app, EDGE);
  const spread = zoneSpread(app, selector, { rollingDeployment: true });
  const hash = contentHash(config.data ?? {});
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(app, edgeName(app)),
    spec: {
      replicas: e.replicas,
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' } },
      template: {
        metadata: {
          labels: tierLabels(app, EDGE),
          annotations: { [ANNOTATION.configHash]: hash, ...scrapeAnnotations(app, METRICS_PORT.edgeCache) },
        },
        spec: {
          ...restrictedPodBase(),
          containers: [
            withRestrictedSecurity({
              name: 'edge',
              image: e.image,
              command: ['nginx', ...edgeCacheNginxArgs('/config/nginx.conf')],
              ports: [{ name: 'http', containerPort: EDGE_PORT, protocol: 'TCP' }],
              resources: resourceRequirements(e.resources),
              readinessProbe: { httpGet: { path: HEALTH_PATH, port: 'http' }, periodSeconds: 5 },
              livenessProbe: {
                httpGet: { path: HEALTH_PATH, port: 'http' },
                periodSeconds: 10,
                failureThreshold: 6,
              },
              volumeMounts: [{ name: 'config', mountPath: '/config', readOnly: true }],
            }),
            ...edgeExporter(app, STATUS_PATH),
          ],
          volumes: [
            { name: 'config', configMap: { name: configName(app) } },
            // The cache itself lives here: sized for max_size plus temp files.
            { name: 'tmp', emptyDir: { sizeLimit: scratchSize(e.cacheSize) } },
          ],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
    },
  };
}

export function edgeService(app: ScalableApp): V1Service & Child {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(app, edgeName(app)),
    spec: {
      selector: selectorLabels(app, EDGE),
      ports: [{ name: 'http', port: EDGE_SERVICE_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

export const edgeDisruptionBudget = (app: ScalableApp) => disruptionBudget(app, EDGE, edgeName(app));

export function edgeCacheObjects(app: ScalableApp): Child[] {
  if (!app.spec.edgeCache || !app.spec.web) return [];
  const config = edgeConfigMap(app);
  return [config, edgeDeployment(app, config), edgeService(app), edgeDisruptionBudget(app)];
}

/** What the app renders asset URLs with; a new version is a new cache key. */
export function edgeEntries(app: ScalableApp): Record<string, string> {
  const e = app.spec.edgeCache;
  return e ? { ASSET_BASE_PATH: e.pathPrefix, ASSET_VERSION: e.assetVersion } : {};
}
