// What the demo app reads from its environment, and nothing else: the entries of the `<app>-connection`
// Secret the operator mounts with envFrom (operator/tiers/connection.ts and the *Entries builders of
// every tier), plus a few optional knobs of the app itself. Pure: tests pass an env object.
//
// Every tier is optional. A tier whose variable is absent is `undefined` here, and its endpoints
// answer 501 instead of failing to start.
import type { ConnectionOptions } from 'node:tls';

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting that cannot be used as given; the message names the variable, never a secret. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** libpq's sslmode values; the operator's URLs say verify-full (TLS, the default) or none (`disable`). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Everything `pg` needs for one server, taken apart so no URL (with its password) is kept around. */
export type PgTarget = {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  sslmode: SslMode;
  ssl: false | ConnectionOptions;
};

export type DatabaseConfig = {
  /** DATABASE_URL: the read-write Service, always the primary. */
  primary: PgTarget;
  /** DATABASE_READ_URL: the read-only Service over the replicas (the primary when there is none). */
  replica: PgTarget;
  /** Whether DATABASE_READ_URL was given; without it reads "from the replica" go to the primary. */
  replicaConfigured: boolean;
};

export type RedisTarget = {
  /** The URL as given, for the client only: it holds the password. */
  url: string;
  host: string;
  port: number;
  db: number;
  tls: boolean;
  /** With TLS: the text of the CA the server's certificate must chain to (CACHE_CA_FILE). */
  ca?: string;
  password: string;
};

export type SessionConfig = {
  store: RedisTarget;
  ttlSeconds: number;
  /** Which variable the store came from (SESSION_STORE_URL, or CACHE_URL when sessions are off). */
  source: 'SESSION_STORE_URL' | 'CACHE_URL';
};

export type ShardsConfig = {
  mapPath: string;
  user: string;
  password: string;
  /** The sharding column (SHARD_KEY); the map's own `key` wins when they differ. */
  key: string | undefined;
  sslmode: SslMode;
  /** The text of SHARDS_SSLROOTCERT, the CA every shard's certificate must chain to. */
  ca?: string;
  reloadMs: number;
};

export type AmqpTarget = {
  url: string;
  host: string;
  port: number;
  vhost: string;
  tls: boolean;
  /** With TLS: the text of the CA the broker's certificate must chain to (QUEUE_CA_FILE). */
  ca?: string;
  password: string;
};

export type QueueConfig = {
  broker: AmqpTarget;
  /** QUEUE_NAME, else the first of QUEUE_NAMES: where POST /queue and /touch-all publish. */
  defaultQueue: string | undefined;
};

export type AssetsConfig = {
  /** ASSET_BASE_PATH (the edge cache's pathPrefix), without a trailing slash. */
  basePath: string;
  /** ASSET_VERSION: in every asset URL, so a new version is a new cache key at the edge. */
  version: string;
  /** Whether the edge cache tier handed the app its entries. */
  edgeConfigured: boolean;
};

export type ServerConfig = {
  appName: string | undefined;
  port: number;
  /** Undefined: every address (IPv6 and IPv4 where the node has both), as a pod wants. */
  listenAddress: string | undefined;
  healthPath: string;
  shutdownDelayMs: number;
  shutdownTimeoutMs: number;
  cookieSecure: boolean;
  database: DatabaseConfig | undefined;
  cache: RedisTarget | undefined;
  sessions: SessionConfig | undefined;
  shards: ShardsConfig | undefined;
  queue: QueueConfig | undefined;
  assets: AssetsConfig;
  /** Every password found above, raw and URL-encoded, for redaction. */
  secrets: string[];
};

export type ConsumerConfig = {
  appName: string | undefined;
  queueName: string;
  broker: AmqpTarget;
  cache: RedisTarget | undefined;
  prefetch: number;
  workMs: number;
  shutdownTimeoutMs: number;
  /** HEALTH_PORT: where GET /healthz answers 200 while consuming (the consumers tier's healthCheck). */
  healthPort: number | undefined;
  secrets: string[];
};

/** The queue names RabbitMQ and the ScalableApp schema accept (operator/api/queue.ts). */
export const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,200}$/;
/** The edge cache's pathPrefix and assetVersion rules (operator/api/edge-cache.ts). */
const ASSET_BASE_PATH = /^\/[A-Za-z0-9._~/-]*$/;
const ASSET_VERSION = /^[A-Za-z0-9._-]{1,64}$/;

const DEFAULT_SESSION_TTL_SECONDS = 86400;

/** A variable's value, or undefined when it is absent or empty (an empty entry means "not set"). */
function get(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = get(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max)
    throw new ConfigError(`${name} must be a whole number in ${min}..${max}, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function boolean(env: Env, name: string): boolean {
  const raw = get(env, name)?.toLowerCase();
  if (raw === undefined) return false;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** `new URL`, with an error that names the variable but not the value (it may hold a password). */
function parseUrl(name: string, value: string, schemes: readonly string[]): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (!schemes.includes(url.protocol))
    throw new ConfigError(`${name} must start with ${schemes.map((s) => `${s}//`).join(' or ')}`);
  if (!url.hostname) throw new ConfigError(`${name} has no host`);
  return url;
}

function decode(name: string, part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConfigError(`${name} has a badly percent-encoded part`);
  }
}

/** `[::1]` as `::1`, the way sockets want it. */
const bareHost = (hostname: string) => hostname.replace(/^\[(.*)\]$/, '$1');

function sslMode(name: string, raw: string | undefined): SslMode {
  const mode = raw ?? 'disable';
  if (!(SSL_MODES as readonly string[]).includes(mode))
    throw new ConfigError(
      `${name}: sslmode must be one of ${SSL_MODES.join(', ')}, got ${JSON.stringify(mode)}`,
    );
  return mode as SslMode;
}

/**
 * libpq's sslmode as node's TLS options. `pg` cannot fall back from TLS to plain text, so `allow`
 * and `prefer` connect without TLS (what they do against a server without it, as today's tiers are);
 * `require` encrypts without checking the certificate; `verify-ca` checks the chain only;
 * `verify-full` checks the chain and the host name. `ca` is the sslrootcert file's text, if any.
 */
export function pgSsl(mode: SslMode, ca?: string): false | ConnectionOptions {
  switch (mode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return { rejectUnauthorized: true, ...(ca ? { ca } : {}), checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
  }
}

/**
 * The text of the CA file `name` names (CACHE_CA_FILE for a cache that serves TLS, rediss://;
 * QUEUE_CA_FILE for a broker, amqps://), if it names one.
 */
function caText(name: string, env: Env, readFile?: (path: string) => string): string | undefined {
  const path = get(env, name);
  return path ? rootCertificate(name, 'verify-full', path, readFile) : undefined;
}

/** The text of an sslrootcert file, when TLS is asked for and a file is named. */
function rootCertificate(
  name: string,
  mode: SslMode,
  path: string | undefined,
  readFile?: (path: string) => string,
): string | undefined {
  if (!path || mode === 'disable') return undefined;
  if (!readFile) throw new ConfigError(`${name}: sslrootcert cannot be read here`);
  try {
    return readFile(path);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read sslrootcert ${path}`, { cause: err });
  }
}

/**
 * A `postgresql://user:password@host:port/database?sslmode=...&sslrootcert=...` URL (the format of
 * pgUrl in operator/tiers/postgres-cluster.ts) taken apart; credentials are percent-decoded.
 * `readFile` reads an sslrootcert file (injected so this stays pure).
 */
export function parsePgUrl(name: string, value: string, readFile?: (path: string) => string): PgTarget {
  const url = parseUrl(name, value, ['postgresql:', 'postgres:']);
  const user = decode(name, url.username);
  if (!user) throw new ConfigError(`${name} has no user name`);
  const mode = sslMode(name, url.searchParams.get('sslmode') ?? undefined);
  const ca = rootCertificate(name, mode, url.searchParams.get('sslrootcert') ?? undefined, readFile);
  return {
    host: bareHost(url.hostname),
    port: url.port ? Number(url.port) : 5432,
    user,
    password: decode(name, url.password),
    database: decode(name, url.pathname.replace(/^\//, '')) || user,
    sslmode: mode,
    ssl: pgSsl(mode, ca),
  };
}

/**
 * A `redis://:password@host:6379/0` URL (cacheEntries in operator/tiers/cache.ts), or `rediss://`
 * with `ca`, the CA the server's certificate must chain to (Redis URLs have no parameter for it).
 */
export function parseRedisUrl(name: string, value: string, ca?: string): RedisTarget {
  const url = parseUrl(name, value, ['redis:', 'rediss:']);
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) throw new ConfigError(`${name}: the database must be a number`);
  return {
    url: value,
    host: bareHost(url.hostname),
    port: url.port ? Number(url.port) : 6379,
    db: path === '' ? 0 : Number(path),
    tls: url.protocol === 'rediss:',
    ...(ca && url.protocol === 'rediss:' ? { ca } : {}),
    password: decode(name, url.password),
  };
}

/**
 * An `amqp://user:password@host:5672/%2F` URL (queueEntries in operator/tiers/queue.ts), or `amqps://`
 * with `ca`, the CA the broker's certificate must chain to (AMQP URIs have no parameter for it).
 */
export function parseAmqpUrl(name: string, value: string, ca?: string): AmqpTarget {
  const url = parseUrl(name, value, ['amqp:', 'amqps:']);
  const tls = url.protocol === 'amqps:';
  // AMQP URIs put the vhost in the path, percent-encoded (`/%2F` is the vhost `/`); an empty path is `/`.
  const raw = url.pathname.replace(/^\//, '');
  return {
    url: value,
    host: bareHost(url.hostname),
    port: url.port ? Number(url.port) : tls ? 5671 : 5672,
    vhost: raw === '' ? '/' : decode(name, raw),
    tls,
    ...(ca && tls ? { ca } : {}),
    password: decode(name, url.password),
  };
}

/** Where a server is, for logs and JSON answers: host, port and database, never the login. */
export const describePg = (t: PgTarget) => `${t.host}:${t.port}/${t.database}`;
export const describeRedis = (t: RedisTarget) =>
  `${t.tls ? 'rediss' : 'redis'}://${t.host}:${t.port}/${t.db}`;
export const describeAmqp = (t: AmqpTarget) =>
  `${t.tls ? 'amqps' : 'amqp'}://${t.host}:${t.port}/${encodeURIComponent(t.vhost)}`;

/** A password as it can appear in logs and error texts: raw, and percent-encoded as in its URL. */
function secretForms(password: string): string[] {
  if (!password) return [];
  return [...new Set([password, encodeURIComponent(password)])];
}

function databaseConfig(env: Env, readFile?: (path: string) => string): DatabaseConfig | undefined {
  const write = get(env, 'DATABASE_URL');
  const read = get(env, 'DATABASE_READ_URL');
  if (!write) {
    if (read) throw new ConfigError('DATABASE_READ_URL is set but DATABASE_URL is not');
    return undefined;
  }
  const primary = parsePgUrl('DATABASE_URL', write, readFile);
  return {
    primary,
    replica: read ? parsePgUrl('DATABASE_READ_URL', read, readFile) : primary,
    replicaConfigured: !!read,
  };
}

function sessionConfig(env: Env, cache: RedisTarget | undefined, ca?: string): SessionConfig | undefined {
  const url = get(env, 'SESSION_STORE_URL');
  const store = url ? parseRedisUrl('SESSION_STORE_URL', url, ca) : cache;
  if (!store) return undefined;
  // SESSION_TTL_SECONDS when sessions are on; else the cache's default TTL; a session always expires.
  const cacheTtl = integer(env, 'CACHE_DEFAULT_TTL_SECONDS', 0, 0, 365 * 86400);
  const fallback = cacheTtl > 0 ? cacheTtl : DEFAULT_SESSION_TTL_SECONDS;
  return {
    store,
    ttlSeconds: integer(env, 'SESSION_TTL_SECONDS', fallback, 1, 365 * 86400),
    source: url ? 'SESSION_STORE_URL' : 'CACHE_URL',
  };
}

function shardsConfig(env: Env, readFile?: (path: string) => string): ShardsConfig | undefined {
  const mapPath = get(env, 'SHARD_MAP_PATH');
  if (!mapPath) return undefined;
  const user = get(env, 'SHARDS_USER');
  const password = env.SHARDS_PASSWORD;
  if (!user || !password)
    throw new ConfigError('SHARD_MAP_PATH is set but SHARDS_USER or SHARDS_PASSWORD is not');
  const sslmode = sslMode('SHARDS_SSLMODE', get(env, 'SHARDS_SSLMODE'));
  const ca = rootCertificate('SHARDS_SSLROOTCERT', sslmode, get(env, 'SHARDS_SSLROOTCERT'), readFile);
  return {
    mapPath,
    user,
    password,
    key: get(env, 'SHARD_KEY'),
    sslmode,
    ...(ca ? { ca } : {}),
    reloadMs: integer(env, 'SHARD_MAP_RELOAD_MS', 2000, 100, 3_600_000),
  };
}

function queueName(name: string, value: string): string {
  if (!QUEUE_NAME.test(value))
    throw new ConfigError(`${name} must be 1-200 letters, digits and _ . : -, got ${JSON.stringify(value)}`);
  return value;
}

function defaultQueue(env: Env): string | undefined {
  const one = get(env, 'QUEUE_NAME');
  if (one) return queueName('QUEUE_NAME', one);
  const first = get(env, 'QUEUE_NAMES')
    ?.split(',')
    .map((s) => s.trim())
    .find(Boolean);
  return first ? queueName('QUEUE_NAMES', first) : undefined;
}

function assetsConfig(env: Env): AssetsConfig {
  const base = get(env, 'ASSET_BASE_PATH') ?? '/static';
  const version = get(env, 'ASSET_VERSION');
  if (!ASSET_BASE_PATH.test(base) || base.replace(/\/+$/, '') === '')
    throw new ConfigError(`ASSET_BASE_PATH must be a path below /, got ${JSON.stringify(base)}`);
  if (version !== undefined && !ASSET_VERSION.test(version))
    throw new ConfigError(
      `ASSET_VERSION must be 1-64 letters, digits and . _ -, got ${JSON.stringify(version)}`,
    );
  return {
    basePath: base.replace(/\/+$/, ''),
    version: version ?? 'dev',
    edgeConfigured: version !== undefined,
  };
}

function healthPath(env: Env): string {
  const path = get(env, 'HEALTH_PATH') ?? '/healthz';
  if (!/^\/[\x21-\x7e]*$/.test(path))
    throw new ConfigError(`HEALTH_PATH must be a path, got ${JSON.stringify(path)}`);
  return path;
}

/** The web server's configuration: the connection Secret's entries and the app's own settings. */
export function serverConfig(env: Env, readFile?: (path: string) => string): ServerConfig {
  const cacheCa = caText('CACHE_CA_FILE', env, readFile);
  const cacheUrl = get(env, 'CACHE_URL');
  const cache = cacheUrl ? parseRedisUrl('CACHE_URL', cacheUrl, cacheCa) : undefined;
  const database = databaseConfig(env, readFile);
  const sessions = sessionConfig(env, cache, cacheCa);
  const shards = shardsConfig(env, readFile);
  const queueUrl = get(env, 'QUEUE_URL');
  const queue = queueUrl
    ? {
        broker: parseAmqpUrl('QUEUE_URL', queueUrl, caText('QUEUE_CA_FILE', env, readFile)),
        defaultQueue: defaultQueue(env),
      }
    : undefined;
  const secrets = [
    database?.primary.password,
    database?.replica.password,
    cache?.password,
    sessions?.store.password,
    shards?.password,
    queue?.broker.password,
  ].flatMap((p) => (p ? secretForms(p) : []));
  return {
    appName: get(env, 'SCALABLEAPP_NAME'),
    port: integer(env, 'PORT', 8080, 1, 65535),
    listenAddress: get(env, 'LISTEN_ADDRESS'),
    healthPath: healthPath(env),
    shutdownDelayMs: integer(env, 'SHUTDOWN_DELAY_SECONDS', 5, 0, 300) * 1000,
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_SECONDS', 20, 1, 3600) * 1000,
    cookieSecure: boolean(env, 'COOKIE_SECURE'),
    database,
    cache,
    sessions,
    shards,
    queue,
    assets: assetsConfig(env),
    secrets: [...new Set(secrets)],
  };
}

/** The consumer's configuration: QUEUE_NAME and QUEUE_URL (the consumers tier), CACHE_URL if any. */
export function consumerConfig(env: Env, readFile?: (path: string) => string): ConsumerConfig {
  const name = get(env, 'QUEUE_NAME');
  if (!name)
    throw new ConfigError('QUEUE_NAME is not set (the consumers tier sets it from consumers[].queue)');
  const url = get(env, 'QUEUE_URL');
  if (!url) throw new ConfigError('QUEUE_URL is not set: the app has no queue tier (spec.queue)');
  const broker = parseAmqpUrl('QUEUE_URL', url, caText('QUEUE_CA_FILE', env, readFile));
  const cacheUrl = get(env, 'CACHE_URL');
  const cache = cacheUrl
    ? parseRedisUrl('CACHE_URL', cacheUrl, caText('CACHE_CA_FILE', env, readFile))
    : undefined;
  return {
    appName: get(env, 'SCALABLEAPP_NAME'),
    queueName: queueName('QUEUE_NAME', name),
    broker,
    cache,
    prefetch: integer(env, 'PREFETCH', 10, 1, 10000),
    workMs: integer(env, 'CONSUMER_WORK_MS', 0, 0, 600_000),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_SECONDS', 20, 1, 3600) * 1000,
    healthPort:
      get(env, 'HEALTH_PORT') === undefined ? undefined : integer(env, 'HEALTH_PORT', 0, 1024, 65535),
    secrets: [...new Set([...secretForms(broker.password), ...secretForms(cache?.password ?? '')])],
  };
}

/**
 * `text` with every secret replaced by `***` and the password of any URL in it removed: for logs
 * and error answers, which must never carry a credential whatever a library put in a message.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/]*):([^\s@/]*)@/gi, '$1$2:***@');
  // Longest first, so a secret that contains another is replaced whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length >= 3) out = out.split(s).join('***');
  }
  return out;
}
