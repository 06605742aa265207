// The cache tier's data plane against REAL redis-server processes, started from the very config
// text the operator deploys (cacheServerConfig) on 127.0.0.1, random free ports, temp dirs. What the
// CRD promises (maxmemory from the memory limit, the eviction policy, replication, failover without a
// second primary, min-replicas-to-write) is shown here to be what Redis does, not what we hope it does.
// redis-server comes from tools/dataplane-deps.sh.
import { freePort } from '../e2e/support/free-port.ts';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  CACHE_USERS,
  appPasswordRules,
  cacheAuthInclude,
  cacheServerConfig,
  maxMemoryBytes,
  replicaOfArgs,
  type CacheServerOptions,
} from '../operator/server-config/cache.ts';
import { decideFailover, rejoin } from '../operator/dataplane/cache-failover.ts';
import { HELD_PRIMARY_ARGS, readyScriptText, startScriptText } from '../operator/tiers/cache.ts';
import { processes } from './support/postgres-local-cluster.ts';
import {
  parseInfo,
  respCacheAdmin,
  respCacheUsers,
  type CacheNode,
} from '../operator/dataplane/redis-admin.ts';
import { connectRedis, ErrorReply, errorCode, type RedisClient } from '../operator/dataplane/redis-client.ts';
import { issueCa, issueServerCert, type KeyPair } from '../operator/tls/certificates.ts';

const PASSWORDS = {
  app: 'data-plane-test-password',
  operator: 'operator "test" password',
  replication: 'replication test password',
};
const PASSWORD = PASSWORDS.app;
/** The name the TLS servers' certificate holds (they are reached at 127.0.0.1, checked against it). */
const TLS_NAME = 'localhost';
/** The TLS material of the servers that serve TLS: one CA, one certificate, as one Secret's files. */
let TLS:
  { dir: string; ca: KeyPair; files: { certFile: string; keyFile: string; caFile: string } } | undefined;
const OPERATOR = { username: CACHE_USERS.operator, password: PASSWORDS.operator };
const admin = respCacheAdmin(OPERATOR);
const TEST_TIMEOUT = 90_000;

function redisServerBinary(): string {
  const script = new URL('../tools/dataplane-deps.sh', import.meta.url).pathname;
  let dirs: string[];
  try {
    dirs = execFileSync('bash', [script, '--print'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (err) {
    throw new Error('redis-server is not installed: run `bash tools/dataplane-deps.sh`', { cause: err });
  }
  const found = dirs.map((d) => join(d, 'redis-server')).find((p) => existsSync(p));
  if (!found) throw new Error(`redis-server not found in ${dirs.join(', ')}`);
  return found;
}

const REDIS_SERVER = redisServerBinary();

/** Polls until `probe` returns something other than undefined/false, or fails at the deadline. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}; last: ${String(last)}`, {
        cause: last,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

type Server = {
  node: CacheNode;
  conf: string;
  args: string[];
  dir: string;
  proc?: ChildProcess;
  log: string;
};
const servers: Server[] = [];
const clients: RedisClient[] = [];

type ConfigChoices = Partial<
  Pick<CacheServerOptions, 'maxMemoryBytes' | 'evictionPolicy' | 'minReplicasToWrite' | 'tls'>
>;

/** Writes the generated config and the auth include into a temp dir and starts redis-server on them. */
async function startServer(name: string, choices: ConfigChoices = {}, args: string[] = []): Promise<Server> {
  const server = await serverFiles(name, choices, args);
  await launch(server);
  return server;
}

/** A server's generated config and auth include in a temp dir, not started yet (cleaned up after all). */
async function serverFiles(name: string, choices: ConfigChoices = {}, args: string[] = []): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), `cache-${name}-`));
  const authFile = join(dir, 'auth.conf');
  await writeFile(authFile, cacheAuthInclude(PASSWORDS), { mode: 0o600 });
  const conf = join(dir, 'redis.conf');
  const port = await freePort();
  await writeFile(
    conf,
    cacheServerConfig({
      port,
      bind: '127.0.0.1',
      maxMemoryBytes: maxMemoryBytes('256Mi', 20),
      evictionPolicy: 'allkeys-lru',
      minReplicasToWrite: 0,
      maxReplicaLagSeconds: 10,
      dir,
      authFile,
      ...choices,
    }),
  );
  // Over TLS the operator reaches it at the address and checks the name its certificate holds.
  const tls = choices.tls && TLS ? { tls: { ca: TLS.ca.cert, servername: TLS_NAME } } : {};
  const server: Server = { node: { name, host: '127.0.0.1', port, ...tls }, conf, args, dir, log: '' };
  servers.push(server);
  return server;
}

/**
 * Starts (or restarts) the server's process from its config file and waits until it answers; `proc`
 * starts it another way (the start script).
 */
async function launch(
  server: Server,
  proc = spawn(REDIS_SERVER, [server.conf, ...server.args], { stdio: ['ignore', 'pipe', 'pipe'] }),
): Promise<void> {
  server.proc = proc;
  const append = (chunk: Buffer) => (server.log += chunk.toString());
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);
  await until(`${server.node.name} to answer PING`, async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(
        `redis-server ${server.node.name} exited (${proc.exitCode ?? proc.signalCode}):\n${server.log}`,
      );
    }
    return admin.ping(server.node);
  });
}

async function kill9(server: Server): Promise<void> {
  const proc = server.proc!;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGKILL');
  await exited;
}

/** A connection with the application's login (the default user), as the app's pods connect. */
async function connect(server: Server): Promise<RedisClient> {
  const c = await connectRedis({ host: '127.0.0.1', port: server.node.port, password: PASSWORD });
  clients.push(c);
  serverOf.set(c, server);
  return c;
}
const serverOf = new WeakMap<RedisClient, Server>();

/** A connection with the operator's login: what the tests inspect a server with (INFO). */
async function connectOperator(server: Server): Promise<RedisClient> {
  const c = await connectRedis({ host: '127.0.0.1', port: server.node.port, ...OPERATOR });
  clients.push(c);
  return c;
}

/** The reply of a command, or the error reply (an ErrorReply) it failed with. */
const outcome = (c: RedisClient, args: string[]): Promise<unknown> =>
  c.sendCommand(args).catch((err: unknown) => {
    if (err instanceof ErrorReply) return err;
    throw err;
  });

/** INFO of the server an app connection is on, asked with the operator's login (the app may not). */
async function info(c: RedisClient, section: string): Promise<Map<string, string>> {
  const o = await operatorOf(serverOf.get(c)!);
  return parseInfo((await o.sendCommand(['INFO', section])) as string);
}

/** One operator connection per server process, opened on first use: INFO is polled in loops. */
const operatorConnections = new WeakMap<ChildProcess, Promise<RedisClient>>();
function operatorOf(server: Server): Promise<RedisClient> {
  const proc = server.proc!;
  let o = operatorConnections.get(proc);
  if (!o) {
    o = connectOperator(server);
    operatorConnections.set(proc, o);
    // A failed connect is not kept: the next call tries again.
    o.catch(() => operatorConnections.delete(proc));
  }
  return o;
}

const infoNumber = async (c: RedisClient, section: string, field: string) =>
  Number((await info(c, section)).get(field));

async function countExisting(c: RedisClient, keys: string[]): Promise<number> {
  return (await c.sendCommand(['EXISTS', ...keys])) as number;
}

const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}:${i}`);

afterAll(async () => {
  for (const c of clients) c.destroy();
  await Promise.all(servers.map(kill9));
  await Promise.all(servers.map((s) => rm(s.dir, { recursive: true, force: true })));
  if (TLS) await rm(TLS.dir, { recursive: true, force: true });
});

// The readiness probe's script (operator/tiers/cache.ts) run by sh with the dataplane redis-cli, its
// /auth in a temp dir and the test server's port.
describe('the readiness script', () => {
  async function ready(s: Server, operatorPassword: string) {
    const auth = join(s.dir, 'auth');
    await mkdir(auth, { recursive: true });
    await writeFile(join(auth, 'operator-password'), operatorPassword, { mode: 0o600 });
    const script = readyScriptText().replaceAll('/auth/', `${auth}/`).replace('-p 6379', `-p ${s.node.port}`);
    const r = spawnSync('sh', ['-c', script], {
      env: { PATH: `${dirname(REDIS_SERVER)}:/usr/bin:/bin` },
      encoding: 'utf8',
      timeout: 10_000,
    });
    return { status: r.status, out: r.stdout.trim() };
  }

  it('is ready when the server answers PING with PONG to the operator, and says why not otherwise', async () => {
    const s = await startServer('ready');
    expect(await ready(s, PASSWORDS.operator)).toEqual({ status: 0, out: '' });
    const wrong = await ready(s, 'not the password');
    expect(wrong.status).toBe(1);
    expect(wrong.out).toMatch(/^PING: .*WRONGPASS/);
    await kill9(s);
    expect((await ready(s, PASSWORDS.operator)).status).toBe(1);
  });
});

describe('authentication and the three logins', () => {
  it('requires the password from the included file, which is not in the config', async () => {
    const s = await startServer('auth');
    expect(await readFile(s.conf, 'utf8')).not.toContain(PASSWORD);
    const anonymous = await connectRedis({ host: '127.0.0.1', port: s.node.port });
    clients.push(anonymous);
    expect(errorCode(await outcome(anonymous, ['GET', 'k']))).toBe('NOAUTH');
    await expect(
      connectRedis({ host: '127.0.0.1', port: s.node.port, password: 'wrong' }).catch(errorCode),
    ).resolves.toBe('WRONGPASS');
    expect(await (await connect(s)).sendCommand(['PING'])).toBe('PONG');
  });

  it("lets the app's login read and write keys, never administer, empty or re-point the server", async () => {
    const s = await startServer('acl-app');
    const c = await connect(s);
    expect(await c.sendCommand(['SET', 'k', 'v'])).toBe('OK');
    expect(await c.sendCommand(['GET', 'k'])).toBe('v');
    for (const refused of [
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['CONFIG', 'SET', 'maxmemory', '0'],
      ['CONFIG', 'GET', 'requirepass'],
      ['REPLICAOF', '127.0.0.1', '1'],
      ['KEYS', '*'],
      ['ACL', 'LIST'],
      ['SHUTDOWN', 'NOSAVE'],
    ])
      expect({ refused, code: errorCode(await outcome(c, refused)) }).toEqual({ refused, code: 'NOPERM' });
    // DEBUG is off for everyone (Redis 7's enable-debug-command no), before the ACL is asked.
    expect(errorCode(await outcome(c, ['DEBUG', 'SLEEP', '0']))).toMatch(/^(ERR|NOPERM)$/);
    expect(await c.sendCommand(['GET', 'k'])).toBe('v');
  });

  it("lets the operator's login see and re-point the server, and never touch a key", async () => {
    const s = await startServer('acl-operator');
    const o = await connectOperator(s);
    expect(parseInfo((await o.sendCommand(['INFO', 'replication'])) as string).get('role')).toBe('master');
    for (const refused of [
      ['GET', 'k'],
      ['SET', 'k', 'v'],
      ['FLUSHALL'],
      // CONFIG SET is the operator's (its probe reloads a renewed TLS certificate, ADR 0023); reading
      // the config (masterauth) is not.
      ['CONFIG', 'GET', 'masterauth'],
    ])
      expect({ refused, code: errorCode(await outcome(o, refused)) }).toEqual({ refused, code: 'NOPERM' });
    expect(errorCode(await outcome(o, ['ACL', 'USERS']))).toBe('NOPERM');
  });

  it('runs exactly the three users, each with a password, as the server itself lists them', async () => {
    // No login may list users, so this server gets a fourth one on its command line, for the test.
    const s = await startServer('acl-list', {}, ['--user', 'inspector', 'on', '>inspect', '+acl']);
    const inspector = await connectRedis({
      host: '127.0.0.1',
      port: s.node.port,
      username: 'inspector',
      password: 'inspect',
    });
    clients.push(inspector);
    const users = ((await inspector.sendCommand(['ACL', 'LIST'])) as string[]).filter(
      (u) => !u.startsWith('user inspector '),
    );
    expect(users.map((u) => u.split(' ')[1]).sort()).toEqual([
      'default',
      'replication',
      'scalableapp-operator',
    ]);
    for (const u of users) {
      expect(u).toMatch(/ on /);
      expect(u).toMatch(/ #[0-9a-f]{64}/);
      expect(u).not.toMatch(/nopass/);
    }
  });
});

// A rotation of the app's password (controller/cache-password-rotation.ts) asks each server, with
// the operator's login, for the list of the default user's passwords; here the same calls on a real
// server, beside a connection of the app that stays open throughout.
describe("rotating the app's password", () => {
  const users = respCacheUsers(OPERATOR);
  const NEW = 'the app password, rotated';
  const login = (s: Server, password: string) =>
    connectRedis({ host: '127.0.0.1', port: s.node.port, password }).then(
      async (c) => {
        clients.push(c);
        return (await c.sendCommand(['PING'])) as string;
      },
      (err: unknown) => errorCode(err) ?? String(err),
    );

  it('lets both passwords in while the app rolls, then only the new one; a connection logged in with the old is never cut', async () => {
    const s = await startServer('rotate');
    const pooled = await connect(s);
    expect(await pooled.sendCommand(['SET', 'k', 'before'])).toBe('OK');

    await users.setPasswords(s.node, 'default', appPasswordRules({ app: NEW, retiringApp: PASSWORD }));
    expect(await login(s, NEW)).toBe('PONG');
    expect(await login(s, PASSWORD)).toBe('PONG');

    await users.setPasswords(s.node, 'default', appPasswordRules({ app: NEW }));
    expect(await login(s, NEW)).toBe('PONG');
    expect(await login(s, PASSWORD)).toBe('WRONGPASS');
    // Logged in before the change, still served after it: nothing the app pools is dropped.
    expect(await pooled.sendCommand(['GET', 'k'])).toBe('before');
    expect(await pooled.sendCommand(['SET', 'k', 'after'])).toBe('OK');
    // The other logins are untouched.
    expect(await (await connectOperator(s)).sendCommand(['PING'])).toBe('PONG');
  });

  it('changes the passwords whole or not at all: a list the server refuses leaves the old one working', async () => {
    const s = await startServer('rotate-atomic');
    const o = await connectOperator(s);
    const refused = await outcome(o, ['ACL', 'SETUSER', 'default', 'resetpass', '#not-a-digest']);
    expect(refused).toBeInstanceOf(ErrorReply);
    expect(await login(s, PASSWORD)).toBe('PONG');
    // The client refuses to send a password, or anything but digests, in the first place.
    await expect(users.setPasswords(s.node, 'default', [PASSWORD])).rejects.toThrow(/never a password/);
    await expect(users.setPasswords(s.node, 'default', [])).rejects.toThrow(/never a password/);
  });

  it("is the operator's to run: the app's login may not change a password", async () => {
    const s = await startServer('rotate-app');
    const app = await connect(s);
    const [rule] = appPasswordRules({ app: 'mine now' });
    expect(errorCode(await outcome(app, ['ACL', 'SETUSER', 'default', rule!]))).toBe('NOPERM');
    expect(await login(s, 'mine now')).toBe('WRONGPASS');
  });
});

describe('memory limit and eviction', () => {
  // The CRD's arithmetic on a small limit: 8Mi with 20% headroom.
  const MAX = maxMemoryBytes('8Mi', 20);
  const VALUE = 'v'.repeat(4000);
  // Redis evicts before running each write, so used_memory can pass maxmemory by about one write
  // (plus allocator rounding) until the next one; its docs call this a small overshoot.
  const OVERSHOOT = 64 * 1024;

  async function usedMemoryWithinLimit(c: RedisClient): Promise<number> {
    return until('used_memory <= maxmemory', async () => {
      const used = await infoNumber(c, 'memory', 'used_memory');
      return used <= MAX + OVERSHOOT && used;
    });
  }

  it(
    'allkeys-lru: maxmemory derived from the limit is enforced by evicting',
    async () => {
      expect(MAX).toBe(6710886);
      const c = await connect(await startServer('lru-limit', { maxMemoryBytes: MAX }));
      expect((await info(c, 'memory')).get('maxmemory')).toBe(String(MAX));
      // Three times the limit: without eviction this would need ~20MB.
      const written = keys('k', Math.ceil((3 * MAX) / VALUE.length));
      for (const k of written) expect(await c.sendCommand(['SET', k, VALUE])).toBe('OK');

      await usedMemoryWithinLimit(c);
      expect(await infoNumber(c, 'stats', 'evicted_keys')).toBeGreaterThan(0);
      expect(await c.sendCommand(['DBSIZE'])).toBeLessThan(written.length / 2);
    },
    TEST_TIMEOUT,
  );

  it(
    'allkeys-lru: keys read recently survive, keys left unread are evicted first',
    async () => {
      const c = await connect(await startServer('lru-order', { maxMemoryBytes: MAX }));
      const cold = keys('cold', 300);
      const hot = keys('hot', 300);
      for (const k of [...cold, ...hot]) await c.sendCommand(['SET', k, VALUE]);
      // Redis's LRU clock ticks in seconds: let the cold keys age before the hot ones are read.
      await until('the cold keys to be idle for 2s', async () => {
        return ((await c.sendCommand(['OBJECT', 'IDLETIME', cold[0]!])) as number) >= 2;
      });
      for (const k of hot) await c.sendCommand<string>(['GET', k]);
      // New keys until about half as many keys as there are cold ones were evicted.
      let i = 0;
      while ((await infoNumber(c, 'stats', 'evicted_keys')) < cold.length / 2) {
        for (const k of keys(`new${i++}`, 20)) await c.sendCommand(['SET', k, VALUE]);
      }
      const hotSurvival = (await countExisting(c, hot)) / hot.length;
      const coldSurvival = (await countExisting(c, cold)) / cold.length;
      // Exact LRU would evict only cold keys; Redis samples (about 0.95 of hot keys survive), so
      // allow a few hot ones. allkeys-random gives both the same survival (about 0.9) and fails.
      expect(hotSurvival).toBeGreaterThan(0.8);
      expect(hotSurvival - coldSurvival).toBeGreaterThan(0.3);
    },
    TEST_TIMEOUT,
  );

  it(
    'volatile-ttl: only keys with a TTL are evicted',
    async () => {
      const c = await connect(
        await startServer('volatile-ttl', { maxMemoryBytes: MAX, evictionPolicy: 'volatile-ttl' }),
      );
      const persistent = keys('persistent', 300);
      for (const k of persistent) await c.sendCommand(['SET', k, VALUE]);
      const expiring = keys('expiring', Math.ceil((2 * MAX) / VALUE.length));
      for (const k of expiring) expect(await c.sendCommand(['SET', k, VALUE, 'EX', '3600'])).toBe('OK');

      await usedMemoryWithinLimit(c);
      expect(await infoNumber(c, 'stats', 'evicted_keys')).toBeGreaterThan(0);
      expect(await countExisting(c, persistent)).toBe(persistent.length);
      expect(await countExisting(c, expiring)).toBeLessThan(expiring.length);
    },
    TEST_TIMEOUT,
  );

  it(
    'noeviction: writes past the limit fail with OOM, and reads still work',
    async () => {
      const c = await connect(
        await startServer('noeviction', { maxMemoryBytes: MAX, evictionPolicy: 'noeviction' }),
      );
      let refused: unknown = null;
      for (const k of keys('k', Math.ceil((3 * MAX) / VALUE.length))) {
        refused = await outcome(c, ['SET', k, VALUE]);
        if (refused !== 'OK') break;
      }
      expect(refused).toBeInstanceOf(ErrorReply);
      expect(errorCode(refused)).toBe('OOM');
      expect(await c.sendCommand<string>(['GET', 'k:0'])).toBe(VALUE);
      expect(await infoNumber(c, 'stats', 'evicted_keys')).toBe(0);
      await usedMemoryWithinLimit(c);
    },
    TEST_TIMEOUT,
  );
});

describe('replication and failover', () => {
  it(
    'a replica started with replicaOfArgs receives the primary writes and refuses its own',
    async () => {
      const primary = await startServer('repl-0');
      const replica = await startServer('repl-1', {}, replicaOfArgs('127.0.0.1', primary.node.port));
      await (await connect(primary)).sendCommand(['SET', 'greeting', 'hello']);
      const r = await connect(replica);
      await until(
        'the key on the replica',
        async () => (await r.sendCommand<string>(['GET', 'greeting'])) === 'hello',
      );
      expect(await admin.role(replica.node)).toMatchObject({
        role: 'slave',
        primary: { host: '127.0.0.1', port: primary.node.port },
        linkUp: true,
      });
      expect(errorCode(await outcome(r, ['SET', 'greeting', 'bye']))).toBe('READONLY');
    },
    TEST_TIMEOUT,
  );

  it(
    'kill -9 the primary: the replica is promoted, the other follows, the old primary rejoins as a replica',
    async () => {
      const old = await startServer('cache-0');
      const asReplica = replicaOfArgs('127.0.0.1', old.node.port);
      const replicas = [
        await startServer('cache-1', {}, asReplica),
        await startServer('cache-2', {}, asReplica),
      ];
      const nodes = [old, ...replicas].map((s) => s.node);

      await (await connect(old)).sendCommand(['SET', 'before', 'b']);
      for (const r of replicas) {
        const c = await connect(r);
        await until(
          `'before' on ${r.node.name}`,
          async () => (await c.sendCommand<string>(['GET', 'before'])) === 'b',
        );
      }

      // Nothing changes while the primary answers.
      expect(await decideFailover(nodes, old.node, admin)).toBeUndefined();

      await kill9(old);
      const result = await decideFailover(nodes, old.node, admin);
      expect(result).toBeDefined();
      const { newPrimary, followers } = result!;
      const [promoted, follower] = newPrimary.name === 'cache-1' ? replicas : [...replicas].reverse();
      expect(newPrimary).toEqual(promoted!.node);
      expect(followers).toEqual([follower!.node]);

      // The promoted replica kept the data and takes writes.
      expect(await admin.role(newPrimary)).toMatchObject({ role: 'master' });
      const p = await connect(promoted!);
      expect(await p.sendCommand<string>(['GET', 'before'])).toBe('b');
      expect(await p.sendCommand(['SET', 'after', 'a'])).toBe('OK');

      // The other replica follows it and receives the new write.
      await until(`${follower!.node.name} linked to the new primary`, async () => {
        const role = await admin.role(follower!.node);
        return role.primary?.port === newPrimary.port && role.linkUp;
      });
      const f = await connect(follower!);
      await until(
        `'after' on ${follower!.node.name}`,
        async () => (await f.sendCommand<string>(['GET', 'after'])) === 'a',
      );

      // The old primary restarts from its original config: an empty primary, the second one.
      await launch(old);
      expect(await admin.role(old.node)).toMatchObject({ role: 'master' });
      const o = await connect(old);
      expect(await o.sendCommand<string>(['GET', 'before'])).toBeNull();

      // rejoin makes it a read-only replica of the new primary, with the new primary's data.
      expect(await rejoin(old.node, newPrimary, admin)).toMatchObject({
        role: 'slave',
        primary: { host: '127.0.0.1', port: newPrimary.port },
      });
      expect(errorCode(await outcome(o, ['SET', 'split', 'brain']))).toBe('READONLY');
      await until(
        `'after' on the old primary`,
        async () => (await o.sendCommand<string>(['GET', 'after'])) === 'a',
      );
      expect(await o.sendCommand<string>(['GET', 'before'])).toBe('b');
      const roles = await Promise.all(nodes.map((n) => admin.role(n)));
      expect(roles.filter((r) => r.role === 'master')).toHaveLength(1);
    },
    TEST_TIMEOUT,
  );

  it(
    'kill -9 the primary and restart it held (as its start script does): its replicas keep every key, the best is promoted, and it rejoins with the data',
    async () => {
      const old = await startServer('held-0');
      const asReplica = replicaOfArgs('127.0.0.1', old.node.port);
      const replicas = [
        await startServer('held-1', {}, asReplica),
        await startServer('held-2', {}, asReplica),
      ];
      const nodes = [old, ...replicas].map((s) => s.node);
      const written = keys('session', 200);
      const p = await connect(old);
      for (const k of written) await p.sendCommand(['SET', k, 'v']);
      for (const r of replicas) {
        const c = await connect(r);
        await until(`every key on ${r.node.name}`, async () => (await countExisting(c, written)) === 200);
      }

      // Restarted on the same port (its replicas still follow that address), empty, and held.
      await kill9(old);
      old.args = [...HELD_PRIMARY_ARGS];
      await launch(old);
      expect(await admin.role(old.node)).toMatchObject({ role: 'slave', primary: { port: 1 } });
      // Long enough for the replicas to have reconnected to it many times (they retry every second):
      // it refuses to feed them (NOMASTERLINK), so none resynchronised to its empty dataset.
      await new Promise((r) => setTimeout(r, 3000));
      for (const r of replicas) {
        const c = await connect(r);
        expect(await countExisting(c, written)).toBe(200);
      }
      const o = await connect(old);
      expect(errorCode(await outcome(o, ['SET', 'while-held', 'x']))).toBe('READONLY');

      // It answers, so only `lost` makes the failover go ahead; then it rejoins with the data.
      expect(await decideFailover(nodes, old.node, admin)).toBeUndefined();
      const result = await decideFailover(nodes, old.node, admin, { lost: true });
      expect(result).toBeDefined();
      await rejoin(old.node, result!.newPrimary, admin);
      await until('every key back on the held one', async () => (await countExisting(o, written)) === 200);
      const roles = await Promise.all(nodes.map((n) => admin.role(n)));
      expect(roles.filter((r) => r.role === 'master')).toHaveLength(1);
    },
    TEST_TIMEOUT,
  );

  it(
    'min-replicas-to-write 1: the primary refuses writes until a replica is connected',
    async () => {
      const primary = await startServer('minrepl-0', { minReplicasToWrite: 1 });
      const c = await connect(primary);
      expect(errorCode(await outcome(c, ['SET', 'k', 'v']))).toBe('NOREPLICAS');
      expect(await c.sendCommand(['EXISTS', 'k'])).toBe(0);

      await startServer('minrepl-1', {}, replicaOfArgs('127.0.0.1', primary.node.port));
      await until('a write accepted with a replica connected', async () => {
        return (await outcome(c, ['SET', 'k', 'v'])) === 'OK';
      });
    },
    TEST_TIMEOUT,
  );
});

// spec.cache.tls (on by default): the config's TLS settings on real servers, the readiness probe's
// reload of a renewed certificate, and the clients (the app's, the operator's) checking chain and name.
describe('over TLS', () => {
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cache-tls-'));
    const ca = await issueCa('cache data-plane test CA', new Date());
    const files = {
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      caFile: join(dir, 'ca.crt'),
    };
    TLS = { dir, ca, files };
    await writeFile(files.caFile, ca.cert);
    await installCertificate(await issueServerCert(ca, [TLS_NAME], new Date()));
  });

  /** A renewed certificate's files, each replaced whole (the kubelet swaps a Secret's files so). */
  async function installCertificate(pair: KeyPair): Promise<void> {
    for (const [file, text] of [
      [TLS!.files.keyFile, pair.key],
      [TLS!.files.certFile, pair.cert],
    ] as const) {
      await writeFile(`${file}.new`, text, { mode: 0o600 });
      await rename(`${file}.new`, file);
    }
  }

  const startTls = (name: string, args: string[] = []) => startServer(name, { tls: TLS!.files }, args);
  /** The app's login over TLS, checked as the demo app checks it (the CA, the name). */
  const connectTls = (s: Server, ca = TLS!.ca.cert) =>
    connectRedis({
      host: '127.0.0.1',
      port: s.node.port,
      password: PASSWORD,
      tls: { ca, servername: TLS_NAME },
    });
  const failure = (p: Promise<RedisClient>) =>
    p.then(
      (c) => {
        c.destroy();
        return 'connected';
      },
      (e: Error) => String(e.message || e.cause || e),
    );

  /** The serial of the certificate the server presents to a new connection. */
  const servedSerial = (s: Server) =>
    new Promise<string>((resolve, reject) => {
      const socket = tlsConnect(
        { host: '127.0.0.1', port: s.node.port, ca: TLS!.ca.cert, servername: TLS_NAME },
        () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        },
      );
      socket.on('error', reject);
    });

  /** The readiness probe of a TLS server, as the pod runs it (its files in the test's dirs). */
  async function probeOf(s: Server) {
    await mkdir(join(s.dir, 'auth'), { recursive: true });
    await writeFile(join(s.dir, 'auth', 'operator-password'), PASSWORDS.operator, { mode: 0o600 });
    return () => {
      const script = readyScriptText(true)
        .replaceAll('/auth/', `${s.dir}/auth/`)
        .replaceAll('/tls/', `${TLS!.dir}/`)
        .replaceAll('/data/', `${s.dir}/`)
        .replaceAll('-p 6379', `-p ${s.node.port}`);
      const r = spawnSync('sh', ['-c', script], {
        env: { PATH: `${dirname(REDIS_SERVER)}:/usr/bin:/bin` },
        encoding: 'utf8',
        timeout: 10_000,
      });
      return { status: r.status, said: `${r.stdout}${r.stderr}`.trim() };
    };
  }

  it('refuses a plaintext client, and a client that trusts another CA; serves one that checks chain and name', async () => {
    const s = await startTls('tls-0');
    expect(
      await failure(
        connectRedis({ host: '127.0.0.1', port: s.node.port, password: PASSWORD, timeoutMs: 1000 }),
      ),
    ).not.toBe('connected');
    const other = await issueCa('another CA', new Date());
    expect(await failure(connectTls(s, other.cert))).toMatch(/certificate|verify/i);
    const c = await connectTls(s);
    clients.push(c);
    expect(await c.sendCommand(['SET', 'tls', 'yes'])).toBe('OK');
    expect(await admin.ping(s.node)).toBe(true);
  });

  it(
    'a replica syncs from its primary over TLS, and follows another one the operator names by address',
    async () => {
      const primary = await startTls('tls-p');
      const replica = await startTls('tls-r', replicaOfArgs('127.0.0.1', primary.node.port));
      const p = await connectTls(primary);
      clients.push(p);
      await p.sendCommand(['SET', 'over-tls', '1']);
      const r = await connectTls(replica);
      clients.push(r);
      await until(
        'the key on the replica',
        async () => String(await r.sendCommand(['GET', 'over-tls'])) === '1',
      );
      // The plaintext port is closed: nothing but TLS could have carried that stream.
      expect((await admin.role(replica.node)).linkUp).toBe(true);
      const second = await startTls('tls-p2');
      await admin.follow(replica.node, second.node);
      await until('the replica in sync with the second primary', async () => {
        const role = await admin.role(replica.node);
        return role.primary?.port === second.node.port && role.linkUp;
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'the readiness probe makes the server read a renewed certificate; open connections keep working',
    async () => {
      const s = await startTls('tls-renew');
      const held = await connectTls(s);
      clients.push(held);
      const ready = await probeOf(s);
      expect(ready()).toEqual({ status: 0, said: '' });
      const before = await servedSerial(s);
      await installCertificate(await issueServerCert(TLS!.ca, [TLS_NAME], new Date()));
      // Not read until the probe asks: the server serves the certificate it loaded.
      expect(await servedSerial(s)).toBe(before);
      expect(ready()).toEqual({ status: 0, said: '' });
      const after = await servedSerial(s);
      expect(after).not.toBe(before);
      expect(after).toBe(new X509Certificate(await readFile(TLS!.files.certFile)).serialNumber);
      expect(await held.sendCommand(['PING'])).toBe('PONG');
      // Nothing changed since: no reload.
      expect(ready()).toEqual({ status: 0, said: '' });
    },
    TEST_TIMEOUT,
  );

  it(
    'a new CA: the probe makes the server read the new files before it checks, so the server does not stay unready',
    async () => {
      const s = await startTls('tls-new-ca');
      const ready = await probeOf(s);
      expect(ready()).toEqual({ status: 0, said: '' });
      const ca = await issueCa('the replacing CA', new Date());
      const pair = await issueServerCert(ca, [TLS_NAME], new Date());
      await writeFile(`${TLS!.files.caFile}.new`, ca.cert);
      await rename(`${TLS!.files.caFile}.new`, TLS!.files.caFile);
      await installCertificate(pair);
      TLS = { ...TLS!, ca };
      expect(ready()).toEqual({ status: 0, said: '' });
      expect(await servedSerial(s)).toBe(new X509Certificate(pair.cert).serialNumber);
    },
    TEST_TIMEOUT,
  );
});

describe('the start script is PID 1 of its PID namespace, as in a pod, and the server its child', () => {
  // Under load the kubelet kills a readiness probe (ready.sh, redis-cli) that ran past its timeout:
  // its children are orphaned, and PID 1 of the container inherits them. When that was the server
  // (the script exec'd it), they stayed zombies: Valkey and Redis reap only while a fork of their own
  // runs. Seen on the real node as <defunct> redis-cli piling up in every cache pod.
  const asRoot = process.getuid?.() === 0;
  // Skipped unless root: a PID namespace of our own needs CAP_SYS_ADMIN (CI runs as root).
  (asRoot ? it : it.skip)(
    'an orphan is reaped by the script, not left a zombie, and the stop signal still reaches the server',
    async () => {
      const s = await serverFiles('pid1');
      await mkdir(join(s.dir, 'config'));
      await mkdir(join(s.dir, 'data'));
      await writeFile(join(s.dir, 'config', 'primary'), 'pid1-0');
      const script = startScriptText('pid1-headless.test.svc')
        .replaceAll('/config/cache.conf', s.conf)
        .replaceAll('/config/', `${s.dir}/config/`)
        .replaceAll('/data/', `${s.dir}/data/`);
      // unshare forks the script into the namespace and stays its parent; --kill-child: the namespace
      // dies with it.
      const proc = spawn('unshare', ['--pid', '--fork', '--kill-child', '--', 'sh', '-c', script], {
        env: { PATH: `${dirname(REDIS_SERVER)}:/usr/bin:/bin`, HOSTNAME: 'pid1-0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      await launch(s, proc);
      const pid1 = processes().find((p) => p.ppid === proc.pid)!.pid;
      // The server is the script's child, not the script itself.
      expect(processes().find((p) => p.ppid === pid1)?.args).toMatch(/redis-server|valkey-server/);

      // What a killed probe leaves: a shell whose parent is gone and that exits a moment later.
      const orphaned = '(exec sh -c "sleep 1; exit 141" </dev/null >/dev/null 2>&1 &)';
      execFileSync('nsenter', ['-t', String(pid1), '-p', '--', 'sh', '-c', orphaned]);
      const orphan = processes().find((p) => p.args === 'sh -c sleep 1; exit 141');
      expect(orphan?.ppid).toBe(pid1);
      // A zombie keeps its process id until its parent reaps it.
      await until('the orphan to be reaped', async () => !processes().some((p) => p.pid === orphan!.pid));
      expect(await admin.ping(s.node)).toBeTruthy();

      // The kubelet stops a container with SIGTERM to its PID 1: the script hands it to the server,
      // which shuts down, and exits with its status.
      const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      process.kill(pid1, 'SIGTERM');
      expect(await exited).toBe(0);
      expect(s.log).toMatch(/bye bye/);
    },
    TEST_TIMEOUT,
  );
});
