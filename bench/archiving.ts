// Benchmark (a script, never a test): how fast a primary archives its WAL into an S3-compatible store
// with pgBackRest, side by side in one run:
//   sync    what the operator configures (ADR 0029): each archive_command pushes its one segment,
//           one process and one TLS connection to the store per segment
//   async   archive-async=y with PROCESS_MAX processes: archive_command hands the segment to a daemon
//           that pushes several at once; kept out since the postmaster inherited the daemon when it
//           was PID 1 of the pod (ADR 0029), possible again since it is not (ADR 0030)
// On real postgres started by the pods' own script with the operator's pgBackRest config, and a real
// store (versitygw) on loopback, all through the data-plane harness. Per run and mode: a fresh
// primary and store; archiving held (an empty archive_command keeps every segment, as Postgres
// documents) while SEGMENTS segments are written (~16 MiB of barely compressible rows, then
// pg_switch_wal, each); then let go, and measured: the time until the last segment is archived, a
// backlog drained as after an outage of the store. Printed: each mode's drain rate beside the rate
// this machine wrote WAL at, and the ratio of the medians (async / sync). Modes alternate per run,
// so the machine's other load falls on both. The queue's bound is lifted for the run (it would drop
// segments of the backlog, as it is meant to).
// Run: npm run bench:archiving   (RUNS=3, SEGMENTS=24, PROCESS_MAX=2)
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { archiver, archivingCluster, switchWal } from '../server-tests/support/backup-local.ts';
import { until } from '../server-tests/support/postgres-local-cluster.ts';
import { log, median } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 3);
const SEGMENTS = Number(process.env.SEGMENTS ?? 24);
const PROCESS_MAX = Number(process.env.PROCESS_MAX ?? 2);
const SEGMENT_MIB = 16;
/** Rows of 1 KiB of random hex (compresses about 2:1, as many real rows do): about one segment. */
const ROWS_PER_SEGMENT = 14_000;

type Mode = 'sync' | 'async';
type Run = { writeS: number; drainS: number };

async function once(mode: Mode): Promise<Run> {
  // pgBackRest reads options from PGBACKREST_* variables over its config file: the postmaster's
  // environment, which archive_command inherits, turns the daemon on. The spool directory is made
  // by pgBackRest (as the instances' user) under /tmp.
  const spool = `/tmp/pgbackrest-spool-${randomBytes(4).toString('hex')}`;
  const env: Record<string, string> = {
    PGBACKREST_ARCHIVE_PUSH_QUEUE_MAX: '64GiB',
    ...(mode === 'async'
      ? {
          PGBACKREST_ARCHIVE_ASYNC: 'y',
          PGBACKREST_SPOOL_PATH: spool,
          PGBACKREST_PROCESS_MAX: String(PROCESS_MAX),
        }
      : {}),
  };
  const { store, b } = await archivingCluster(['pg-0'], env);
  try {
    const p = b.primary;
    const superuser = (sql: string) => p.query(sql, [], 'superuser');
    await p.query('CREATE TABLE pad (body text NOT NULL)');
    await superuser("ALTER SYSTEM SET archive_command = ''");
    await superuser('SELECT pg_reload_conf()');
    const started = performance.now();
    let last = '';
    for (let i = 0; i < SEGMENTS; i++) {
      await p.query(
        `INSERT INTO pad SELECT (SELECT string_agg(md5(random()::text || g::text || x::text), '')
           FROM generate_series(1, 32) x) FROM generate_series(1, ${ROWS_PER_SEGMENT}) g`,
      );
      last = await switchWal(p);
    }
    const written = performance.now();
    if ((await archiver(p)).ready < SEGMENTS) throw new Error('archiving was not held while writing');
    await superuser('ALTER SYSTEM RESET archive_command');
    await superuser('SELECT pg_reload_conf()');
    const released = performance.now();
    await until(`${last} archived (${mode})`, async () => (await archiver(p)).last === last, 600_000);
    const archived = performance.now();
    if (/dropped WAL file/.test(p.log))
      throw new Error('pgBackRest dropped segments: the bound was not lifted');
    // The daemon spools what it pushes: no spool directory, no asynchronous archiving measured.
    if (mode === 'async' && !existsSync(spool)) {
      throw new Error('the async mode did not run asynchronously: no spool directory was made');
    }
    return { writeS: (written - started) / 1000, drainS: (archived - released) / 1000 };
  } finally {
    await b.destroy();
    await store.destroy();
    await rm(spool, { recursive: true, force: true });
  }
}

const mibPerS = (seconds: number) => (SEGMENTS * SEGMENT_MIB) / seconds;
const results: Record<Mode, Run[]> = { sync: [], async: [] };
log(
  `a backlog of ${SEGMENTS} segments of ${SEGMENT_MIB} MiB, ${RUNS} runs per mode, async with ${PROCESS_MAX} processes`,
);
for (let run = 1; run <= RUNS; run++) {
  for (const mode of (run % 2 ? ['sync', 'async'] : ['async', 'sync']) as Mode[]) {
    const r = await once(mode);
    results[mode].push(r);
    log(
      `run ${run} ${mode.padEnd(5)}: written in ${r.writeS.toFixed(1)} s (${mibPerS(r.writeS).toFixed(1)} MiB/s), ` +
        `drained in ${r.drainS.toFixed(1)} s (${mibPerS(r.drainS).toFixed(1)} MiB/s)`,
    );
  }
}

console.log('\nmode   drained (median)   segments/s   MiB/s   WAL written at (median MiB/s)');
for (const mode of ['sync', 'async'] as Mode[]) {
  const rs = results[mode];
  const drained = median(rs.map((r) => r.drainS));
  console.log(
    `${mode.padEnd(6)} ${drained.toFixed(1).padStart(9)} s ${(SEGMENTS / drained).toFixed(2).padStart(13)} ` +
      `${mibPerS(drained).toFixed(1).padStart(7)} ${median(rs.map((r) => mibPerS(r.writeS)))
        .toFixed(1)
        .padStart(12)}`,
  );
}
const ratio = median(results.sync.map((r) => r.drainS)) / median(results.async.map((r) => r.drainS));
console.log(`\nasync / sync drain rate (medians): ${ratio.toFixed(2)}`);
