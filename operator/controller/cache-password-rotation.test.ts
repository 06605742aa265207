import type { V1Pod } from '@kubernetes/client-node';
import type { CacheUsers } from '../dataplane/redis-admin.ts';
import { passwordRule } from '../server-config/cache.ts';
import { ANNOTATION } from '../tiers/labels.ts';
import { runningContainer } from './testdata/pods.ts';
import { CachePasswordRotation, type CacheScope } from './cache-password-rotation.ts';
import type { CacheAppPassword } from '../tiers/objects.ts';

/** A cache pod: ready unless told, started from config `hash`; `restarts` names its incarnation. */
const cachePod = (name: string, o: { ready?: boolean; hash?: string; restarts?: number } = {}): V1Pod => ({
  metadata: { name, uid: `uid-${name}`, annotations: { [ANNOTATION.configHash]: o.hash ?? 'cfg' } },
  status: {
    podIP: `10.0.0.${name.length}`,
    containerStatuses: [runningContainer('cache', o)],
  },
});
const appPod = (name: string, hash: string): V1Pod => ({
  metadata: { name, annotations: { [ANNOTATION.connectionHash]: hash } },
});
const h = (password: string) => passwordRule('app', password);

function setup() {
  const calls: string[] = [];
  const failOn = new Set<string>();
  const users: CacheUsers = {
    setPasswords: async (n, user, rules) => {
      if (failOn.has(n.name)) throw new Error(`${n.name} refused`);
      calls.push(`${n.name} ${user} ${rules.join(' ')}`);
    },
  };
  const logins: (string | undefined)[] = [];
  const rotation = new CachePasswordRotation({
    usersFor: (password) => {
      logins.push(password);
      return users;
    },
  });
  return { rotation, calls, failOn, logins };
}

const scope = (
  password: CacheAppPassword,
  o: { pods?: V1Pod[]; appPods?: V1Pod[]; hash?: string; configHash?: () => string } = {},
): CacheScope => ({
  app: 'prod/shop',
  secret: 'shop-cache-auth',
  password,
  pods: o.pods ?? [cachePod('shop-cache-0'), cachePod('shop-cache-1')],
  configHash: o.configHash ?? (() => 'cfg'),
  node: (p) => ({ name: p.metadata!.name!, host: p.status!.podIP!, port: 6379 }),
  operatorPassword: 'op',
  appPods: () => o.appPods ?? [],
  connectionHash: () => o.hash ?? 'h-new',
});

describe('CachePasswordRotation', () => {
  it('gives every server incarnation the recorded password once, between rotations too', async () => {
    const { rotation, calls, logins } = setup();
    const steady = { wanted: 'a', current: 'a' };
    expect(await rotation.step(scope(steady))).toEqual({ kind: 'steady' });
    expect(calls).toEqual([`shop-cache-0 default ${h('a')}`, `shop-cache-1 default ${h('a')}`]);
    expect(logins).toEqual(['op']);
    // A pass with every server given its list computes no config hash (a whole ConfigMap's worth).
    let hashed = 0;
    await rotation.step(scope(steady, { configHash: () => (hashed++, 'cfg') }));
    expect(calls).toHaveLength(2);
    expect(hashed).toBe(0);
    // A restarted container read auth.conf again, which may be older than the record: once more.
    await rotation.step(
      scope(steady, { pods: [cachePod('shop-cache-0', { restarts: 1 }), cachePod('shop-cache-1')] }),
    );
    expect(calls.slice(2)).toEqual([`shop-cache-0 default ${h('a')}`]);
  });

  it('leaves alone a server not ready, or started from an older configuration (it may not allow ACL SETUSER)', async () => {
    const { rotation, calls } = setup();
    const pods = [cachePod('shop-cache-0', { ready: false }), cachePod('shop-cache-1', { hash: 'old' })];
    expect(await rotation.step(scope({ wanted: 'a', current: 'a' }, { pods }))).toEqual({ kind: 'steady' });
    expect(calls).toEqual([]);
  });

  it('adds the new password beside the old on every server before the URLs name it, then drops the old once no pod holds the old URLs', async () => {
    const { rotation, calls } = setup();
    const switched = await rotation.step(scope({ wanted: 'b', current: 'a' }));
    expect(switched).toMatchObject({
      kind: 'switched',
      credentials: { wanted: 'b', current: 'b', retiring: 'a' },
      message: expect.stringMatching(/^Secret shop-cache-auth key password changed/),
    });
    expect(calls).toEqual([
      `shop-cache-0 default ${h('b')} ${h('a')}`,
      `shop-cache-1 default ${h('b')} ${h('a')}`,
    ]);

    // A web pod still holds the old URLs: both passwords stay, and nothing is asked again.
    const rolling = { wanted: 'b', current: 'b', retiring: 'a' };
    const waiting = await rotation.step(
      scope(rolling, { appPods: [appPod('web-a', 'h-old'), appPod('web-b', 'h-new')] }),
    );
    expect(waiting).toMatchObject({ kind: 'wait', waiting: expect.stringContaining('web-a') });
    expect((waiting as { waiting: string }).waiting).not.toContain('web-b');
    expect(calls).toHaveLength(2);

    const retired = await rotation.step(scope(rolling, { appPods: [appPod('web-b', 'h-new')] }));
    expect(retired).toMatchObject({ kind: 'retired', credentials: { wanted: 'b', current: 'b' } });
    expect((retired as { credentials: CacheAppPassword }).credentials.retiring).toBeUndefined();
    expect(calls.slice(2)).toEqual([`shop-cache-0 default ${h('b')}`, `shop-cache-1 default ${h('b')}`]);
  });

  it('switches nothing while a server is not ready or runs an older configuration, and says which', async () => {
    const { rotation, calls } = setup();
    const unready = await rotation.step(
      scope(
        { wanted: 'b', current: 'a' },
        { pods: [cachePod('shop-cache-0'), cachePod('shop-cache-1', { ready: false })] },
      ),
    );
    expect(unready).toEqual({
      kind: 'wait',
      waiting: 'cache server(s) not ready: shop-cache-1',
      recheckMs: 5_000,
    });
    const older = await rotation.step(
      scope(
        { wanted: 'b', current: 'a' },
        { pods: [cachePod('shop-cache-0', { hash: 'old' }), cachePod('shop-cache-1')] },
      ),
    );
    expect(older).toMatchObject({
      kind: 'wait',
      waiting: expect.stringMatching(/older configuration: shop-cache-0$/),
    });
    expect(await rotation.step(scope({ wanted: 'b', current: 'a' }, { pods: [] }))).toMatchObject({
      kind: 'wait',
    });
    expect(calls.filter((c) => c.includes(h('b')))).toEqual([]);
  });

  it('keeps the old password while a server that must lose it is not ready', async () => {
    const { rotation, calls } = setup();
    const rolling = { wanted: 'b', current: 'b', retiring: 'a' };
    const step = await rotation.step(
      scope(rolling, { pods: [cachePod('shop-cache-0'), cachePod('shop-cache-1', { ready: false })] }),
    );
    expect(step).toMatchObject({ kind: 'wait', waiting: 'cache server(s) not ready: shop-cache-1' });
    expect(calls).toEqual([`shop-cache-0 default ${h('b')} ${h('a')}`]);
  });

  it('waits for the last rotation to end before starting another', async () => {
    const { rotation, calls } = setup();
    const step = await rotation.step(scope({ wanted: 'c', current: 'b', retiring: 'a' }));
    expect(step).toMatchObject({ kind: 'wait', waiting: expect.stringMatching(/changed again/) });
    expect(calls).toEqual([]);
  });

  it('fails the step when a server refuses, switching nothing; the next pass gives only what is missing', async () => {
    const { rotation, calls, failOn } = setup();
    failOn.add('shop-cache-1');
    await expect(rotation.step(scope({ wanted: 'b', current: 'a' }))).rejects.toThrow('shop-cache-1 refused');
    failOn.clear();
    expect(await rotation.step(scope({ wanted: 'b', current: 'a' }))).toMatchObject({ kind: 'switched' });
    expect(calls).toEqual([
      `shop-cache-0 default ${h('b')} ${h('a')}`,
      `shop-cache-1 default ${h('b')} ${h('a')}`,
    ]);
  });

  it('forgets an app that went away: its servers are given the list again', async () => {
    const { rotation, calls } = setup();
    await rotation.step(scope({ wanted: 'a', current: 'a' }));
    rotation.forget('prod/shop');
    await rotation.step(scope({ wanted: 'a', current: 'a' }));
    expect(calls).toHaveLength(4);
  });
});
