import type { V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { PostgresRoles } from '../dataplane/postgres/roles.ts';
import { databaseCluster } from '../tiers/database.ts';
import type { DatabaseCredentials, ServerPasswordsRecord } from '../tiers/objects.ts';
import { superuserPasswords } from '../tiers/postgres-cluster.ts';
import { shardCluster } from '../tiers/shards.ts';
import { runningContainer } from './testdata/pods.ts';
import type { LoginScope } from './app-login-rotation.ts';
import { ServerPasswordRotation } from './server-password-rotation.ts';

/** A Postgres pod: running with an address; ready unless told; `uid` names its incarnation. */
const pgPod = (name: string, o: { ready?: boolean; uid?: string } = {}): V1Pod => ({
  metadata: { name, uid: o.uid ?? `uid-${name}` },
  status: { podIP: `10.0.0.${name.length}`, containerStatuses: [runningContainer('postgres', o)] },
});

const wanted = (
  superuser: string,
  replication: string,
  servers?: ServerPasswordsRecord,
): DatabaseCredentials => ({
  superuser,
  replication,
  app: 'a',
  monitor: 'm',
  ...(servers ? { servers } : {}),
});

function setup(podsByCluster: Record<string, V1Pod[]>) {
  const calls: string[] = [];
  const failOn = new Set<string>();
  const logins: PostgresRoles = {
    enable: async () => {},
    disable: async () => {},
    sessions: async () => 0,
    setServerPasswords: async (n, passwords) => {
      if (failOn.has(n.name)) throw new Error(`${n.name} refused`);
      calls.push(`${n.name}: ${[...passwords].map(([role, p]) => `${role}=${p}`).join(' ')}`);
    },
  };
  const rotation = new ServerPasswordRotation({
    rolesFor: () => logins,
    pods: (_ns, labels) => podsByCluster[labels['scalableapp.io/shard'] ?? 'db'] ?? [],
  });
  return { rotation, calls, failOn };
}

const dbApp = parseApp({ database: { replicas: 1 } }, 'shop', 'prod');
const facts = { gatewayApi: false };
const dbScope = (credentials: DatabaseCredentials): LoginScope => ({
  secret: 'shop-db-credentials',
  credentials,
  clusters: [databaseCluster(dbApp, facts)],
  appPods: () => [],
  connectionHash: () => 'h',
});

describe('changing the Postgres servers’ own passwords', () => {
  it('records what the servers have on its first pass, asking no server', async () => {
    const t = setup({ db: [pgPod('shop-db-0')] });
    expect(await t.rotation.step(dbScope(wanted('s1', 'r1')))).toEqual({
      kind: 'recorded',
      credentials: wanted('s1', 'r1', { superuser: 's1', replication: 'r1' }),
    });
    expect(t.calls).toEqual([]);
  });

  it('gives the recorded passwords once per primary incarnation, so a promoted or restarted primary has them', async () => {
    const pods = { db: [pgPod('shop-db-0'), pgPod('shop-db-1')] };
    const t = setup(pods);
    const steady = wanted('s1', 'r1', { superuser: 's1', replication: 'r1' });
    expect(await t.rotation.step(dbScope(steady))).toEqual({ kind: 'steady' });
    expect(await t.rotation.step(dbScope(steady))).toEqual({ kind: 'steady' });
    expect(t.calls).toEqual(['shop-db-0: postgres=s1 replicator=r1']);
    pods.db[0] = pgPod('shop-db-0', { uid: 'restarted' });
    await t.rotation.step(dbScope(steady));
    expect(t.calls).toHaveLength(2);
  });

  it('on a changed key: every primary gets both passwords, and the record keeps the superuser’s previous one', async () => {
    const t = setup({ db: [pgPod('shop-db-0'), pgPod('shop-db-1')] });
    const step = await t.rotation.step(dbScope(wanted('s2', 'r1', { superuser: 's1', replication: 'r1' })));
    expect(step).toEqual({
      kind: 'retired',
      credentials: wanted('s2', 'r1', { superuser: 's2', replication: 'r1', previousSuperuser: 's1' }),
      message: expect.stringMatching(
        /^Secret shop-db-credentials key superuser-password changed: the servers' roles have the new passwords/,
      ),
    });
    expect(t.calls).toEqual(['shop-db-0: postgres=s2 replicator=r1']);
    // Given with the change: the next pass asks nothing.
    if (step.kind !== 'retired') throw new Error('unreachable');
    expect(await t.rotation.step(dbScope(step.credentials))).toEqual({ kind: 'steady' });
    expect(t.calls).toHaveLength(1);
  });

  it('a replication password change keeps the superuser’s previous password as it was, and names its key', async () => {
    const t = setup({ db: [pgPod('shop-db-0')] });
    const step = await t.rotation.step(
      dbScope(wanted('s2', 'r2', { superuser: 's2', replication: 'r1', previousSuperuser: 's1' })),
    );
    expect(step).toMatchObject({
      kind: 'retired',
      credentials: { servers: { superuser: 's2', replication: 'r2', previousSuperuser: 's1' } },
      message: expect.stringMatching(/^Secret shop-db-credentials key replication-password changed/),
    });
  });

  it('waits for an unready primary, and changes no record when a server refuses (the next pass repeats it)', async () => {
    const pods = { db: [pgPod('shop-db-0', { ready: false })] };
    const t = setup(pods);
    const changed = wanted('s2', 'r2', { superuser: 's1', replication: 'r1' });
    expect(await t.rotation.step(dbScope(changed))).toMatchObject({
      kind: 'wait',
      waiting: 'the primary shop-db-0 is not ready',
    });
    pods.db[0] = pgPod('shop-db-0');
    t.failOn.add('shop-db-0');
    await expect(t.rotation.step(dbScope(changed))).rejects.toThrow('shop-db-0 refused');
    t.failOn.clear();
    expect((await t.rotation.step(dbScope(changed))).kind).toBe('retired');
  });

  it('refuses a password it cannot send as a verifier, naming the key and not the password', async () => {
    const t = setup({ db: [pgPod('shop-db-0')] });
    const step = await t.rotation.step(
      dbScope(wanted('s1', 'QZX\u00e9', { superuser: 's1', replication: 'r1' })),
    );
    expect(step).toEqual({
      kind: 'refused',
      reason: expect.stringMatching(
        /^Secret shop-db-credentials key replication-password: a password must be printable ASCII/,
      ),
    });
    expect(JSON.stringify(step)).not.toContain('QZX');
    expect(t.calls).toEqual([]);
  });

  it('changes every shard before the one record the shards share', async () => {
    const app = parseApp({ shards: { count: 2, key: 'user_id' } }, 'shop', 'prod');
    const clusters = [shardCluster(app, 'shop-shard-0', facts), shardCluster(app, 'shop-shard-1', facts)];
    const t = setup({ 'shop-shard-0': [pgPod('shop-shard-0-0')], 'shop-shard-1': [pgPod('shop-shard-1-0')] });
    const scope: LoginScope = {
      secret: 'shop-shards-credentials',
      credentials: wanted('s2', 'r1', { superuser: 's1', replication: 'r1' }),
      clusters,
      appPods: () => [],
      connectionHash: () => 'h',
    };
    t.failOn.add('shop-shard-1-0');
    await expect(t.rotation.step(scope)).rejects.toThrow();
    t.failOn.clear();
    expect((await t.rotation.step(scope)).kind).toBe('retired');
    expect(t.calls).toEqual([
      'shop-shard-0-0: postgres=s2 replicator=r1',
      'shop-shard-0-0: postgres=s2 replicator=r1',
      'shop-shard-1-0: postgres=s2 replicator=r1',
    ]);
  });
});

describe('the superuser passwords the operator logs in with', () => {
  it('the servers’ first, then the Secret’s, then the one before the last change, each once', () => {
    expect(superuserPasswords(wanted('s1', 'r'))).toEqual(['s1']);
    expect(superuserPasswords(wanted('s2', 'r', { superuser: 's1', replication: 'r' }))).toEqual([
      's1',
      's2',
    ]);
    expect(
      superuserPasswords(wanted('s2', 'r', { superuser: 's2', replication: 'r', previousSuperuser: 's1' })),
    ).toEqual(['s2', 's1']);
  });
});
