// Benchmark (a script, never a test): how long writes through the database's read-write Service stop
// when its primary moves on the real node, with the operator running in the cluster. One client
// writes about 100 commits a second (e2e/support/pg-writer.mjs, in a pod); measured per run is the
// longest time between two acknowledged commits: from the last commit acknowledged before the event
// to the first acknowledged after it, as the client saw it. Side by side, in one run:
//   killed                 the primary's postgres processes killed (SIGKILL), CloudNativePG's e2e case:
//                          the kubelet restarts the container; back within the failover delay (5 s),
//                          it stays the primary, else a standby is promoted
//   force-deleted          the primary's pod deleted with --force --grace-period=0
//   hung                   every postgres process of the primary stopped (SIGSTOP): its readiness
//                          probe fails, the failover delay runs, a standby is promoted
//   switchover             the annotation scalableapp.io/switchover-to, to a standby
// each with the defaults, and killed and hung again with spec.database.failover.delaySeconds 0.
// Each setting: RUNS runs (default 5), min / median / max, and the acknowledged commits lost
// (asynchronous replication, the default). After each hung run the stopped processes are killed, so
// the old primary restarts, rewinds and rejoins before the next run.
// Needs the local cluster with its real node and the images (`npm run up`). Run:
//   npm run bench:real-failover            (RUNS=5; it also installs the loopback's postgres binaries)
// Then, in the same run, bench/postgres-failover.ts's loopback figure beside it: real postgres processes
// on 127.0.0.1, no Kubernetes, the primary killed, the operator's decision code after a delay of 5 s and
// of 0 s. The difference is what pods, Services, probes and the kubelet cost. LOOPBACK=0 leaves it out.
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { eventually, kubectl } from '../e2e/support/kube.ts';
import { getApp } from '../e2e/support/apps.ts';
import { lost, resumed, signalPod, storedIds, writeFor, hang } from '../e2e/support/pg-load.ts';
import {
  allPodsReady,
  appWithWriter,
  deleteNamespaceAndWait,
  WRITER,
  tierPods,
  localApp,
  WRITER_CLIENT,
} from '../e2e/support/real-node.ts';
import { SWITCHOVER_ANNOTATION } from '../operator/controller/database-primary.ts';
import { log, median, seconds } from './stats.ts';
import { oneRun as loopbackRun } from './postgres-failover.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const LOOPBACK = process.env.LOOPBACK !== '0';
const APP = 'bench';
const DB_PODS = tierPods(APP, 'database');
const BEFORE_EVENT_MS = 5000;

const app = (delaySeconds?: number) =>
  localApp(APP, {
    database: {
      replicas: 2,
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
      ...(delaySeconds === undefined ? {} : { failover: { delaySeconds } }),
    },
  });

interface Setting {
  readonly name: string;
  readonly delaySeconds?: number;
  /** How long the client writes: the longest stop measured for the setting, and writes after it. */
  readonly writeSeconds: number;
  /** Breaks or moves the primary `before`; returns what to do once the writer is done. */
  readonly event: (ns: string, before: string) => () => void;
}

const hung = (ns: string, before: string) => {
  if (hang(ns, before) === 0) throw new Error(`no postgres process in ${before}`);
  // Killed, it restarts at once and rewinds into a standby of the new primary.
  return () => void signalPod(ns, before, 'postgres', 'SIGKILL');
};

const killed = (ns: string, before: string) => {
  if (signalPod(ns, before, 'postgres', 'SIGKILL') === 0) throw new Error(`no postgres process in ${before}`);
  return () => {};
};

const forceDeleted = (ns: string, before: string) => {
  kubectl(['delete', 'pod', before, '-n', ns, '--force', '--grace-period=0']);
  return () => {};
};

const switchover = (ns: string, before: string) => {
  const target = [0, 1, 2].map((i) => `${APP}-db-${i}`).find((p) => p !== before)!;
  kubectl(['annotate', 'scalableapp', APP, '-n', ns, `${SWITCHOVER_ANNOTATION}=${target}`, '--overwrite']);
  return () => {};
};

// In this order, so the spec changes once. Writes last long enough for the longest stop measured for
// the setting (a hung primary's: under 30 s with the default delay) and writes after it.
const SETTINGS: Setting[] = [
  { name: 'killed, defaults', writeSeconds: 30, event: killed },
  { name: 'force-deleted, defaults', writeSeconds: 30, event: forceDeleted },
  { name: 'hung, defaults', writeSeconds: 50, event: hung },
  { name: 'switchover, defaults', writeSeconds: 30, event: switchover },
  { name: 'killed, delaySeconds 0', delaySeconds: 0, writeSeconds: 30, event: killed },
  { name: 'hung, delaySeconds 0', delaySeconds: 0, writeSeconds: 50, event: hung },
];

async function settle(ns: string): Promise<void> {
  await allPodsReady(ns, DB_PODS, 3);
  await eventually(
    'the app Ready',
    () =>
      getApp(ns, APP).status?.conditions?.some(
        (c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True',
      ),
    300_000,
    1000,
  );
}

/** One setting's line: writes stopped min / median / max (with 5 runs the max is the p95), lost, moved. */
const row = (name: string, ms: number[], lostTotal: number, moved: number) =>
  `${name.padEnd(26)} ${seconds(Math.min(...ms)).padStart(6)} ${seconds(median(ms)).padStart(8)} ` +
  `${seconds(Math.max(...ms)).padStart(6)} ${String(lostTotal).padStart(6)} ${`${moved}/${ms.length}`.padStart(7)}`;

function printTable(rows: readonly string[]): void {
  console.log(
    `\nwrites stopped (s), ${RUNS} runs each: through the read-write Service on the real node; ` +
      'loopback: real postgres on 127.0.0.1, no Kubernetes; moved: runs in which a standby was promoted',
  );
  console.log(
    `${'setting'.padEnd(26)} ${'min'.padStart(6)} ${'median'.padStart(8)} ${'max'.padStart(6)} ${'lost'.padStart(6)} ${'moved'.padStart(7)}`,
  );
  for (const line of rows) console.log(line);
}

async function main(): Promise<void> {
  log(`a database with 2 standbys on the real node, ${RUNS} runs per setting`);
  const ns = await appWithWriter('bench-failover', app(), DB_PODS, 3);
  const rows: string[] = [];
  try {
    for (const setting of SETTINGS) {
      kubectl(['apply', '-n', ns, '-f', '-'], stringify(app(setting.delaySeconds)));
      await settle(ns);
      const gaps: number[] = [];
      let lostTotal = 0;
      let moved = 0;
      for (let run = 1; run <= RUNS; run++) {
        const table = `run_${SETTINGS.indexOf(setting)}_${run}`;
        const before = getApp(ns, APP).status?.database?.primary as string;
        const load = writeFor(ns, WRITER, setting.writeSeconds, table);
        await sleep(BEFORE_EVENT_MS);
        const after = setting.event(ns, before);
        const r = await load;
        after();
        // A stop that lasted to the end of the run is no gap between two acknowledgements.
        if (!resumed(r))
          throw new Error(`${setting.name} #${run}: writes did not resume within ${setting.writeSeconds} s`);
        const missing = lost(r.acked, (await storedIds(ns, WRITER, table)).ids).length;
        gaps.push(r.longestGapMs);
        lostTotal += missing;
        const primary = getApp(ns, APP).status?.database?.primary as string;
        if (primary !== before) moved += 1;
        log(
          `${setting.name} #${run}: ${before} -> ${primary}, ` +
            `writes stopped for ${seconds(r.longestGapMs)} s, ${missing} acknowledged lost`,
        );
        await settle(ns);
      }
      rows.push(row(setting.name, gaps, lostTotal, moved));
    }
  } finally {
    deleteNamespaceAndWait(ns);
  }
  // The real node's figures first: they took most of the run, and the loopback runs may still fail.
  printTable(rows);
  if (LOOPBACK) {
    for (const delayS of [5, 0]) {
      const totals: number[] = [];
      let lostTotal = 0;
      for (let run = 1; run <= RUNS; run++) {
        const r = await loopbackRun(delayS);
        totals.push(r.total);
        lostTotal += r.lostAcknowledged;
        log(`loopback, killed, delay ${delayS} s #${run}: writes stopped for ${seconds(r.total)} s`);
      }
      rows.push(row(`loopback killed, delay ${delayS}`, totals, lostTotal, RUNS));
    }
    printTable(rows);
  }
}

await main();
