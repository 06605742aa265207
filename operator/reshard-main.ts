// Moves one table's rows between shards, one phase per run (docs/adr/0007-resharding.md):
//
//   node operator/reshard-main.ts copy|fence|verify|delete|unfence --map shard-map.json --table events
//        [--key user_id] [--shard NAME=postgresql://...]... [--batch 1000]
//
// The map is the published one (the ConfigMap's shard-map.json). copy, fence and verify work from
// its routed ring to its pending ring; delete runs after the flip (no ring pending) and drains every
// shard of the map plus those given with --shard (a removed shard is no longer in the map); unfence
// lifts the fence from every shard reached.
// Shards are reached at the map's addresses with SHARDS_USER and SHARDS_PASSWORD from the
// environment (the app's connection Secret), over TLS when SHARDS_SSLMODE says verify-full (with the
// CA at SHARDS_SSLROOTCERT), or at a --shard URL. Prints the phase's counts as JSON;
// verify exits 1 when a key differs. In the cluster it runs as a Job from the operator's image
// (examples/reshard-job.yaml).
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { connectWithin } from './dataplane/postgres/connect-retry.ts';
import {
  copyMovedRows,
  deleteMovedRows,
  fenceMovedKeys,
  liftFence,
  verifyMovedRows,
} from './dataplane/postgres/reshard.ts';
import { parseShardMap, RESHARD_VERIFIED_ANNOTATION, ringSpec } from './sharding/shard-map.ts';

const PHASES = ['copy', 'fence', 'verify', 'delete', 'unfence'];
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    map: { type: 'string' },
    table: { type: 'string' },
    key: { type: 'string' },
    shard: { type: 'string', multiple: true, default: [] },
    batch: { type: 'string' },
  },
});
const phase = positionals[0] ?? '';
if (!PHASES.includes(phase) || !values.map || !values.table) {
  console.error(
    `usage: reshard-main.ts ${PHASES.join('|')} --map FILE --table TABLE [--key COLUMN] [--shard NAME=URL]...`,
  );
  process.exit(2);
}

const map = parseShardMap(await readFile(values.map, 'utf8'));
if (phase === 'delete' && map.pending) {
  console.error(`ring v${map.pending.version} is still pending: delete only after the flip`);
  process.exit(2);
}
if (['copy', 'fence', 'verify'].includes(phase) && !map.pending) {
  console.error('no ring is pending in this map: nothing to move');
  process.exit(2);
}

const urls = new Map(values.shard.map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]));
// TLS as the connection Secret says (SHARDS_SSLMODE, SHARDS_SSLROOTCERT: the app's CA, mounted):
// verify-full checks the chain and the map's host name, as the app's router does.
const sslmode = process.env.SHARDS_SSLMODE ?? 'disable';
if (!['disable', 'verify-full'].includes(sslmode)) {
  console.error(`SHARDS_SSLMODE must be disable or verify-full, got ${JSON.stringify(sslmode)}`);
  process.exit(2);
}
const ssl =
  sslmode === 'verify-full' ? { ca: await readFile(process.env.SHARDS_SSLROOTCERT ?? '', 'utf8') } : false;
// How to connect to each shard: a new client per try (connectWithin).
const makers: Record<string, () => pg.Client> = {};
for (const e of [...map.shards, ...(map.pending?.shards ?? [])]) {
  makers[e.name] ??= () =>
    new pg.Client({
      host: e.host,
      port: e.port,
      database: e.database,
      user: process.env.SHARDS_USER,
      password: process.env.SHARDS_PASSWORD,
      ssl,
    });
}
for (const [name, url] of urls) makers[name] = () => new pg.Client({ connectionString: url });
const clients: Record<string, pg.Client> = {};
const errorCode = (e: unknown) => (e as { code?: string } | undefined)?.code ?? String(e);

const table = {
  table: values.table,
  keyColumn: values.key ?? map.key,
  ...(values.batch ? { batchSize: Number(values.batch) } : {}),
};
const print = (result: unknown) => console.log(JSON.stringify(result, null, 2));
try {
  // A shard away for a moment (a restarting primary, a pod briefly out of its Service) is waited for,
  // up to a minute, rather than failing the phase.
  await Promise.all(
    Object.entries(makers).map(async ([name, make]) => {
      clients[name] = await connectWithin(make, {
        withinMs: 60_000,
        onRetry: (err) => console.error(`shard ${name} not reachable yet (${errorCode(err)}); trying again`),
      });
    }),
  );
  if (phase === 'delete') print(await deleteMovedRows({ ...table, ring: ringSpec(map), clients }));
  if (phase === 'unfence') print(await liftFence({ ...table, clients }));
  if (map.pending) {
    const plan = { ...table, from: ringSpec(map), to: ringSpec(map.pending), clients };
    if (phase === 'copy') print(await copyMovedRows(plan));
    if (phase === 'fence') print(await fenceMovedKeys(plan));
    if (phase === 'verify') {
      const result = await verifyMovedRows(plan);
      print(result);
      console.error(
        result.ok
          ? `verified: to flip, annotate the ScalableApp ${RESHARD_VERIFIED_ANNOTATION}=${map.pending.version}`
          : `${result.mismatchedKeys} key(s) differ: copy again (fenced) and verify`,
      );
      process.exitCode = result.ok ? 0 : 1;
    }
  }
} finally {
  await Promise.all(Object.values(clients).map((c) => c.end().catch(() => {})));
}
