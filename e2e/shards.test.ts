// Shards on the local control plane: one Postgres cluster per shard built by the database tier's own
// builders, the versioned shard map and the routing module reading it, resharding that waits for the
// data mover's verification before routing flips (docs/adr/0007-resharding.md), and a shard's own
// failover. Postgres is replaced by pod readiness, as in e2e/database-tier.test.ts.
import { createHash } from 'node:crypto';
import { applyApp, decodeSecret, getApp, readyAt as readyAtGeneration } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';
import { podRoles, setPodReady } from './support/pods.ts';
import { ShardRouter } from '../operator/sharding/router.ts';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('shards', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

const hot = `social-shard-hot-${createHash('sha256').update('celebrity-42').digest('hex').slice(0, 8)}`;
const spec = (count: number) => ({
  web: { image: 'registry.example/social:5', replicas: 1 },
  shards: {
    count,
    key: 'user_id',
    replicasPerShard: 1,
    storage: { size: '1Gi' },
    dedicated: [{ key: 'celebrity-42' }],
  },
});
const readyAt = (name: string) => readyAtGeneration(ns, name);
const mapData = () => json<any>(['get', 'configmap', 'social-shard-map', '-n', ns]).data;
const map = () => JSON.parse(mapData()['shard-map.json']);
const statefulSets = () =>
  json<{ items: any[] }>(['get', 'statefulsets', '-n', ns, '-l', 'app.kubernetes.io/component=shard'])
    .items.map((s) => s.metadata.name)
    .sort();

describe('two hash shards and a dedicated shard for a hot key', () => {
  it('runs each shard as a primary with its replica, its own Services and retained volumes', async () => {
    applyApp(ns, 'social', spec(2));
    const a = await readyAt('social');
    expect(a.status.conditions.find((c: any) => c.type === 'ShardsReady')).toMatchObject({
      status: 'True',
      reason: 'Available',
    });
    expect(a.status.shards).toEqual({ ready: 3, ringVersion: 1 });
    expect(a.status.endpoints.shardMap).toBe('social-shard-map');
    expect(statefulSets()).toEqual(['social-shard-0', 'social-shard-1', hot].sort());
    for (const shard of ['social-shard-0', 'social-shard-1', hot]) {
      const sts = json<any>(['get', 'statefulset', shard, '-n', ns]);
      expect(sts.spec.replicas).toBe(2);
      expect(sts.spec.persistentVolumeClaimRetentionPolicy.whenDeleted).toBe('Retain');
      // The selector tells this shard's pods from the other shards'.
      expect(sts.spec.selector.matchLabels['scalableapp.io/shard']).toBe(shard);
      for (const svc of ['headless', 'rw', 'ro']) kubectl(['get', 'service', `${shard}-${svc}`, '-n', ns]);
      expect(podRoles(ns, 'social', 'shard')).toMatchObject({
        [`${shard}-0`]: 'primary',
        [`${shard}-1`]: 'replica',
      });
    }
    const claims = json<{ items: any[] }>(['get', 'pvc', '-n', ns]).items;
    expect(claims.filter((c) => c.status.phase === 'Bound')).toHaveLength(6);
  });

  it('publishes a shard map the routing module reads: hash keys spread, the hot key on its own shard', () => {
    const router = ShardRouter.fromConfigMapData(mapData());
    expect(router.route('celebrity-42')).toMatchObject({
      shard: hot,
      host: `${hot}-rw.${ns}.svc`,
      port: 5432,
      version: 1,
    });
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const shard = router.route(`user-${i}`).shard;
      counts.set(shard, (counts.get(shard) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['social-shard-0', 'social-shard-1']);
    const conn = decodeSecret(json<any>(['get', 'secret', 'social-connection', '-n', ns]));
    const creds = decodeSecret(json<any>(['get', 'secret', 'social-shards-credentials', '-n', ns]));
    expect(conn).toMatchObject({
      SHARD_MAP_CONFIGMAP: 'social-shard-map',
      SHARD_KEY: 'user_id',
      SHARDS_USER: 'app',
      SHARDS_PASSWORD: creds['app-password'],
    });
    expect(router.url('user-1', { user: conn.SHARDS_USER!, password: conn.SHARDS_PASSWORD! })).toMatch(
      /^postgresql:\/\/app:.+@social-shard-[01]-rw\./,
    );
    // The web pods read the map as a file, which the kubelet refreshes when the ConfigMap changes.
    const web = json<any>(['get', 'deployment', 'social-web', '-n', ns]).spec.template.spec;
    expect(web.volumes).toContainEqual({
      name: 'shard-map',
      configMap: expect.objectContaining({ name: 'social-shard-map' }),
    });
    expect(JSON.stringify(getApp(ns, 'social'))).not.toContain(creds['app-password']);
  });

  it('adds a shard at once but keeps routing on the old ring until the moved data is verified', async () => {
    applyApp(ns, 'social', spec(3));
    const a = await eventually('a pending ring in status', () => {
      const x = getApp(ns, 'social');
      return (
        x.status?.shards?.pendingRingVersion === 2 &&
        x.status.observedGeneration === x.metadata.generation &&
        x
      );
    });
    expect(a.status.shards.ringVersion).toBe(1);
    expect(a.status.shards.movedKeyRanges).toBeGreaterThan(0);
    expect(statefulSets()).toContain('social-shard-2');
    const m = map();
    expect(m.version).toBe(1);
    expect(m.pending.version).toBe(2);
    expect(m.pending.shards.map((s: any) => s.name)).toContain('social-shard-2');
    // Until the flip every key still routes by the ring the data is on.
    const router = ShardRouter.fromConfigMapData(mapData());
    for (let i = 0; i < 200; i++) expect(router.route(`user-${i}`).shard).not.toBe('social-shard-2');

    kubectl(['annotate', 'sapp', 'social', '-n', ns, 'scalableapp.io/reshard-verified=2', '--overwrite']);
    const flipped = await eventually('routing on ring v2', () => {
      const x = getApp(ns, 'social');
      return x.status?.shards?.ringVersion === 2 && x;
    });
    expect(flipped.status.shards.pendingRingVersion).toBeUndefined();
    expect(map().version).toBe(2);
    expect(map().pending).toBeUndefined();
    await readyAt('social');
  });

  it('keeps a shard that is being removed until its data has moved and been drained, then deletes it but not its volumes', async () => {
    applyApp(ns, 'social', spec(2));
    await eventually('ring v3 pending', () => getApp(ns, 'social').status?.shards?.pendingRingVersion === 3);
    expect(statefulSets()).toContain('social-shard-2'); // still holds data the mover has not copied
    kubectl(['annotate', 'sapp', 'social', '-n', ns, 'scalableapp.io/reshard-verified=3', '--overwrite']);
    await eventually('routing on ring v3', () => map().version === 3);
    // Readers on a not yet refreshed map file, and the mover's delete step, still reach it.
    await readyAt('social');
    expect(statefulSets()).toContain('social-shard-2');
    kubectl(['annotate', 'sapp', 'social', '-n', ns, 'scalableapp.io/reshard-drained=3', '--overwrite']);
    await eventually('shard-2 removed', () => !statefulSets().includes('social-shard-2'));
    const claims = json<{ items: any[] }>(['get', 'pvc', '-n', ns]).items.map((c) => c.metadata.name);
    expect(claims).toEqual(expect.arrayContaining(['data-social-shard-2-0', 'data-social-shard-2-1']));
  });

  it('refuses to guess when the shard map is lost, and publishes it again above every shown version only when asked', async () => {
    await readyAt('social');
    const before = statefulSets();
    kubectl(['delete', 'configmap', 'social-shard-map', '-n', ns]);
    const refused = await eventually('ShardMapLost', () => {
      const c = getApp(ns, 'social').status?.conditions?.find((x: any) => x.type === 'Ready');
      return c?.reason === 'ShardMapLost' && c;
    });
    expect(refused.message).toContain('scalableapp.io/shard-map-reset=3');
    expect(statefulSets()).toEqual(before);
    expect(tryKubectl(['get', 'configmap', 'social-shard-map', '-n', ns]).ok).toBe(false);
    kubectl(['annotate', 'sapp', 'social', '-n', ns, 'scalableapp.io/shard-map-reset=3', '--overwrite']);
    await eventually(
      'map published as v4',
      () => tryKubectl(['get', 'configmap', 'social-shard-map', '-n', ns]).ok && map().version === 4,
    );
    await readyAt('social');
    expect(getApp(ns, 'social').status.shards.ringVersion).toBe(4);
  });

  it("fails a shard's primary over to its replica without touching the other shards", async () => {
    await readyAt('social');
    setPodReady(ns, 'social-shard-0-0', 'False');
    const recorded = (shard: string) =>
      json<any>(['get', 'configmap', `${shard}-config`, '-n', ns]).data.primary;
    await eventually('shard-0 primary moved', () => recorded('social-shard-0') === 'social-shard-0-1');
    await eventually(
      'role labels follow',
      () => podRoles(ns, 'social', 'shard')['social-shard-0-1'] === 'primary',
    );
    expect(recorded('social-shard-1')).toBe('social-shard-1-0');
    expect(recorded(hot)).toBe(`${hot}-0`);
    const events = json<{ items: any[] }>(['get', 'events', '-n', ns]).items;
    expect(events.some((e) => e.reason === 'Failover' && /social-shard-0-1/.test(e.message))).toBe(true);
  });
});
