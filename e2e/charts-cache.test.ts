// charts/cache on the local cluster, without the operator: it installs into a namespace that
// enforces the restricted Pod Security Standard, its pods become Ready across zones, the primary
// Service reaches the primary without the operator's role label, an upgrade keeps the generated
// password and the certificates and can move the primary without restarting a server, `helm test`
// reports its hook pod's outcome, and uninstall leaves nothing behind (a cache keeps no volumes).
//
// As in charts-web.test.ts, KWOK runs no container and never completes the `helm test` pod: the
// test plays the container's exit, so this proves admission, helm's wiring of the hooks (the
// policy that admits the test pod, then the pod) and its verdict, not that the server answers PING.
import { X509Certificate } from 'node:crypto';
import { cacheAuthInclude, maxMemoryBytes } from '../operator/server-config/cache.ts';
import { parseApp } from '../operator/api/testdata/apps.ts';
import { cacheServerNames } from '../operator/tiers/cache.ts';
import { certDnsNames } from '../operator/tls/certificates.ts';
import { buildDependencies, chartPath, helm } from '../charts/test/helm.ts';
import { helmTest } from './support/helm-releases.ts';
import { readyEndpoints } from './support/pods.ts';
import { KUBECONFIG, createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';

let ns: string;
const helmIn = (args: string[]) => helm([...args, '--namespace', ns, '--kubeconfig', KUBECONFIG]);

beforeAll(() => {
  buildDependencies('cache');
  ns = createNamespace('chart-cache', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => deleteNamespace(ns));

const pods = () =>
  json<{ items: any[] }>(['get', 'pods', '-n', ns, '-l', 'app.kubernetes.io/component=cache']).items;
const secretValue = (name: string, key: string) =>
  Buffer.from(json<any>(['get', 'secret', name, '-n', ns]).data[key], 'base64').toString();
/** How many zones the pods run in. */
const zones = (pods: any[]) => {
  const nodes = json<{ items: any[] }>(['get', 'nodes']).items;
  const zone = new Map(nodes.map((n) => [n.metadata.name, n.metadata.labels['topology.kubernetes.io/zone']]));
  return new Set(pods.map((p) => zone.get(p.spec.nodeName))).size;
};
const configMap = () => json<any>(['get', 'configmap', 'shop-cache-config', '-n', ns]).data;

describe('charts/cache without the operator', () => {
  it('installs into a restricted namespace; a primary and two replicas become Ready across the zones', () => {
    helmIn(['install', 'shop', chartPath('cache'), '--wait', '--timeout', '3m']);
    expect(json<any>(['get', 'statefulset', 'shop-cache', '-n', ns]).status).toMatchObject({
      replicas: 3,
      readyReplicas: 3,
    });
    expect(zones(pods())).toBe(3);
  });

  it('the primary Service reaches only the primary pod, the replicas and headless Services every node', async () => {
    await eventually(
      'endpoints',
      () =>
        readyEndpoints(ns, 'shop-cache-replicas').length === 3 &&
        readyEndpoints(ns, 'shop-cache-headless').length === 3 &&
        readyEndpoints(ns, 'shop-cache').length === 1,
    );
    expect(readyEndpoints(ns, 'shop-cache')).toEqual(['shop-cache-0']);
    expect(readyEndpoints(ns, 'shop-cache-replicas')).toEqual([
      'shop-cache-0',
      'shop-cache-1',
      'shop-cache-2',
    ]);
    expect(readyEndpoints(ns, 'shop-cache-headless')).toEqual([
      'shop-cache-0',
      'shop-cache-1',
      'shop-cache-2',
    ]);
  });

  it('generates three passwords, kept in the Secret only; the config derives maxmemory from the limit', () => {
    const password = secretValue('shop-cache-auth', 'password');
    const logins = {
      operator: secretValue('shop-cache-auth', 'operator-password'),
      replication: secretValue('shop-cache-auth', 'replication-password'),
    };
    for (const p of [password, logins.operator, logins.replication]) expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(secretValue('shop-cache-auth', 'auth.conf')).toBe(cacheAuthInclude({ app: password, ...logins }));
    expect(configMap()['cache.conf']).toContain(`maxmemory ${maxMemoryBytes('256Mi', 20)}\n`);
    expect(configMap().primary).toBe('shop-cache-0');
    for (const p of pods()) expect(JSON.stringify(p)).not.toContain(password);
  });

  it("serves TLS by default: the app's CA and a server certificate it signed for the cache's names", () => {
    const ca = new X509Certificate(secretValue('shop-ca', 'tls.crt'));
    expect(json<any>(['get', 'configmap', 'shop-ca-cert', '-n', ns]).data['ca.crt']).toBe(ca.toString());
    const cert = new X509Certificate(secretValue('shop-cache-tls', 'tls.crt'));
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(certDnsNames(cert)).toEqual([...cacheServerNames(parseApp({ cache: {} }, 'shop', ns))].sort());
    expect(configMap()['cache.conf']).toContain('port 0\ntls-port 6379\n');
    for (const p of pods())
      expect(p.spec.volumes).toContainEqual({
        name: 'tls',
        secret: { secretName: 'shop-cache-tls', defaultMode: 0o440 },
      });
  });

  it('an upgrade keeps the password and the certificates and moves the primary by hand without restarting a server', async () => {
    const password = secretValue('shop-cache-auth', 'password');
    const certificates = ['shop-ca', 'shop-cache-tls'].map((s) => secretValue(s, 'tls.crt'));
    const uids = pods()
      .map((p) => p.metadata.uid)
      .sort();
    const revision = json<any>(['get', 'statefulset', 'shop-cache', '-n', ns]).status.updateRevision;
    helmIn([
      'upgrade',
      'shop',
      chartPath('cache'),
      '--reuse-values',
      '--set',
      'primary=shop-cache-1',
      '--wait',
      '--timeout',
      '3m',
    ]);
    expect(secretValue('shop-cache-auth', 'password')).toBe(password);
    // Read back with lookup: a chart-made certificate changes only with tls.reissue (or a new CA).
    expect(['shop-ca', 'shop-cache-tls'].map((s) => secretValue(s, 'tls.crt'))).toEqual(certificates);
    expect(configMap().primary).toBe('shop-cache-1');
    await eventually(
      'the primary Service to follow',
      () => readyEndpoints(ns, 'shop-cache')[0] === 'shop-cache-1',
    );
    expect(readyEndpoints(ns, 'shop-cache')).toEqual(['shop-cache-1']);
    // The config hash leaves the primary out: moving it is no reason to restart every server.
    expect(json<any>(['get', 'statefulset', 'shop-cache', '-n', ns]).status.updateRevision).toBe(revision);
    expect(
      pods()
        .map((p) => p.metadata.uid)
        .sort(),
    ).toEqual(uids);
  });

  it('helm test: admits the test pod by a hook policy, and helm reports the pod’s outcome', async () => {
    const failed = await helmTest(ns, 'shop', 'shop-cache-test', 'Failed', () => {
      // Hooks run in weight order: once the test pod exists, the policy admitting it does too.
      expect(kubectl(['get', 'networkpolicy', 'shop-allow-cache-test', '-n', ns, '-o', 'name']).trim()).toBe(
        'networkpolicy.networking.k8s.io/shop-allow-cache-test',
      );
    });
    expect(failed.result.ok).toBe(false);

    const passed = (await helmTest(ns, 'shop', 'shop-cache-test', 'Succeeded')).result;
    expect(passed.ok).toBe(true);
    expect(passed.stdout).toMatch(/shop-cache-test[\s\S]*Phase:\s+Succeeded/);
    await eventually('both hooks to be deleted after success', () => {
      const left = kubectl(['get', 'pods,networkpolicies', '-n', ns, '-o', 'name']);
      return !left.includes('shop-cache-test') && !left.includes('shop-allow-cache-test');
    });
  });

  it('uninstall removes everything the chart made; a cache has no volume claims to keep', async () => {
    expect(kubectl(['get', 'pvc', '-n', ns, '-o', 'name']).trim()).toBe('');
    helmIn(['uninstall', 'shop', '--wait', '--timeout', '3m']);
    await eventually(
      'nothing of the release is left',
      () =>
        kubectl([
          'get',
          'statefulsets,services,pdb,networkpolicies,secrets,configmaps,pods',
          '-n',
          ns,
          '-o',
          'name',
        ])
          .split('\n')
          .filter((n) => n && n !== 'configmap/kube-root-ca.crt').length === 0,
    );
    expect(kubectl(['get', 'pvc', '-n', ns, '-o', 'name']).trim()).toBe('');
  });
});
