// The shards tier: every key lives on the shard the operator's consistent-hash ring names. The app
// routes with the project's own module, operator/sharding/router.ts (copy it with ring.ts and
// shard-map.ts into your app, or import it), from the shard map the operator mounts at SHARD_MAP_PATH;
// the file is re-read every couple of seconds, so a new map (a reshard's flip) is followed without a
// restart. One small pool per shard (primary, and read-only Service when asked).
//
// Route by the key's text, as the data mover does (docs/sharding.md). During a reshard the keys that
// move are fenced on their old shard: a write there fails with SQLSTATE SAMOV until the new map is
// read, so on SAMOV we re-read the map at once and retry once.
import pg from 'pg';
import {
  watchShardMap,
  type ShardMapWatch,
  type ShardRoute,
  type ShardRouter,
} from '../../operator/sharding/router.ts';
import { pgSsl, type PgTarget, type ShardsConfig } from './config.ts';
import { createPool, SERVED_BY, servedBy, tierFailure, type ServedBy } from './database.ts';
import { TierError } from './http.ts';
import { errorText, type Logger } from './log.ts';

export const SHARD_TABLE = 'demo_shard_items';
/** What a fenced write answers (operator/dataplane/postgres/reshard.ts, FENCED_SQLSTATE). */
const FENCED = 'SAMOV';
export const MAX_KEY_LENGTH = 256;

/** Where to connect for a key's shard: its primary, or with `read` its read-only Service if the map names one. */
export function shardTarget(
  route: ShardRoute,
  login: Pick<ShardsConfig, 'user' | 'password' | 'sslmode' | 'ca'>,
  read = false,
): PgTarget {
  return {
    host: read ? (route.readHost ?? route.host) : route.host,
    port: route.port,
    database: route.database,
    user: login.user,
    password: login.password,
    sslmode: login.sslmode,
    ssl: pgSsl(login.sslmode, login.ca),
  };
}

/** A key from a URL, checked before it reaches the ring or SQL (both would take anything, but why). */
export function checkShardKey(key: string): string {
  if (key.length === 0 || key.length > MAX_KEY_LENGTH)
    throw new TierError('shards', 400, `the key must be 1-${MAX_KEY_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key))
    throw new TierError('shards', 400, 'the key must not contain control characters');
  return key;
}

/** The table's DDL with the sharding column named as the map says (e.g. user_id): what operator/reshard-main.ts moves. */
export function shardTableDdl(keyColumn: string): string {
  return `CREATE TABLE IF NOT EXISTS ${SHARD_TABLE} (
    ${pg.escapeIdentifier(keyColumn)} text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`;
}

export type ShardAnswer = {
  key: string;
  shard: string;
  /** The ring version the key was routed by. */
  ringVersion: number;
  /** Where the shard is (host:port/database), never the login. */
  server: string;
} & ServedBy;

export class Shards {
  readonly config: ShardsConfig;
  readonly #log: Logger;
  readonly #secrets: readonly string[];
  #watch: Promise<ShardMapWatch> | undefined;
  readonly #pools = new Map<string, pg.Pool>();
  /** Shards (by name and address) where the table is known to exist. */
  readonly #tables = new Map<string, Promise<void>>();
  #closed = false;

  constructor(config: ShardsConfig, log: Logger, secrets: readonly string[]) {
    this.config = config;
    this.#log = log;
    this.#secrets = secrets;
  }

  /** The map watch, started on first use and again after a failed start (the file may appear later). */
  async router(): Promise<ShardRouter> {
    this.#watch ??= watchShardMap(
      this.config.mapPath,
      (router) => {
        this.#log.info('shard map changed', {
          ringVersion: router.version,
          shards: router.map.shards.length,
        });
        this.#dropUnusedPools(router);
      },
      {
        intervalMs: this.config.reloadMs,
        onError: (err) =>
          this.#log.warn('shard map not usable; routing by the last good one', { error: err.message }),
      },
    );
    const watch = this.#watch;
    try {
      return (await watch).router;
    } catch (err) {
      if (this.#watch === watch) this.#watch = undefined;
      throw new TierError(
        'shards',
        503,
        `cannot read the shard map at ${this.config.mapPath}: ${errorText(err, this.#secrets)}`,
        {
          cause: err,
        },
      );
    }
  }

  #pool(t: PgTarget): pg.Pool {
    const id = `${t.host}:${t.port}/${t.database}`;
    let pool = this.#pools.get(id);
    if (!pool) {
      pool = createPool(t, this.#log, `shard-${id}`, { max: 3 });
      this.#pools.set(id, pool);
    }
    return pool;
  }

  /** Pools of addresses the new map no longer names are closed (a shard that was removed or moved). */
  #dropUnusedPools(router: ShardRouter): void {
    const m = router.map;
    const live = new Set(
      [...m.shards, ...(m.pending?.shards ?? [])].flatMap((s) => [
        `${s.host}:${s.port}/${s.database}`,
        ...(s.readHost ? [`${s.readHost}:${s.port}/${s.database}`] : []),
      ]),
    );
    for (const [id, pool] of this.#pools) {
      if (live.has(id)) continue;
      this.#pools.delete(id);
      void pool.end().catch(() => undefined);
    }
  }

  #ensureTable(route: ShardRoute, keyColumn: string, pool: pg.Pool): Promise<void> {
    const id = `${route.shard}@${route.host}:${route.port}/${route.database}`;
    let done = this.#tables.get(id);
    if (!done) {
      done = pool.query(shardTableDdl(keyColumn)).then(
        () => undefined,
        (err: { code?: string }) => {
          if (err.code === '23505' || err.code === '42P07') return;
          this.#tables.delete(id);
          throw err;
        },
      );
      this.#tables.set(id, done);
    }
    return done;
  }

  /** Upserts `value` under `key` on the key's shard (its primary). */
  async write(key: string, value: string): Promise<ShardAnswer & { value: string }> {
    if (this.#closed) throw new TierError('shards', 503, 'shutting down');
    checkShardKey(key);
    for (let attempt = 0; ; attempt++) {
      const router = await this.router();
      const route = router.route(key);
      const target = shardTarget(route, this.config);
      const pool = this.#pool(target);
      const column = pg.escapeIdentifier(router.map.key);
      try {
        await this.#ensureTable(route, router.map.key, pool);
        const { rows } = await pool.query<{ value: string } & Served>(
          `INSERT INTO ${SHARD_TABLE} (${column}, value) VALUES ($1, $2)
           ON CONFLICT (${column}) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
           RETURNING value, ${SERVED_BY}`,
          [key, value],
        );
        return { ...answer(key, route, target), value: rows[0]!.value, ...servedBy(rows[0]!) };
      } catch (err) {
        // Fenced for a reshard: the map that routes the key elsewhere is (about to be) published.
        if ((err as { code?: string }).code === FENCED && attempt === 0) {
          await (await this.#watch)?.check().catch(() => false);
          continue;
        }
        throw tierFailure('shards', `writing to shard ${route.shard}`, err, this.#secrets);
      }
    }
  }

  /** Reads `key` from its shard: the primary, or with `read` the shard's read-only Service. */
  async read(
    key: string,
    read = false,
  ): Promise<ShardAnswer & { value: string | undefined; updatedAt?: string }> {
    if (this.#closed) throw new TierError('shards', 503, 'shutting down');
    checkShardKey(key);
    const router = await this.router();
    const route = router.route(key);
    const target = shardTarget(route, this.config, read);
    const pool = this.#pool(target);
    const column = pg.escapeIdentifier(router.map.key);
    try {
      const { rows } = await pool.query<{ value: string | null; updated_at: Date | null } & Served>(
        `SELECT t.value, t.updated_at, ${SERVED_BY}
           FROM (SELECT 1) AS one LEFT JOIN ${SHARD_TABLE} t ON t.${column} = $1`,
        [key],
      );
      const row = rows[0]!;
      return {
        ...answer(key, route, target),
        value: row.value ?? undefined,
        ...(row.updated_at ? { updatedAt: row.updated_at.toISOString() } : {}),
        ...servedBy(row),
      };
    } catch (err) {
      if ((err as { code?: string }).code === '42P01')
        return {
          ...answer(key, route, target),
          value: undefined,
          inRecovery: read,
          serverAddr: null,
          serverPort: null,
        };
      throw tierFailure('shards', `reading from shard ${route.shard}`, err, this.#secrets);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const watch = this.#watch;
    this.#watch = undefined;
    await watch?.then((w) => w.close()).catch(() => undefined);
    await Promise.all([...this.#pools.values()].map((p) => p.end().catch(() => undefined)));
    this.#pools.clear();
  }
}

type Served = { in_recovery: boolean; server_addr: string | null; server_port: number | null };

const answer = (key: string, route: ShardRoute, t: PgTarget) => ({
  key,
  shard: route.shard,
  ringVersion: route.version,
  server: `${t.host}:${t.port}/${t.database}`,
});
