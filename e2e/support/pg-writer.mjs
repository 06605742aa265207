// A client that writes through the read-write Service for a bounded time and says which writes were
// acknowledged. It runs inside a pod of the demo image (its /app/node_modules has `pg`), fed on stdin
// by e2e/support/pg-load.ts: `node --input-type=module -` with DATABASE_URL from the connection Secret,
// after writer-common.mjs (ranges, writeLoop).
//
// With SHARD_SERVICE (and SHARD_DATABASE) it writes to that shard instead, with SHARDS_USER and
// SHARDS_PASSWORD from the same Secret.
//
// Modes (WRITER_MODE):
//   write  - one row per attempt, ids 1, 2, ... for WRITE_SECONDS; a commit counts as acknowledged
//            only when the server answered it. Prints one JSON line: the acknowledged ids as ranges
//            with the time of each acknowledgement (ms since the epoch, in id order), the attempts,
//            the failed attempts, and the longest time between two acknowledgements.
//   ids    - prints the ids the table holds, as ranges (read back through the same Service).
//   direct - one INSERT (id -1) on a connection to TARGET_HOST instead of the Service's address, as
//            a client that still reaches a cut-off primary would; prints whether it was acknowledged.
//   pad    - a new table of PAD_MEGABYTES MiB of 1 KiB rows (data a clone must copy); prints its rows
//            and its size on disk.
//
// A commit is acknowledged only when it returned without Postgres's warning that the wait for a
// synchronous standby was cancelled (here by statement_timeout): such a commit is on the primary
// alone, and a failover may lose it. A careful client treats it as unknown, and so does this one
// (counted apart, as `unconfirmed`).
/* global ranges, writeLoop, patiently -- from writer-common.mjs, put before this text */
import pg from 'pg';
import { parse } from 'pg-connection-string';

const TABLE = process.env.WRITER_TABLE ?? 'failover_writes';
// A shard (SHARD_SERVICE, its read-write Service) with the shards' login, else the database tier.
// TLS as the connection Secret says (SHARDS_SSLMODE, SHARDS_SSLROOTCERT): libpq's parameters,
// which pg reads from the URL too.
const shardTls = process.env.SHARDS_SSLROOTCERT
  ? `?sslmode=${process.env.SHARDS_SSLMODE}&sslrootcert=${process.env.SHARDS_SSLROOTCERT}`
  : '';
const url = process.env.SHARD_SERVICE
  ? `postgres://${encodeURIComponent(process.env.SHARDS_USER)}:${encodeURIComponent(process.env.SHARDS_PASSWORD)}` +
    `@${process.env.SHARD_SERVICE}:5432/${process.env.SHARD_DATABASE}${shardTls}`
  : process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is not set');

/** The commits of this connection that returned with the "canceling wait for synchronous replication" warning. */
const cancelledWaits = new WeakMap();

/**
 * A client of `url`, or of a parsed configuration. A hung or vanished server must fail a write
 * attempt quickly, so the next goes through the Service again (which the operator repoints), as the
 * demo app's pool does; setup and read-back (`timeoutMs` longer) are retried by `patiently` instead.
 */
async function connect(target = url, timeoutMs = 2000) {
  const c = new pg.Client({
    ...(typeof target === 'string' ? { connectionString: target } : target),
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs + 1000,
    statement_timeout: timeoutMs,
  });
  c.on('error', () => {});
  cancelledWaits.set(c, 0);
  c.on('notice', (n) => {
    if (/synchronous replication/.test(n.message)) cancelledWaits.set(c, cancelledWaits.get(c) + 1);
  });
  await c.connect();
  return c;
}

/** Runs an autocommit statement; true only when it committed with the synchronous standbys' word. */
async function committed(c, sql, values) {
  const before = cancelledWaits.get(c);
  await c.query(sql, values);
  return cancelledWaits.get(c) === before;
}

/** One query on a connection of its own, retried for up to a minute (setup and read-back). */
const patientQuery = (what, sql) =>
  patiently(what, 60, async () => {
    const c = await connect(url, 10_000);
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end().catch(() => {});
    }
  });

async function write(seconds) {
  await patientQuery(
    `creating ${TABLE}`,
    `CREATE TABLE IF NOT EXISTS ${TABLE} (id integer PRIMARY KEY, at timestamptz DEFAULT now())`,
  );
  const start = (await patientQuery(`reading ${TABLE}`, `SELECT coalesce(max(id), 0) AS m FROM ${TABLE}`))[0]
    .m;
  let client;
  const result = await writeLoop(
    seconds,
    start,
    async (id) => {
      client ??= await connect();
      return committed(client, `INSERT INTO ${TABLE} (id) VALUES ($1)`, [id]);
    },
    () => {
      client?.end().catch(() => {});
      client = undefined;
    },
  );
  await client?.end().catch(() => {});
  return result;
}

async function direct(host, name) {
  // The URL's settings with another host; its certificate is checked against `name` (SNI and the
  // identity check both follow servername when the host is an address).
  const config = parse(url);
  config.host = host;
  if (config.ssl) config.ssl = { ...config.ssl, servername: name };
  let c;
  try {
    c = await connect(config);
    const ok = await committed(c, `INSERT INTO ${TABLE} (id) VALUES (-1)`, []);
    return { acknowledged: ok, error: ok ? '' : 'the wait for a synchronous standby was cancelled' };
  } catch (err) {
    return { acknowledged: false, error: err.message };
  } finally {
    await c?.end().catch(() => {});
  }
}

async function ids() {
  const rows = await patientQuery(`reading the ids of ${TABLE}`, `SELECT id FROM ${TABLE} ORDER BY id`);
  return { ids: ranges(rows.map((r) => r.id)), count: rows.length };
}

async function pad(megabytes) {
  // Its own client: a bulk insert outlasts the writers' short timeouts; still bounded.
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 300_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    // 1 KiB rows, under the size Postgres would compress (TOAST): the bytes are what a clone copies.
    await c.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, body text NOT NULL)`);
    const rows = megabytes * 1024;
    for (let first = 1; first <= rows; first += 10_240) {
      await c.query(
        `INSERT INTO ${TABLE} SELECT i, repeat(md5(i::text), 32) FROM generate_series($1::int, $2::int) AS i`,
        [first, Math.min(rows, first + 10_239)],
      );
    }
    // Now, not later: with data checksums the first pass over new rows (autovacuum's, within a
    // minute) sets hint bits and the visibility map and logs a full image of every page, as much WAL
    // again as the rows. Written during a clone, it would share the clone's throttled link.
    await c.query(`VACUUM (FREEZE, ANALYZE) ${TABLE}`);
    const size = await c.query(`SELECT pg_total_relation_size('${TABLE}')::bigint AS bytes`);
    return { rows, bytes: Number(size.rows[0].bytes) };
  } finally {
    await c.end().catch(() => {});
  }
}

const mode = process.env.WRITER_MODE ?? 'write';
const result =
  mode === 'ids'
    ? await ids()
    : mode === 'pad'
      ? await pad(Number(process.env.PAD_MEGABYTES))
      : mode === 'direct'
        ? await direct(process.env.TARGET_HOST, process.env.TARGET_NAME)
        : await write(Number(process.env.WRITE_SECONDS ?? '30'));
console.log(JSON.stringify(result));
