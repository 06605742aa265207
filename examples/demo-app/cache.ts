// The cache tier (Redis protocol, node-redis): sessions for the web tier and the set of consumed
// message ids the consumer writes and the web tier reads.
//
// Failover: the operator repoints the cache Service at the new primary. node-redis reconnects by
// itself when the connection drops (with backoff, capped at 2 s here); a command sent meanwhile waits
// about two seconds for the reconnect and then fails (no offline queue, so a request never hangs on a
// cache that is away), and every command has a timeout. A demoted primary may keep our connection open and answer READONLY: then the client is
// thrown away, so the next command connects anew, through the Service, to the new primary.
import { once } from 'node:events';
import { createClient } from 'redis';
import { describeRedis, type RedisTarget } from './config.ts';
import { TierError, within, type Tier } from './http.ts';
import { errorText, type Logger } from './log.ts';
import { sessionKey, type SessionRecord } from './sessions.ts';

const COMMAND_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;
/** How long the consumed set of a queue lives after its last message (it is for tests and demos). */
export const CONSUMED_TTL_SECONDS = 86400;

function newClient(target: RedisTarget) {
  return createClient({
    url: target.url,
    disableOfflineQueue: true,
    commandOptions: { timeout: COMMAND_TIMEOUT_MS },
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // 50 ms, 100 ms, ... up to 2 s between attempts, for ever: the cache comes back, we follow.
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
      // rediss://: the certificate checked against the app's CA and the URL's host name.
      ...(target.tls
        ? { tls: true as const, ...(target.ca ? { ca: target.ca } : {}), servername: target.host }
        : {}),
    },
  });
}
type Client = ReturnType<typeof newClient>;

/** The key of the set of message ids consumed from a queue. */
export const consumedKey = (queue: string) => `demo:consumed:${queue}`;

export class RedisTier {
  readonly target: RedisTarget;
  readonly #tier: Tier;
  readonly #log: Logger;
  readonly #secrets: readonly string[];
  #client: Client | undefined;
  #closed = false;

  constructor(target: RedisTarget, tier: Tier, log: Logger, secrets: readonly string[]) {
    this.target = target;
    this.#tier = tier;
    this.#log = log;
    this.#secrets = secrets;
  }

  #open(): Client {
    if (this.#client) return this.#client;
    const client = newClient(this.target);
    client.on('error', (err: unknown) =>
      this.#log.throttled(`redis-${this.#tier}`, 10_000, 'cache connection error', {
        tier: this.#tier,
        server: describeRedis(this.target),
        error: errorText(err, this.#secrets),
      }),
    );
    // The strategy never gives up, so this rejects only on a setting the server refuses (a wrong
    // password): then the next use starts over with a new client.
    client.connect().catch(() => this.#reset(client));
    this.#client = client;
    return client;
  }

  /** Throws the client away (its next use connects anew); in-flight commands fail. */
  #reset(client: Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.destroy();
  }

  /**
   * Waits for a client that is (re)connecting, for a short while: a request made just as the cache
   * comes back is served, one made while it is away fails within about two seconds. An attempt that
   * fails meanwhile (its 'error' event) ends the wait at once, with its reason.
   */
  async #ready(client: Client): Promise<void> {
    if (client.isReady) return;
    try {
      await once(client, 'ready', { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS + 500) });
    } catch (err) {
      const why = (err as Error).name === 'AbortError' ? 'timed out' : errorText(err, this.#secrets);
      throw new TierError(this.#tier, 503, `connecting to the cache failed: ${why}`, { cause: err });
    }
  }

  /** Runs commands on the client, as a 503 naming the tier when the cache cannot answer. */
  async run<T>(what: string, fn: (c: Client) => Promise<T>): Promise<T> {
    if (this.#closed) throw new TierError(this.#tier, 503, 'shutting down');
    const client = this.#open();
    try {
      await this.#ready(client);
      return await fn(client);
    } catch (err) {
      if (/^READONLY\b/.test((err as Error)?.message ?? '')) this.#reset(client);
      if (err instanceof TierError) throw err;
      throw new TierError(this.#tier, 503, `${what} failed: ${errorText(err, this.#secrets)}`, {
        cause: err,
      });
    }
  }

  async ping(): Promise<string> {
    return this.run('ping', (c) => c.ping());
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    // QUIT-like: sends what is queued, then closes; a cache that is away would make it wait, so bounded.
    await within(this.#tier, 2000, 'closing the cache connection', client.close()).catch(() =>
      client.destroy(),
    );
  }
}

/** Sessions under `demo:session:<id>`, expiring after the TTL; a read slides the expiry. */
export class SessionStore {
  readonly #redis: RedisTier;
  readonly ttlSeconds: number;

  constructor(redis: RedisTier, ttlSeconds: number) {
    this.#redis = redis;
    this.ttlSeconds = ttlSeconds;
  }

  async create(id: string, record: SessionRecord): Promise<void> {
    await this.#redis.run('storing the session', (c) =>
      c.set(sessionKey(id), JSON.stringify(record), { expiration: { type: 'EX', value: this.ttlSeconds } }),
    );
  }

  /** The session, its expiry renewed; undefined when it expired or never existed. */
  async get(id: string): Promise<SessionRecord | undefined> {
    const text = await this.#redis.run('reading the session', (c) =>
      c.getEx(sessionKey(id), { type: 'EX', value: this.ttlSeconds }),
    );
    if (text === null || text === undefined) return undefined;
    try {
      return JSON.parse(String(text)) as SessionRecord;
    } catch {
      return undefined;
    }
  }

  async delete(id: string): Promise<boolean> {
    return (await this.#redis.run('deleting the session', (c) => c.del(sessionKey(id)))) > 0;
  }
}

/** Marks a message id consumed (the consumer), and tells whether one was (the web tier). */
export class ConsumedLog {
  readonly #redis: RedisTier;

  constructor(redis: RedisTier) {
    this.#redis = redis;
  }

  async add(queue: string, id: string): Promise<void> {
    const key = consumedKey(queue);
    await this.#redis.run('recording the consumed message', (c) =>
      c.multi().sAdd(key, id).expire(key, CONSUMED_TTL_SECONDS).exec(),
    );
  }

  async has(queue: string, id: string): Promise<boolean> {
    const n = await this.#redis.run('reading the consumed messages', (c) =>
      c.sIsMember(consumedKey(queue), id),
    );
    return Number(n) === 1;
  }
}
