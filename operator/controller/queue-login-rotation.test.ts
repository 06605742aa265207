import type { V1Pod } from '@kubernetes/client-node';
import type { BrokerUsers } from '../dataplane/rabbitmq/users.ts';
import type { QueueCredentials } from '../tiers/objects.ts';
import { ANNOTATION } from '../tiers/labels.ts';
import { runningContainer } from './testdata/pods.ts';
import { BROKER_CONTAINER } from '../tiers/queue.ts';
import { QueueLoginRotation, type QueueLoginScope } from './queue-login-rotation.ts';

/** A broker pod: ready unless told; `restarts` names its incarnation. */
const broker = (name: string, o: { ready?: boolean; restarts?: number } = {}): V1Pod => ({
  metadata: { name, uid: `uid-${name}` },
  status: { containerStatuses: [runningContainer('metrics'), runningContainer(BROKER_CONTAINER, o)] },
});
const appPod = (name: string, hash: string): V1Pod => ({
  metadata: { name, annotations: { [ANNOTATION.connectionHash]: hash } },
});
const PERMISSIONS = { configure: '^(jobs)$', write: '^(jobs|amq\\.default)$', read: '^(jobs)$' };

function setup() {
  const calls: string[] = [];
  /** Connections open per login, as the broker would count them. */
  const open = new Map<string, number>();
  const logins: string[] = [];
  let closed = 0;
  const users: BrokerUsers = {
    setLogin: async (name, password, permissions) => {
      calls.push(`set ${name} ${password} ${permissions.configure}`);
    },
    deleteLogin: async (name) => {
      calls.push(`delete ${name}`);
    },
    connections: async (name) => open.get(name) ?? 0,
    close: async () => void closed++,
  };
  const rotation = new QueueLoginRotation({
    usersFor: (b, password) => {
      logins.push(`${b.baseUrl} ${password}`);
      return users;
    },
  });
  return { rotation, calls, open, logins, closed: () => closed };
}

const creds = (o: Partial<QueueCredentials> = {}): QueueCredentials => ({
  username: 'u1',
  password: 'p1',
  monitoringUsername: 'mon',
  monitoringPassword: 'mon-pw',
  operatorPassword: 'op-pw',
  erlangCookie: 'cookie',
  ...o,
});

const scope = (
  credentials: QueueCredentials,
  o: { brokers?: V1Pod[]; appPods?: V1Pod[]; hash?: string } = {},
): QueueLoginScope => ({
  app: 'prod/shop',
  secret: 'shop-mq-credentials',
  credentials,
  brokers: o.brokers ?? [broker('shop-mq-0'), broker('shop-mq-1'), broker('shop-mq-2')],
  replicas: 3,
  permissions: PERMISSIONS,
  broker: { baseUrl: 'https://shop-mq.prod.svc:15672' },
  appPods: () => o.appPods ?? [],
  connectionHash: () => o.hash ?? 'h-new',
});

describe('QueueLoginRotation', () => {
  it('records what the brokers have on the first pass, and asks them nothing', async () => {
    const { rotation, calls } = setup();
    expect(await rotation.step(scope(creds()))).toEqual({
      kind: 'recorded',
      credentials: { ...creds(), appLogin: { name: 'u1', password: 'p1' } },
    });
    expect(calls).toEqual([]);
  });

  it('puts the record back once per broker incarnation: a booting node imports the Secret as mounted, maybe stale', async () => {
    const { rotation, calls, logins, closed } = setup();
    const steady = creds({ appLogin: { name: 'u1-alt', password: 'p1' } });
    expect(await rotation.step(scope(steady))).toEqual({ kind: 'steady' });
    // Users are the cluster's: one call for every new incarnation, and the other login gone.
    expect(calls).toEqual([`set u1-alt p1 ^(jobs)$`, 'delete u1']);
    expect(logins).toEqual(['https://shop-mq.prod.svc:15672 op-pw']);
    expect(closed()).toBe(1);
    await rotation.step(scope(steady));
    expect(calls).toHaveLength(2);
    // A restarted broker (its container, not the exporter beside it) booted from the Secret again.
    await rotation.step(
      scope(steady, {
        brokers: [broker('shop-mq-0', { restarts: 1 }), broker('shop-mq-1'), broker('shop-mq-2')],
      }),
    );
    expect(calls.slice(2)).toEqual([`set u1-alt p1 ^(jobs)$`, 'delete u1']);
    // Not ready yet: it has not imported its definitions; its readiness brings the next pass.
    await rotation.step(scope(steady, { brokers: [broker('shop-mq-3', { ready: false })] }));
    expect(calls).toHaveLength(4);
  });

  it('gives the other login the new password before the URLs name it, then deletes the old one once no pod and no connection uses it', async () => {
    const { rotation, calls, open } = setup();
    const asked = creds({ password: 'p2', appLogin: { name: 'u1', password: 'p1' } });
    const switched = await rotation.step(scope(asked));
    expect(switched).toMatchObject({
      kind: 'switched',
      credentials: { appLogin: { name: 'u1-alt', password: 'p2', retiring: 'u1' } },
      message: expect.stringMatching(/^Secret shop-mq-credentials key password changed/),
    });
    expect(calls).toEqual([`set u1-alt p2 ^(jobs)$`]);
    // The message names neither login: the generated name is half of a credential.
    expect((switched as { message: string }).message).not.toMatch(/u1/);

    const rolling = creds({ password: 'p2', appLogin: { name: 'u1-alt', password: 'p2', retiring: 'u1' } });
    // The brokers seen at the switch got the new login then: nothing is put back.
    const waiting = await rotation.step(
      scope(rolling, { appPods: [appPod('web-a', 'h-old'), appPod('web-b', 'h-new')] }),
    );
    expect(waiting).toMatchObject({ kind: 'wait', waiting: expect.stringContaining('web-a') });
    expect(calls).toHaveLength(1);

    // Every pod rolled, but a connection of the old login is still open (a client the operator does not run).
    open.set('u1', 2);
    expect(await rotation.step(scope(rolling))).toMatchObject({
      kind: 'wait',
      waiting: '2 connection(s) still logged in with the previous queue login',
    });
    open.set('u1', 0);
    const retired = await rotation.step(scope(rolling));
    expect(retired).toMatchObject({
      kind: 'retired',
      credentials: { appLogin: { name: 'u1-alt', password: 'p2' } },
    });
    expect((retired as { credentials: QueueCredentials }).credentials.appLogin!.retiring).toBeUndefined();
    expect(calls.slice(1)).toEqual(['delete u1']);

    // The next rotation takes the first login back.
    const again = await rotation.step(
      scope(creds({ password: 'p3', appLogin: { name: 'u1-alt', password: 'p2' } })),
    );
    expect(again).toMatchObject({
      credentials: { appLogin: { name: 'u1', password: 'p3', retiring: 'u1-alt' } },
    });
  });

  it('switches nothing while a broker is not ready or missing, and says which', async () => {
    const { rotation, calls } = setup();
    const asked = creds({ password: 'p2', appLogin: { name: 'u1', password: 'p1' } });
    expect(
      await rotation.step(
        scope(asked, { brokers: [broker('shop-mq-0'), broker('shop-mq-1', { ready: false })] }),
      ),
    ).toEqual({ kind: 'wait', waiting: 'broker(s) not ready: shop-mq-1', recheckMs: 5_000 });
    expect(await rotation.step(scope(asked, { brokers: [broker('shop-mq-0')] }))).toMatchObject({
      kind: 'wait',
      waiting: '1 of 3 brokers run',
    });
    expect(calls.filter((c) => c.includes('p2'))).toEqual([]);
  });

  it('waits for the retirement to finish before a second change, and keeps the retiring login on restarts', async () => {
    const { rotation, calls } = setup();
    const twice = creds({ password: 'p3', appLogin: { name: 'u1-alt', password: 'p2', retiring: 'u1' } });
    expect(await rotation.step(scope(twice))).toMatchObject({
      kind: 'wait',
      waiting: expect.stringMatching(/changed again while the previous login is retired/),
    });
    const rolling = creds({ password: 'p2', appLogin: { name: 'u1-alt', password: 'p2', retiring: 'u1' } });
    await rotation.step(scope(rolling, { appPods: [appPod('web-a', 'h-old')] }));
    // Put back after boot: the current login, and not the retiring one deleted under an old pod.
    expect(calls).toEqual([`set u1-alt p2 ^(jobs)$`]);
  });

  it('renames the login when the Secret names another user: the new name gets the password, the old one is retired', async () => {
    const { rotation, calls } = setup();
    const renamed = creds({ username: 'orders', appLogin: { name: 'u1', password: 'p1' } });
    expect(await rotation.step(scope(renamed))).toMatchObject({
      kind: 'switched',
      credentials: { appLogin: { name: 'orders', password: 'p1', retiring: 'u1' } },
    });
    expect(calls).toEqual([`set orders p1 ^(jobs)$`]);
  });

  it('fails a step, rather than guessing, when the Secret has no operator password', async () => {
    const { rotation } = setup();
    const { operatorPassword: _none, ...handMade } = creds({ appLogin: { name: 'u1', password: 'p1' } });
    await expect(rotation.step(scope(handMade))).rejects.toThrow(
      'Secret shop-mq-credentials has no operator-password',
    );
  });
});
