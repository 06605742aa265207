// A client that writes through the read-write Service for a bounded time and says which writes were
// acknowledged. It runs inside a pod of the demo image (its /app/node_modules has `pg`), fed on stdin
// by e2e/support/pg-load.ts: `node --input-type=module -` with DATABASE_URL from the connection Secret.
//
// Modes (WRITER_MODE):
//   write  - one row per attempt, ids 1, 2, ... for WRITE_SECONDS; a commit counts as acknowledged
//            only when the server answered it. Prints one JSON line: the acknowledged ids as ranges,
//            the attempts, the failed attempts, and the longest time between two acknowledgements.
//   ids    - prints the ids the table holds, as ranges (read back through the same Service).
import pg from 'pg';

const TABLE = process.env.WRITER_TABLE ?? 'failover_writes';
const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is not set');

/** Sorted ids as [first, last] ranges: thousands of ids stay one short line. */
function ranges(ids) {
  const out = [];
  for (const id of ids) {
    const last = out.at(-1);
    if (last && id === last[1] + 1) last[1] = id;
    else out.push([id, id]);
  }
  return out;
}

async function connect() {
  const c = new pg.Client({
    connectionString: url,
    // A hung or vanished server must fail the attempt quickly, so the next goes through the Service
    // again (which the operator repoints), as the demo app's pool does.
    connectionTimeoutMillis: 2000,
    query_timeout: 3000,
    statement_timeout: 2000,
  });
  c.on('error', () => {});
  await c.connect();
  return c;
}

const PACE_MS = 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function write(seconds) {
  const setup = await connect();
  await setup.query(
    `CREATE TABLE IF NOT EXISTS ${TABLE} (id integer PRIMARY KEY, at timestamptz DEFAULT now())`,
  );
  const start = (await setup.query(`SELECT coalesce(max(id), 0) AS m FROM ${TABLE}`)).rows[0].m;
  await setup.end();
  const deadline = Date.now() + seconds * 1000;
  const acked = [];
  let client;
  let id = start;
  let failed = 0;
  let lastAck = Date.now();
  let longestGapMs = 0;
  while (Date.now() < deadline) {
    id += 1;
    try {
      client ??= await connect();
      await client.query(`INSERT INTO ${TABLE} (id) VALUES ($1)`, [id]);
      const now = Date.now();
      longestGapMs = Math.max(longestGapMs, now - lastAck);
      lastAck = now;
      acked.push(id);
      // About a hundred commits a second: continuous, and light enough for two shared cores.
      await sleep(PACE_MS);
    } catch {
      // Unknown outcome: the row may or may not be there; it is not counted as acknowledged.
      failed += 1;
      client?.end().catch(() => {});
      client = undefined;
      await sleep(100);
    }
  }
  await client?.end().catch(() => {});
  return {
    acked: ranges(acked),
    ackedCount: acked.length,
    attempts: id - start,
    lastId: id,
    failed,
    longestGapMs,
  };
}

async function ids() {
  const c = await connect();
  const rows = (await c.query(`SELECT id FROM ${TABLE} ORDER BY id`)).rows;
  await c.end();
  return { ids: ranges(rows.map((r) => r.id)), count: rows.length };
}

const mode = process.env.WRITER_MODE ?? 'write';
const result = mode === 'ids' ? await ids() : await write(Number(process.env.WRITE_SECONDS ?? '30'));
console.log(JSON.stringify(result));
