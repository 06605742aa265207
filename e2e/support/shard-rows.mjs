// A sharded table's rows, seen as the app sees them: run inside a pod of the demo image (its /app has
// `pg` and the compiled ring), fed on stdin by e2e/real-reshard.test.ts with SHARDS_USER and
// SHARDS_PASSWORD from the app's connection Secret and SHARD_MAP, the published map's text.
//
// Modes (ROWS_MODE):
//   schema - creates `events` where it is missing, on every shard of both rings (the app's migration
//          on a new shard, which the mover needs before it copies). Prints the rows per shard.
//   seed - creates `events` (user_id, seq, body) on every shard of the routed ring and writes ROWS_KEYS
//          keys x 3 rows, each key on the shard the routed ring names. Prints the rows per shard.
//   dump - reads every shard of the routed ring. Prints the rows per shard, the total, an md5 of every
//          row's text in one order (the data set, wherever it lives), and how many rows sit on a shard
//          the routed ring does not name for their key.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { HashRing } from '/app/dist/operator/sharding/ring.js';
import { parseShardMap, ringSpec } from '/app/dist/operator/sharding/shard-map.js';

const map = parseShardMap(process.env.SHARD_MAP);
const ring = new HashRing(ringSpec(map));
// The routed ring's shards, and for `schema` the pending ring's new ones too.
const shards = [...map.shards];
if (process.env.ROWS_MODE === 'schema')
  for (const s of map.pending?.shards ?? []) if (!shards.some((x) => x.name === s.name)) shards.push(s);
const clients = new Map(
  shards.map((s) => [
    s.name,
    new pg.Client({
      host: s.host,
      port: s.port,
      database: s.database,
      user: process.env.SHARDS_USER,
      password: process.env.SHARDS_PASSWORD,
      // TLS as the connection Secret says: the app's CA (mounted), the map's host name checked.
      ssl: process.env.SHARDS_SSLROOTCERT
        ? { ca: readFileSync(process.env.SHARDS_SSLROOTCERT, 'utf8') }
        : false,
      connectionTimeoutMillis: 10_000,
      statement_timeout: 60_000,
    }),
  ]),
);
await Promise.all([...clients.values()].map((c) => c.connect()));
const DDL =
  'CREATE TABLE IF NOT EXISTS events (user_id text NOT NULL, seq int NOT NULL, body text NOT NULL, PRIMARY KEY (user_id, seq))';
const out = { rows: {} };
try {
  if (process.env.ROWS_MODE === 'schema') {
    for (const [name, c] of clients) {
      await c.query(DDL);
      out.rows[name] = Number((await c.query('SELECT count(*) AS n FROM events')).rows[0].n);
    }
  } else if (process.env.ROWS_MODE === 'seed') {
    const byShard = new Map([...clients.keys()].map((n) => [n, []]));
    for (let k = 1; k <= Number(process.env.ROWS_KEYS); k++) {
      const user = `user-${k}`;
      for (let seq = 1; seq <= 3; seq++)
        byShard.get(ring.shardFor(user)).push([user, seq, `event ${seq} of ${user}`]);
    }
    for (const [name, rows] of byShard) {
      const c = clients.get(name);
      await c.query(DDL);
      await c.query('INSERT INTO events SELECT * FROM unnest($1::text[], $2::int[], $3::text[])', [
        rows.map((r) => r[0]),
        rows.map((r) => r[1]),
        rows.map((r) => r[2]),
      ]);
      out.rows[name] = rows.length;
    }
  } else {
    const all = [];
    let misplaced = 0;
    for (const [name, c] of clients) {
      const { rows } = await c.query('SELECT user_id, seq, body FROM events');
      out.rows[name] = rows.length;
      for (const r of rows) {
        all.push(`${r.user_id}\t${r.seq}\t${r.body}`);
        if (ring.shardFor(r.user_id) !== name) misplaced += 1;
      }
    }
    all.sort();
    Object.assign(out, {
      total: all.length,
      md5: createHash('md5').update(all.join('\n')).digest('hex'),
      misplaced,
    });
  }
} finally {
  await Promise.all([...clients.values()].map((c) => c.end().catch(() => {})));
}
console.log(JSON.stringify(out));
