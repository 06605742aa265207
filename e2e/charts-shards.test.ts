// charts/shards on the local cluster, without the operator: helm installs it into a namespace that
// enforces the restricted Pod Security Standard, every shard's instances, volumes and Services
// become ready and the published map routes, `helm test` runs its hooks (settleTestPod in
// charts/test/helm.ts says what that proves on KWOK: admission and helm's verdict, not that Postgres
// answers), upgrades refuse any change of the ring (resharding is the operator's) and of the key,
// version and storage class, and uninstall keeps the volumes and the login they need.
import { ShardRouter } from '../operator/sharding/router.ts';
import { hotShardName } from '../operator/tiers/shards.ts';
import { parseApp } from '../operator/api/testdata/apps.ts';
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
import { claims, secretValues } from './support/release-state.ts';

let ns: string;
const release = 'shop';
const values = {
  count: 2,
  key: 'user_id',
  replicasPerShard: 1,
  storage: { size: '1Gi' },
  dedicated: [{ key: 'celebrity-42' }],
};
const hot = hotShardName(parseApp({}, release), 'celebrity-42');
const shards = ['shop-shard-0', 'shop-shard-1', hot].sort();
const instances = shards.flatMap((s) => [`${s}-0`, `${s}-1`]);

beforeAll(() => {
  ns = createNamespace('chart-shards', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => {
  helmIn(['uninstall', release, '-n', ns]);
  deleteNamespace(ns);
});

const passwords = () => secretValues(ns, 'shop-shards-credentials');
const mapText = () =>
  json<any>(['get', 'configmap', 'shop-shard-map', '-n', ns]).data['shard-map.json'] as string;

describe('the shards chart installed alone', () => {
  let firstClaims: string[][];

  it('installs into a restricted namespace; every shard’s instances, volumes and Services become ready', async () => {
    const r = installChart('shards', release, ns, values);
    expect(r).toMatchObject({ ok: true });
    for (const shard of shards) {
      const sts = json<any>(['get', 'statefulset', shard, '-n', ns]);
      expect([shard, sts.status.replicas, sts.status.readyReplicas]).toEqual([shard, 2, 2]);
    }
    firstClaims = claims(ns);
    expect(firstClaims.map(([name, phase]) => [name, phase])).toEqual(
      instances.map((i) => [`data-${i}`, 'Bound']).sort(),
    );
    // The endpoint controller follows the pods on its own time.
    await eventually('every shard’s Services', () =>
      shards.every(
        (s) => readyEndpoints(ns, `${s}-ro`).length === 2 && readyEndpoints(ns, `${s}-rw`).length === 1,
      ),
    );
    for (const shard of shards) {
      expect(readyEndpoints(ns, `${shard}-rw`)).toEqual([`${shard}-0`]);
      expect(readyEndpoints(ns, `${shard}-ro`)).toEqual([`${shard}-0`, `${shard}-1`]);
    }
    expect(
      json<{ items: any[] }>(['get', 'networkpolicy', '-n', ns])
        .items.map((p) => p.metadata.name)
        .sort(),
    ).toEqual([
      'shop-allow-dns',
      'shop-allow-shards-egress',
      'shop-allow-shards-ingress',
      'shop-default-deny',
    ]);
  });

  it('publishes a map the router reads: version 1, the hot key on its own shard', () => {
    const router = ShardRouter.fromJson(mapText());
    expect(router.version).toBe(1);
    expect(router.route('celebrity-42')).toMatchObject({
      shard: hot,
      host: `${hot}-rw.${ns}.svc`,
      port: 5432,
    });
    expect(router.route('user-1').shard).toMatch(/^shop-shard-[01]$/);
  });

  it('generates one login for every shard, into the Secret only', () => {
    const p = passwords();
    expect(Object.keys(p).sort()).toEqual(['app-password', 'replication-password', 'superuser-password']);
    for (const v of Object.values(p)) expect(v).toMatch(/^[A-Za-z0-9]{32}$/);
    const elsewhere = kubectl(['get', 'configmap,statefulset,pods,services', '-n', ns, '-o', 'json']);
    for (const v of Object.values(p)) expect(elsewhere).not.toContain(v);
  });

  it('`helm test` passes when the test pod succeeds, and cleans up after itself', async () => {
    const run = await helmTest(ns, release, 'shop-shards-test', 'Succeeded', () => {
      expect(objectExists(ns, 'networkpolicy/shop-allow-shards-test')).toBe(true);
    });
    expect(run.result).toMatchObject({ ok: true });
    expect(run.result.stdout).toMatch(/TEST SUITE:\s+shop-shards-test\n[^]*Phase:\s+Succeeded/);
    expect(run.pod.spec.containers[0].command[2]).toContain(`for cluster in ${shards.join(' ')}; do`);
    expect(objectExists(ns, 'pod/shop-shards-test')).toBe(false);
    expect(objectExists(ns, 'networkpolicy/shop-allow-shards-test')).toBe(false);
  });

  it('`helm test` fails when the test pod fails, keeping the pod', async () => {
    const run = await helmTest(ns, release, 'shop-shards-test', 'Failed');
    expect(run.result.ok).toBe(false);
    expect(namedObject(ns, 'pod/shop-shards-test').metadata.uid).toBe(run.pod.metadata.uid);
    expect(objectExists(ns, 'networkpolicy/shop-allow-shards-test')).toBe(false);
  });

  it('refuses every change of the ring: without the operator no data moves, so routing must not', () => {
    const before = mapText();
    const refused = [
      [['--set', 'count=3'], 'count: the shard ring cannot change without the operator'],
      [['--set', 'virtualNodes=64'], 'virtualNodes: the shard ring cannot change without the operator'],
      [['--set-json', 'dedicated=[]'], 'dedicated: the shard ring cannot change without the operator'],
      [['--set', 'key=tenant_id'], 'key: key is immutable: changing the sharding key would move every row'],
    ] as const;
    for (const [change, message] of refused) {
      const r = upgradeChart('shards', release, ns, [...change]);
      expect([change, r.ok, r.stderr]).toEqual([change, false, expect.stringContaining(message)]);
    }
    expect(mapText()).toBe(before);
  });

  it('refuses the other changes the spec forbids, with the rule that forbids them', () => {
    const version = upgradeChart('shards', release, ns, ['--set-string', 'version=16']);
    expect(version.ok).toBe(false);
    expect(version.stderr).toContain(
      'version: version is immutable: a Postgres major upgrade needs a migration',
    );
    const storage = upgradeChart('shards', release, ns, ['--set', 'storage.storageClassName=fast']);
    expect(storage.ok).toBe(false);
    expect(storage.stderr).toContain(
      'storage.storageClassName: storageClassName is immutable: existing volumes cannot move to another storage class',
    );
  });

  it('an upgrade that keeps the ring keeps the map, its version and the passwords', () => {
    const [map, before] = [mapText(), passwords()];
    const r = upgradeChart('shards', release, ns, ['--set', 'replicasPerShard=2']);
    expect(r).toMatchObject({ ok: true });
    expect(mapText()).toBe(map);
    expect(passwords()).toEqual(before);
    expect(json<any>(['get', 'statefulset', 'shop-shard-0', '-n', ns]).status.readyReplicas).toBe(3);
  });

  it('uninstall keeps the volumes and the login; a reinstall finds both', () => {
    const before = passwords();
    const kept = claims(ns);
    expect(kept.length).toBe(9);
    const un = helmIn(['uninstall', release, '-n', ns, '--wait']);
    expect(un.ok).toBe(true);
    expect(un.stdout).toContain('[Secret] shop-shards-credentials');
    for (const shard of shards) expect(objectExists(ns, `statefulset/${shard}`)).toBe(false);
    expect(claims(ns)).toEqual(kept);
    expect(passwords()).toEqual(before);
    expect(kept).toEqual(expect.arrayContaining(firstClaims));

    const again = installChart('shards', release, ns, values);
    expect(again).toMatchObject({ ok: true });
    expect(passwords()).toEqual(before);
    expect(claims(ns)).toEqual(kept);
  });
});
