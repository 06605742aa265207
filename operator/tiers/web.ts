import type {
  V2HorizontalPodAutoscaler,
  V1Container,
  V1Deployment,
  V1Ingress,
  V1Service,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { ANNOTATION, selectorLabels, tierLabels, tierMeta } from './labels.ts';
import { restrictedPodBase, tmpVolume, withRestrictedSecurity } from './pod-security.ts';
import { zoneSpread } from './topology.ts';
import { appFiles } from './app-files.ts';
import { envVars } from './env.ts';
import { disruptionBudget } from './disruption-budget.ts';
import { resourceRequirements } from './resources.ts';
import { EDGE_SERVICE_PORT, WEB, WEB_SERVICE_PORT, edgeName, webName } from './front-services.ts';
import type { Child, ObservedFacts } from './objects.ts';

export { WEB, WEB_SERVICE_PORT, webName } from './front-services.ts';

type Web = NonNullable<ScalableApp['spec']['web']>;

const meta = (app: ScalableApp, name = webName(app)) => tierMeta(app, WEB, name);

function webContainer(web: Web, connectionSecret: string, mounts: V1VolumeMount[]): V1Container {
  const { path, livenessPath, periodSeconds, failureThreshold } = web.healthCheck;
  const probe = (p: string) => ({ httpGet: { path: p, port: 'http' }, periodSeconds, failureThreshold });
  // Liveness never asks what readiness asks unless told to: `path` may check the app's dependencies,
  // and a database failover would then restart every web pod at once. Without a livenessPath the
  // process is alive while it accepts connections on its port.
  const alive = livenessPath
    ? { httpGet: { path: livenessPath, port: 'http' } }
    : { tcpSocket: { port: 'http' } };
  return withRestrictedSecurity({
    name: WEB,
    image: web.image,
    ports: [{ name: 'http', containerPort: web.port, protocol: 'TCP' }],
    envFrom: [{ secretRef: { name: connectionSecret } }],
    ...(web.env.length ? { env: envVars(web.env) } : {}),
    ...(mounts.length ? { volumeMounts: mounts } : {}),
    resources: resourceRequirements(web.resources),
    readinessProbe: probe(path),
    // Liveness is more patient than readiness: a slow app leaves the Service before it is killed.
    livenessProbe: { ...alive, periodSeconds, failureThreshold: failureThreshold * 2 },
  });
}

/**
 * The web Deployment. With autoscaling the HPA owns `replicas`, so the field is left out entirely:
 * applying it would fight the autoscaler on every reconcile.
 */
export function webDeployment(
  app: ScalableApp,
  connection: { name: string; hash: string },
): V1Deployment & Child {
  const web = app.spec.web!;
  const selector = selectorLabels(app, WEB);
  const spread = zoneSpread(app, selector, { rollingDeployment: true });

  const files = appFiles(app);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(app),
    spec: {
      ...(web.autoscaling ? {} : { replicas: web.replicas }),
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' } },
      template: {
        metadata: {
          labels: tierLabels(app, WEB),
          annotations: { [ANNOTATION.connectionHash]: connection.hash },
        },
        spec: {
          ...restrictedPodBase(),
          containers: [webContainer(web, connection.name, files.mounts)],
          volumes: [tmpVolume, ...files.volumes],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
    },
  };
}

export function webService(app: ScalableApp): V1Service & Child {
  const type = app.spec.web!.expose.type === 'LoadBalancer' ? 'LoadBalancer' : 'ClusterIP';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(app),
    spec: {
      type,
      selector: selectorLabels(app, WEB),
      ports: [{ name: 'http', port: WEB_SERVICE_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

export function webAutoscaler(app: ScalableApp): (V2HorizontalPodAutoscaler & Child) | undefined {
  const a = app.spec.web!.autoscaling;
  if (!a) return undefined;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: meta(app),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: webName(app) },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      metrics: [
        {
          type: 'Resource',
          resource: {
            name: 'cpu',
            target: { type: 'Utilization', averageUtilization: a.targetCPUUtilizationPercentage },
          },
        },
      ],
    },
  };
}

export const webDisruptionBudget = (app: ScalableApp) => disruptionBudget(app, WEB, webName(app));

/** The entry point from outside: an Ingress or a Gateway API HTTPRoute (only when that API is served). */
export function webRoute(app: ScalableApp, facts: ObservedFacts): Child | undefined {
  const e = app.spec.web!.expose;
  const backend = { name: webName(app), port: WEB_SERVICE_PORT };
  // With an edge cache the static path goes through it; the longest prefix wins in both APIs.
  const edge = app.spec.edgeCache
    ? { name: edgeName(app), port: EDGE_SERVICE_PORT, path: app.spec.edgeCache.pathPrefix }
    : undefined;
  if (e.type === 'Ingress') {
    const ingress: V1Ingress & Child = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: meta(app),
      spec: {
        ...(e.ingressClassName ? { ingressClassName: e.ingressClassName } : {}),
        ...(e.tlsSecretName ? { tls: [{ hosts: [e.host!], secretName: e.tlsSecretName }] } : {}),
        rules: [
          {
            host: e.host!,
            http: {
              paths: [
                ...(edge
                  ? [
                      {
                        path: edge.path,
                        pathType: 'Prefix',
                        backend: { service: { name: edge.name, port: { number: edge.port } } },
                      },
                    ]
                  : []),
                {
                  path: '/',
                  pathType: 'Prefix',
                  backend: { service: { name: backend.name, port: { number: backend.port } } },
                },
              ],
            },
          },
        ],
      },
    };
    return ingress;
  }
  if (e.type === 'Gateway' && facts.gatewayApi) {
    return {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: meta(app),
      spec: {
        parentRefs: [
          { name: e.gateway!.name, ...(e.gateway!.namespace ? { namespace: e.gateway!.namespace } : {}) },
        ],
        hostnames: [e.host!],
        rules: [
          ...(edge
            ? [
                {
                  matches: [{ path: { type: 'PathPrefix', value: edge.path } }],
                  backendRefs: [{ name: edge.name, port: edge.port }],
                },
              ]
            : []),
          { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [backend] },
        ],
      },
    };
  }
  return undefined;
}

export function webObjects(
  app: ScalableApp,
  facts: ObservedFacts,
  connection: { name: string; hash: string },
): Child[] {
  if (!app.spec.web) return [];
  return [
    webDeployment(app, connection),
    webService(app),
    webAutoscaler(app),
    webDisruptionBudget(app),
    webRoute(app, facts),
  ].filter((o): o is Child => o !== undefined);
}

/** Where the web tier is reached, for status.endpoints. */
export function webEndpoint(app: ScalableApp): string {
  const e = app.spec.web!.expose;
  if (e.host) return `${e.type === 'Ingress' && e.tlsSecretName ? 'https' : 'http'}://${e.host}`;
  return `http://${webName(app)}.${app.metadata.namespace}.svc:${WEB_SERVICE_PORT}`;
}
