// The queue tier's data plane against REAL rabbitmq-server nodes: every node is started by the start
// script the pods run, with the files the operator puts in the broker's ConfigMap, on 127.0.0.1 and
// free ports, as the `rabbitmq` OS user when we are root (server-tests/support/rabbitmq-local.ts). What
// the CRD promises (every spec queue a durable quorum queue; the two generated logins and no other,
// the app's limited to its own queues and the operator's to reading; one cluster from the peer list;
// a queue depth the autoscaler can read; a queue that survives the loss of a node) is shown here to
// be what RabbitMQ does, and so is why the StatefulSet starts its pods in parallel. rabbitmq-server
// comes from tools/dataplane-deps.sh (Debian's 3.10).
import * as amqp from 'amqplib';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../e2e/support/eventually.ts';
import type { QueueInfo } from '../operator/dataplane/rabbitmq/admin.ts';
import { queuePath } from '../operator/dataplane/rabbitmq/admin.ts';
import { BrokerApiError, brokerAdmin } from '../operator/dataplane/rabbitmq/admin.ts';
import { brokerUsers } from '../operator/dataplane/rabbitmq/users.ts';
import { APP_LOGIN_KEYS } from '../operator/server-config/app-login-keys.ts';
import { QUEUE_OPERATOR_USER, appPermissions } from '../operator/server-config/rabbitmq.ts';
import {
  MONITORING_PASSWORD,
  MONITORING_USER,
  OPERATOR_PASSWORD,
  startBroker,
  type LocalBroker,
  type LocalBrokerNode,
} from './support/rabbitmq-local.ts';
import { portOpen } from '../e2e/support/free-port.ts';

const TEST_TIMEOUT = 300_000;
const QUEUES = [{ name: 'photos' }, { name: 'mail.out' }];
const brokers: LocalBroker[] = [];
const connections: amqp.ChannelModel[] = [];

afterAll(async () => {
  await Promise.all(connections.map((c) => c.close().catch(() => {})));
  await Promise.all(brokers.map((b) => b.stop()));
});

async function broker(nodes: 1 | 3): Promise<LocalBroker> {
  const b = await startBroker({ nodes, queues: QUEUES });
  brokers.push(b);
  return b;
}

const queueInfo = (n: LocalBrokerNode, queue: string) => n.api.get<QueueInfo>(queuePath(queue));

/**
 * Runs one step of a scenario; when it fails, the error names the step and carries what each node
 * logged about peers, partitions and pauses. A bare "connect ECONNREFUSED" from amqplib says
 * neither which call nor why a listener was closed (a node pausing itself is one reason).
 */
async function step<T>(b: LocalBroker, what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const logs = b.nodes.map((n) => {
      const lines = n.log
        .split('\n')
        .filter((l) => /minority|partition|paus|nodedown|node_down|down|stopp/i.test(l));
      return `${n.name} (${n.running ? 'running' : 'stopped'}):\n${lines.slice(-15).join('\n')}`;
    });
    throw new Error(`${what}: ${(err as Error).message}\n${logs.join('\n')}`, { cause: err });
  }
}

async function amqpConnect(url: string): Promise<amqp.ChannelModel> {
  const c = await amqp.connect(url);
  c.on('error', () => {});
  connections.push(c);
  return c;
}

/** Why an AMQP connection is refused (the broker's reply text), or 'connected'. */
const loginOutcome = (url: string) =>
  amqp.connect(url).then(
    async (c) => {
      await c.close();
      return 'connected';
    },
    (err: Error) => err.message,
  );

/** Consumes (and acknowledges) `count` messages of a queue through `url`; their bodies, sorted. */
async function consumeSorted(url: string, queue: string, count: number): Promise<string[]> {
  const c = await amqpConnect(url);
  const ch = await c.createChannel();
  const got: string[] = [];
  await ch.consume(queue, (m) => {
    if (!m) return;
    got.push(m.content.toString());
    ch.ack(m);
  });
  await eventually(`${count} messages`, () => got.length === count, 60_000, 50);
  await ch.close();
  return got.sort();
}

/** What one AMQP operation on a fresh channel comes to: 'done', or the broker's reply text. */
async function outcome(url: string, op: (ch: amqp.Channel) => Promise<unknown>): Promise<string> {
  const c = await amqpConnect(url);
  const ch = await c.createChannel();
  ch.on('error', () => {});
  return op(ch).then(
    () => 'done',
    (err: Error) => err.message,
  );
}

const bodies = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('a single node', () => {
  let b: LocalBroker;
  beforeAll(async () => {
    b = await broker(1);
  }, TEST_TIMEOUT);

  it('declares every spec queue at boot as a durable quorum queue', async () => {
    for (const { name } of QUEUES) {
      const q = await queueInfo(b.nodes[0]!, name);
      expect({
        name: q.name,
        vhost: q.vhost,
        type: q.type,
        durable: q.durable,
        arguments: q.arguments,
      }).toEqual({
        name,
        vhost: '/',
        type: 'quorum',
        durable: true,
        arguments: { 'x-queue-type': 'quorum' },
      });
    }
  });

  it("knows the generated logins and no other: no guest, no administrator but the operator's, no wrong password", async () => {
    const n = b.nodes[0]!;
    const listed = await b.cli(0, 'rabbitmqctl', ['-q', 'list_users', '--formatter', 'json']);
    const users = (JSON.parse(listed.stdout) as { user: string; tags: string[] | string }[]).map((u) => [
      u.user,
      [u.tags].flat().filter(Boolean),
    ]);
    expect(Object.fromEntries(users)).toEqual({
      [b.user]: [],
      [MONITORING_USER]: ['monitoring'],
      [QUEUE_OPERATOR_USER]: ['administrator'],
    });
    expect(users).toHaveLength(3);
    // The operator's login manages users; it may not even open the vhost, let alone touch a message.
    const operator = n.urlFor({ user: QUEUE_OPERATOR_USER, password: OPERATOR_PASSWORD });
    expect(await loginOutcome(operator)).toMatch(/ConnectionClose/);
    expect(await loginOutcome(n.amqpUrl)).toBe('connected');
    const url = new URL(n.amqpUrl);
    url.username = 'guest';
    url.password = 'guest';
    expect(await loginOutcome(url.toString())).toMatch(/ACCESS_REFUSED/);
    url.username = encodeURIComponent(b.user);
    url.password = 'wrong';
    expect(await loginOutcome(url.toString())).toMatch(/ACCESS_REFUSED/);
    const asGuest = await fetch(`${n.managementUrl}/api/overview`, {
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
    });
    expect(asGuest.status).toBe(401);
  });

  it("lets the app's login use its own queues and nothing else, and never the management API", async () => {
    const n = b.nodes[0]!;
    const app = brokerAdmin({ baseUrl: n.managementUrl, user: b.user, password: b.password });
    await expect(app.clusterNodes()).rejects.toMatchObject({ status: 401 });
    // Re-asserting its own queue as the broker declared it is allowed; anything else is refused.
    const own = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
    expect(await outcome(n.amqpUrl, (ch) => ch.assertQueue('photos', own))).toBe('done');
    expect(await outcome(n.amqpUrl, (ch) => ch.assertQueue('stray', own))).toMatch(
      /ACCESS_REFUSED - access to queue 'stray' in vhost '\/' refused for user 'scalableapp'/,
    );
    expect(await outcome(n.amqpUrl, (ch) => ch.assertExchange('fan', 'fanout'))).toMatch(
      /ACCESS_REFUSED - access to exchange 'fan' in vhost '\/' refused/,
    );
    // "mail.out" is granted by an escaped pattern: a name its dot would match as any character is not.
    expect(await outcome(n.amqpUrl, (ch) => ch.assertQueue('mailXout', own))).toMatch(/ACCESS_REFUSED/);
    expect(await outcome(n.amqpUrl, (ch) => ch.get('mail.out'))).toBe('done');
  });

  it('lets the monitoring login read the management API, and neither administer nor touch a message', async () => {
    const n = b.nodes[0]!;
    expect(await n.admin.queueDepth('mail.out')).toMatchObject({ ready: 0 });
    const users = await n.api.get('/api/users').then(
      () => 'listed',
      (err: BrokerApiError) => err.status,
    );
    expect(users).toBe(401);
    const monitoring = n.urlFor({ user: MONITORING_USER, password: MONITORING_PASSWORD });
    expect(await outcome(monitoring, (ch) => ch.get('photos'))).toMatch(
      /ACCESS_REFUSED - access to queue 'photos' in vhost '\/' refused for user 'scalableapp-monitor'/,
    );
    expect(
      await outcome(monitoring, async (ch) => {
        ch.sendToQueue('photos', Buffer.from('x'));
        return ch.checkQueue('photos'); // a round trip, by which the refusal has arrived
      }),
    ).toMatch(/ACCESS_REFUSED - access to exchange 'amq.default' in vhost '\/' refused/);
  });

  it('keeps the password out of the config files; its own copies are private to the node user', () => {
    const n = b.nodes[0]!;
    for (const f of readdirSync(n.configDir)) {
      expect(readFileSync(join(n.configDir, f), 'utf8')).not.toContain(b.password);
      expect(readFileSync(join(n.configDir, f), 'utf8')).not.toContain(MONITORING_PASSWORD);
    }
    const home = n.env.HOME!;
    const definitions = statSync(join(home, 'definitions.json'));
    expect(definitions.mode & 0o777).toBe(0o600);
    expect(readFileSync(join(home, 'definitions.json'), 'utf8')).toContain('"x-queue-type": "quorum"');
    const cookie = statSync(join(home, '.erlang.cookie'));
    expect(cookie.mode & 0o777).toBe(0o400);
    if (b.uid !== undefined) expect([definitions.uid, cookie.uid]).toEqual([b.uid, b.uid]);
  });

  it('logs each of its events as one JSON object, and keeps the password out of them', () => {
    // The start script's own lines come first, as text; every line of the broker's is JSON.
    const broker = b.nodes[0]!.log.split('\n').filter((l) => l.startsWith('{'));
    expect(broker.length).toBeGreaterThan(10);
    const events = broker.map((l) => JSON.parse(l) as { time?: string; level?: string; msg?: string });
    for (const e of events)
      expect([typeof e.time, typeof e.level, typeof e.msg]).toEqual(['string', 'string', 'string']);
    expect(
      events.some((e) => /Server startup complete|started \d+ plugins|Time to start RabbitMQ/i.test(e.msg!)),
    ).toBe(true);
    expect(b.nodes[0]!.log).not.toContain(b.password);
  });

  it("answers the liveness probe's command with the pod's environment", async () => {
    const r = await b.cli(0, 'rabbitmq-diagnostics', ['-q', 'ping']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it(
    'reports published messages as ready, and delivered unacknowledged ones as unacknowledged',
    async () => {
      await b.publish('photos', bodies('p', 25));
      // Resolves once the depth is exactly `want`, fails (naming the last depth) if it never is.
      const settled = (want: { ready: number; unacknowledged: number; consumers: number }) =>
        eventually(
          `photos to report ${JSON.stringify(want)}`,
          async () => {
            const d = await b.admin.queueDepth('photos');
            return JSON.stringify(d) === JSON.stringify(want) && d;
          },
          60_000,
          200,
        );
      await settled({ ready: 25, unacknowledged: 0, consumers: 0 });
      expect(await b.admin.queueDepth('mail.out')).toEqual({ ready: 0, unacknowledged: 0, consumers: 0 });

      const c = await amqpConnect(b.amqpUrl);
      const ch = await c.createChannel();
      await ch.prefetch(10);
      const delivered: string[] = [];
      await ch.consume('photos', (m) => m && delivered.push(m.content.toString()), { noAck: false });
      await eventually('10 deliveries', () => delivered.length === 10, 30_000, 50);
      await settled({ ready: 15, unacknowledged: 10, consumers: 1 });
      // A consumer that goes away unacknowledged gives its messages back.
      await ch.close();
      await settled({ ready: 25, unacknowledged: 0, consumers: 0 });
    },
    TEST_TIMEOUT,
  );

  it(
    'takes the administrator away from a login an older version made one, on the next start',
    async () => {
      const n = b.nodes[0]!;
      const script = join(n.configDir, 'start.sh');
      const current = readFileSync(script, 'utf8');
      const tagsOf = async () => {
        const r = await b.cli(0, 'rabbitmqctl', ['-q', 'list_users', '--formatter', 'json']);
        const u = (JSON.parse(r.stdout) as { user: string; tags: string[] | string }[]).find(
          (x) => x.user === b.user,
        );
        return [u?.tags].flat().filter(Boolean);
      };
      // What the start script of the last release wrote: the app's login an administrator.
      const older = current.replace('"tags": []}', '"tags": ["administrator"]}');
      expect(older).not.toBe(current);
      try {
        writeFileSync(script, older);
        await b.shutdown(0);
        await b.start(0);
        expect(await tagsOf()).toEqual(['administrator']);
      } finally {
        writeFileSync(script, current);
      }
      await b.shutdown(0);
      await b.start(0);
      expect(await tagsOf()).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  it('refuses to publish to a queue the spec does not declare', async () => {
    await expect(b.publish('undeclared', ['x'])).rejects.toThrow(/does not exist: message not routed/);
    await expect(b.admin.queueDepth('undeclared')).rejects.toThrow(
      /queue "undeclared" in vhost "\/" does not exist/,
    );
  });

  // Last in this block: the harness's own login is gone afterwards.
  it(
    "rotates the app's login as the operator does: both work meanwhile, an open connection is never cut, the old one goes",
    async () => {
      const n = b.nodes[0]!;
      /** Node 0 restarted with the operator's record of the app's login in its Secret, or none. */
      const restartWithRecord = async (login: { user: string; password: string } | undefined) => {
        await b.setSecret(APP_LOGIN_KEYS.login, login?.user);
        await b.setSecret(APP_LOGIN_KEYS.password, login?.password);
        await b.shutdown(0);
        await b.start(0);
        // start() waits for the management API; AMQP opens last, after the definitions' import.
        await eventually("node 0's AMQP port", () => portOpen(n.amqpPort), 60_000, 100);
      };
      const users = brokerUsers({
        baseUrl: n.managementUrl,
        user: QUEUE_OPERATOR_USER,
        password: OPERATOR_PASSWORD,
      });
      try {
        const old = { user: b.user, password: b.password };
        const next = { user: `${b.user}-alt`, password: `rotated "pw"\\:@/` };
        // An old pod's consumer, logged in before the rotation and still connected after it.
        const held = await amqpConnect(n.amqpUrl);
        const heldChannel = await held.createConfirmChannel();
        await users.setLogin(next.user, next.password, appPermissions(QUEUES));
        // Both logins log in: a new pod with the new URLs, an old pod that reconnects.
        await b.publishAs(next, 'photos', ['by-the-new-login']);
        expect(await loginOutcome(n.amqpUrl)).toBe('connected');
        // The broker checks the new password from the hash the operator sent, and nothing else.
        expect(await loginOutcome(n.urlFor({ user: next.user, password: 'wrong' }))).toMatch(
          /ACCESS_REFUSED/,
        );
        // The app's permissions, no more: not a queue the spec does not name, not the management API.
        const own = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
        expect(await outcome(n.urlFor(next), (ch) => ch.assertQueue('stray', own))).toMatch(/ACCESS_REFUSED/);
        const asApp = brokerAdmin({ baseUrl: n.managementUrl, user: next.user, password: next.password });
        await expect(asApp.clusterNodes()).rejects.toMatchObject({ status: 401 });
        await asApp.close();

        // The held connection is counted, and still publishes.
        await eventually(
          'the held connection to be listed',
          async () => (await users.connections(old.user)) === 1,
          30_000,
          200,
        );
        heldChannel.sendToQueue('photos', Buffer.from('by-the-held-connection'), { persistent: true });
        await heldChannel.waitForConfirms();
        await held.close();
        await eventually(
          'no connection of the old login',
          async () => (await users.connections(old.user)) === 0,
          30_000,
          200,
        );
        await users.deleteLogin(old.user);
        await users.deleteLogin(old.user); // gone already: no error, the step may repeat
        expect(await loginOutcome(n.amqpUrl)).toMatch(/ACCESS_REFUSED/);

        // With the record, a restarted node gives the app the recorded login, and not the old one.
        await restartWithRecord(next);
        await b.publishAs(next, 'photos', ['after-a-restart']);
        expect(await loginOutcome(n.amqpUrl)).toMatch(/ACCESS_REFUSED/);
        // A node that boots from a Secret the kubelet has not refreshed yet (the record not there)
        // imports definitions other than the last imported ones, and brings the retired login back
        // with its old password: why the operator puts the record back after every broker incarnation.
        await restartWithRecord(undefined);
        expect(await loginOutcome(n.amqpUrl)).toBe('connected');
        expect(await loginOutcome(n.urlFor(next))).toBe('connected');
        await users.setLogin(next.user, next.password, appPermissions(QUEUES));
        await users.deleteLogin(old.user);
        expect(await loginOutcome(n.amqpUrl)).toMatch(/ACCESS_REFUSED/);
        await eventually(
          'every message published through the rotation',
          async () => (await n.admin.queueDepth('photos')).ready >= 3,
          30_000,
          200,
        );
      } finally {
        await users.close();
      }
    },
    TEST_TIMEOUT,
  );
});

describe('a three-node cluster', () => {
  let b: LocalBroker;
  beforeAll(async () => {
    b = await broker(3);
  }, TEST_TIMEOUT);

  const names = () => b.nodes.map((n) => n.name).sort();

  it('forms one cluster from the peer list, with every queue replicated on every node', async () => {
    for (const n of b.nodes) expect(await n.admin.clusterNodes()).toEqual(names());
    for (const { name } of QUEUES) {
      const q = await queueInfo(b.nodes[1]!, name);
      expect(q.type).toBe('quorum');
      expect([...q.members!].sort()).toEqual(names());
      expect([...q.online!].sort()).toEqual(names());
    }
  });

  it(
    'keeps a quorum queue available, and its messages, when one node is killed',
    async () => {
      await step(b, 'publish before the kill', () => b.publish('photos', bodies('before', 10)));
      const leader = (await queueInfo(b.nodes[0]!, 'photos')).leader!;
      const victim = b.nodes.find((n) => n.name === leader)!;
      const survivor = b.nodes.find((n) => n !== victim)!;
      await b.kill9(victim.index);

      // The two survivors are a majority: they elect a leader among themselves. Until then a publish
      // is refused (negatively confirmed), which is why publishers retry.
      const q = await eventually(
        'a new leader among the survivors',
        async () => {
          const info = await queueInfo(survivor, 'photos');
          const elected = !!info.leader && info.leader !== leader;
          return elected && (info.online ?? []).length === 2 && info;
        },
        60_000,
        200,
      );
      expect(q.members!.length).toBe(3);
      expect(q.online).not.toContain(leader);
      await step(b, `publish to the survivor ${survivor.name}`, () =>
        survivor.publish('photos', bodies('after', 5)),
      );

      // Every message is there: consume all 15 from a survivor.
      const consumed = await step(b, `consume from the survivor ${survivor.name}`, () =>
        consumeSorted(survivor.amqpUrl, 'photos', 15),
      );
      expect(consumed).toEqual([...bodies('before', 10), ...bodies('after', 5)].sort());

      // The killed node comes back with its data and rejoins.
      await b.start(victim.index);
      await eventually(
        'the queue back on three nodes',
        async () => ((await queueInfo(survivor, 'photos')).online ?? []).length === 3,
        120_000,
        250,
      );
      expect(
        await step(b, `cluster nodes seen by ${victim.name}`, () => victim.admin.clusterNodes()),
      ).toEqual(names());
    },
    TEST_TIMEOUT,
  );

  it(
    'after the whole cluster crashed, a node waits for its peers alive but not ready: why the pods start in parallel',
    async () => {
      for (const n of b.nodes) if (!n.running) await b.start(n.index);
      await eventually(
        'mail.out on three nodes',
        async () => ((await queueInfo(b.nodes[0]!, 'mail.out')).online ?? []).length === 3,
        120_000,
        250,
      );
      await b.publish('mail.out', bodies('durable', 3));
      await eventually(
        '3 messages in mail.out',
        async () => (await b.admin.queueDepth('mail.out')).ready === 3,
        60_000,
        200,
      );
      await Promise.all(b.nodes.map((n) => b.kill9(n.index)));

      // Pod 0 alone, as OrderedReady would start it.
      const first = b.nodes[0]!;
      const logStart = first.log.length;
      await b.start(0, { wait: false });
      await eventually(
        `${first.name} to wait for its peers' tables`,
        () => /Waiting for Mnesia tables/.test(first.log.slice(logStart)),
        120_000,
        250,
        () => (first.running ? undefined : `it exited:\n${first.log.slice(-3000)}`),
      );
      // Alive for the liveness probe, so the kubelet lets it wait...
      expect((await b.cli(0, 'rabbitmq-diagnostics', ['-q', 'ping'])).code).toBe(0);
      // ...but not ready: AMQP is closed, so OrderedReady would never create pods 1 and 2.
      expect(await portOpen(first.amqpPort)).toBe(false);
      expect(first.running).toBe(true);

      await Promise.all([b.start(1), b.start(2)]);
      await eventually(
        'node 0 to answer',
        () => first.admin.clusterNodes().then((n) => n.length === 3),
        180_000,
        250,
      );
      expect(await portOpen(first.amqpPort)).toBe(true);
      // Persistent messages of a quorum queue survived the crash of every node.
      expect(
        await eventually('mail.out statistics', () => b.admin.queueDepth('mail.out'), 60_000, 250),
      ).toMatchObject({ ready: 3 });
    },
    TEST_TIMEOUT,
  );
});

describe('a cluster grown from one node to three', () => {
  let b: LocalBroker;
  beforeAll(async () => {
    b = await broker(1);
  }, TEST_TIMEOUT);

  it(
    'grows every quorum queue onto the new nodes, so the queue outlives the node it began on',
    async () => {
      await b.publish('photos', bodies('one-node', 5));
      expect((await queueInfo(b.nodes[0]!, 'photos')).members).toEqual(['rabbit-0@localhost']);

      await b.scaleUp(3);
      const names = b.nodes.map((n) => n.name).sort();
      for (const { name } of QUEUES) {
        await eventually(
          `${name} on every node`,
          async () => {
            const q = await queueInfo(b.nodes[1]!, name);
            return JSON.stringify([...(q.online ?? [])].sort()) === JSON.stringify(names) && q;
          },
          120_000,
          500,
        );
      }
      for (const n of b.nodes.slice(1)) expect(n.log).toMatch(/a member of every quorum queue/);

      // The node the queues began on is killed: the two new members are a majority and hold the
      // messages published before they joined.
      await b.kill9(0);
      expect(await consumeSorted(b.nodes[1]!.amqpUrl, 'photos', 5)).toEqual(bodies('one-node', 5).sort());
    },
    TEST_TIMEOUT,
  );
});
