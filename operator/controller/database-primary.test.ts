import type { V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { PgNode, PgState, PostgresAdmin } from '../dataplane/postgres/admin.ts';
import { DatabasePrimary, SWITCHOVER_ANNOTATION } from './database-primary.ts';

const pod = (name: string, ready: boolean, restarts = 0): V1Pod => ({
  metadata: { name, uid: `uid-${name}` },
  status: {
    podIP: `10.0.0.${name.slice(-1)}`,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [{ name: 'postgres', restartCount: restarts, ready, image: 'x', imageID: '' }],
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
    follow: async (n: PgNode, p: PgNode) => void calls.push(`follow ${n.name} -> ${p.name}`),
    fence: async (n) => void calls.push(`fence ${n.name}`),
  };
  return { admin, calls };
}

function setup(pods: V1Pod[], up: string[], states: [string, PgState][]) {
  let now = 0;
  const fake = fakeAdmin(new Set(up), new Map(states));
  const dp = new DatabasePrimary({ adminFor: () => fake.admin, pods: () => pods, now: () => now });
  return { dp, calls: fake.calls, advance: (ms: number) => (now += ms) };
}

const facts = { gatewayApi: false };
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
    expect(calls).toEqual(['fence shop-db-0', 'promote shop-db-2', 'follow shop-db-1 -> shop-db-2']);
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
      restart: ['shop-db-0'],
    });
    expect(calls).toContain('promote shop-db-1');
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
    expect(d).toEqual({ kind: 'keep', primary: 'shop-db-1', restart: ['shop-db-0'] });
    expect(calls).toEqual(['fence shop-db-0']);
  });
});
