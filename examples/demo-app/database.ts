// The database tier: writes through DATABASE_URL (the read-write Service, always the primary), reads
// through DATABASE_READ_URL (the read-only Service over the replicas). Each URL gets a small pool.
//
// Surviving a failover takes no special code, only the right settings: a pool drops a connection on
// any error (pg-pool releases a client with the error, which destroys it), so the next query opens a
// new one through the Service, which the operator has repointed at the new primary; short connect and
// statement timeouts turn a dead server into a quick 503 instead of a hung request; connections are
// recycled every few minutes so reads spread over replicas that joined since.
import pg from 'pg';
import { describePg, type DatabaseConfig, type PgTarget } from './config.ts';
import { TierError, type Tier } from './http.ts';
import { errorText, type Logger } from './log.ts';

export const ITEMS_TABLE = 'demo_items';

export type PoolOptions = { max?: number; statementTimeoutMs?: number; connectTimeoutMs?: number };

/** A pool for one server (or Service) with the timeouts above; its errors are logged, never thrown. */
export function createPool(target: PgTarget, log: Logger, logKey: string, o: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    ssl: target.ssl,
    application_name: 'demo-app',
    max: o.max ?? 5,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 3000,
    idleTimeoutMillis: 10_000,
    maxLifetimeSeconds: 300,
    statement_timeout: o.statementTimeoutMs ?? 5000,
    // Also bounds a query whose server vanished without a word (no RST: a node that lost power).
    query_timeout: (o.statementTimeoutMs ?? 5000) + 1000,
    keepAlive: true,
  });
  // An idle client whose server went away: the pool has already dropped it; without a listener the
  // 'error' event would crash the process.
  pool.on('error', (err) =>
    log.throttled(logKey, 10_000, 'idle connection lost', {
      server: describePg(target),
      error: errorText(err, target.password ? [target.password] : []),
    }),
  );
  return pool;
}

/** SQLSTATEs that say "this server cannot take writes now": a demoted primary, a server shutting down. */
const UNAVAILABLE_STATES = new Set(['25006', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08006']);

/** A driver or server error as a 503 naming the tier (the message is redacted by whoever sends it). */
export function tierFailure(tier: Tier, what: string, err: unknown, secrets: readonly string[]): TierError {
  if (err instanceof TierError) return err;
  const code = (err as { code?: unknown }).code;
  const state = typeof code === 'string' && UNAVAILABLE_STATES.has(code) ? ' (server unavailable)' : '';
  return new TierError(tier, 503, `${what} failed${state}: ${errorText(err, secrets)}`, { cause: err });
}

export type ServedBy = {
  /** pg_is_in_recovery(): true on a streaming replica, false on the primary. */
  inRecovery: boolean;
  /** inet_server_addr() and inet_server_port(): the server that answered. */
  serverAddr: string | null;
  serverPort: number | null;
};

export type Item = { id: string; value: string; createdAt: string };

/** Whether an id from a URL is an item id (a bigserial), before it reaches SQL. */
export const isItemId = (id: string) => /^[1-9]\d{0,18}$/.test(id);

export class Database {
  readonly config: DatabaseConfig;
  readonly #primary: pg.Pool;
  readonly #replica: pg.Pool;
  readonly #secrets: readonly string[];
  #table: Promise<void> | undefined;

  constructor(config: DatabaseConfig, log: Logger, secrets: readonly string[]) {
    this.config = config;
    this.#secrets = secrets;
    this.#primary = createPool(config.primary, log, 'db-primary');
    this.#replica = config.replicaConfigured ? createPool(config.replica, log, 'db-replica') : this.#primary;
  }

  /** CREATE TABLE IF NOT EXISTS, once per process; two pods racing to create it both succeed. */
  #ensureTable(): Promise<void> {
    this.#table ??= this.#primary
      .query(
        `CREATE TABLE IF NOT EXISTS ${ITEMS_TABLE} (
           id bigserial PRIMARY KEY,
           value text NOT NULL,
           created_at timestamptz NOT NULL DEFAULT now()
         )`,
      )
      .then(
        () => undefined,
        (err: { code?: string }) => {
          // 23505/42P07: another pod created it between our check and our create.
          if (err.code === '23505' || err.code === '42P07') return;
          this.#table = undefined;
          throw err;
        },
      );
    return this.#table;
  }

  /** Inserts a row through the primary; resolves to its id and the server that took it. */
  async insert(value: string): Promise<Item & ServedBy> {
    try {
      await this.#ensureTable();
      const { rows } = await this.#primary.query<Row>(
        `INSERT INTO ${ITEMS_TABLE} (value) VALUES ($1)
         RETURNING id::text, value, created_at, ${SERVED_BY}`,
        [value],
      );
      return fromRow(rows[0]!);
    } catch (err) {
      throw tierFailure('database', 'writing to the primary', err, this.#secrets);
    }
  }

  /** Reads a row through the primary or the read-only Service; undefined when that server lacks it. */
  async read(id: string, from: 'primary' | 'replica'): Promise<{ item: Item | undefined } & ServedBy> {
    const pool = from === 'replica' ? this.#replica : this.#primary;
    try {
      // One statement, so the row and "who answered" come from the same server (and the same snapshot).
      const { rows } = await pool.query<Row>(
        `SELECT t.id::text, t.value, t.created_at, ${SERVED_BY}
           FROM (SELECT 1) AS one LEFT JOIN ${ITEMS_TABLE} t ON t.id = $1::bigint`,
        [id],
      );
      const row = rows[0]!;
      const item =
        row.id === null
          ? undefined
          : { id: row.id, value: row.value!, createdAt: row.created_at!.toISOString() };
      return { item, ...servedBy(row) };
    } catch (err) {
      // The table does not exist yet (nothing was ever written, or not yet replicated): not found.
      if ((err as { code?: string }).code === '42P01') {
        const who = await pool.query<Row>(`SELECT ${SERVED_BY}`).catch(() => undefined);
        const row = who?.rows[0];
        return {
          item: undefined,
          ...(row ? servedBy(row) : { inRecovery: from === 'replica', serverAddr: null, serverPort: null }),
        };
      }
      throw tierFailure('database', `reading from the ${from}`, err, this.#secrets);
    }
  }

  /** A trivial query on each pool, for /readyz. */
  async ping(): Promise<{ primary: ServedBy; replica: ServedBy }> {
    try {
      const [p, r] = await Promise.all(
        [this.#primary, this.#replica].map((pool) => pool.query<Row>(`SELECT ${SERVED_BY}`)),
      );
      return { primary: servedBy(p!.rows[0]!), replica: servedBy(r!.rows[0]!) };
    } catch (err) {
      throw tierFailure('database', 'ping', err, this.#secrets);
    }
  }

  async close(): Promise<void> {
    await Promise.all([
      this.#primary.end(),
      this.#replica === this.#primary ? undefined : this.#replica.end(),
    ]).catch(() => undefined);
  }
}

/** The columns that say which server answered: select them with the data, in the same statement. */
export const SERVED_BY = `pg_is_in_recovery() AS in_recovery, host(inet_server_addr()) AS server_addr,
  inet_server_port() AS server_port`;

type Row = {
  id: string | null;
  value: string | null;
  created_at: Date | null;
  in_recovery: boolean;
  server_addr: string | null;
  server_port: number | null;
};

export const servedBy = (r: Pick<Row, 'in_recovery' | 'server_addr' | 'server_port'>): ServedBy => ({
  inRecovery: r.in_recovery,
  serverAddr: r.server_addr,
  serverPort: r.server_port,
});

const fromRow = (r: Row): Item & ServedBy => ({
  id: r.id!,
  value: r.value!,
  createdAt: r.created_at!.toISOString(),
  ...servedBy(r),
});
