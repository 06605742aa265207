// The web tier's endpoints, one small handler per tier, over the clients of database.ts, cache.ts,
// sharding.ts and queue.ts. server.ts runs it; it can also be embedded (createApp + listen).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { ASSET_NAMES, assetResponse, assetUrl, isAssetPath } from './assets.ts';
import { ConsumedLog, RedisTier, SessionStore } from './cache.ts';
import { describeAmqp, describePg, describeRedis, QUEUE_NAME, redact, type ServerConfig } from './config.ts';
import { Database, isItemId } from './database.ts';
import {
  notConfigured,
  readJson,
  Router,
  send,
  TierError,
  within,
  type Reply,
  type Request,
  type Tier,
} from './http.ts';
import { errorText, type Logger } from './log.ts';
import { newMessage, Publisher } from './queue.ts';
import {
  clearedSessionCookie,
  newSessionId,
  sessionCookie,
  sessionIdFrom,
  viaHttps,
  type SessionRecord,
} from './sessions.ts';
import { Shards } from './sharding.ts';

/** The clients of the configured tiers; a tier without configuration has none. */
export type Tiers = {
  database: Database | undefined;
  cache: RedisTier | undefined;
  /** The session store's own client when SESSION_STORE_URL is not CACHE_URL, else undefined. */
  sessionsRedis: RedisTier | undefined;
  sessions: SessionStore | undefined;
  consumed: ConsumedLog | undefined;
  shards: Shards | undefined;
  publisher: Publisher | undefined;
  close(): Promise<void>;
};

export function createTiers(config: ServerConfig, log: Logger): Tiers {
  const s = config.secrets;
  const database = config.database && new Database(config.database, log, s);
  const cache = config.cache && new RedisTier(config.cache, 'cache', log, s);
  // One client when sessions use the cache itself (SESSION_STORE_URL = CACHE_URL, as the operator sets it).
  const sessionRedis =
    config.sessions &&
    (cache && config.sessions.store.url === cache.target.url
      ? cache
      : new RedisTier(config.sessions.store, 'cache', log, s));
  const shards = config.shards && new Shards(config.shards, log, s);
  const publisher = config.queue && new Publisher(config.queue.broker, log, s);
  return {
    database,
    cache,
    sessionsRedis: sessionRedis !== cache ? sessionRedis : undefined,
    sessions: sessionRedis && config.sessions && new SessionStore(sessionRedis, config.sessions.ttlSeconds),
    consumed: cache && new ConsumedLog(cache),
    shards,
    publisher,
    async close() {
      await Promise.all([
        publisher?.close(),
        shards?.close(),
        database?.close(),
        cache?.close(),
        sessionRedis !== cache ? sessionRedis?.close() : undefined,
      ]);
    },
  };
}

const POD = hostname();

const ENDPOINTS = [
  'GET /',
  'GET <HEALTH_PATH> (liveness: never touches a data tier)',
  'GET /readyz (every configured tier answers)',
  'POST /db/items {"value"}',
  'GET /db/items/:id[?from=replica]',
  'POST /session {"data"}',
  'GET /session',
  'DELETE /session',
  'POST /shard/:key {"value"}',
  'GET /shard/:key[?from=replica]',
  'GET <ASSET_BASE_PATH>/<ASSET_VERSION>/app.css|app.js',
  'POST /queue[/:name] {"payload"}',
  'GET /queue/:name/consumed/:id',
  'GET /touch-all[?queue=name]',
];

function need<T>(client: T | undefined, tier: Tier, variable: string, what: string, spec: string): T {
  if (!client) throw notConfigured(tier, variable, what, spec);
  return client;
}

const text = (v: unknown, fallback: string): string =>
  v === undefined || v === null ? fallback : typeof v === 'string' ? v : JSON.stringify(v);

function queueParam(name: string): string {
  if (!QUEUE_NAME.test(name))
    throw new TierError('queue', 400, 'a queue name is 1-200 letters, digits and _ . : -');
  return name;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type App = {
  server: Server;
  tiers: Tiers;
  /** Readiness fails from now on and answers say `Connection: close`; the listener keeps serving. */
  startDraining(): void;
  /** Stops accepting, waits for requests in flight (at most `timeoutMs`), closes every client. */
  close(timeoutMs: number): Promise<void>;
};

export function createApp(config: ServerConfig, log: Logger): App {
  const tiers = createTiers(config, log);
  const router = new Router();
  const db = () => need(tiers.database, 'database', 'DATABASE_URL', 'database tier', 'spec.database');
  const sessions = () =>
    need(
      tiers.sessions,
      'cache',
      'SESSION_STORE_URL (or CACHE_URL)',
      'session store',
      'spec.cache with web.sessions: cache',
    );
  const shards = () => need(tiers.shards, 'shards', 'SHARD_MAP_PATH', 'shards tier', 'spec.shards');
  const publisher = () => need(tiers.publisher, 'queue', 'QUEUE_URL', 'queue tier', 'spec.queue');
  // The consumer records what it consumed in the cache: without one there is nothing to read.
  const consumed = () => need(tiers.consumed, 'cache', 'CACHE_URL', 'cache tier', 'spec.cache');
  let draining = false;

  async function summary(): Promise<Reply> {
    let shardInfo: Record<string, unknown> = { configured: false };
    if (config.shards && tiers.shards) {
      shardInfo = { configured: true, mapPath: config.shards.mapPath };
      try {
        const r = await tiers.shards.router();
        shardInfo = {
          ...shardInfo,
          key: r.map.key,
          ringVersion: r.version,
          pendingRingVersion: r.map.pending?.version ?? null,
          shards: r.map.shards.map((x) => x.name),
        };
      } catch (err) {
        shardInfo = { ...shardInfo, error: errorText(err, config.secrets) };
      }
    }
    return {
      status: 200,
      body: {
        app: config.appName ?? null,
        pod: POD,
        tiers: {
          database: config.database
            ? {
                configured: true,
                primary: describePg(config.database.primary),
                replica: config.database.replicaConfigured ? describePg(config.database.replica) : null,
                sslmode: config.database.primary.sslmode,
              }
            : { configured: false },
          cache: config.cache
            ? { configured: true, server: describeRedis(config.cache) }
            : { configured: false },
          sessions: config.sessions
            ? {
                configured: true,
                store: describeRedis(config.sessions.store),
                source: config.sessions.source,
                ttlSeconds: config.sessions.ttlSeconds,
              }
            : { configured: false },
          shards: shardInfo,
          edgeCache: {
            configured: config.assets.edgeConfigured,
            basePath: config.assets.basePath,
            assetVersion: config.assets.version,
            assets: ASSET_NAMES.map((n) => assetUrl(config.assets, n)),
          },
          queue: config.queue
            ? {
                configured: true,
                broker: describeAmqp(config.queue.broker),
                defaultQueue: config.queue.defaultQueue ?? null,
              }
            : { configured: false },
        },
        endpoints: ENDPOINTS,
      },
    };
  }

  router.on('GET', '/', summary);

  router.on('GET', config.healthPath, async () =>
    // Liveness: the process serves HTTP. Never a data tier: a database outage must not restart every pod.
    draining
      ? { status: 503, body: { status: 'shutting down', pod: POD } }
      : { status: 200, body: { status: 'ok', pod: POD } },
  );

  router.on('GET', '/readyz', async () => {
    const checks: Record<string, unknown> = {};
    const probe = async (name: string, fn: () => Promise<unknown>) => {
      try {
        checks[name] = { ok: true, ...((await within('web', 3000, `${name} check`, fn())) as object) };
      } catch (err) {
        checks[name] = { ok: false, error: errorText(err, config.secrets) };
      }
    };
    await Promise.all([
      tiers.database && probe('database', () => tiers.database!.ping()),
      tiers.cache && probe('cache', async () => ({ reply: await tiers.cache!.ping() })),
      tiers.sessionsRedis && probe('sessions', async () => ({ reply: await tiers.sessionsRedis!.ping() })),
      tiers.shards && probe('shards', async () => ({ ringVersion: (await tiers.shards!.router()).version })),
      tiers.publisher &&
        probe('queue', async () => {
          await tiers.publisher!.ping();
          return { broker: describeAmqp(tiers.publisher!.target) };
        }),
    ]);
    const ok = !draining && Object.values(checks).every((c) => (c as { ok: boolean }).ok);
    return { status: ok ? 200 : 503, body: { ready: ok, draining, pod: POD, checks } };
  });

  // --- database: write through the primary, read back from the primary or a replica
  router.on('POST', '/db/items', async (req) => {
    const body = await req.json();
    const item = await db().insert(text(body.value, `item from ${POD}`));
    return { status: 201, body: { tier: 'database', from: 'primary', ...item } };
  });

  router.on('GET', '/db/items/:id', async (req) => {
    const id = req.params.id!;
    if (!isItemId(id)) throw new TierError('database', 400, 'an item id is a positive integer');
    const from = req.query.get('from') === 'replica' ? 'replica' : 'primary';
    const r = await db().read(id, from);
    if (!r.item)
      return { status: 404, body: { error: 'not found', tier: 'database', id, from, ...served(r) } };
    return { status: 200, body: { tier: 'database', from, ...r.item, ...served(r) } };
  });

  // --- sessions: in the cache only, so any pod serves them
  router.on('POST', '/session', async (req) => {
    const body = await req.json();
    const store = sessions();
    const id = newSessionId();
    const record: SessionRecord = {
      data: body.data ?? null,
      createdAt: new Date().toISOString(),
      createdBy: POD,
    };
    await store.create(id, record);
    const secure = config.cookieSecure || viaHttps(req.headers['x-forwarded-proto']);
    return {
      status: 201,
      headers: { 'set-cookie': sessionCookie(id, store.ttlSeconds, secure) },
      body: { tier: 'cache', ttlSeconds: store.ttlSeconds, servedBy: POD, ...record },
    };
  });

  router.on('GET', '/session', async (req) => {
    const store = sessions();
    const id = sessionIdFrom(req.headers.cookie);
    if (!id)
      return { status: 401, body: { error: 'no session', tier: 'cache', message: 'no session cookie' } };
    const record = await store.get(id);
    if (!record)
      return {
        status: 401,
        body: { error: 'no session', tier: 'cache', message: 'the session expired or never existed' },
      };
    return { status: 200, body: { tier: 'cache', servedBy: POD, ...record } };
  });

  router.on('DELETE', '/session', async (req) => {
    const store = sessions();
    const id = sessionIdFrom(req.headers.cookie);
    const deleted = id ? await store.delete(id) : false;
    const secure = config.cookieSecure || viaHttps(req.headers['x-forwarded-proto']);
    return {
      status: 200,
      headers: { 'set-cookie': clearedSessionCookie(secure) },
      body: { tier: 'cache', deleted },
    };
  });

  // --- shards: the key's shard by the operator's ring
  router.on('POST', '/shard/:key', async (req) => {
    const body = await req.json();
    const r = await shards().write(req.params.key!, text(body.value, `written by ${POD}`));
    return { status: 200, body: { tier: 'shards', from: 'primary', ...r } };
  });

  router.on('GET', '/shard/:key', async (req) => {
    const read = req.query.get('from') === 'replica';
    const r = await shards().read(req.params.key!, read);
    const from = read ? 'replica' : 'primary';
    if (r.value === undefined)
      return { status: 404, body: { error: 'not found', tier: 'shards', from, ...r } };
    return { status: 200, body: { tier: 'shards', from, ...r } };
  });

  // --- queue: publish with a broker confirm; see what the consumer recorded
  const publish = async (queue: string | undefined, payload: unknown) => {
    const p = publisher();
    if (!queue)
      throw new TierError(
        'queue',
        400,
        'name the queue (POST /queue/<name>), or set QUEUE_NAME for a default',
      );
    const message = newMessage(payload ?? null);
    await p.publish(queueParam(queue), message);
    return { tier: 'queue', queue, id: message.id, confirmed: true, publishedBy: POD };
  };
  router.on('POST', '/queue', async (req) => ({
    status: 202,
    body: await publish(config.queue?.defaultQueue, (await req.json()).payload),
  }));
  router.on('POST', '/queue/:name', async (req) => ({
    status: 202,
    body: await publish(req.params.name!, (await req.json()).payload),
  }));
  router.on('GET', '/queue/:name/consumed/:id', async (req) => {
    const queue = queueParam(req.params.name!);
    const id = req.params.id!;
    const yes = await consumed().has(queue, id);
    return { status: yes ? 200 : 404, body: { tier: 'queue', queue, id, consumed: yes } };
  });

  // --- everything at once
  router.on('GET', '/touch-all', async (req) => {
    const results: Record<string, unknown> = {};
    let ok = true;
    const step = async (name: string, configured: boolean, fn: () => Promise<Record<string, unknown>>) => {
      if (!configured) {
        results[name] = { configured: false };
        return;
      }
      try {
        results[name] = { ok: true, ...(await fn()) };
      } catch (err) {
        ok = false;
        results[name] = {
          ok: false,
          ...(err instanceof TierError ? { status: err.status } : {}),
          error: errorText(err, config.secrets),
        };
      }
    };
    const queue = req.query.get('queue') ?? config.queue?.defaultQueue;
    await Promise.all([
      step('database', !!tiers.database, async () => {
        const d = tiers.database!;
        const written = await d.insert(`touch-all from ${POD}`);
        // A replica may lag a moment behind: a few bounded tries.
        let replica = await d.read(written.id, 'replica');
        for (let i = 0; i < 10 && !replica.item; i++) {
          await sleep(100);
          replica = await d.read(written.id, 'replica');
        }
        return {
          id: written.id,
          written: served(written),
          replicaRead: { found: !!replica.item, ...served(replica) },
        };
      }),
      step('sessions', !!tiers.sessions, async () => {
        const store = tiers.sessions!;
        const id = newSessionId();
        await store.create(id, { data: 'touch-all', createdAt: new Date().toISOString(), createdBy: POD });
        const back = await store.get(id);
        await store.delete(id);
        return { readBack: !!back, ttlSeconds: store.ttlSeconds };
      }),
      step('shards', !!tiers.shards, async () => {
        const w = await tiers.shards!.write('touch-all', `touch-all from ${POD}`);
        const r = await tiers.shards!.read('touch-all');
        return { key: w.key, shard: w.shard, ringVersion: w.ringVersion, readBack: r.value === w.value };
      }),
      step('edgeCache', true, async () => {
        const url = assetUrl(config.assets, 'app.css');
        const a = assetResponse(config.assets, url, undefined);
        if (a.status !== 200) throw new TierError('edgeCache', 500, `asset answered ${a.status}`);
        return {
          configured: config.assets.edgeConfigured,
          url,
          etag: a.headers.etag,
          cacheControl: a.headers['cache-control'],
        };
      }),
      step('queue', !!tiers.publisher, async () => {
        if (!queue) return { skipped: 'no queue: pass ?queue=<name> or set QUEUE_NAME' };
        return publish(queue, { touchAll: true });
      }),
    ]);
    return { status: ok ? 200 : 503, body: { ok, pod: POD, results } };
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://localhost');
    const head = method === 'HEAD';
    try {
      let reply: Reply;
      if ((method === 'GET' || head) && isAssetPath(config.assets, url.pathname)) {
        const a = assetResponse(config.assets, url.pathname, headerValue(req.headers['if-none-match']));
        reply = { status: a.status, headers: a.headers, text: a.body };
      } else {
        const m = router.match(method, url.pathname);
        if (!m)
          reply = {
            status: 404,
            body: { error: 'not found', message: `no endpoint ${method} ${url.pathname}` },
          };
        else if ('allowed' in m)
          reply = {
            status: 405,
            headers: { allow: [...new Set(m.allowed)].join(', ') },
            body: { error: 'method not allowed', message: `${url.pathname} answers ${m.allowed.join(', ')}` },
          };
        else {
          const request: Request = {
            method,
            path: url.pathname,
            query: url.searchParams,
            params: m.params,
            headers: req.headers,
            json: () => readJson(req),
          };
          reply = await m.handler(request);
        }
      }
      if (draining) reply.headers = { ...reply.headers, connection: 'close' };
      if (!res.headersSent) send(res, reply, head);
    } catch (err) {
      const e =
        err instanceof TierError
          ? err
          : new TierError('web', 500, `unexpected error: ${errorText(err, config.secrets)}`, { cause: err });
      if (e.status >= 500 && e.status !== 501)
        log.warn('request failed', {
          method,
          path: url.pathname,
          tier: e.tier,
          status: e.status,
          error: redact(e.message, config.secrets),
        });
      if (!res.headersSent)
        send(
          res,
          {
            status: e.status,
            body: { error: errorName(e.status), tier: e.tier, message: redact(e.message, config.secrets) },
            ...(draining ? { headers: { connection: 'close' } } : {}),
          },
          head,
        );
      else res.destroy();
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  // Longer than the idle timeout of the proxies in front (ingress-nginx keeps upstream connections 60 s),
  // so the app never closes a connection a proxy is about to reuse.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;

  return {
    server,
    tiers,
    startDraining() {
      draining = true;
    },
    async close(timeoutMs: number) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const late = await Promise.race([closed.then(() => false), sleep(timeoutMs).then(() => true)]);
      if (late) server.closeAllConnections();
      await tiers.close();
    },
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function errorName(status: number): string {
  switch (status) {
    case 400:
      return 'bad request';
    case 404:
      return 'not found';
    case 413:
      return 'payload too large';
    case 501:
      return 'tier not configured';
    case 503:
      return 'tier unavailable';
    default:
      return status >= 500 ? 'internal error' : 'error';
  }
}

const served = (s: { inRecovery: boolean; serverAddr: string | null; serverPort: number | null }) => ({
  inRecovery: s.inRecovery,
  serverAddr: s.serverAddr,
  serverPort: s.serverPort,
});
