// Benchmark (a script, never a test): how long writes through the database's read-write Service stop
// when its primary moves on the real node, with the operator running in the cluster. One client
// writes about 100 commits a second (e2e/support/pg-writer.mjs, in a pod); measured per run is the
// longest time between two acknowledged commits: from the last commit acknowledged before the event
// to the first acknowledged after it, as the client saw it. Side by side, in one run:
//   hung, defaults        every postgres process of the primary stopped (SIGSTOP): its readiness
//                         probe fails, the failover delay (5 s) runs, a standby is promoted
//   hung, delaySeconds 0  the same with spec.database.failover.delaySeconds 0
//   switchover            the annotation scalableapp.io/switchover-to, to a standby
// Each setting: RUNS runs (default 5), min / median / max, and the acknowledged commits lost
// (asynchronous replication, the default). After each hung run the stopped processes are killed, so
// the old primary restarts, rewinds and rejoins before the next run.
// Needs the local cluster with its real node and the images (`npm run up`). Run:
//   node bench/real-failover.ts            (RUNS=5)
// For the loopback figure beside it (real postgres processes, no Kubernetes): node bench/postgres-failover.ts
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { eventually, kubectl } from '../e2e/support/kube.ts';
import { getApp } from '../e2e/support/apps.ts';
import { lost, signalPod, storedIds, writeFor, hang } from '../e2e/support/pg-load.ts';
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
import { median } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const APP = 'bench';
const DB_PODS = tierPods(APP, 'database');
/** Long enough for a failover with the default delay (under 30 s measured) and writes after it. */
const WRITE_SECONDS = 50;
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

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

interface Setting {
  readonly name: string;
  readonly delaySeconds?: number;
  /** Breaks or moves the primary `before`; returns what to do once the writer is done. */
  readonly event: (ns: string, before: string) => () => void;
}

const hung = (ns: string, before: string) => {
  if (hang(ns, before) === 0) throw new Error(`no postgres process in ${before}`);
  // Killed, it restarts at once and rewinds into a standby of the new primary.
  return () => void signalPod(ns, before, 'postgres', 'SIGKILL');
};

const SETTINGS: Setting[] = [
  { name: 'hung, defaults', event: hung },
  { name: 'hung, delaySeconds 0', delaySeconds: 0, event: hung },
  {
    name: 'switchover',
    event: (ns, before) => {
      const target = [0, 1, 2].map((i) => `${APP}-db-${i}`).find((p) => p !== before)!;
      kubectl([
        'annotate',
        'scalableapp',
        APP,
        '-n',
        ns,
        `${SWITCHOVER_ANNOTATION}=${target}`,
        '--overwrite',
      ]);
      return () => {};
    },
  },
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
      for (let run = 1; run <= RUNS; run++) {
        const table = `run_${SETTINGS.indexOf(setting)}_${run}`;
        const before = getApp(ns, APP).status?.database?.primary as string;
        const load = writeFor(ns, WRITER, WRITE_SECONDS, table);
        await sleep(BEFORE_EVENT_MS);
        const after = setting.event(ns, before);
        const r = await load;
        after();
        const missing = lost(r.acked, (await storedIds(ns, WRITER, table)).ids).length;
        gaps.push(r.longestGapMs);
        lostTotal += missing;
        log(
          `${setting.name} #${run}: ${before} -> ${getApp(ns, APP).status?.database?.primary}, ` +
            `writes stopped for ${seconds(r.longestGapMs)} s, ${missing} acknowledged lost`,
        );
        await settle(ns);
      }
      rows.push(
        `${setting.name.padEnd(22)} ${seconds(Math.min(...gaps)).padStart(6)} ${seconds(median(gaps)).padStart(8)} ` +
          `${seconds(Math.max(...gaps)).padStart(6)} ${String(lostTotal).padStart(6)}`,
      );
    }
  } finally {
    deleteNamespaceAndWait(ns);
  }
  console.log(`\nwrites stopped (s), ${RUNS} runs each, through the read-write Service on the real node`);
  console.log(
    `${'setting'.padEnd(22)} ${'min'.padStart(6)} ${'median'.padStart(8)} ${'max'.padStart(6)} ${'lost'.padStart(6)}`,
  );
  for (const row of rows) console.log(row);
}

await main();
