// Benchmark (a script, never a test): how long after a backlog appears the queue autoscaler decides to
// scale, on a real RabbitMQ (the data-plane harness: Debian's rabbitmq-server from the operator's
// generated config, on loopback), read through the management API as the operator reads it.
//
// One run: a fresh poller (QueueScalers over queueDepthSource) on an empty queue at 0 replicas; after
// a random part of one poll interval (so the backlog lands at a random phase of the poll cycle), one
// message is published (the onset: the broker has accepted it), then the rest of the backlog.
// Measured, from performance.now() stamps:
//   wake       onset -> the WakeFromZero decision             (THE FIGURE: a sleeping consumer's wait)
//   visible    onset -> the management API first shows it     (the broker's statistics interval, not us;
//              read by a probe every PROBE_MS, so late by up to that much)
//   wait       visible -> wake: what the poll interval adds (negative when a poll read the new depth
//              before the probe did)
//   backlog    the last message accepted -> the decision for the whole backlog (ceil(BACKLOG / 100))
// Run: npm run bench:queue-scaler   (RUNS=5, INTERVALS=1,2,30 in seconds, BACKLOG=350)
import { performance } from 'node:perf_hooks';
import { QueueScalers, queueDepthSource } from '../operator/autoscaling/queue-poller.ts';
import type { Decision } from '../operator/autoscaling/queue-scaler.ts';
import { STATS_INTERVAL_MS } from '../operator/server-config/rabbitmq.ts';
import { startBroker, type LocalBroker } from '../server-tests/support/rabbitmq-local.ts';
import { median } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 5);
// KEDA's ScaledObject pollingInterval default (keda.sh/docs/latest/reference/scaledobject-spec).
const KEDA_DEFAULT_POLL_S = 30;
// The operator's default (spec.consumers[].autoscaling.pollIntervalSeconds).
const DEFAULT_POLL_S = 2;
// 30: the same poller at KEDA's default pollingInterval, measured side by side: what the interval alone
// costs. It is not KEDA (not installed here); KEDA's own reaction adds its operator and the HPA.
const INTERVALS = (process.env.INTERVALS ?? `1,${DEFAULT_POLL_S},${KEDA_DEFAULT_POLL_S}`)
  .split(',')
  .map(Number);
const BACKLOG = Number(process.env.BACKLOG ?? 350);
const PER_REPLICA = 100;
const PROBE_MS = 20;
const PUBLISHERS = 8;
const QUEUE = 'bench';
const KEY = 'bench/app/consumer';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with performance.now() at the first time `probe` holds, checking every `everyMs`. */
async function when(probe: () => boolean | Promise<boolean>, everyMs: number, what: string): Promise<number> {
  const deadline = performance.now() + 120_000;
  for (;;) {
    if (await probe()) return performance.now();
    if (performance.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(everyMs);
  }
}

type Run = { wake: number; visible: number; backlog: number; polls: number; wakeDepth: number };

async function oneRun(broker: LocalBroker, intervalS: number): Promise<Run> {
  const depth = queueDepthSource(broker.admin);
  await when(async () => (await depth(QUEUE)) === 0, 100, 'an empty queue');
  // Seeing the queue empty just happened at a statistics tick; starting the poller right then would
  // lock every poll to just after a tick and hide part of the wait. A real poller has a random phase.
  await sleep(Math.random() * STATS_INTERVAL_MS);
  let polls = 0;
  const decisions: { at: number; decision: Decision }[] = [];
  const scalers = new QueueScalers({
    depth: (queue) => {
      polls++;
      return depth(queue);
    },
    onError: (_key, error) => console.error(`  poll failed: ${String(error)}`),
  });
  const policy = {
    minReplicas: 0,
    maxReplicas: 100,
    messagesPerReplica: PER_REPLICA,
    cooldownSeconds: 300,
    scaleDownStabilizationSeconds: 60,
  };
  try {
    scalers.ensure(
      KEY,
      { queue: QUEUE, policy, pollIntervalSeconds: intervalS, currentReplicas: 0 },
      (_key, decision) => decisions.push({ at: performance.now(), decision }),
    );
    await when(() => decisions.length > 0, 5, 'the first decision');
    if (decisions[0]!.decision.desiredReplicas !== 0) throw new Error('the queue was not empty');
    await sleep(Math.random() * intervalS * 1000);

    const pollsBefore = polls;
    await broker.publish(QUEUE, ['first']);
    const onset = performance.now();
    const visible = when(async () => (await depth(QUEUE)) > 0, PROBE_MS, 'the first message to show');
    const rest = Array.from({ length: BACKLOG - 1 }, (_, i) => `m-${i}`);
    await Promise.all(
      Array.from({ length: PUBLISHERS }, (_, p) =>
        broker.publish(
          QUEUE,
          rest.filter((_, i) => i % PUBLISHERS === p),
        ),
      ),
    );
    const published = performance.now();
    const want = Math.ceil(BACKLOG / PER_REPLICA);
    const decided = (n: number) => decisions.find((d) => d.decision.desiredReplicas >= n);
    await when(() => decided(want) !== undefined, 5, `a decision for ${want} replicas`);
    const wake = decided(1)!;
    if (wake.decision.reason !== 'WakeFromZero') throw new Error(`woke by ${wake.decision.reason}`);
    return {
      wake: wake.at - onset,
      visible: (await visible) - onset,
      backlog: decided(want)!.at - published,
      polls: polls - pollsBefore,
      wakeDepth: wake.decision.queueDepth,
    };
  } finally {
    await scalers.stopAll();
    await broker.take(QUEUE, BACKLOG * 2);
  }
}

const ms = (x: number) => `${x.toFixed(0).padStart(6)} ms`;
const stats = (xs: number[]) =>
  `median ${ms(median(xs))} (min ${ms(Math.min(...xs))}, max ${ms(Math.max(...xs))})`;

async function main() {
  const t0 = performance.now();
  const broker = await startBroker({ nodes: 1, queues: [{ name: QUEUE }] });
  console.log(
    `Queue autoscaler, backlog onset -> scale decision: ${RUNS} runs per poll interval, ${BACKLOG} messages, ` +
      `${PER_REPLICA} per replica, 1 RabbitMQ node on 127.0.0.1 (started in ${ms(performance.now() - t0)})`,
  );
  console.log(
    'wake = first message accepted -> WakeFromZero decision; visible = first message accepted -> the ' +
      `management API shows it (probe every ${PROBE_MS} ms); backlog = last message accepted -> decision ` +
      `for ${Math.ceil(BACKLOG / PER_REPLICA)} replicas`,
  );
  const visibleAll: number[] = [];
  const wakeMedians = new Map<number, number>();
  try {
    for (const intervalS of INTERVALS) {
      const runs: Run[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await oneRun(broker, intervalS);
        runs.push(r);
        visibleAll.push(r.visible);
        console.log(
          `  poll ${intervalS}s run ${i + 1}: wake ${ms(r.wake)} = visible ${ms(r.visible)} + wait ` +
            `${ms(r.wake - r.visible)} | ` +
            `backlog ${ms(r.backlog)} | ${r.polls} polls from onset, woken at depth ${r.wakeDepth}`,
        );
      }
      wakeMedians.set(intervalS, median(runs.map((r) => r.wake)));
      console.log(
        `poll ${intervalS}s: wake ${stats(runs.map((r) => r.wake))}; visible ${stats(runs.map((r) => r.visible))}; ` +
          `wait ${stats(runs.map((r) => r.wake - r.visible))}; ` +
          `backlog ${stats(runs.map((r) => r.backlog))}`,
      );
    }
  } finally {
    await broker.stop();
  }
  const lag = median(visibleAll);
  // Ratios of median wake latency, all measured in this run against the same broker.
  const base = wakeMedians.get(DEFAULT_POLL_S) ?? wakeMedians.values().next().value!;
  for (const [intervalS, m] of wakeMedians) {
    console.log(
      `ratio wake(poll ${intervalS}s) / wake(poll ${DEFAULT_POLL_S}s, the default) = ${(m / base).toFixed(2)}`,
    );
  }
  if (!wakeMedians.has(KEDA_DEFAULT_POLL_S)) {
    console.log(
      `KEDA's documented default pollingInterval is ${KEDA_DEFAULT_POLL_S} s (not run here): a poll at a ` +
        `random phase finds a backlog ${KEDA_DEFAULT_POLL_S / 2} s on average after it becomes visible, i.e. ` +
        `about ${ms(lag + (KEDA_DEFAULT_POLL_S / 2) * 1000)} with the visibility lag measured above (median ${ms(lag)})`,
    );
  }
}

await main();
