// Benchmark (a script, never a test): how long a backlog waits on the real node before a consumer
// works it, with the operator in the cluster reading the depth from a real broker. Per run: the
// consumer sleeps at zero replicas on an empty queue; a publisher in a pod publishes BACKLOG messages
// with confirms; measured from the last confirm to
//   decision  the consumer's Deployment asks for replicas (the operator read the depth and scaled)
//   ready     the first consumer pod is Ready (scheduled, started, connected to the broker)
//   drained   the operator reads a depth of 0 again
// then the consumer goes back to zero (cooldown 5 s) for the next run. Each backlog is published just
// after the poll that scaled to zero, so the next poll is a whole interval away: the decision is
// measured at the worst phase of the poll (on average a backlog waits half an interval less).
// Side by side, in one run:
//   poll 2 s    the operator's default pollIntervalSeconds
//   poll 30 s   KEDA's default pollingInterval, for comparison
// Each setting: RUNS runs (default 5), min / median / max, and the ratio of the medians.
// Needs the local cluster with its real node and the images (`npm run up`). Run:
//   node bench/real-queue-wake.ts            (RUNS=5, BACKLOG=200)
import { stringify } from 'yaml';
import { eventually, kubectl } from '../e2e/support/kube.ts';
import { consumerReplicas, consumerStatus, publishCount } from '../e2e/support/queue-load.ts';
import {
  appWithWriter,
  deleteNamespaceAndWait,
  localApp,
  podStates,
  tierPods,
  WRITER,
  WRITER_CLIENT,
} from '../e2e/support/real-node.ts';
import { log, median, seconds } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const BACKLOG = Number(process.env.BACKLOG ?? 200);
const APP = 'wake';
const QUEUE = 'tasks';
const CONSUMERS = tierPods(APP, 'consumer');
const SETTINGS = [
  { name: 'poll 2 s', pollIntervalSeconds: 2 },
  { name: 'poll 30 s', pollIntervalSeconds: 30 },
];

const app = (pollIntervalSeconds: number) =>
  localApp(APP, {
    queue: {
      replicas: 1,
      queues: [{ name: QUEUE }],
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
    },
    consumers: [
      {
        name: 'worker',
        image: 'placeholder',
        queue: QUEUE,
        autoscaling: {
          minReplicas: 0,
          maxReplicas: 1,
          messagesPerReplica: 1000,
          cooldownSeconds: 5,
          pollIntervalSeconds,
          scaleDownStabilizationSeconds: 0,
        },
        healthCheck: { port: 8081, periodSeconds: 1 },
      },
    ],
  });

const replicas = (ns: string) => consumerReplicas(ns, APP, 'worker');
const depth = (ns: string) =>
  consumerStatus(ns, APP, 'worker')?.lastDecision?.queueDepth as number | undefined;

/** Resolves with the time `probe` first holds, polled every 200 ms (bounded by `eventually`). */
const firstTime = (what: string, probe: () => boolean) =>
  eventually(what, () => probe() && Date.now(), 300_000, 200);

async function main(): Promise<void> {
  log(`one broker and a consumer from zero on the real node, backlog ${BACKLOG}, ${RUNS} runs per setting`);
  const ns = await appWithWriter(
    'bench-wake',
    app(SETTINGS[0]!.pollIntervalSeconds),
    tierPods(APP, 'queue'),
    1,
  );
  const rows: { name: string; decision: number[]; ready: number[]; drained: number[] }[] = [];
  try {
    for (const setting of SETTINGS) {
      kubectl(['apply', '-n', ns, '-f', '-'], stringify(app(setting.pollIntervalSeconds)));
      const row = {
        name: setting.name,
        decision: [] as number[],
        ready: [] as number[],
        drained: [] as number[],
      };
      for (let run = 1; run <= RUNS; run++) {
        await firstTime(
          'the consumer at zero',
          () => replicas(ns) === 0 && podStates(ns, CONSUMERS).length === 0,
        );
        await publishCount(ns, WRITER, QUEUE, BACKLOG);
        const t0 = Date.now();
        const decided = await firstTime('a replica asked for', () => replicas(ns) > 0);
        const ready = await firstTime('a consumer Ready', () =>
          podStates(ns, CONSUMERS).some((p) => p.ready),
        );
        const drained = await firstTime('the backlog drained', () => depth(ns) === 0);
        row.decision.push(decided - t0);
        row.ready.push(ready - t0);
        row.drained.push(drained - t0);
        log(
          `${setting.name} #${run}: decision ${seconds(decided - t0)} s, ready ${seconds(ready - t0)} s, ` +
            `drained ${seconds(drained - t0)} s after the last confirm`,
        );
      }
      rows.push(row);
    }
  } finally {
    deleteNamespaceAndWait(ns);
  }
  console.log(
    `\nbacklog of ${BACKLOG} -> consumer (s after the last confirm), ${RUNS} runs each, on the real node`,
  );
  console.log(
    `${'setting'.padEnd(10)} ${'measure'.padEnd(9)} ${'min'.padStart(6)} ${'median'.padStart(7)} ${'max'.padStart(6)}`,
  );
  for (const r of rows)
    for (const m of ['decision', 'ready', 'drained'] as const)
      console.log(
        `${r.name.padEnd(10)} ${m.padEnd(9)} ${seconds(Math.min(...r[m])).padStart(6)} ` +
          `${seconds(median(r[m])).padStart(7)} ${seconds(Math.max(...r[m])).padStart(6)}`,
      );
  const [fast, slow] = rows;
  console.log(
    `\nfirst consumer Ready, median ${slow!.name} / ${fast!.name}: ${(median(slow!.ready) / median(fast!.ready)).toFixed(2)}`,
  );
}

await main();
