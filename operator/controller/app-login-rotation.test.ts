import type { V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { PostgresRoles } from '../dataplane/postgres/roles.ts';
import { databaseCluster } from '../tiers/database.ts';
import { ANNOTATION } from '../tiers/labels.ts';
import type { DatabaseCredentials } from '../tiers/objects.ts';
import { shardCluster } from '../tiers/shards.ts';
import { runningContainer } from './testdata/pods.ts';
import { AppLoginRotation, type LoginScope, type RotationStep } from './app-login-rotation.ts';

/** A Postgres pod: running with an address; ready unless told; `uid` names its incarnation. */
const pgPod = (name: string, o: { ready?: boolean; uid?: string } = {}): V1Pod => ({
  metadata: { name, uid: o.uid ?? `uid-${name}` },
  status: {
    podIP: `10.0.0.${name.length}`,
    containerStatuses: [runningContainer('postgres', o)],
  },
});
const appPod = (name: string, hash: string): V1Pod => ({
  metadata: { name, annotations: { [ANNOTATION.connectionHash]: hash } },
});

const base: DatabaseCredentials = { superuser: 's', replication: 'r', app: 'first', monitor: 'm' };
const recorded = (app: string, login: DatabaseCredentials['appLogin']): DatabaseCredentials => ({
  ...base,
  app,
  ...(login ? { appLogin: login } : {}),
});

function setup(podsByCluster: Record<string, V1Pod[]>, sessions: Record<string, number> = {}) {
  const calls: string[] = [];
  const failOn = new Set<string>();
  const logins: PostgresRoles = {
    enable: async (n, login, owner, password) => {
      if (failOn.has(n.name)) throw new Error(`${n.name} refused`);
      calls.push(`enable ${n.name} ${login} as ${owner} with ${password}`);
    },
    disable: async (n, login) => void calls.push(`disable ${n.name} ${login}`),
    sessions: async (n, login) => sessions[`${n.name}/${login}`] ?? 0,
    setServerPasswords: async () => {},
  };
  const rotation = new AppLoginRotation({
    rolesFor: () => logins,
    pods: (_ns, labels) => podsByCluster[labels['scalableapp.io/shard'] ?? 'db'] ?? [],
  });
  return { rotation, calls, failOn };
}

const dbApp = parseApp({ database: { replicas: 1 } }, 'shop', 'prod');
const facts = { gatewayApi: false };
const dbScope = (credentials: DatabaseCredentials, appPods: V1Pod[] = [], hash = 'h-new'): LoginScope => ({
  secret: 'shop-db-credentials',
  credentials,
  clusters: [databaseCluster(dbApp, facts)],
  appPods: () => appPods,
  connectionHash: () => hash,
});
const dbPods = () => ({ db: [pgPod('shop-db-0'), pgPod('shop-db-1')] });

const kind = (s: RotationStep) => s.kind;

describe('AppLoginRotation', () => {
  it('records what the servers have on its first pass, asking no server', async () => {
    const t = setup(dbPods());
    const step = await t.rotation.step(dbScope(recorded('first', undefined)));
    expect(step).toEqual({
      kind: 'recorded',
      credentials: recorded('first', { name: 'app', password: 'first' }),
    });
    expect(t.calls).toEqual([]);
  });

  it('gives the current login its password once per primary incarnation, so a new or restarted primary lets the URLs in', async () => {
    const pods = dbPods();
    const t = setup(pods);
    const steady = dbScope(recorded('first', { name: 'app', password: 'first' }));
    expect(kind(await t.rotation.step(steady))).toBe('steady');
    expect(kind(await t.rotation.step(steady))).toBe('steady');
    expect(t.calls).toEqual(['enable shop-db-0 app as app with first']);
    pods.db[0] = pgPod('shop-db-0', { uid: 'uid-after-restart' });
    await t.rotation.step(steady);
    expect(t.calls).toHaveLength(2);
    // Forgotten with the app: a later app of the same name starts over.
    t.rotation.forget('prod/shop');
    await t.rotation.step(steady);
    expect(t.calls).toHaveLength(3);
  });

  it('on a new password: the other login gets it on the primary, and the URLs name that login', async () => {
    const t = setup(dbPods());
    const step = await t.rotation.step(dbScope(recorded('second', { name: 'app', password: 'first' })));
    expect(step).toEqual({
      kind: 'switched',
      credentials: recorded('second', { name: 'app_alt', password: 'second', retiring: 'app' }),
      message: expect.stringMatching(
        /shop-db-credentials key app-password changed: .*app_alt.*app keeps working/,
      ),
    });
    expect(t.calls).toEqual(['enable shop-db-0 app_alt as app with second']);
    expect((step as { message: string }).message).not.toMatch(/first|second/);
  });

  it('retires the old login only when no app pod holds the old URLs and no session of it is open anywhere', async () => {
    const sessions: Record<string, number> = { 'shop-db-1/app': 2 };
    const t = setup(dbPods(), sessions);
    const rotating = recorded('second', { name: 'app_alt', password: 'second', retiring: 'app' });

    const podsWait = await t.rotation.step(
      dbScope(rotating, [appPod('web-a', 'h-old'), appPod('web-b', 'h-new')]),
    );
    expect(podsWait).toMatchObject({ kind: 'wait', waiting: expect.stringContaining('web-a') });
    expect((podsWait as { waiting: string }).waiting).not.toContain('web-b');

    // Every pod rolled, but a client the operator does not run still holds sessions on a replica.
    const sessionsWait = await t.rotation.step(dbScope(rotating, [appPod('web-b', 'h-new')]));
    expect(sessionsWait).toMatchObject({
      kind: 'wait',
      waiting: '2 session(s) of app still open on shop-db-1',
    });
    expect(t.calls.filter((c) => c.startsWith('disable'))).toEqual([]);

    sessions['shop-db-1/app'] = 0;
    const done = await t.rotation.step(dbScope(rotating, [appPod('web-b', 'h-new')]));
    expect(done).toEqual({
      kind: 'retired',
      credentials: recorded('second', { name: 'app_alt', password: 'second' }),
      message: expect.stringContaining('the login app is disabled'),
    });
    expect(t.calls.filter((c) => c.startsWith('disable'))).toEqual(['disable shop-db-0 app']);
  });

  it('turns back to the first login on the next change, and waits when one comes before the last is retired', async () => {
    const t = setup(dbPods());
    const again = await t.rotation.step(dbScope(recorded('third', { name: 'app_alt', password: 'second' })));
    expect(again).toMatchObject({
      kind: 'switched',
      credentials: recorded('third', { name: 'app', password: 'third', retiring: 'app_alt' }),
    });
    const early = await t.rotation.step(
      dbScope(recorded('fourth', { name: 'app', password: 'third', retiring: 'app_alt' })),
    );
    expect(early).toMatchObject({
      kind: 'wait',
      waiting: expect.stringMatching(/changed again while app_alt is retired/),
    });
    expect(t.calls.filter((c) => c.includes('fourth'))).toEqual([]);
  });

  it('waits for an unready primary, and changes no record when a step fails (the next pass repeats it)', async () => {
    const t = setup({ db: [pgPod('shop-db-0', { ready: false }), pgPod('shop-db-1')] });
    const changed = dbScope(recorded('second', { name: 'app', password: 'first' }));
    expect(await t.rotation.step(changed)).toMatchObject({
      kind: 'wait',
      waiting: 'the primary shop-db-0 is not ready',
    });
    const u = setup(dbPods());
    u.failOn.add('shop-db-0');
    await expect(u.rotation.step(changed)).rejects.toThrow(/shop-db-0 refused/);
  });

  it('refuses a password it cannot send as a verifier, naming the key and not the password', async () => {
    const t = setup(dbPods());
    const step = await t.rotation.step(dbScope(recorded('p\u00e4ssQZX', { name: 'app', password: 'first' })));
    expect(step).toEqual({
      kind: 'refused',
      reason: expect.stringContaining(
        'Secret shop-db-credentials key app-password: the password must be printable ASCII',
      ),
    });
    expect(JSON.stringify(step)).not.toContain('QZX');
    expect(t.calls).toEqual([]);
  });

  it('switches the shards together: every shard primary first, then the one record', async () => {
    const app = parseApp({ shards: { count: 2, key: 'user_id' } }, 'shop', 'prod');
    const clusters = [shardCluster(app, 'shop-shard-0', facts), shardCluster(app, 'shop-shard-1', facts)];
    const t = setup({
      'shop-shard-0': [pgPod('shop-shard-0-0')],
      'shop-shard-1': [pgPod('shop-shard-1-0')],
    });
    const scope = (credentials: DatabaseCredentials): LoginScope => ({
      secret: 'shop-shards-credentials',
      credentials,
      clusters,
      appPods: () => [],
      connectionHash: () => 'h',
    });
    t.failOn.add('shop-shard-1-0');
    await expect(
      t.rotation.step(scope(recorded('second', { name: 'app', password: 'first' }))),
    ).rejects.toThrow();
    t.failOn.clear();
    const step = await t.rotation.step(scope(recorded('second', { name: 'app', password: 'first' })));
    expect(step.kind).toBe('switched');
    expect(t.calls).toEqual([
      'enable shop-shard-0-0 app_alt as app with second',
      'enable shop-shard-0-0 app_alt as app with second',
      'enable shop-shard-1-0 app_alt as app with second',
    ]);
  });
});
