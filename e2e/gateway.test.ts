// Exposure through the Gateway API: when its CRDs are installed, the operator writes an HTTPRoute
// (and routes the static path through the edge cache) instead of an Ingress.
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { applyApp, readyAt } from './support/apps.ts';
import { createNamespace, deleteNamespace, json, kubectl, tryKubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

// kubectl does not follow a symlink to a directory: resolve it.
const crds = realpathSync(
  `${execFileSync('bash', [new URL('../tools/toolchain.sh', import.meta.url).pathname, '--print'], { encoding: 'utf8' }).trim()}/../share/gateway-api`,
);

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  kubectl(['apply', '--server-side', '--field-manager=scalableapp-tests', '-f', crds]);
  kubectl([
    'wait',
    '--for=condition=Established',
    'crd/httproutes.gateway.networking.k8s.io',
    '--timeout=60s',
  ]);
  ns = createNamespace('gateway');
  // Started after the CRDs: the operator looks for the Gateway API when it starts.
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

it('writes an HTTPRoute on the named Gateway, with the static path through the edge cache', async () => {
  applyApp(ns, 'api', {
    web: {
      image: 'registry.example/api:1',
      replicas: 1,
      expose: {
        type: 'Gateway',
        host: 'api.example.com',
        gateway: { name: 'public', namespace: 'gateways' },
      },
    },
    edgeCache: { pathPrefix: '/assets' },
  });
  await readyAt(ns, 'api');
  const route = json<any>(['get', 'httproute', 'api-web', '-n', ns]);
  expect(route.spec.parentRefs).toEqual([expect.objectContaining({ name: 'public', namespace: 'gateways' })]);
  expect(route.spec.hostnames).toEqual(['api.example.com']);
  expect(
    route.spec.rules.map((r: any) => [r.matches[0].path.value, r.backendRefs[0].name, r.backendRefs[0].port]),
  ).toEqual([
    ['/assets', 'api-edge', 80],
    ['/', 'api-web', 80],
  ]);
  expect(route.metadata.ownerReferences[0]).toMatchObject({
    kind: 'ScalableApp',
    name: 'api',
    controller: true,
  });
  expect(tryKubectl(['get', 'ingress', 'api-web', '-n', ns]).ok).toBe(false);
});
