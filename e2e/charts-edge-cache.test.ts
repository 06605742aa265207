// charts/edge-cache on the local cluster, without the operator: helm installs it into a namespace
// that enforces the restricted Pod Security Standard, the proxies become available behind their
// Service, `helm test` runs its hook (settleTestPod in charts/test/helm.ts says what that proves on
// KWOK), a new asset version rolls the pods, and uninstall leaves nothing behind (the cache is an
// emptyDir).
import { createNamespace, deleteNamespace, eventually, json } from './support/kube.ts';
import { readyEndpoints } from './support/pods.ts';
import {
  helmIn,
  helmTest,
  installChart,
  namedObject,
  objectExists,
  upgradeChart,
} from './support/helm-releases.ts';

let ns: string;
const release = 'shop';

beforeAll(() => {
  ns = createNamespace('chart-edge', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => {
  helmIn(['uninstall', release, '-n', ns]);
  deleteNamespace(ns);
});

const edgePods = () =>
  json<{ items: any[] }>(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/component=edge-cache']).items;
const configHash = () =>
  json<any>(['get', 'deployment', 'shop-edge', '-n', ns]).spec.template.metadata.annotations[
    'scalableapp.io/config-hash'
  ];

describe('the edge-cache chart installed alone', () => {
  it('installs into a restricted namespace, and the proxies become available behind their Service', async () => {
    const r = installChart('edge-cache', release, ns, { replicas: 2 });
    expect(r).toMatchObject({ ok: true });
    const deployment = json<any>(['get', 'deployment', 'shop-edge', '-n', ns]);
    expect(deployment.status.conditions.find((c: any) => c.type === 'Available').status).toBe('True');
    expect(deployment.status.readyReplicas).toBe(2);
    const pods = edgePods().map((p) => p.metadata.name);
    // The EndpointSlice follows pod readiness a moment later.
    await eventually(
      'every proxy behind the Service',
      () => readyEndpoints(ns, 'shop-edge').join() === pods.sort().join(),
    );
    expect(json<any>(['get', 'pdb', 'shop-edge', '-n', ns]).status.currentHealthy).toBe(2);
    expect(
      json<{ items: any[] }>(['get', 'networkpolicy', '-n', ns])
        .items.map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['shop-allow-dns', 'shop-allow-edge-egress', 'shop-allow-edge-ingress', 'shop-default-deny']);
  });

  it('`helm test` follows the test pod: failed, then succeeded and cleaned up', async () => {
    const failed = await helmTest(ns, release, 'shop-edge-test', 'Failed');
    expect(failed.result.ok).toBe(false);
    expect(namedObject(ns, 'pod/shop-edge-test').metadata.uid).toBe(failed.pod.metadata.uid);
    expect(failed.pod.spec.containers[0].command.join(' ')).toContain(`http://shop-edge.${ns}.svc/healthz`);

    const passed = await helmTest(ns, release, 'shop-edge-test', 'Succeeded');
    expect(passed.result).toMatchObject({ ok: true });
    expect(passed.result.stdout).toMatch(/TEST SUITE:\s+shop-edge-test\n[^]*Phase:\s+Succeeded/);
    expect(objectExists(ns, 'pod/shop-edge-test')).toBe(false);
  });

  it('a new asset version rolls every proxy onto the new configuration', () => {
    const before = { hash: configHash(), pods: edgePods().map((p) => p.metadata.name) };
    const r = upgradeChart('edge-cache', release, ns, ['--set-string', 'assetVersion=2']);
    expect(r).toMatchObject({ ok: true });
    const conf = json<any>(['get', 'configmap', 'shop-edge-config', '-n', ns]).data['nginx.conf'];
    expect(conf).toContain('proxy_cache_key "2|$scheme://$host$request_uri";');
    expect(configHash()).not.toBe(before.hash);
    const ready = edgePods().filter((p) => !p.metadata.deletionTimestamp);
    expect(ready.map((p) => p.metadata.annotations['scalableapp.io/config-hash'])).toEqual([
      configHash(),
      configHash(),
    ]);
    expect(ready.map((p) => p.metadata.name).filter((n) => before.pods.includes(n))).toEqual([]);
  });

  it('uninstall removes every object and leaves no volume behind', () => {
    const un = helmIn(['uninstall', release, '-n', ns, '--wait']);
    expect(un).toMatchObject({ ok: true });
    for (const o of [
      'deployment/shop-edge',
      'service/shop-edge',
      'configmap/shop-edge-config',
      'pdb/shop-edge',
      'networkpolicy/shop-default-deny',
      'networkpolicy/shop-allow-edge-ingress',
    ]) {
      expect([o, objectExists(ns, o)]).toEqual([o, false]);
    }
    expect(json<{ items: unknown[] }>(['get', 'pvc', '-n', ns]).items).toEqual([]);
  });
});
