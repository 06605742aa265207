// charts/database on the local cluster, without the operator: helm installs it into a namespace that
// enforces the restricted Pod Security Standard, every object becomes ready, `helm test` runs its
// hooks (settleTestPod in charts/test/helm.ts says what that proves on KWOK), upgrades keep the
// passwords and refuse what the spec forbids, and uninstall keeps the volumes and the credentials
// they need.
import { createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';
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
const values = { replicas: 2, storage: { size: '1Gi' } };
const instances = ['shop-db-0', 'shop-db-1', 'shop-db-2'];

beforeAll(() => {
  ns = createNamespace('chart-db', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => {
  helmIn(['uninstall', release, '-n', ns]);
  deleteNamespace(ns);
});

const passwords = () =>
  Object.fromEntries(
    Object.entries(
      json<any>(['get', 'secret', 'shop-db-credentials', '-n', ns]).data as Record<string, string>,
    ).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
const claims = () =>
  json<{ items: any[] }>(['get', 'pvc', '-n', ns]).items.map((c) => [
    c.metadata.name,
    c.status.phase,
    c.metadata.uid,
  ]);

describe('the database chart installed alone', () => {
  let firstClaims: string[][];

  it('installs into a restricted namespace, and the instances, volumes and Services become ready', async () => {
    const r = installChart('database', release, ns, values);
    expect(r).toMatchObject({ ok: true });
    const sts = json<any>(['get', 'statefulset', 'shop-db', '-n', ns]);
    expect([sts.status.replicas, sts.status.readyReplicas]).toEqual([3, 3]);
    firstClaims = claims();
    expect(firstClaims.map(([name, phase]) => [name, phase])).toEqual(
      instances.map((i) => [`data-${i}`, 'Bound']),
    );
    // The EndpointSlices follow pod readiness a moment after the StatefulSet reports it.
    await eventually(
      'every Service has its endpoints',
      () =>
        readyEndpoints(ns, 'shop-db-rw').length === 1 &&
        readyEndpoints(ns, 'shop-db-ro').length === instances.length &&
        readyEndpoints(ns, 'shop-db-headless').length === instances.length,
    );
    expect(readyEndpoints(ns, 'shop-db-rw')).toEqual(['shop-db-0']);
    expect(readyEndpoints(ns, 'shop-db-ro')).toEqual(instances);
    expect(readyEndpoints(ns, 'shop-db-headless')).toEqual(instances);
    expect(json<any>(['get', 'pdb', 'shop-db', '-n', ns]).status.currentHealthy).toBe(3);
    expect(
      json<{ items: any[] }>(['get', 'networkpolicy', '-n', ns])
        .items.map((p) => p.metadata.name)
        .sort(),
    ).toEqual([
      'shop-allow-database-egress',
      'shop-allow-database-ingress',
      'shop-allow-dns',
      'shop-default-deny',
    ]);
  });

  it('generates the passwords into the Secret only', () => {
    const p = passwords();
    expect(Object.keys(p).sort()).toEqual(['app-password', 'replication-password', 'superuser-password']);
    for (const v of Object.values(p)) expect(v).toMatch(/^[A-Za-z0-9]{32}$/);
    const elsewhere = kubectl(['get', 'configmap,statefulset,pods,services', '-n', ns, '-o', 'json']);
    for (const v of Object.values(p)) expect(elsewhere).not.toContain(v);
  });

  it('on KWOK alone, `helm test` never finishes: the test pod is made Running and Ready, never Succeeded', () => {
    const r = helmIn(['test', release, '-n', ns, '--timeout', '15s']);
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('resource Pod/' + ns + '/shop-db-test not ready');
    const pod = json<any>(['get', 'pod', 'shop-db-test', '-n', ns]);
    expect([pod.status.phase, pod.status.conditions.find((c: any) => c.type === 'Ready').status]).toEqual([
      'Running',
      'True',
    ]);
  });

  it('`helm test` fails when the test pod fails, keeping the pod and removing the access policy', async () => {
    const run = await helmTest(ns, release, 'shop-db-test', 'Failed');
    expect(run.result.ok).toBe(false);
    expect(namedObject(ns, 'pod/shop-db-test').metadata.uid).toBe(run.pod.metadata.uid);
    expect(objectExists(ns, 'networkpolicy/shop-allow-database-test')).toBe(false);
  });

  it('`helm test` passes when the test pod succeeds, and cleans up after itself', async () => {
    const run = await helmTest(ns, release, 'shop-db-test', 'Succeeded', () => {
      // Hooks run in weight order: the policy letting the test pod in exists while it runs.
      expect(objectExists(ns, 'networkpolicy/shop-allow-database-test')).toBe(true);
    });
    expect(run.result).toMatchObject({ ok: true });
    expect(run.result.stdout).toMatch(/TEST SUITE:\s+shop-db-test\n[^]*Phase:\s+Succeeded/);
    // The client gets the password by reference only.
    expect(run.pod.spec.containers[0].env).toEqual([
      {
        name: 'PGPASSWORD',
        valueFrom: { secretKeyRef: { name: 'shop-db-credentials', key: 'app-password' } },
      },
    ]);
    expect(objectExists(ns, 'pod/shop-db-test')).toBe(false);
    expect(objectExists(ns, 'networkpolicy/shop-allow-database-test')).toBe(false);
  });

  it('refuses the upgrades the spec forbids, with the rule that forbids them', () => {
    const version = upgradeChart('database', release, ns, ['--set-string', 'version=16']);
    expect(version.ok).toBe(false);
    expect(version.stderr).toContain('version is immutable: a Postgres major upgrade needs a migration');
    const storage = upgradeChart('database', release, ns, ['--set', 'storage.storageClassName=fast']);
    expect(storage.ok).toBe(false);
    expect(storage.stderr).toContain(
      'storageClassName is immutable: existing volumes cannot move to another storage class',
    );
    // Installed at 1Gi: 1000Mi is smaller, though its number is larger.
    const shrink = upgradeChart('database', release, ns, ['--set-string', 'storage.size=1000Mi']);
    expect(shrink.ok).toBe(false);
    expect(shrink.stderr).toContain(
      'storage.size: size may grow but never shrink: a volume cannot give back space its data may use (1Gi, asked for 1000Mi)',
    );
  });

  it('keeps the generated passwords across an upgrade', () => {
    const before = passwords();
    const r = upgradeChart('database', release, ns, ['--set', 'synchronousReplicas=1']);
    expect(r).toMatchObject({ ok: true });
    expect(passwords()).toEqual(before);
    const conf = json<any>(['get', 'configmap', 'shop-db-config', '-n', ns]).data['postgresql.conf'];
    expect(conf).toContain(`synchronous_standby_names = 'ANY 1 ("shop-db-0", "shop-db-1", "shop-db-2")'`);
  });

  it('uninstall keeps the volumes and the credentials; a reinstall finds both', () => {
    const before = passwords();
    const un = helmIn(['uninstall', release, '-n', ns, '--wait']);
    expect(un.ok).toBe(true);
    expect(un.stdout).toContain('[Secret] shop-db-credentials');
    expect(objectExists(ns, 'statefulset/shop-db')).toBe(false);
    expect(claims()).toEqual(firstClaims);
    expect(passwords()).toEqual(before);

    const again = installChart('database', release, ns, values);
    expect(again).toMatchObject({ ok: true });
    expect(passwords()).toEqual(before);
    expect(claims()).toEqual(firstClaims);
    expect(json<any>(['get', 'statefulset', 'shop-db', '-n', ns]).status.readyReplicas).toBe(3);
  });
});
