import type { V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { CacheAdmin, CacheNode, CacheRole } from '../dataplane/redis-admin.ts';
import { CachePrimary } from './cache-primary.ts';
import { steadyCachePassword } from '../tiers/objects.ts';

const app = parseApp({ cache: { replicas: 2 } });
const pod = (name: string, ready: boolean, ip: string, restarts = 0): V1Pod => ({
  metadata: { name, uid: `uid-${name}` },
  status: {
    podIP: ip,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [{ name: 'cache', restartCount: restarts, ready, image: 'x', imageID: '' }],
  },
});

/** An admin over a little in-memory cluster: reachable = listed as up; roles and offsets as given. */
function fakeAdmin(up: Set<string>, roles: Map<string, CacheRole>) {
  const calls: string[] = [];
  const admin: CacheAdmin = {
    ping: async (n) => up.has(n.name),
    role: async (n) => roles.get(n.name) ?? { role: 'slave', offset: 0 },
    promote: async (n) => {
      calls.push(`promote ${n.name}`);
      roles.set(n.name, { role: 'master', offset: roles.get(n.name)?.offset ?? 0 });
    },
    follow: async (n: CacheNode, p: CacheNode) => {
      calls.push(`follow ${n.name} -> ${p.name}`);
      roles.set(n.name, { role: 'slave', offset: 0, primary: { host: p.host, port: p.port } });
    },
  };
  return { admin, calls };
}

function setup(pods: V1Pod[], up: string[], roles: [string, CacheRole][]) {
  let now = 1_000;
  const fake = fakeAdmin(new Set(up), new Map(roles));
  const cp = new CachePrimary({
    adminFor: () => fake.admin,
    pods: () => pods,
    now: () => now,
    delayMs: 5_000,
  });
  return { cp, calls: fake.calls, advance: (ms: number) => (now += ms) };
}

const facts = {
  gatewayApi: false,
  cachePassword: steadyCachePassword('pw'),
  cacheLogins: { operator: 'op', replication: 'repl' },
};
const replicaOf = (ip: string): CacheRole => ({
  role: 'slave',
  offset: 10,
  primary: { host: ip, port: 6379 },
});

describe('CachePrimary', () => {
  it('keeps a ready primary and checks each new replica incarnation once', async () => {
    const pods = [
      pod('shop-cache-0', true, '10.0.0.1'),
      pod('shop-cache-1', true, '10.0.0.2'),
      pod('shop-cache-2', true, '10.0.0.3'),
    ];
    const { cp, calls } = setup(
      pods,
      ['shop-cache-0', 'shop-cache-1', 'shop-cache-2'],
      [
        ['shop-cache-0', { role: 'master', offset: 10 }],
        ['shop-cache-1', replicaOf('10.0.0.1')],
        ['shop-cache-2', replicaOf('10.0.0.1')],
      ],
    );
    // Seen serving as the primary: its pod is named in the record, so another pod of its name holds.
    expect(await cp.decide(app, facts)).toEqual({
      kind: 'keep',
      primary: 'shop-cache-0',
      primaryUid: 'uid-shop-cache-0',
    });
    expect(calls).toEqual([]);
  });

  it('waits out the delay before promoting, then promotes the most advanced ready replica', async () => {
    const pods = [
      pod('shop-cache-0', false, '10.0.0.1'),
      pod('shop-cache-1', true, '10.0.0.2'),
      pod('shop-cache-2', true, '10.0.0.3'),
    ];
    const { cp, calls, advance } = setup(
      pods,
      ['shop-cache-1', 'shop-cache-2'],
      [
        ['shop-cache-1', { role: 'slave', offset: 10 }],
        ['shop-cache-2', { role: 'slave', offset: 12 }],
      ],
    );
    expect(await cp.decide(app, facts)).toEqual({ kind: 'wait', primary: 'shop-cache-0', recheckMs: 5_000 });
    advance(3_000);
    expect(await cp.decide(app, facts)).toEqual({ kind: 'wait', primary: 'shop-cache-0', recheckMs: 2_000 });
    advance(2_000);
    const d = await cp.decide(app, facts);
    expect(d).toMatchObject({ kind: 'failover', primary: 'shop-cache-2', previous: 'shop-cache-0' });
    expect(calls).toEqual(['promote shop-cache-2', 'follow shop-cache-1 -> shop-cache-2']);
  });

  it('makes a returning old primary follow the new one instead of serving as a second primary', async () => {
    const pods = [
      pod('shop-cache-0', true, '10.0.0.1', 1),
      pod('shop-cache-1', true, '10.0.0.2'),
      pod('shop-cache-2', true, '10.0.0.3'),
    ];
    const { cp, calls } = setup(
      pods,
      ['shop-cache-0', 'shop-cache-1', 'shop-cache-2'],
      [
        ['shop-cache-0', { role: 'master', offset: 0 }], // booted as a primary from its old config
        ['shop-cache-1', replicaOf('10.0.0.3')],
        ['shop-cache-2', { role: 'master', offset: 20 }],
      ],
    );
    const d = await cp.decide(app, { ...facts, cachePrimary: 'shop-cache-2' });
    expect(d).toEqual({ kind: 'keep', primary: 'shop-cache-2', primaryUid: 'uid-shop-cache-2' });
    expect(calls).toEqual(['follow shop-cache-0 -> shop-cache-2']);
    await cp.decide(app, { ...facts, cachePrimary: 'shop-cache-2' });
    expect(calls).toHaveLength(1); // the same incarnation is not checked again
  });

  it('fails a recorded primary that started again, empty and held as a replica, over at once to the replica that holds the most', async () => {
    const pods = [
      pod('shop-cache-0', true, '10.0.0.1', 1), // its container restarted: held by its start script
      pod('shop-cache-1', true, '10.0.0.2'),
      pod('shop-cache-2', true, '10.0.0.3'),
    ];
    const { cp, calls } = setup(
      pods,
      ['shop-cache-0', 'shop-cache-1', 'shop-cache-2'],
      [
        ['shop-cache-0', { role: 'slave', offset: 0, primary: { host: '127.0.0.1', port: 1 } }],
        ['shop-cache-1', { role: 'slave', offset: 10 }],
        ['shop-cache-2', { role: 'slave', offset: 12 }],
      ],
    );
    // No failover delay: it answers, but there is nothing in it to wait for.
    expect(await cp.decide(app, facts)).toEqual({
      kind: 'failover',
      primary: 'shop-cache-2',
      primaryUid: 'uid-shop-cache-2',
      previous: 'shop-cache-0',
      reason:
        'shop-cache-0 started again without its data; promoted shop-cache-2 (most advanced ready replica)',
    });
    expect(calls).toEqual(['promote shop-cache-2', 'follow shop-cache-1 -> shop-cache-2']);
    // With the record moved, the held one is made to follow the new primary, and gets its data.
    expect(await cp.decide(app, { ...facts, cachePrimary: 'shop-cache-2' })).toMatchObject({ kind: 'keep' });
    expect(calls).toContain('follow shop-cache-0 -> shop-cache-2');
  });

  it('leaves a held primary alone while no replica can take over, says why, and looks again', async () => {
    const pods = [pod('shop-cache-0', true, '10.0.0.1', 1), pod('shop-cache-1', false, '10.0.0.2')];
    const { cp, calls } = setup(
      pods,
      ['shop-cache-0'],
      [['shop-cache-0', { role: 'slave', offset: 0, primary: { host: '127.0.0.1', port: 1 } }]],
    );
    expect(await cp.decide(app, facts)).toEqual({
      kind: 'refused',
      primary: 'shop-cache-0',
      recheckMs: 5_000,
      reason:
        'shop-cache-0 started again without its data and is held (it takes no writes); no replica answers to be promoted in its place',
    });
    expect(calls).toEqual([]);
  });

  it('forgets an app that went away: its delay starts over and its pods are checked again', async () => {
    const pods = [
      pod('shop-cache-0', false, '10.0.0.1'),
      pod('shop-cache-1', true, '10.0.0.2'),
      pod('shop-cache-2', true, '10.0.0.3'),
    ];
    const { cp, advance } = setup(pods, ['shop-cache-1', 'shop-cache-2'], []);
    expect(await cp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 5_000 });
    advance(3_000);
    expect(await cp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 2_000 });
    cp.forget('prod/shop');
    expect(await cp.decide(app, facts)).toMatchObject({ kind: 'wait', recheckMs: 5_000 });
  });

  it('never fails over a cache without replicas', async () => {
    const { cp, advance } = setup([pod('shop-cache-0', false, '10.0.0.1')], [], []);
    const single = parseApp({ cache: { replicas: 0 } });
    advance(60_000);
    expect(await cp.decide(single, facts)).toEqual({ kind: 'keep', primary: 'shop-cache-0' });
  });
});

describe('CachePrimary over TLS', () => {
  it("reaches a pod that mounts its certificate over TLS, checked against the app's CA and the pod's name; others in plaintext", async () => {
    const withTls = (p: V1Pod): V1Pod => ({
      ...p,
      spec: { containers: [], volumes: [{ name: 'tls', secret: { secretName: 'shop-cache-tls' } }] },
    });
    const pods = [withTls(pod('shop-cache-0', true, '10.0.0.1')), pod('shop-cache-1', true, '10.0.0.2')];
    const seen: CacheNode[] = [];
    const admin: CacheAdmin = {
      ping: async () => true,
      role: async (n) => {
        seen.push(n);
        return n.name === 'shop-cache-0' ? { role: 'master', offset: 1 } : replicaOf('10.0.0.1');
      },
      promote: async () => {},
      follow: async () => {},
    };
    const cp = new CachePrimary({ adminFor: () => admin, pods: () => pods, now: () => 0, delayMs: 5000 });
    const tls = { ca: { cert: 'the-ca', key: 'k' }, servers: {} };
    await cp.decide(app, { ...facts, tls });
    expect(seen.find((n) => n.name === 'shop-cache-0')?.tls).toEqual({
      ca: 'the-ca',
      servername: 'shop-cache-0.shop-cache-headless.prod.svc',
    });
    expect(seen.find((n) => n.name === 'shop-cache-1')?.tls).toBeUndefined();
  });
});
