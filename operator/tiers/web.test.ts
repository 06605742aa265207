import { restrictedViolations } from './testdata/restricted-pss.ts';
import { parseApp } from '../api/testdata/apps.ts';
import type { V1Container, V1Deployment, V1Ingress, V1PodSpec } from '@kubernetes/client-node';
import { type ScalableAppInput } from '../api/scalable-app.ts';
import { selectorLabels } from './labels.ts';
import {
  WEB_SERVICE_PORT,
  webAutoscaler,
  webDeployment,
  webDisruptionBudget,
  webObjects,
  webRoute,
  webService,
} from './web.ts';

type WebInput = NonNullable<ScalableAppInput['spec']['web']>;

const webApp = (web: Partial<WebInput> = {}, rest: Omit<ScalableAppInput['spec'], 'web'> = {}) =>
  parseApp({ ...rest, web: { image: 'x', ...web } });

const connection = { name: 'shop-connection', hash: 'abc123' };

const podSpecOf = (d: V1Deployment): V1PodSpec => d.spec!.template.spec!;
const containerOf = (d: V1Deployment): V1Container => podSpecOf(d).containers[0]!;

describe('restricted Pod Security Standard', () => {
  it('the web pod template passes every rule of the restricted profile', () => {
    const d = webDeployment(webApp(), connection);
    expect(restrictedViolations(podSpecOf(d))).toEqual([]);
  });

  it('the checker rejects a pod that breaks the rules (so passing above means something)', () => {
    const bad: V1PodSpec = {
      hostNetwork: true,
      hostPID: true,
      hostIPC: true,
      volumes: [{ name: 'root', hostPath: { path: '/' } }],
      containers: [
        {
          name: 'evil',
          image: 'x',
          ports: [{ containerPort: 80, hostPort: 80 }],
          securityContext: {
            privileged: true,
            allowPrivilegeEscalation: true,
            runAsNonRoot: false,
            capabilities: { add: ['SYS_ADMIN', 'NET_BIND_SERVICE'] },
            seccompProfile: { type: 'Unconfined' },
          },
        },
      ],
    };
    expect(restrictedViolations(bad)).toEqual(
      expect.arrayContaining([
        'hostNetwork',
        'hostPID',
        'hostIPC',
        'volume root: hostPath',
        'container evil: privileged',
        'container evil: allowPrivilegeEscalation not false',
        'container evil: capabilities do not drop ALL',
        'container evil: adds capability SYS_ADMIN',
        'container evil: runAsNonRoot not true',
        'container evil: seccompProfile Unconfined',
        'container evil: hostPort 80',
      ]),
    );
    expect(restrictedViolations(bad)).not.toContain('container evil: adds capability NET_BIND_SERVICE');
  });

  it('the checker rejects a container that merely omits the settings (no pod-level defaults)', () => {
    const bare: V1PodSpec = { containers: [{ name: 'plain', image: 'x' }] };
    expect(restrictedViolations(bare)).toEqual([
      'container plain: allowPrivilegeEscalation not false',
      'container plain: capabilities do not drop ALL',
      'container plain: runAsNonRoot not true',
      'container plain: seccompProfile unset',
    ]);
  });

  it('runs with a read-only root filesystem and a writable emptyDir at /tmp', () => {
    const d = webDeployment(webApp(), connection);
    const c = containerOf(d);
    expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
    const tmpMount = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
    expect(tmpMount).toBeDefined();
    expect(tmpMount!.readOnly).not.toBe(true);
    const tmpVolume = podSpecOf(d).volumes?.find((v) => v.name === tmpMount!.name);
    expect(tmpVolume?.emptyDir).toBeDefined();
  });
});

describe('web Deployment', () => {
  it('probes the health check path on the http port with the configured period and threshold', () => {
    const d = webDeployment(
      webApp({ healthCheck: { path: '/ready', periodSeconds: 7, failureThreshold: 4 } }),
      connection,
    );
    const c = containerOf(d);
    expect(c.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(c.readinessProbe?.periodSeconds).toBe(7);
    expect(c.readinessProbe?.failureThreshold).toBe(4);
    // Liveness is not the readiness path, which may check dependencies: the port accepting connections.
    expect(c.livenessProbe?.httpGet).toBeUndefined();
    expect(c.livenessProbe?.tcpSocket).toEqual({ port: 'http' });
    expect(c.livenessProbe?.periodSeconds).toBe(7);
    // The probe port names a port the container actually declares.
    expect(c.ports?.map((p) => p.name)).toContain(c.readinessProbe?.httpGet?.port);
  });

  it('probes liveness on livenessPath when given: readiness may check dependencies, liveness must not', () => {
    const c = containerOf(
      webDeployment(webApp({ healthCheck: { path: '/readyz', livenessPath: '/healthz' } }), connection),
    );
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.livenessProbe?.periodSeconds).toBe(c.readinessProbe?.periodSeconds);
  });

  it('liveness is more patient than readiness, so a slow pod leaves the Service before it is killed', () => {
    const c = containerOf(webDeployment(webApp(), connection));
    const patience = (p: typeof c.livenessProbe) => (p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3);
    expect(patience(c.livenessProbe)).toBeGreaterThan(patience(c.readinessProbe));
  });

  it('leaves replicas out entirely when autoscaling is set, so applying never fights the HPA', () => {
    const d = webDeployment(webApp({ replicas: 5, autoscaling: { maxReplicas: 10 } }), connection);
    expect(d.spec).not.toHaveProperty('replicas');
  });

  it('takes replicas from the spec when autoscaling is not set', () => {
    expect(webDeployment(webApp({ replicas: 5 }), connection).spec?.replicas).toBe(5);
    expect(webDeployment(webApp({ replicas: 0 }), connection).spec?.replicas).toBe(0);
  });

  it('selects its own pods: the selector is a subset of the pod template labels', () => {
    const d = webDeployment(webApp(), connection);
    expect(d.spec?.template.metadata?.labels).toEqual(expect.objectContaining(d.spec!.selector.matchLabels));
  });

  it('listens on spec.web.port and takes the image from the spec', () => {
    const c = containerOf(webDeployment(webApp({ image: 'shop:1.2', port: 9090 }), connection));
    expect(c.image).toBe('shop:1.2');
    expect(c.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 9090 })]);
  });

  it('loads the connection Secret with envFrom', () => {
    const c = containerOf(webDeployment(webApp(), connection));
    expect(c.envFrom).toEqual([{ secretRef: { name: 'shop-connection' } }]);
  });

  it('passes env vars from the spec, literal values and Secret key references', () => {
    const c = containerOf(
      webDeployment(
        webApp({
          env: [
            { name: 'MODE', value: 'production' },
            { name: 'API_KEY', secretKeyRef: { name: 'shop-keys', key: 'api' } },
          ],
        }),
        connection,
      ),
    );
    expect(c.env).toEqual([
      { name: 'MODE', value: 'production' },
      { name: 'API_KEY', valueFrom: { secretKeyRef: { name: 'shop-keys', key: 'api' } } },
    ]);
  });

  it('has no env field when the spec declares none', () => {
    expect(containerOf(webDeployment(webApp(), connection))).not.toHaveProperty('env');
  });

  it('turns numeric quantities (cpu: 2) into the strings the Kubernetes API wants', () => {
    const c = containerOf(
      webDeployment(
        webApp({
          resources: { requests: { cpu: 2, memory: '1Gi' }, limits: { cpu: 4, memory: 2147483648 } },
        }),
        connection,
      ),
    );
    expect(c.resources?.requests).toEqual({ cpu: '2', memory: '1Gi' });
    expect(c.resources?.limits).toEqual({ cpu: '4', memory: '2147483648' });
  });

  it('spreads pods over zones with max skew 1, using the zone key and policy of spec.topology', () => {
    const d = webDeployment(
      webApp(
        {},
        {
          topology: {
            spreadAcrossZones: true,
            zoneKey: 'example.com/zone',
            whenUnsatisfiable: 'ScheduleAnyway',
          },
        },
      ),
      connection,
    );
    const zone = podSpecOf(d).topologySpreadConstraints?.find((t) => t.topologyKey === 'example.com/zone');
    expect(zone).toBeDefined();
    expect(zone!.maxSkew).toBe(1);
    expect(zone!.whenUnsatisfiable).toBe('ScheduleAnyway');
    expect(zone!.labelSelector?.matchLabels).toEqual(d.spec!.selector.matchLabels);
  });

  it('uses the default zone label and DoNotSchedule when spec.topology is left out', () => {
    const d = webDeployment(webApp(), connection);
    const zone = podSpecOf(d).topologySpreadConstraints?.find(
      (t) => t.topologyKey === 'topology.kubernetes.io/zone',
    );
    expect(zone?.whenUnsatisfiable).toBe('DoNotSchedule');
    expect(zone?.maxSkew).toBe(1);
  });

  it('has no topology spread constraints when spreadAcrossZones is false', () => {
    const d = webDeployment(webApp({}, { topology: { spreadAcrossZones: false } }), connection);
    expect(podSpecOf(d).topologySpreadConstraints).toBeUndefined();
  });

  it('carries the connection hash on the pod template', () => {
    const d = webDeployment(webApp(), { name: 'shop-connection', hash: 'h-1' });
    expect(d.spec?.template.metadata?.annotations?.['scalableapp.io/connection-hash']).toBe('h-1');
  });
});

describe('web HorizontalPodAutoscaler', () => {
  it('is an autoscaling/v2 HPA on the Deployment with min, max and CPU target from the spec', () => {
    const hpa = webAutoscaler(
      webApp({ autoscaling: { minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 55 } }),
    );
    expect(hpa?.apiVersion).toBe('autoscaling/v2');
    expect(hpa?.spec?.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'shop-web',
    });
    expect(hpa?.spec?.minReplicas).toBe(3);
    expect(hpa?.spec?.maxReplicas).toBe(12);
    expect(hpa?.spec?.metrics?.[0]?.resource).toEqual({
      name: 'cpu',
      target: { type: 'Utilization', averageUtilization: 55 },
    });
  });

  it('does not exist without autoscaling', () => {
    expect(webAutoscaler(webApp())).toBeUndefined();
    expect(webObjects(webApp(), { gatewayApi: false }, connection).map((o) => o.kind)).not.toContain(
      'HorizontalPodAutoscaler',
    );
  });
});

describe('web PodDisruptionBudget', () => {
  it('allows one pod at a time to be disrupted, selecting the web pods', () => {
    const app = webApp();
    const pdb = webDisruptionBudget(app);
    expect(pdb.spec?.maxUnavailable).toBe(1);
    expect(pdb.spec).not.toHaveProperty('minAvailable');
    expect(pdb.spec?.selector?.matchLabels).toEqual(selectorLabels(app, 'web'));
  });
});

describe('web Service', () => {
  it('is a LoadBalancer only when expose.type is LoadBalancer', () => {
    expect(webService(webApp({ expose: { type: 'LoadBalancer' } })).spec?.type).toBe('LoadBalancer');
    expect(webService(webApp({ expose: { type: 'ClusterIP' } })).spec?.type).toBe('ClusterIP');
    expect(webService(webApp({ expose: { type: 'Ingress', host: 'shop.example.com' } })).spec?.type).toBe(
      'ClusterIP',
    );
    expect(
      webService(webApp({ expose: { type: 'Gateway', host: 'shop.example.com', gateway: { name: 'gw' } } }))
        .spec?.type,
    ).toBe('ClusterIP');
  });

  it('forwards its port to the named container port and selects the web pods', () => {
    const app = webApp();
    const svc = webService(app);
    expect(svc.spec?.ports).toEqual([
      expect.objectContaining({ port: WEB_SERVICE_PORT, targetPort: 'http' }),
    ]);
    expect(svc.spec?.selector).toEqual(selectorLabels(app, 'web'));
  });
});

describe('web route', () => {
  it('is an Ingress with host, TLS and class for expose Ingress', () => {
    const ingress = webRoute(
      webApp({
        expose: {
          type: 'Ingress',
          host: 'shop.example.com',
          tlsSecretName: 'shop-tls',
          ingressClassName: 'nginx',
        },
      }),
      { gatewayApi: false },
    ) as V1Ingress | undefined;
    expect(ingress?.kind).toBe('Ingress');
    expect(ingress?.spec?.ingressClassName).toBe('nginx');
    expect(ingress?.spec?.tls).toEqual([{ hosts: ['shop.example.com'], secretName: 'shop-tls' }]);
    const rule = ingress?.spec?.rules?.[0];
    expect(rule?.host).toBe('shop.example.com');
    expect(rule?.http?.paths[0]?.backend.service).toEqual({
      name: 'shop-web',
      port: { number: WEB_SERVICE_PORT },
    });
  });

  it('an Ingress without tlsSecretName or class has neither field (the cluster default class applies)', () => {
    const ingress = webRoute(webApp({ expose: { type: 'Ingress', host: 'shop.example.com' } }), {
      gatewayApi: false,
    }) as V1Ingress | undefined;
    expect(ingress?.spec).not.toHaveProperty('tls');
    expect(ingress?.spec).not.toHaveProperty('ingressClassName');
  });

  const gatewayApp = () =>
    webApp({
      expose: { type: 'Gateway', host: 'shop.example.com', gateway: { name: 'public', namespace: 'edge' } },
    });

  it('is an HTTPRoute attached to the Gateway when the Gateway API is served', () => {
    const route = webRoute(gatewayApp(), { gatewayApi: true }) as
      { kind: string; apiVersion: string; spec: Record<string, unknown> } | undefined;
    expect(route?.kind).toBe('HTTPRoute');
    expect(route?.apiVersion).toBe('gateway.networking.k8s.io/v1');
    expect(route?.spec.parentRefs).toEqual([{ name: 'public', namespace: 'edge' }]);
    expect(route?.spec.hostnames).toEqual(['shop.example.com']);
    expect(route?.spec.rules).toEqual([
      expect.objectContaining({ backendRefs: [{ name: 'shop-web', port: WEB_SERVICE_PORT }] }),
    ]);
  });

  it('is no object at all when the Gateway API is not served', () => {
    expect(webRoute(gatewayApp(), { gatewayApi: false })).toBeUndefined();
    const kinds = webObjects(gatewayApp(), { gatewayApi: false }, connection).map((o) => o.kind);
    expect(kinds).not.toContain('HTTPRoute');
    expect(kinds).not.toContain('Ingress');
  });

  it('is no object for ClusterIP or LoadBalancer exposure', () => {
    expect(webRoute(webApp({ expose: { type: 'ClusterIP' } }), { gatewayApi: true })).toBeUndefined();
    expect(webRoute(webApp({ expose: { type: 'LoadBalancer' } }), { gatewayApi: true })).toBeUndefined();
  });
});

describe('webObjects', () => {
  it('is empty without a web tier', () => {
    expect(webObjects(parseApp({ database: {} }), { gatewayApi: true }, connection)).toEqual([]);
  });

  it('builds Deployment, Service, HPA, PDB and route together', () => {
    const kinds = webObjects(
      webApp({ autoscaling: { maxReplicas: 4 }, expose: { type: 'Ingress', host: 'shop.example.com' } }),
      { gatewayApi: false },
      connection,
    ).map((o) => o.kind);
    expect(kinds.sort()).toEqual(
      ['Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'PodDisruptionBudget', 'Service'].sort(),
    );
  });
});
