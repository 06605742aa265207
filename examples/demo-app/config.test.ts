// The demo reads exactly what the operator writes: the env here is the connection Secret's entries as
// the builders produce them (connectionEntries) for the full-stack sample, not a hand-made copy.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { connectionEntries } from '../../operator/tiers/connection.ts';
import { steadyCachePassword, type ObservedFacts } from '../../operator/tiers/objects.ts';
import { CA_FILE } from '../../operator/tiers/tls.ts';
import { TEST_TLS } from '../../operator/tiers/testdata/facts.ts';
import {
  ConfigError,
  consumerConfig,
  describeAmqp,
  describePg,
  describeRedis,
  parseAmqpUrl,
  parsePgUrl,
  parseRedisUrl,
  pgSsl,
  redact,
  serverConfig,
} from './config.ts';

const sample = parse(
  readFileSync(new URL('../../manifests/samples/12-full-stack.yaml', import.meta.url), 'utf8'),
);
const app = parseApp(sample.spec, 'millions', 'prod');
// Passwords with every character that needs percent-encoding in a URL.
const PASSWORDS = { cache: 'c:a@c/h e%', db: 'd b\'"@:/x', shard: 's#h?a&r=d', queue: 'q "u"\\e:@/x' };
const facts: ObservedFacts = {
  gatewayApi: false,
  cachePassword: steadyCachePassword(PASSWORDS.cache),
  cacheLogins: { operator: 'op', replication: 'repl' },
  dbCredentials: { superuser: 'su', replication: 'rep', app: PASSWORDS.db },
  shardCredentials: { superuser: 'su', replication: 'rep', app: PASSWORDS.shard },
  tls: TEST_TLS,
  queueCredentials: {
    username: 'scalableapp',
    password: PASSWORDS.queue,
    monitoringUsername: 'monitor',
    monitoringPassword: 'm',
    erlangCookie: 'cookie',
  },
};
const env = connectionEntries(app, facts);

/** The app's pods find the CA where the operator mounts it (the URLs' sslrootcert); nothing else. */
const readCa = (path: string) => {
  if (path !== CA_FILE) throw new Error(`ENOENT: ${path}`);
  return 'the-app-ca';
};
const VERIFIED = { rejectUnauthorized: true, ca: 'the-app-ca' };

describe('serverConfig, from the connection Secret the operator builds', () => {
  const c = serverConfig(env, readCa);

  it('finds every tier of the full-stack sample', () => {
    expect(c.appName).toBe('millions');
    expect(describePg(c.database!.primary)).toBe('millions-db-rw.prod.svc:5432/app');
    expect(describePg(c.database!.replica)).toBe('millions-db-ro.prod.svc:5432/app');
    expect(c.database!.replicaConfigured).toBe(true);
    expect(describeRedis(c.cache!)).toBe('rediss://millions-cache.prod.svc:6379/0');
    // The cache's certificate is checked against the app's CA, read from the file CACHE_CA_FILE names.
    expect(c.cache!.ca).toBe('the-app-ca');
    expect(c.sessions!.store.ca).toBe('the-app-ca');
    expect(c.sessions).toMatchObject({ source: 'SESSION_STORE_URL', ttlSeconds: 300 });
    expect(c.shards).toMatchObject({
      mapPath: '/etc/scalableapp/shard-map/shard-map.json',
      user: 'app',
      key: 'user_id',
      sslmode: 'verify-full',
      ca: 'the-app-ca',
    });
    expect(describeAmqp(c.queue!.broker)).toBe('amqps://millions-mq.prod.svc:5672/%2F');
    // The broker's certificate too, from the file QUEUE_CA_FILE names.
    expect(c.queue!.broker.ca).toBe('the-app-ca');
    expect(c.assets).toEqual({ basePath: '/static', version: '2026-11-22', edgeConfigured: true });
  });

  it('decodes every password exactly', () => {
    expect(c.database!.primary).toMatchObject({ user: 'app', password: PASSWORDS.db, ssl: VERIFIED });
    expect(c.database!.replica.ssl).toEqual(VERIFIED);
    expect(c.database!.replica.password).toBe(PASSWORDS.db);
    expect(c.cache!.password).toBe(PASSWORDS.cache);
    expect(c.shards!.password).toBe(PASSWORDS.shard);
    expect(c.queue!.broker).toMatchObject({ vhost: '/', password: PASSWORDS.queue, tls: true });
  });

  it('collects every password, raw and percent-encoded, for redaction', () => {
    for (const p of Object.values(PASSWORDS)) {
      expect(c.secrets).toContain(p);
      expect(c.secrets).toContain(encodeURIComponent(p));
    }
  });

  it('uses the defaults of the web tier: port 8080, /healthz, every address', () => {
    expect([c.port, c.healthPath, c.listenAddress]).toEqual([8080, '/healthz', undefined]);
  });

  it('gives the queue tier no default queue unless the app names one', () => {
    expect(c.queue!.defaultQueue).toBeUndefined();
    expect(serverConfig({ ...env, QUEUE_NAMES: ' photos, emails' }, readCa).queue!.defaultQueue).toBe(
      'photos',
    );
    expect(
      serverConfig({ ...env, QUEUE_NAME: 'emails', QUEUE_NAMES: 'photos' }, readCa).queue!.defaultQueue,
    ).toBe('emails');
  });
});

describe('serverConfig, tier by tier', () => {
  it('starts with no tier at all (the smallest ScalableApp is a web tier alone)', () => {
    const c = serverConfig({ SCALABLEAPP_NAME: 'shop', WEB_URL: 'http://shop-web.prod.svc' });
    expect(c).toMatchObject({
      database: undefined,
      cache: undefined,
      sessions: undefined,
      shards: undefined,
      queue: undefined,
      assets: { basePath: '/static', version: 'dev', edgeConfigured: false },
      secrets: [],
    });
  });

  it('treats an empty entry as absent', () => {
    expect(serverConfig({ DATABASE_URL: '', CACHE_URL: '  ' })).toMatchObject({
      database: undefined,
      cache: undefined,
    });
  });

  it('reads from the primary when there is no DATABASE_READ_URL, and refuses a read URL alone', () => {
    const c = serverConfig({ DATABASE_URL: 'postgresql://app:pw@db:5432/app' });
    expect(c.database!.replica).toEqual(c.database!.primary);
    expect(c.database!.replicaConfigured).toBe(false);
    expect(() => serverConfig({ DATABASE_READ_URL: 'postgresql://app:pw@db/app' })).toThrow(
      /DATABASE_URL is not/,
    );
  });

  it('keeps sessions in the cache when the app has a cache but no session store entries', () => {
    const c = serverConfig({ CACHE_URL: 'redis://:pw@cache:6379/0', CACHE_DEFAULT_TTL_SECONDS: '120' });
    expect(c.sessions).toMatchObject({ source: 'CACHE_URL', ttlSeconds: 120 });
    // A cache without a default TTL (0): sessions still expire, after a day.
    const noTtl = serverConfig({ CACHE_URL: 'redis://:pw@cache:6379/0', CACHE_DEFAULT_TTL_SECONDS: '0' });
    expect(noTtl.sessions!.ttlSeconds).toBe(86400);
  });

  it('takes SESSION_TTL_SECONDS over the cache default', () => {
    const c = serverConfig({
      CACHE_URL: 'redis://:pw@cache:6379/0',
      SESSION_STORE_URL: 'redis://:pw@cache:6379/0',
      SESSION_TTL_SECONDS: '900',
      CACHE_DEFAULT_TTL_SECONDS: '300',
    });
    expect(c.sessions).toMatchObject({ source: 'SESSION_STORE_URL', ttlSeconds: 900 });
  });

  it('needs the shard login with the shard map', () => {
    expect(() => serverConfig({ SHARD_MAP_PATH: '/etc/map.json' })).toThrow(/SHARDS_USER or SHARDS_PASSWORD/);
  });

  it('serves assets under ASSET_BASE_PATH, without a trailing slash', () => {
    expect(serverConfig({ ASSET_BASE_PATH: '/assets/', ASSET_VERSION: 'v7' }).assets).toEqual({
      basePath: '/assets',
      version: 'v7',
      edgeConfigured: true,
    });
    expect(() => serverConfig({ ASSET_BASE_PATH: '/' })).toThrow(ConfigError);
    expect(() => serverConfig({ ASSET_VERSION: 'a b' })).toThrow(/ASSET_VERSION/);
  });

  it('reads the app settings and rejects nonsense, naming the variable', () => {
    const c = serverConfig({
      PORT: '9090',
      LISTEN_ADDRESS: '127.0.0.1',
      HEALTH_PATH: '/livez',
      SHUTDOWN_DELAY_SECONDS: '0',
      SHUTDOWN_TIMEOUT_SECONDS: '3',
      COOKIE_SECURE: 'true',
    });
    expect(c).toMatchObject({
      port: 9090,
      listenAddress: '127.0.0.1',
      healthPath: '/livez',
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 3000,
      cookieSecure: true,
    });
    expect(() => serverConfig({ PORT: '80x' })).toThrow(/PORT must be a whole number/);
    expect(() => serverConfig({ PORT: '70000' })).toThrow(/PORT/);
    expect(() => serverConfig({ COOKIE_SECURE: 'maybe' })).toThrow(/COOKIE_SECURE/);
    expect(() => serverConfig({ QUEUE_URL: 'amqp://u:p@mq/%2F', QUEUE_NAME: 'bad name' })).toThrow(
      /QUEUE_NAME/,
    );
  });

  it('never puts a password into a configuration error', () => {
    for (const bad of [
      'mysql://app:hunter22@db/app',
      'postgresql://app:hunter22@/app',
      'not a url hunter22',
    ]) {
      let message = '';
      try {
        serverConfig({ DATABASE_URL: bad });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/DATABASE_URL/);
      expect(message).not.toContain('hunter22');
    }
  });
});

describe('consumerConfig', () => {
  it('reads QUEUE_NAME, QUEUE_URL and the cache from what the consumers tier gives the pod', () => {
    const c = consumerConfig({ ...env, QUEUE_NAME: 'photos' }, readCa);
    expect(c).toMatchObject({ queueName: 'photos', prefetch: 10, workMs: 0, shutdownTimeoutMs: 20_000 });
    expect(c.cache).toMatchObject({ tls: true, ca: 'the-app-ca' });
    expect(c.broker).toMatchObject({ tls: true, ca: 'the-app-ca' });
    expect(c.broker.password).toBe(PASSWORDS.queue);
    expect(c.cache!.password).toBe(PASSWORDS.cache);
    expect(c.secrets).toEqual(expect.arrayContaining([PASSWORDS.queue, PASSWORDS.cache]));
  });

  it('needs a queue and a broker; the cache is optional', () => {
    expect(() => consumerConfig({ QUEUE_URL: 'amqp://u:p@mq/%2F' })).toThrow(/QUEUE_NAME/);
    expect(() => consumerConfig({ QUEUE_NAME: 'photos' })).toThrow(/QUEUE_URL/);
    expect(
      consumerConfig({ QUEUE_NAME: 'photos', QUEUE_URL: 'amqp://u:p@mq/%2F', PREFETCH: '1' }),
    ).toMatchObject({
      cache: undefined,
      prefetch: 1,
    });
  });

  it('serves a health endpoint only when HEALTH_PORT names an unprivileged port', () => {
    const base = { QUEUE_NAME: 'photos', QUEUE_URL: 'amqp://u:p@mq/%2F' };
    expect(consumerConfig(base).healthPort).toBeUndefined();
    expect(consumerConfig({ ...base, HEALTH_PORT: '8081' }).healthPort).toBe(8081);
    expect(() => consumerConfig({ ...base, HEALTH_PORT: '80' })).toThrow(/HEALTH_PORT/);
    expect(() => consumerConfig({ ...base, HEALTH_PORT: 'x' })).toThrow(/HEALTH_PORT/);
  });
});

describe('URL formats', () => {
  it('takes a postgres URL apart, with the database defaulting to the user', () => {
    expect(parsePgUrl('X', 'postgres://bob@[::1]/')).toMatchObject({
      host: '::1',
      port: 5432,
      user: 'bob',
      password: '',
      database: 'bob',
      sslmode: 'disable',
    });
  });

  it('maps libpq sslmodes onto TLS options, reading sslrootcert through the given reader', () => {
    const read = (path: string) => `CA from ${path}`;
    expect(parsePgUrl('X', 'postgresql://a:b@h/d?sslmode=require').ssl).toEqual({
      rejectUnauthorized: false,
    });
    const full = parsePgUrl('X', 'postgresql://a:b@h/d?sslmode=verify-full&sslrootcert=/ca.crt', read);
    expect(full.ssl).toEqual({ rejectUnauthorized: true, ca: 'CA from /ca.crt' });
    const ca = parsePgUrl('X', 'postgresql://a:b@h/d?sslmode=verify-ca&sslrootcert=/ca.crt', read).ssl;
    expect(ca).toMatchObject({ rejectUnauthorized: true, ca: 'CA from /ca.crt' });
    expect((ca as { checkServerIdentity: () => unknown }).checkServerIdentity()).toBeUndefined();
    expect(pgSsl('prefer')).toBe(false);
    expect(() => parsePgUrl('X', 'postgresql://a:b@h/d?sslmode=sometimes')).toThrow(/sslmode must be one of/);
  });

  it('knows rediss:// and amqps:// as TLS', () => {
    expect(parseRedisUrl('C', 'rediss://:p@cache:6380/2')).toMatchObject({ tls: true, port: 6380, db: 2 });
    expect(() => parseRedisUrl('C', 'redis://:p@cache/x')).toThrow(/database must be a number/);
    expect(parseAmqpUrl('Q', 'amqps://u:p@mq')).toMatchObject({ tls: true, port: 5671, vhost: '/' });
    expect(parseAmqpUrl('Q', 'amqp://u:p@mq:5672/shop')).toMatchObject({ vhost: 'shop' });
  });
});

describe('redact', () => {
  it('removes passwords from URLs and every known secret, raw or encoded', () => {
    const secrets = ['s3cr3t@', encodeURIComponent('s3cr3t@')];
    expect(redact('connect amqp://user:pa55@mq:5672/%2F failed', [])).toBe(
      'connect amqp://user:***@mq:5672/%2F failed',
    );
    expect(redact('auth s3cr3t@ and s3cr3t%40 refused', secrets)).toBe('auth *** and *** refused');
    expect(redact('nothing here', secrets)).toBe('nothing here');
  });
});
