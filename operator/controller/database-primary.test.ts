import type { V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { PgNode, PgState, PostgresAdmin } from '../dataplane/postgres/admin.ts';
import type { HeartbeatTarget } from '../dataplane/postgres/heartbeat.ts';
import { DatabasePrimary, STALLED_STANDBY_MS, SWITCHOVER_ANNOTATION } from './database-primary.ts';

const pod = (name: string, ready: boolean, restarts = 0): V1Pod => ({
  metadata: { name, uid: `uid-${name}` },
  status: {
    podIP: `10.0.0.${name.slice(-1)}`,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [
      { name: 'postgres', restartCount: restarts, ready, image: 'x', imageID: '', state: { running: {} } },
    ],
  },
});

function fakeAdmin(up: Set<string>, states: Map<string, PgState>) {
  const calls: string[] = [];
  const admin: PostgresAdmin = {
    ping: async (n) => up.has(n.name),
    state: async (n) => {
      if (!up.has(n.name)) throw new Error('down');
      return states.get(n.name) ?? { role: 'replica', lsn: 0n };
    },
    promote: async (n) => {
      calls.push(`promote ${n.name}`);
      states.set(n.name, { role: 'primary', lsn: states.get(n.name)?.lsn ?? 0n });
    },
    follow: async (n: PgNode, p: PgNode) =>
      void calls.push(`follow ${n.name} -> ${p.name}${p.streamHost ? ` at ${p.streamHost}` : ''}`),
    fence: async (n) => void calls.push(`fence ${n.name}`),
    // The order of detaching and reading positions is failover.ts's, tested there.
    detach: async () => {},
  };
  return { admin, calls };
}

function setup(pods: V1Pod[], up: string[], states: [string, PgState][]) {
  let now = 0;
  const fake = fakeAdmin(new Set(up), new Map(states));
  const beats = new Map<string, HeartbeatTarget | undefined>();
  const forgotten: string[] = [];
  const dp = new DatabasePrimary({
    adminFor: () => fake.admin,
    pods: () => pods,
    now: () => now,
    heartbeats: { keep: (k, t) => void beats.set(k, t), forget: (p) => void forgotten.push(p) },
  });
  return { dp, calls: fake.calls, advance: (ms: number) => (now += ms), beats, forgotten };
}

const facts = { gatewayApi: false };
/** Restarts of these pods, each with its reason. */
const restarted = (...pods: string[]) => pods.map((pod) => ({ pod, why: expect.any(String) }));
const three = (primaryReady: boolean) => [
  pod('shop-db-0', primaryReady),
  pod('shop-db-1', true),
  pod('shop-db-2', true),
];

describe('DatabasePrimary', () => {
  it('keeps a ready primary', async () => {
    const { dp, calls } = setup(
      three(true),
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [['shop-db-0', { role: 'primary', lsn: 10n }]],
    );
    expect(await dp.decide(parseApp({ database: { replicas: 2 } }), facts)).toEqual({
      kind: 'keep',
      primary: 'shop-db-0',
      restart: [],
    });
    expect(calls).toEqual([]);
  });

  it('keeps a primary whose server is ready while its metrics exporter is not (the pod is not Ready)', async () => {
    const primary = pod('shop-db-0', true);
    primary.status!.conditions = [{ type: 'Ready', status: 'False' }];
    primary.status!.containerStatuses!.push({
      name: 'metrics',
      restartCount: 4,
      ready: false,
      image: 'x',
      imageID: '',
      state: { waiting: { reason: 'CrashLoopBackOff' } },
    });
    const { dp, calls, advance } = setup(
      [primary, pod('shop-db-1', true), pod('shop-db-2', true)],
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [['shop-db-0', { role: 'primary', lsn: 10n }]],
    );
    const app = parseApp({ database: { replicas: 2, failover: { delaySeconds: 0 } } });
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'keep', primary: 'shop-db-0' });
    advance(60_000);
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'keep', primary: 'shop-db-0' });
    expect(calls).toEqual([]);
  });

  it('waits failover.delaySeconds, then promotes the standby with the most WAL', async () => {
    const app = parseApp({ database: { replicas: 2, failover: { delaySeconds: 10 } } });
    const { dp, calls, advance } = setup(
      three(false),
      ['shop-db-1', 'shop-db-2'],
      [
        ['shop-db-1', { role: 'replica', lsn: 100n }],
        ['shop-db-2', { role: 'replica', lsn: 120n }],
      ],
    );
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 10_000 });
    advance(10_000);
    expect(await dp.decide(app, facts)).toMatchObject({
      kind: 'moved',
      primary: 'shop-db-2',
      previous: 'shop-db-0',
      planned: false,
    });
    expect(calls).toEqual([
      'fence shop-db-0',
      'promote shop-db-2',
      // By name: the standby follows shop-db-2 to a new pod's address.
      'follow shop-db-1 -> shop-db-2 at shop-db-2.shop-db-headless.prod.svc',
    ]);
  });

  it('forgets an app that went away: a new app of that name waits the whole delay again', async () => {
    const app = parseApp({ database: { replicas: 2, failover: { delaySeconds: 10 } } });
    const { dp, advance } = setup(three(false), ['shop-db-1', 'shop-db-2'], []);
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 10_000 });
    advance(6_000);
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 4_000 });
    dp.forget('prod/shop');
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 10_000 });
  });

  it('does nothing but say so when failover is disabled', async () => {
    const app = parseApp({ database: { replicas: 2, failover: { enabled: false } } });
    const { dp, calls, advance } = setup(three(false), ['shop-db-1', 'shop-db-2'], []);
    advance(600_000);
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'refused', primary: 'shop-db-0' });
    expect(calls).toEqual([]);
  });

  it('refuses in synchronous mode when no reachable standby is sure to hold every acknowledged commit', async () => {
    const app = parseApp({
      database: { replicas: 2, synchronousReplicas: 1, failover: { delaySeconds: 0 } },
    });
    // ANY 1 of 2: an acknowledged commit may be only on the unreachable standby.
    const { dp, calls } = setup(three(false), ['shop-db-1'], [['shop-db-1', { role: 'replica', lsn: 100n }]]);
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'refused', primary: 'shop-db-0' });
    expect(calls.filter((c) => c.startsWith('promote'))).toEqual([]);
  });

  it('switches over on request and asks for the old primary to be restarted as a standby', async () => {
    const app = parseApp({ database: { replicas: 2 } });
    app.metadata.annotations = { [SWITCHOVER_ANNOTATION]: 'shop-db-1' };
    const { dp, calls } = setup(
      three(true),
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [
        ['shop-db-0', { role: 'primary', lsn: 50n }],
        ['shop-db-1', { role: 'replica', lsn: 50n }],
      ],
    );
    expect(await dp.decide(app, facts)).toMatchObject({
      kind: 'moved',
      primary: 'shop-db-1',
      planned: true,
      restart: [
        {
          pod: 'shop-db-0',
          why: 'shop-db-0 was the primary before the switchover to shop-db-1: restarted to rewind it into a standby',
        },
      ],
      switchoverDone: 'shop-db-1',
    });
    expect(calls).toContain('promote shop-db-1');
    // Once recorded, the request is done: said so, for it to be removed (a later failover must not
    // bring the primary back to shop-db-1). Without a request, nothing is said.
    expect(await dp.decide(app, { ...facts, dbPrimary: 'shop-db-1' })).toMatchObject({
      kind: 'keep',
      primary: 'shop-db-1',
      switchoverDone: 'shop-db-1',
    });
    delete app.metadata.annotations;
    expect(await dp.decide(app, { ...facts, dbPrimary: 'shop-db-1' })).not.toHaveProperty('switchoverDone');
  });

  it('restarts an instance that still runs as a primary although another is recorded', async () => {
    const { dp, calls } = setup(
      three(true),
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [
        ['shop-db-1', { role: 'primary', lsn: 200n }],
        ['shop-db-0', { role: 'primary', lsn: 150n }], // the old primary, back from a partition
      ],
    );
    const d = await dp.decide(parseApp({ database: { replicas: 2 } }), { ...facts, dbPrimary: 'shop-db-1' });
    expect(d).toEqual({
      kind: 'keep',
      primary: 'shop-db-1',
      restart: [
        {
          pod: 'shop-db-0',
          why: 'shop-db-0 still ran as a primary while shop-db-1 is the recorded one: restarted to rewind it into a standby',
        },
      ],
    });
    expect(calls).toEqual(['fence shop-db-0']);
  });

  it('restarts an old primary that is not ready, as one that fenced itself when cut off stays', async () => {
    const pods = [pod('shop-db-0', false), pod('shop-db-1', true), pod('shop-db-2', true)];
    const { dp, calls } = setup(
      pods,
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [
        ['shop-db-1', { role: 'primary', lsn: 200n }],
        ['shop-db-0', { role: 'primary', lsn: 150n }],
      ],
    );
    const d = await dp.decide(parseApp({ database: { replicas: 2 } }), { ...facts, dbPrimary: 'shop-db-1' });
    expect(d).toEqual({ kind: 'keep', primary: 'shop-db-1', restart: restarted('shop-db-0') });
    expect(calls).toEqual(['fence shop-db-0']);
  });

  it('asks an unready instance that does not answer (cloning, still cut off) again later, and restarts nothing', async () => {
    const pods = [pod('shop-db-0', false), pod('shop-db-1', true), pod('shop-db-2', true)];
    const up = new Set(['shop-db-1', 'shop-db-2']);
    const states = new Map<string, PgState>([
      ['shop-db-1', { role: 'primary', lsn: 200n }],
      ['shop-db-0', { role: 'primary', lsn: 150n }],
    ]);
    const fake = fakeAdmin(up, states);
    const asked: string[] = [];
    const state = fake.admin.state;
    fake.admin.state = (n) => (asked.push(n.name), state(n));
    let now = 0;
    const dp = new DatabasePrimary({ adminFor: () => fake.admin, pods: () => pods, now: () => now });
    const app = parseApp({ database: { replicas: 2 } });
    const f = { ...facts, dbPrimary: 'shop-db-1' };
    const unasked = { kind: 'keep', primary: 'shop-db-1', restart: [], recheckMs: 10_000 };
    // Asked again soon: nothing in Kubernetes changes when the partition heals.
    expect(await dp.decide(app, f)).toEqual(unasked);
    expect(asked.filter((n) => n === 'shop-db-0')).toHaveLength(1);
    // Another reconcile within the recheck does not wait on it again.
    now += 9_000;
    up.add('shop-db-0'); // the partition heals
    expect(await dp.decide(app, f)).toEqual({ ...unasked, recheckMs: 1_000 });
    expect(asked.filter((n) => n === 'shop-db-0')).toHaveLength(1);
    now += 1_000;
    expect(await dp.decide(app, f)).toEqual({
      kind: 'keep',
      primary: 'shop-db-1',
      restart: restarted('shop-db-0'),
    });
    expect(asked.filter((n) => n === 'shop-db-0')).toHaveLength(2);
  });

  const dns = (instance: string) => `${instance}.shop-db-headless.prod.svc`;

  it('points a standby that streams from another instance at the primary, by its DNS name, once per incarnation', async () => {
    const { dp, calls } = setup(
      three(true),
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [
        ['shop-db-0', { role: 'primary', lsn: 200n }],
        // Left out of a failover's repoint: still pointed at the instance that was primary before.
        ['shop-db-1', { role: 'replica', lsn: 150n, upstream: dns('shop-db-2') }],
        ['shop-db-2', { role: 'replica', lsn: 200n, upstream: dns('shop-db-0') }],
      ],
    );
    const app = parseApp({ database: { replicas: 2 } });
    expect(await dp.decide(app, facts)).toEqual({ kind: 'keep', primary: 'shop-db-0', restart: [] });
    expect(calls).toEqual(['follow shop-db-1 -> shop-db-0 at shop-db-0.shop-db-headless.prod.svc']);
    // Checked, it is not asked again until it restarts or the primary moves.
    await dp.decide(app, facts);
    expect(calls).toHaveLength(1);
  });

  it('points a standby left pointing at a pod address (an older operator) at the DNS name too', async () => {
    const { dp, calls } = setup(
      three(true),
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [
        ['shop-db-0', { role: 'primary', lsn: 200n }],
        ['shop-db-1', { role: 'replica', lsn: 200n, upstream: '10.0.0.0' }],
        ['shop-db-2', { role: 'replica', lsn: 200n }], // names no host: nothing to compare
      ],
    );
    await dp.decide(parseApp({ database: { replicas: 2 } }), facts);
    expect(calls).toEqual(['follow shop-db-1 -> shop-db-0 at shop-db-0.shop-db-headless.prod.svc']);
  });

  it('points a standby a refused failover left detached (no upstream, not streaming) back at the primary', async () => {
    const { dp, calls } = setup(
      three(true),
      ['shop-db-0', 'shop-db-1', 'shop-db-2'],
      [
        ['shop-db-0', { role: 'primary', lsn: 200n }],
        ['shop-db-1', { role: 'replica', lsn: 200n, streaming: false }],
        ['shop-db-2', { role: 'replica', lsn: 200n, streaming: true, upstream: dns('shop-db-0') }],
      ],
    );
    await dp.decide(parseApp({ database: { replicas: 2 } }), facts);
    expect(calls).toEqual(['follow shop-db-1 -> shop-db-0 at shop-db-0.shop-db-headless.prod.svc']);
  });

  it('repoints after a failover a standby the promotion could not, and fails the check while it cannot', async () => {
    const app = parseApp({ database: { replicas: 2, failover: { delaySeconds: 0 } } });
    const pods = three(false);
    const up = new Set(['shop-db-1', 'shop-db-2']);
    const states = new Map<string, PgState>([
      ['shop-db-1', { role: 'replica', lsn: 100n, upstream: dns('shop-db-0') }],
      ['shop-db-2', { role: 'replica', lsn: 120n, upstream: dns('shop-db-0') }],
    ]);
    const fake = fakeAdmin(up, states);
    let refuse = true;
    const follow = fake.admin.follow;
    fake.admin.follow = async (n, p) => {
      if (refuse) throw new Error(`${n.name}: timeout`);
      return follow(n, p);
    };
    const dp = new DatabasePrimary({ adminFor: () => fake.admin, pods: () => pods, now: () => 0 });
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'moved', primary: 'shop-db-2' });
    expect(fake.calls).toEqual(['fence shop-db-0', 'promote shop-db-2']);
    // The record names shop-db-2 and its pod is ready: shop-db-1 still streams from shop-db-0.
    const after = { ...facts, dbPrimary: 'shop-db-2' };
    await expect(dp.decide(app, after)).rejects.toThrow('shop-db-1: timeout');
    refuse = false;
    expect(await dp.decide(app, after)).toMatchObject({ kind: 'keep', primary: 'shop-db-2' });
    expect(fake.calls.at(-1)).toBe('follow shop-db-1 -> shop-db-2 at shop-db-2.shop-db-headless.prod.svc');
  });

  it('asks a standby it had checked again once it was promoted: promoted in place, it may be replaced while it runs', async () => {
    const app = parseApp({ database: { replicas: 2 } });
    const pods = three(true);
    const up = new Set(['shop-db-0', 'shop-db-1', 'shop-db-2']);
    const states = new Map<string, PgState>([
      ['shop-db-0', { role: 'primary', lsn: 50n }],
      ['shop-db-1', { role: 'replica', lsn: 50n }],
      ['shop-db-2', { role: 'replica', lsn: 50n }],
    ]);
    const fake = fakeAdmin(up, states);
    const dp = new DatabasePrimary({ adminFor: () => fake.admin, pods: () => pods, now: () => 0 });
    // shop-db-1 is checked, as a standby.
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'keep', restart: [] });
    // A switchover promotes it in place (same pod, same container).
    app.metadata.annotations = { [SWITCHOVER_ANNOTATION]: 'shop-db-1' };
    expect(await dp.decide(app, facts)).toMatchObject({ kind: 'moved', primary: 'shop-db-1' });
    // Later the record moves on to shop-db-2 while shop-db-1 still runs as a primary (it was cut
    // off): it is a stray primary, whatever it was when first checked.
    delete app.metadata.annotations;
    states.set('shop-db-2', { role: 'primary', lsn: 60n });
    expect(await dp.decide(app, { ...facts, dbPrimary: 'shop-db-2' })).toMatchObject({
      kind: 'keep',
      primary: 'shop-db-2',
      restart: expect.arrayContaining(restarted('shop-db-1')),
    });
  });

  describe('a standby that does not stream', () => {
    // shop-db-2 replayed past where the promoted shop-db-1's timeline forked: it waits for ever.
    function stalled() {
      const pods = [pod('shop-db-0', true), pod('shop-db-1', true), pod('shop-db-2', true)];
      const states = new Map<string, PgState>([
        ['shop-db-1', { role: 'primary', lsn: 500n }],
        ['shop-db-0', { role: 'replica', lsn: 500n, streaming: true }],
        ['shop-db-2', { role: 'replica', lsn: 400n, streaming: false }],
      ]);
      const fake = fakeAdmin(new Set(['shop-db-0', 'shop-db-1', 'shop-db-2']), states);
      let now = 0;
      const dp = new DatabasePrimary({ adminFor: () => fake.admin, pods: () => pods, now: () => now });
      const app = parseApp({ database: { replicas: 2 } });
      const decide = () => dp.decide(app, { ...facts, dbPrimary: 'shop-db-1' });
      return { pods, states, decide, advance: (ms: number) => (now += ms), calls: fake.calls };
    }
    const keep = (extra: object) => ({ kind: 'keep', primary: 'shop-db-1', restart: [], ...extra });

    it('is given time, then restarted with the reason in its Event; the next restart of that pod waits twice as long', async () => {
      const { pods, decide, advance } = stalled();
      expect(await decide()).toEqual(keep({ recheckMs: STALLED_STANDBY_MS }));
      advance(STALLED_STANDBY_MS / 2);
      expect(await decide()).toEqual(keep({ recheckMs: STALLED_STANDBY_MS / 2 }));
      advance(STALLED_STANDBY_MS / 2);
      expect(await decide()).toEqual({
        kind: 'keep',
        primary: 'shop-db-1',
        restart: [
          {
            pod: 'shop-db-2',
            why: "shop-db-2 has neither streamed from shop-db-1 nor replayed for 20s: restarted, so that its start script rewinds it if its history forked from the primary's",
          },
        ],
      });
      // Its new pod (a new incarnation) still does not stream: a broken link, say. Twice the grace.
      pods[2] = { ...pod('shop-db-2', true), metadata: { name: 'shop-db-2', uid: 'uid-shop-db-2-b' } };
      expect(await decide()).toEqual(keep({ recheckMs: 2 * STALLED_STANDBY_MS }));
      advance(STALLED_STANDBY_MS);
      expect(await decide()).toEqual(keep({ recheckMs: STALLED_STANDBY_MS }));
      advance(STALLED_STANDBY_MS);
      expect(await decide()).toMatchObject({ restart: restarted('shop-db-2') });
    });

    it('is left alone while it replays (its position moves), and once it streams it is checked and not asked again', async () => {
      const { states, decide, advance } = stalled();
      await decide();
      advance(STALLED_STANDBY_MS - 1);
      states.set('shop-db-2', { role: 'replica', lsn: 450n, streaming: false }); // replaying its local WAL
      expect(await decide()).toEqual(keep({ recheckMs: STALLED_STANDBY_MS }));
      advance(STALLED_STANDBY_MS - 1);
      states.set('shop-db-2', { role: 'replica', lsn: 500n, streaming: true });
      expect(await decide()).toEqual(keep({}));
      // Checked: a later stall of the same incarnation is only looked for after the primary moves.
      states.set('shop-db-2', { role: 'replica', lsn: 500n, streaming: false });
      advance(10 * STALLED_STANDBY_MS);
      expect(await decide()).toEqual(keep({}));
    });
  });

  it('keeps the heartbeat on the primary it decided on, and on none when there is nothing to fence', async () => {
    const { dp, beats, forgotten, advance } = setup(
      three(false),
      ['shop-db-1', 'shop-db-2'],
      [
        ['shop-db-1', { role: 'replica', lsn: 20n }],
        ['shop-db-2', { role: 'replica', lsn: 10n }],
      ],
    );
    const app = parseApp({ database: { replicas: 2 } });
    const password = 'su-secret';
    const f = { ...facts, dbCredentials: { superuser: password, replication: 'r', app: 'a' } };
    await dp.decide(app, f);
    expect(beats.get('prod/shop/shop-db')).toEqual({ host: '10.0.0.0', port: 5432, password });
    advance(5000);
    expect(await dp.decide(app, f)).toMatchObject({ kind: 'moved', primary: 'shop-db-1' });
    // The promoted one at once: the replaced one's fence must stay.
    expect(beats.get('prod/shop/shop-db')).toEqual({ host: '10.0.0.1', port: 5432, password });
    await dp.decide(parseApp({ database: { replicas: 2, failover: { enabled: false } } }), f);
    expect(beats.get('prod/shop/shop-db')).toBeUndefined();
    await dp.decide(parseApp({ database: { replicas: 0 } }), f);
    expect(beats.get('prod/shop/shop-db')).toBeUndefined();
    dp.forget('prod/shop');
    expect(forgotten).toEqual(['prod/shop/']);
  });
});

describe("DatabasePrimary of a shard: spec.shards' own settings", () => {
  const shardPods = (primaryReady: boolean) => [
    pod('shop-shard-0-0', primaryReady),
    pod('shop-shard-0-1', true),
    pod('shop-shard-0-2', true),
  ];
  const shards = (more: object) =>
    parseApp({ shards: { count: 2, key: 'user_id', replicasPerShard: 2, ...more } });

  it('waits failover.delaySeconds, then promotes the standby with the most WAL', async () => {
    const app = shards({ failover: { delaySeconds: 10 } });
    const { dp, calls, advance } = setup(
      shardPods(false),
      ['shop-shard-0-1', 'shop-shard-0-2'],
      [
        ['shop-shard-0-1', { role: 'replica', lsn: 100n }],
        ['shop-shard-0-2', { role: 'replica', lsn: 120n }],
      ],
    );
    expect(await dp.decideShard(app, facts, 'shop-shard-0')).toMatchObject({
      kind: 'wait',
      recheckMs: 10_000,
    });
    advance(10_000);
    expect(await dp.decideShard(app, facts, 'shop-shard-0')).toMatchObject({
      kind: 'moved',
      primary: 'shop-shard-0-2',
      previous: 'shop-shard-0-0',
    });
    expect(calls).toContain('promote shop-shard-0-2');
  });

  it('does nothing but say so when failover is disabled, naming the field', async () => {
    const app = shards({ failover: { enabled: false } });
    const { dp, calls, advance } = setup(shardPods(false), ['shop-shard-0-1', 'shop-shard-0-2'], []);
    advance(600_000);
    expect(await dp.decideShard(app, facts, 'shop-shard-0')).toMatchObject({
      kind: 'refused',
      primary: 'shop-shard-0-0',
      reason: expect.stringContaining('spec.shards.failover.enabled'),
    });
    expect(calls).toEqual([]);
  });

  it('refuses in synchronous mode when no reachable standby is sure to hold every acknowledged commit', async () => {
    const app = shards({ synchronousReplicas: 1, failover: { delaySeconds: 0 } });
    // ANY 1 of 2: an acknowledged commit may be only on the unreachable standby.
    const { dp, calls } = setup(
      shardPods(false),
      ['shop-shard-0-1'],
      [['shop-shard-0-1', { role: 'replica', lsn: 100n }]],
    );
    expect(await dp.decideShard(app, facts, 'shop-shard-0')).toMatchObject({
      kind: 'refused',
      primary: 'shop-shard-0-0',
    });
    expect(calls.filter((c) => c.startsWith('promote'))).toEqual([]);
  });
});
