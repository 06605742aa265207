// charts/web on the local cluster, without the operator: it installs into a namespace that enforces
// the restricted Pod Security Standard, its objects become Ready, `helm test` reports its hook
// pod's outcome, a changed connection rolls the pods, and uninstall leaves nothing behind.
//
// What `helm test` proves here: KWOK runs no container, and it never completes a bare pod (it has
// no stage for restartPolicy Never; the pod stays Running and Ready, and `helm test` would time out).
// So the test plays the container's exit (settleTestPod). That proves the hook pod is admitted
// under the restricted profile, helm creates and waits for it, and helm's verdict follows the pod's
// outcome both ways. It cannot prove the web tier answers wget: nothing listens on a KWOK pod.
import { contentHash } from '../operator/tiers/content-hash.ts';
import { buildDependencies, chartPath, helm } from '../charts/test/helm.ts';
import { helmTest } from './support/helm-releases.ts';
import { readyEndpoints } from './support/pods.ts';
import { KUBECONFIG, createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';

let ns: string;
const helmIn = (args: string[]) => helm([...args, '--namespace', ns, '--kubeconfig', KUBECONFIG]);

beforeAll(() => {
  buildDependencies('web');
  ns = createNamespace('chart-web', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => deleteNamespace(ns));

const deployment = (name: string) => json<any>(['get', 'deployment', name, '-n', ns]);
const webPods = () =>
  json<{ items: any[] }>(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/component=web']).items.filter(
    (p) => !p.metadata.deletionTimestamp,
  );
/** How many zones the pods run in. */
const zones = (pods: any[]) => {
  const nodes = json<{ items: any[] }>(['get', 'nodes']).items;
  const zone = new Map(nodes.map((n) => [n.metadata.name, n.metadata.labels['topology.kubernetes.io/zone']]));
  return new Set(pods.map((p) => zone.get(p.spec.nodeName))).size;
};
const templateHash = (name: string) =>
  deployment(name).spec.template.metadata.annotations?.['scalableapp.io/connection-hash'];

describe('charts/web without the operator', () => {
  it('installs into a restricted namespace; the Deployment, Service, PDB and policies are Ready', () => {
    helmIn([
      'install',
      'shop',
      chartPath('web'),
      '--set',
      'image=registry.example/shop:1',
      '--set',
      'replicas=3',
      '--wait',
      '--timeout',
      '3m',
    ]);
    const d = deployment('shop-web');
    expect(d.status).toMatchObject({ replicas: 3, readyReplicas: 3, updatedReplicas: 3 });
  });

  it('spreads the pods over the three zones and puts them all behind the Service', async () => {
    const pods = webPods();
    expect(zones(pods)).toBe(3);
    await eventually('three ready endpoints', () => readyEndpoints(ns, 'shop-web').length === 3);
    expect(readyEndpoints(ns, 'shop-web')).toEqual(pods.map((p) => p.metadata.name).sort());
    await eventually(
      'the PDB allows one disruption',
      () => json<any>(['get', 'pdb', 'shop-web', '-n', ns]).status?.disruptionsAllowed === 1,
    );
    const policies = json<{ items: any[] }>(['get', 'networkpolicies', '-n', ns]).items.map(
      (p) => p.metadata.name,
    );
    expect(policies.sort()).toEqual(['shop-allow-dns', 'shop-allow-web-ingress', 'shop-default-deny']);
  });

  it('hands the pods the connection Secret, with the hash of its live data on the pod template', () => {
    const secret = json<any>(['get', 'secret', 'shop-connection', '-n', ns]);
    expect(Buffer.from(secret.data.WEB_URL, 'base64').toString()).toBe(`http://shop-web.${ns}.svc:80`);
    expect(templateHash('shop-web')).toBe(contentHash(secret.data));
  });

  it('helm test: helm reports the hook pod’s outcome, failed and then succeeded', async () => {
    const failed = (await helmTest(ns, 'shop', 'shop-web-test', 'Failed')).result;
    expect(failed.ok).toBe(false);
    expect(failed.stdout + failed.stderr).toContain('shop-web-test');

    const passed = (await helmTest(ns, 'shop', 'shop-web-test', 'Succeeded')).result;
    expect([passed.ok, passed.stderr]).toEqual([true, '']);
    expect(passed.stdout).toMatch(/shop-web-test[\s\S]*Phase:\s+Succeeded/);
    // hook-succeeded: a passing test leaves no pod behind.
    await eventually(
      'the test pod is deleted',
      () => !kubectl(['get', 'pods', '-n', ns, '-o', 'name']).includes('shop-web-test'),
    );
  });

  it('an upgrade that changes the connection entries rolls the pods', async () => {
    const before = templateHash('shop-web');
    helmIn([
      'upgrade',
      'shop',
      chartPath('web'),
      '--reuse-values',
      '--set',
      'connection.entries.FEATURES=beta',
      '--wait',
      '--timeout',
      '3m',
    ]);
    const secret = json<any>(['get', 'secret', 'shop-connection', '-n', ns]);
    expect(Buffer.from(secret.data.FEATURES, 'base64').toString()).toBe('beta');
    expect(templateHash('shop-web')).toBe(contentHash(secret.data));
    expect(templateHash('shop-web')).not.toBe(before);
    await eventually('the rollout to finish', () => {
      const d = deployment('shop-web');
      return (
        d.status.observedGeneration === d.metadata.generation &&
        d.status.updatedReplicas === 3 &&
        d.status.readyReplicas === 3 &&
        d.status.replicas === 3
      );
    });
    expect(webPods().map((p) => p.metadata.annotations['scalableapp.io/connection-hash'])).toEqual(
      Array(3).fill(templateHash('shop-web')),
    );
  });

  it('with an existing connection Secret, reads its hash from the cluster at install', () => {
    kubectl([
      'create',
      'secret',
      'generic',
      'other-connection',
      '-n',
      ns,
      '--from-literal=DATABASE_URL=postgres://db/app',
    ]);
    helmIn([
      'install',
      'other',
      chartPath('web'),
      '--set',
      'image=registry.example/other:1',
      '--set',
      'connection.secretName=other-connection',
      '--set',
      'networkPolicies.appWide=false',
      '--wait',
      '--timeout',
      '3m',
    ]);
    const data = json<any>(['get', 'secret', 'other-connection', '-n', ns]).data;
    expect(templateHash('other-web')).toBe(contentHash(data));
    expect(deployment('other-web').spec.template.spec.containers[0].envFrom).toEqual([
      { secretRef: { name: 'other-connection' } },
    ]);
    expect(
      kubectl(['get', 'secret', 'other-connection', '-n', ns, '-o', 'jsonpath={.metadata.labels}']),
    ).not.toContain('Helm');
  });

  it('uninstall removes everything the chart made, and there were no volumes to keep', async () => {
    helmIn(['uninstall', 'shop', '--wait', '--timeout', '3m']);
    helmIn(['uninstall', 'other', '--wait', '--timeout', '3m']);
    await eventually('nothing of the releases is left', () => {
      const left = kubectl([
        'get',
        'deployments,services,pdb,hpa,networkpolicies,secrets,pods',
        '-n',
        ns,
        '-o',
        'name',
      ])
        .split('\n')
        .filter((n) => n && !n.endsWith('/other-connection'));
      return left.length === 0;
    });
    expect(kubectl(['get', 'pvc', '-n', ns, '-o', 'name']).trim()).toBe('');
    // The Secret the user made stays theirs.
    expect(kubectl(['get', 'secret', 'other-connection', '-n', ns, '-o', 'name']).trim()).toBe(
      'secret/other-connection',
    );
  });
});
