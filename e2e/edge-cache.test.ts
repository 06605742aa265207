import { applyApp, readyAt as readyAtGeneration } from './support/apps.ts';
// The edge cache on the local control plane: the proxy, its routing in the exposure, invalidation.
import { createNamespace, deleteNamespace, json } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('edge', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

const spec = (assetVersion: string) => ({
  web: {
    image: 'registry.example/site:1',
    replicas: 2,
    expose: { type: 'Ingress', host: 'site.example.com' },
  },
  edgeCache: { pathPrefix: '/static', ttlSeconds: 600, staleIfErrorSeconds: 3600, assetVersion },
});
const apply = (s: unknown) => applyApp(ns, 'site', s);
const readyAt = () => readyAtGeneration(ns, 'site');

it('runs the caching proxy and routes the static path through it', async () => {
  apply(spec('2026-11-22'));
  const a = await readyAt();
  expect(a.status.conditions.find((c: any) => c.type === 'EdgeCacheReady')).toMatchObject({
    status: 'True',
    reason: 'Available',
  });
  expect(a.status.endpoints.edgeCache).toBe(`site-edge.${ns}.svc:80`);
  const paths = json<any>(['get', 'ingress', 'site-web', '-n', ns]).spec.rules[0].http.paths.map((p: any) => [
    p.path,
    p.backend.service.name,
  ]);
  expect(paths).toEqual([
    ['/static', 'site-edge'],
    ['/', 'site-web'],
  ]);
  const conf = json<any>(['get', 'configmap', 'site-edge-config', '-n', ns]).data['nginx.conf'];
  expect(conf).toContain(`site-web.${ns}.svc.cluster.local:80`);
  expect(conf).toContain('2026-11-22');
  expect(conf).toMatch(/max-age=600/);
  const conn = json<any>(['get', 'secret', 'site-connection', '-n', ns]).data;
  expect(Buffer.from(conn.ASSET_VERSION, 'base64').toString()).toBe('2026-11-22');
  expect(Buffer.from(conn.ASSET_BASE_PATH, 'base64').toString()).toBe('/static');
  // Only the proxy port is open, and the proxy may only talk to the web pods.
  const egress = json<any>(['get', 'networkpolicy', 'site-allow-edge-egress', '-n', ns]).spec.egress;
  expect(egress).toEqual([
    {
      to: [
        {
          podSelector: {
            matchLabels: { 'app.kubernetes.io/instance': 'site', 'app.kubernetes.io/component': 'web' },
          },
        },
      ],
      ports: [{ protocol: 'TCP', port: 8080 }],
    },
  ]);
});

it('rolls the proxies onto an empty cache when the asset version changes', async () => {
  const template = () =>
    json<any>(['get', 'deployment', 'site-edge', '-n', ns]).spec.template.metadata.annotations[
      'scalableapp.io/config-hash'
    ];
  const before = template();
  apply(spec('2026-11-23'));
  await readyAt();
  expect(template()).not.toBe(before);
  expect(json<any>(['get', 'configmap', 'site-edge-config', '-n', ns]).data['nginx.conf']).toContain(
    '2026-11-23',
  );
});
