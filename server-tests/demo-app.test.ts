// The demo app (examples/demo-app) against REAL servers on loopback: redis-server from the cache
// tier's generated config, a Postgres primary with a streaming replica and two single-instance shards
// started by the pods' own instance script (support/postgres-local-cluster.ts), a RabbitMQ node from
// the broker's generated files (support/rabbitmq-local.ts) and nginx on the edge cache's generated
// config in front of the web server. The web server (two "pods") and the consumer run as processes,
// from their .ts sources, with the environment the connection Secret would give them, as the pods'
// non-root uid when we are root. Every endpoint is driven over HTTP, including publish -> consume,
// and each data server is taken away and brought back once to show the app rides it out.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { eventually } from '../e2e/support/eventually.ts';
import { freePort } from '../e2e/support/free-port.ts';
import { ShardRouter } from '../operator/sharding/router.ts';
import { nextShardMap, serializeShardMap } from '../operator/sharding/shard-map.ts';
import { cacheAuthInclude, cacheServerConfig, maxMemoryBytes } from '../operator/server-config/cache.ts';
import { edgeCacheNginxArgs, edgeCacheNginxConfig } from '../operator/server-config/edge-cache.ts';
import { RESTRICTED_UID } from '../operator/tiers/pod-security.ts';
import { withRedis } from '../operator/dataplane/redis-client.ts';
import { APP_DATABASE, APP_USER, CREDENTIALS, LocalCluster } from './support/postgres-local-cluster.ts';
import { startBroker, type LocalBroker } from './support/rabbitmq-local.ts';

jest.setTimeout(300_000);

const root = new URL('../', import.meta.url).pathname;
const SERVER = join(root, 'examples/demo-app/server.ts');
const CONSUMER = join(root, 'examples/demo-app/consumer.ts');
const LOOPBACK = '127.0.0.1';
const CACHE_PASSWORD = `cache "pw"\\:@/x`;
const ASSET_VERSION = '2026-12-03';
const QUEUES = [{ name: 'photos' }, { name: 'emails' }];
const asRoot = process.getuid?.() === 0;
/**
 * What the pods run as (only /tmp is writable for it here, as in a pod with a read-only root): the
 * pods' uid when we are root and that uid can read node, the sources and node_modules; a checkout
 * under a private home directory cannot be, and then the processes run as we do.
 */
const POD_IDS = ((): { uid?: number; gid?: number } => {
  if (!asRoot) return {};
  const ids = { uid: RESTRICTED_UID, gid: RESTRICTED_UID };
  try {
    const files = [SERVER, CONSUMER, join(root, 'node_modules/redis/package.json')];
    execFileSync(
      process.execPath,
      [
        '-e',
        `for (const f of ${JSON.stringify(files)}) require('fs').accessSync(f, require('fs').constants.R_OK)`,
      ],
      {
        ...ids,
        cwd: '/',
        stdio: 'ignore',
      },
    );
    return ids;
  } catch {
    return {};
  }
})();

const enc = encodeURIComponent;

function binary(name: string): string {
  const dirs = execFileSync('bash', [join(root, 'tools/dataplane-deps.sh'), '--print'], { encoding: 'utf8' });
  const found = dirs
    .split('\n')
    .filter(Boolean)
    .map((d) => join(d, name))
    .find((p) => existsSync(p));
  if (!found) throw new Error(`${name} is not installed: run bash tools/dataplane-deps.sh`);
  return found;
}

// --- HTTP on loopback, a fresh connection per request (no pool outlives the test)

type Answer = { status: number; headers: IncomingHttpHeaders; text: string; json: Record<string, unknown> };

function http(
  port: number,
  method: string,
  path: string,
  o: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: LOOPBACK,
        port,
        method,
        path,
        agent: false,
        timeout: 20_000,
        headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...o.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // Not JSON (an asset).
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls until `probe` gives a value, failing at once when a process under test died. */
const until = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  eventually(what, probe, timeoutMs, 200, () => procs.find((p) => p.died)?.died);

// --- the app's processes

class AppProcess {
  readonly name: string;
  readonly script: string;
  readonly env: Record<string, string>;
  output = '';
  proc: ChildProcess | undefined;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  /** Set when the process exited without being asked to. */
  died: string | undefined;
  #stopping = false;

  constructor(name: string, script: string, env: Record<string, string>) {
    this.name = name;
    this.script = script;
    this.env = env;
  }

  start(): void {
    this.#stopping = false;
    this.died = undefined;
    const proc = spawn(process.execPath, [this.script], {
      // As in a pod: only what the Secret and the pod spec give, from a directory it cannot write.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', ...this.env },
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...POD_IDS,
    });
    this.proc = proc;
    const append = (c: Buffer) => {
      this.output += c.toString();
      if (this.output.length > 4 << 20) this.output = this.output.slice(-(2 << 20));
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    this.exit = once(proc, 'exit').then(([code, signal]) => {
      if (!this.#stopping)
        this.died = `${this.name} exited (${code ?? signal}):\n${this.output.slice(-3000)}`;
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
  }

  /** SIGTERM, as the kubelet sends; resolves with how it exited. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.#stopping = true;
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exit!;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), 30_000);
    const result = await this.exit!;
    clearTimeout(timer);
    return result;
  }

  /** The JSON lines it logged. */
  lines(): Record<string, unknown>[] {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

const procs: AppProcess[] = [];

class WebPod extends AppProcess {
  readonly port: number;
  constructor(name: string, port: number, env: Record<string, string>) {
    super(name, SERVER, { ...env, PORT: String(port), LISTEN_ADDRESS: LOOPBACK });
    this.port = port;
  }
  get = (path: string, headers?: Record<string, string>) => http(this.port, 'GET', path, { headers });
  post = (path: string, body?: unknown, headers?: Record<string, string>) =>
    http(this.port, 'POST', path, { body, headers });
  async ready(): Promise<void> {
    await until(`${this.name} to answer /healthz`, async () => (await this.get('/healthz')).status === 200);
  }
}

// --- redis-server on the cache tier's config

class Redis {
  readonly dir = mkdtempSync(join(tmpdir(), 'demo-redis-'));
  port = 0;
  proc: ChildProcess | undefined;
  log = '';

  async start(): Promise<void> {
    if (!this.port) {
      this.port = await freePort();
      const authFile = join(this.dir, 'auth.conf');
      // The app's login is the default user, as in the pods; the other two it never uses.
      const logins = { app: CACHE_PASSWORD, operator: 'demo-operator-pw', replication: 'demo-repl-pw' };
      writeFileSync(authFile, cacheAuthInclude(logins), { mode: 0o600 });
      writeFileSync(
        join(this.dir, 'redis.conf'),
        cacheServerConfig({
          port: this.port,
          bind: LOOPBACK,
          maxMemoryBytes: maxMemoryBytes('256Mi', 20),
          evictionPolicy: 'allkeys-lru',
          minReplicasToWrite: 0,
          maxReplicaLagSeconds: 10,
          dir: this.dir,
          authFile,
        }),
      );
    }
    const proc = spawn(binary('redis-server'), [join(this.dir, 'redis.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    proc.stdout!.on('data', (c: Buffer) => (this.log += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (this.log += c.toString()));
    await eventually(
      `redis-server on ${this.port}`,
      () => this.command('PING'),
      20_000,
      50,
      () => (proc.exitCode !== null ? `redis-server exited:\n${this.log}` : undefined),
    );
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = once(p, 'exit');
    p.kill('SIGKILL');
    await gone;
  }

  /** One command on a fresh authenticated connection. */
  async command(...args: string[]): Promise<unknown> {
    return withRedis({ host: LOOPBACK, port: this.port, password: CACHE_PASSWORD, timeoutMs: 2000 }, (c) =>
      c.sendCommand(args),
    );
  }

  get url(): string {
    return `redis://:${enc(CACHE_PASSWORD)}@${LOOPBACK}:${this.port}/0`;
  }
}

// --- nginx on the edge cache's config, in front of one web pod

async function startEdge(originPort: number) {
  const dir = mkdtempSync(join(tmpdir(), 'demo-edge-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const logPath = join(dir, 'nginx.log');
  writeFileSync(
    conf,
    edgeCacheNginxConfig({
      listenPort: port,
      listenAddress: LOOPBACK,
      originHost: LOOPBACK,
      originPort,
      pathPrefix: '/static',
      ttlSeconds: 300,
      staleIfErrorSeconds: 3600,
      assetVersion: ASSET_VERSION,
      cacheSize: '16m',
      runDir: dir,
    }),
  );
  const logFd = openSync(logPath, 'a');
  if (asRoot) {
    chownSync(dir, RESTRICTED_UID, RESTRICTED_UID);
    chownSync(logPath, RESTRICTED_UID, RESTRICTED_UID);
  }
  const proc = spawn(binary('nginx'), edgeCacheNginxArgs(conf, dir), {
    stdio: ['ignore', logFd, logFd],
    detached: true,
    // As the edge pods run it (the files are ours to hand over, whatever the checkout's permissions).
    ...(asRoot ? { uid: RESTRICTED_UID, gid: RESTRICTED_UID } : {}),
  });
  closeSync(logFd);
  await eventually(
    'nginx to answer /healthz',
    async () => (await http(port, 'GET', '/healthz')).status === 200,
    20_000,
    100,
    () => (proc.exitCode !== null ? `nginx exited:\n${readFileSync(logPath, 'utf8')}` : undefined),
  );
  return {
    port,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = once(proc, 'exit');
        proc.kill('SIGTERM');
        const timer = setTimeout(() => process.kill(-proc.pid!, 'SIGKILL'), 10_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- the fixture: every server, two web pods, one consumer, the edge

const pgUrl = (port: number) =>
  `postgresql://${APP_USER}:${enc(CREDENTIALS.app)}@${LOOPBACK}:${port}/${APP_DATABASE}`;

let redis: Redis;
let db: LocalCluster;
let shards: LocalCluster[] = [];
let broker: LocalBroker;
let edge: Awaited<ReturnType<typeof startEdge>> | undefined;
let mapDir: string;
let router: ShardRouter;
let a: WebPod;
let b: WebPod;
let consumer: AppProcess;
/** The consumer's HEALTH_PORT (the consumers tier's healthCheck probes it). */
let consumerHealthPort: number;
/** The status of the consumer's GET /healthz, or the connection error's code. */
const consumerHealth = () =>
  fetch(`http://127.0.0.1:${consumerHealthPort}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
    (r) => r.status,
    (e: { cause?: { code?: string } }) => e.cause?.code ?? 'failed',
  );

beforeAll(async () => {
  redis = new Redis();
  const dbCluster = LocalCluster.create({ names: ['db-0', 'db-1'] });
  const shardClusters = Promise.all(['shard-0', 'shard-1'].map((n) => LocalCluster.create({ names: [n] })));
  [db, shards] = await Promise.all([dbCluster, shardClusters]);
  [broker] = await Promise.all([
    startBroker({ nodes: 1, queues: QUEUES }),
    redis.start(),
    db.startAll(),
    ...shards.map((s) => s.startAll()),
  ]);
  await until(
    'db-1 to stream from db-0',
    async () => (await db.get('db-1').inRecovery()) && !(await db.get('db-0').inRecovery()),
  );

  // The shard map as the operator publishes it, with the local instances' addresses.
  mapDir = mkdtempSync(join(tmpdir(), 'demo-shard-map-'));
  chmodSync(mapDir, 0o755);
  const map = nextShardMap(
    undefined,
    {
      key: 'user_id',
      virtualNodes: 64,
      shards: shards.map((s, i) => ({
        name: `demo-shard-${i}`,
        host: LOOPBACK,
        port: s.instances[0]!.node.port,
        database: APP_DATABASE,
      })),
      dedicated: [],
    },
    { flip: false },
  );
  writeFileSync(join(mapDir, 'shard-map.json'), serializeShardMap(map), { mode: 0o644 });
  router = new ShardRouter(map);

  // The connection Secret's entries (operator/tiers/connection.ts) with loopback addresses.
  const secret = {
    SCALABLEAPP_NAME: 'demo',
    DATABASE_URL: pgUrl(db.get('db-0').node.port),
    DATABASE_READ_URL: pgUrl(db.get('db-1').node.port),
    CACHE_URL: redis.url,
    CACHE_REPLICAS_URL: redis.url,
    CACHE_DEFAULT_TTL_SECONDS: '300',
    SESSION_STORE: 'redis',
    SESSION_STORE_URL: redis.url,
    SESSION_TTL_SECONDS: '300',
    SHARD_MAP_CONFIGMAP: 'demo-shard-map',
    SHARD_MAP_PATH: join(mapDir, 'shard-map.json'),
    SHARD_KEY: 'user_id',
    SHARDS_USER: APP_USER,
    SHARDS_PASSWORD: CREDENTIALS.app,
    QUEUE_URL: broker.amqpUrl,
    ASSET_BASE_PATH: '/static',
    ASSET_VERSION,
  };
  const pod = { SHUTDOWN_DELAY_SECONDS: '0', SHUTDOWN_TIMEOUT_SECONDS: '5' };
  // Pod a also has web.env QUEUE_NAME=photos: its default queue.
  a = new WebPod('web-a', await freePort(), { ...secret, ...pod, QUEUE_NAME: 'photos' });
  b = new WebPod('web-b', await freePort(), { ...secret, ...pod });
  consumerHealthPort = await freePort();
  consumer = new AppProcess('consumer', CONSUMER, {
    ...secret,
    QUEUE_NAME: 'photos',
    PREFETCH: '5',
    HEALTH_PORT: String(consumerHealthPort),
  });
  procs.push(a, b, consumer);
  for (const p of procs) p.start();
  await Promise.all([a.ready(), b.ready()]);
  await until('the consumer to consume', async () => consumer.lines().some((l) => l.msg === 'consuming'));
  edge = await startEdge(a.port);
}, 600_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop().catch(() => undefined)));
  // DEMO_APP_LOG_DIR=/some/dir keeps every process's output for a look after the run.
  const logDir = process.env.DEMO_APP_LOG_DIR;
  if (logDir) for (const p of procs) writeFileSync(join(logDir, `${p.name}.log`), p.output);
  await edge?.stop();
  await redis?.stop();
  if (redis) rmSync(redis.dir, { recursive: true, force: true });
  await Promise.all([db?.destroy(), ...shards.map((s) => s.destroy()), broker?.stop()]);
  if (mapDir) rmSync(mapDir, { recursive: true, force: true });
}, 120_000);

/** A session cookie from Set-Cookie, as a browser would send it back. */
const cookieOf = (r: Answer) => String(r.headers['set-cookie']?.[0] ?? '').split(';')[0]!;

const consumed = (pod: WebPod, queue: string, id: string) =>
  until(
    `message ${id} to be consumed`,
    async () => (await pod.get(`/queue/${queue}/consumed/${id}`)).status === 200,
  );

describe('the demo app on every tier', () => {
  it('sums up its tiers, where each is and never a password', async () => {
    const r = await a.get('/');
    expect(r.status).toBe(200);
    const tiers = r.json.tiers as Record<string, Record<string, unknown>>;
    expect(tiers.database).toMatchObject({
      configured: true,
      primary: `${LOOPBACK}:${db.get('db-0').node.port}/app`,
      replica: `${LOOPBACK}:${db.get('db-1').node.port}/app`,
    });
    expect(tiers.sessions).toMatchObject({ configured: true, ttlSeconds: 300, source: 'SESSION_STORE_URL' });
    expect(tiers.shards).toMatchObject({
      configured: true,
      key: 'user_id',
      ringVersion: 1,
      shards: ['demo-shard-0', 'demo-shard-1'],
    });
    expect(tiers.edgeCache).toMatchObject({ configured: true, assetVersion: ASSET_VERSION });
    expect(tiers.queue).toMatchObject({ configured: true, defaultQueue: 'photos' });
    expect(r.text).not.toContain(enc(CREDENTIALS.app));
    expect(r.text).not.toContain(enc(CACHE_PASSWORD));
  });

  it('is live and ready, and says which tier answered readiness', async () => {
    expect((await a.get('/healthz')).json).toMatchObject({ status: 'ok' });
    const ready = await a.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json.checks).toMatchObject({
      database: { ok: true, primary: { inRecovery: false }, replica: { inRecovery: true } },
      cache: { ok: true, reply: 'PONG' },
      shards: { ok: true, ringVersion: 1 },
      queue: { ok: true },
    });
  });

  it('writes through the primary and reads the row back from the streaming replica', async () => {
    const w = await a.post('/db/items', { value: 'hello replica' });
    expect(w.status).toBe(201);
    expect(w.json).toMatchObject({
      value: 'hello replica',
      inRecovery: false,
      serverPort: db.get('db-0').node.port,
    });
    const id = w.json.id as string;

    const primary = await b.get(`/db/items/${id}`);
    expect(primary.json).toMatchObject({ id, value: 'hello replica', from: 'primary', inRecovery: false });
    const replica = await until('the row on the replica', async () => {
      const r = await b.get(`/db/items/${id}?from=replica`);
      return r.status === 200 && r;
    });
    expect(replica.json).toMatchObject({
      id,
      value: 'hello replica',
      from: 'replica',
      inRecovery: true,
      serverAddr: LOOPBACK,
      serverPort: db.get('db-1').node.port,
    });
    expect((await a.get('/db/items/999999999')).status).toBe(404);
    expect((await a.get('/db/items/abc')).status).toBe(400);
  });

  it('keeps sessions in the cache only: created on one pod, read on the other, gone after logout', async () => {
    const created = await a.post('/session', { data: { user: 'ada', cart: [1, 2] } });
    expect(created.status).toBe(201);
    const setCookie = String(created.headers['set-cookie']);
    expect(setCookie).toMatch(
      /^demo_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=300; HttpOnly; SameSite=Lax$/,
    );
    const cookie = cookieOf(created);

    const onB = await b.get('/session', { cookie });
    expect(onB.status).toBe(200);
    expect(onB.json).toMatchObject({ data: { user: 'ada', cart: [1, 2] }, createdBy: expect.any(String) });
    const id = cookie.split('=')[1]!;
    const ttl = Number(await redis.command('TTL', `demo:session:${id}`));
    expect(ttl).toBeGreaterThan(250);
    expect(ttl).toBeLessThanOrEqual(300);

    expect((await b.get('/session')).status).toBe(401);
    expect((await b.get('/session', { cookie: 'demo_session=forged' })).status).toBe(401);
    const https = await a.post('/session', {}, { 'x-forwarded-proto': 'https' });
    expect(String(https.headers['set-cookie'])).toMatch(/; Secure$/);

    const out = await http(b.port, 'DELETE', '/session', { headers: { cookie } });
    expect(out.json).toMatchObject({ deleted: true });
    expect((await a.get('/session', { cookie })).status).toBe(401);
  });

  it('writes every key to the shard the ring names, and reads it back from there', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    const expected = new Map(keys.map((k) => [k, router.route(k).shard]));
    expect(new Set(expected.values()).size).toBe(2); // both shards are used by these keys
    for (const key of keys) {
      const w = await a.post(`/shard/${key}`, { value: `v-${key}` });
      expect(w.status).toBe(200);
      expect(w.json).toMatchObject({ key, shard: expected.get(key), ringVersion: 1, inRecovery: false });
      const r = await b.get(`/shard/${enc(key)}`);
      expect(r.json).toMatchObject({ key, shard: expected.get(key), value: `v-${key}` });
    }
    // The rows are really on those instances, under the map's sharding column.
    for (const [i, s] of shards.entries()) {
      const rows = await s.instances[0]!.query<{ user_id: string }>(
        'SELECT user_id FROM demo_shard_items ORDER BY 1',
      );
      expect(rows.map((r) => r.user_id)).toEqual(
        keys.filter((k) => expected.get(k) === `demo-shard-${i}`).sort(),
      );
    }
    expect((await a.get('/shard/nobody-here')).status).toBe(404);
  });

  it('serves versioned assets with cache headers, cached by the real edge cache', async () => {
    const path = `/static/${ASSET_VERSION}/app.css`;
    const direct = await a.get(path);
    expect(direct.status).toBe(200);
    expect(direct.headers).toMatchObject({
      'content-type': 'text/css; charset=utf-8',
      'cache-control': 'public, max-age=31536000, immutable',
      'x-asset-version': ASSET_VERSION,
    });
    expect(direct.headers['set-cookie']).toBeUndefined();
    expect(direct.text).toContain(`asset version ${ASSET_VERSION}`);
    expect((await a.get(path, { 'if-none-match': String(direct.headers.etag) })).status).toBe(304);
    expect((await a.get('/static/old-version/app.css')).status).toBe(404);

    const first = await http(edge!.port, 'GET', path);
    const second = await http(edge!.port, 'GET', path);
    expect([first.status, first.headers['x-cache-status']]).toEqual([200, 'MISS']);
    expect([second.status, second.headers['x-cache-status']]).toEqual([200, 'HIT']);
    expect(second.text).toBe(direct.text);
    // The rest of the site goes through the edge uncached.
    const page = await http(edge!.port, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['x-cache-status']).toBeUndefined();
  });

  it('publishes with a broker confirm, and the consumer records the message', async () => {
    const p = await a.post('/queue/photos', { payload: { photo: 'cat.jpg' } });
    expect(p.status).toBe(202);
    expect(p.json).toMatchObject({ queue: 'photos', confirmed: true });
    const id = p.json.id as string;
    // Through the other pod: the record lives in the cache, not in any pod.
    await consumed(b, 'photos', id);
    expect(consumer.lines().filter((l) => l.msg === 'consumed' && l.id === id)).toHaveLength(1);

    // The default queue (QUEUE_NAME on pod a), and the name required on pod b.
    const d = await a.post('/queue', { payload: 'default' });
    expect(d.json).toMatchObject({ queue: 'photos', confirmed: true });
    await consumed(a, 'photos', d.json.id as string);
    expect((await b.post('/queue', {})).status).toBe(400);

    // A queue the broker does not have: returned, so a 404, not a silent loss.
    const missing = await a.post('/queue/no-such-queue', {});
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ tier: 'queue' });
    // Another declared queue, without a consumer: confirmed, not consumed.
    const e = await b.post('/queue/emails', {});
    expect(e.json).toMatchObject({ confirmed: true });
    // The broker publishes its statistics every few seconds.
    await until(
      'the emails queue to hold the message',
      async () => (await broker.admin.queueDepth('emails')).ready === 1,
    );
  });

  it('touches every tier in one request', async () => {
    const r = await b.get('/touch-all?queue=photos');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      ok: true,
      results: {
        database: { ok: true, written: { inRecovery: false }, replicaRead: { inRecovery: true } },
        sessions: { ok: true, readBack: true, ttlSeconds: 300 },
        shards: { ok: true, key: 'touch-all', shard: router.route('touch-all').shard, readBack: true },
        edgeCache: { ok: true, url: `/static/${ASSET_VERSION}/app.css` },
        queue: { ok: true, queue: 'photos', confirmed: true },
      },
    });
    const results = r.json.results as Record<string, Record<string, unknown>>;
    await consumed(a, 'photos', results.queue!.id as string);
  });

  it('starts with no tier at all and answers 501 naming the missing one', async () => {
    const bare = new WebPod('web-bare', await freePort(), { SHUTDOWN_DELAY_SECONDS: '0' });
    procs.push(bare);
    bare.start();
    await bare.ready();
    const summary = await bare.get('/');
    expect(summary.json.tiers).toMatchObject({
      database: { configured: false },
      cache: { configured: false },
      shards: { configured: false },
      queue: { configured: false },
    });
    for (const [method, path, tier] of [
      ['POST', '/db/items', 'database'],
      ['GET', '/session', 'cache'],
      ['GET', '/shard/x', 'shards'],
      ['POST', '/queue/photos', 'queue'],
      ['GET', '/queue/photos/consumed/x', 'cache'],
    ] as const) {
      const r = await http(bare.port, method, path);
      expect([r.status, r.json.tier]).toEqual([501, tier]);
      expect(r.json.message).toMatch(/is not set/);
    }
    expect((await bare.get('/touch-all')).status).toBe(200);
    expect(await bare.stop()).toEqual({ code: 0, signal: null });
  });
});

describe('the demo app when a data server goes away and comes back', () => {
  it('the cache: 503 naming the tier, liveness unaffected, sessions work again after', async () => {
    await redis.stop();
    const r = await a.post('/session', {});
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ error: 'tier unavailable', tier: 'cache' });
    expect((await a.get('/healthz')).status).toBe(200);
    expect((await a.get('/readyz')).status).toBe(503);
    await redis.start();
    const again = await until('a session after the cache came back', async () => {
      const x = await a.post('/session', { data: 'back' });
      return x.status === 201 && x;
    });
    expect((await b.get('/session', { cookie: cookieOf(again) })).json).toMatchObject({ data: 'back' });
  });

  it('the database primary: 503 naming the tier, then writes work again on a new connection', async () => {
    const primary = db.get('db-0');
    await primary.kill9();
    const r = await a.post('/db/items', { value: 'lost' });
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ tier: 'database' });
    expect((await a.get('/healthz')).status).toBe(200);
    await primary.start(primary);
    const w = await until('a write after the primary came back', async () => {
      const x = await a.post('/db/items', { value: 'after restart' });
      return x.status === 201 && x;
    });
    expect(w.json).toMatchObject({ inRecovery: false });
  });

  it('the broker: publishing answers 503, then the consumer reconnects and consumes again', async () => {
    expect(await consumerHealth()).toBe(200);
    await broker.kill9(0);
    const r = await a.post('/queue/photos', {});
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ tier: 'queue' });
    // Its health endpoint says it is not consuming, so the pod is not Ready (liveness only asks the port).
    await until('the consumer to report itself unhealthy', async () => (await consumerHealth()) === 503);
    await broker.start(0);
    const p = await until(
      'a publish after the broker came back',
      async () => {
        const x = await a.post('/queue/photos', { payload: 'after restart' });
        return x.status === 202 && x;
      },
      120_000,
    );
    await until(
      'the consumer to consume again',
      async () => (await a.get(`/queue/photos/consumed/${p.json.id as string}`)).status === 200,
      120_000,
    );
    expect(consumer.lines().some((l) => l.msg === 'reconnecting')).toBe(true);
    expect(await consumerHealth()).toBe(200);
  });
});

describe('the demo app, finally', () => {
  it('never logs a password', () => {
    const forms = (s: string) => [s, enc(s), JSON.stringify(s).slice(1, -1)];
    const secrets = [CREDENTIALS.app, CACHE_PASSWORD, broker.password].flatMap(forms);
    for (const p of procs) {
      expect(p.output.length).toBeGreaterThan(0);
      for (const s of secrets) expect(p.output).not.toContain(s);
    }
  });

  it('stops cleanly on SIGTERM: the web pods drain, the consumer finishes and exits 0', async () => {
    expect(await a.stop()).toEqual({ code: 0, signal: null });
    expect(await b.stop()).toEqual({ code: 0, signal: null });
    expect(await consumer.stop()).toEqual({ code: 0, signal: null });
    expect(consumer.lines().map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
    expect(a.lines().at(-1)).toMatchObject({ msg: 'stopped' });
  });
});
