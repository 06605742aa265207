// The database tier with asynchronous replication (synchronousReplicas 0, the default) failing over
// on the real node under a client writing through the read-write Service: what it may lose, measured.
// A primary acknowledges a commit before any standby has it, so a failover can lose what the
// promoted standby had not received: the loss window. These cases bound it and print it:
// - a hung primary: only commits acknowledged in the instant before it froze;
// - a primary cut off but alive: the commits it acknowledged until it fenced itself (ADR 0019), to
//   clients that still reached it, and none acknowledged before the cut.
// With synchronousReplicas >= 1 none is lost (real-database-failover.test.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, json, kubectl } from './support/kube.ts';
import { PgFailover, report } from './support/pg-failover.ts';
import {
  acknowledgedAt,
  caughtUpStandbys,
  hang,
  isolatePod,
  padDatabase,
  throttlePod,
  writeFor,
  type WriteResult,
} from './support/pg-load.ts';
import {
  allPodsReady,
  appWithWriter,
  deleteNamespaceAndWait,
  describeReal,
  podStates,
  WRITER,
  tierPods,
  localApp,
  WRITER_CLIENT,
} from './support/real-node.ts';
import { FENCE_AFTER_SECONDS, READY_PERIOD_SECONDS } from '../operator/tiers/postgres-cluster.ts';

const APP = 'journal';
const DB_PODS = tierPods(APP, 'database');
const WRITE_SECONDS = 75;
/** Streaming to a standby on the same node takes milliseconds: what a freeze may lose is this recent. */
const FREEZE_WINDOW_MS = 1000;
/**
 * The bound ADR 0019 documents: a cut-off primary fences within FENCE_AFTER_SECONDS plus one period
 * of its readiness probe, which runs the fence; plus a second for the fence to take hold (the
 * reload of pg_hba.conf, the sessions' termination).
 */
/** About two and a half minutes of cloning at 1 MB/s (80 MiB of rows, about 95 MiB on disk). */
const CLONE_MEGABYTES = 80;
const CLONE_RATE = '8mbit';
const FENCE_BOUND_MS = (FENCE_AFTER_SECONDS + READY_PERIOD_SECONDS + 1) * 1000;

const app = (replicas = 2) =>
  localApp(APP, {
    database: {
      replicas,
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
    },
  });

let ns: string;
let db: PgFailover;

beforeAll(async () => {
  ns = await appWithWriter('real-db-async', app(), DB_PODS, 3);
  db = new PgFailover(ns, APP, WRITER);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

/** Another instance recorded as the primary; how long after `since`. */
/** The lost commits' acknowledgement times, relative to `t0` (ms; negative: before it). */
async function lossWindow(r: WriteResult, table: string, t0: number) {
  const missing = await db.lostOf(r, table);
  const rel = acknowledgedAt(r, missing).map((t) => t - t0);
  const span = rel.length ? `${Math.min(...rel)}..${Math.max(...rel)} ms` : 'none';
  return { missing, rel, text: `${missing.length} acknowledged lost (acknowledged ${span} from the event)` };
}

describeReal('the database tier with asynchronous replication failing over on the real node', () => {
  it('a hung primary: a standby is promoted, and only commits acknowledged in the instant before the freeze may be lost', async () => {
    const before = db.primaryOf();
    const load = writeFor(ns, WRITER, WRITE_SECONDS, 'hung');
    await sleep(5000);
    expect(hang(ns, before)).toBeGreaterThan(0);
    const frozenAt = Date.now();
    const { promoted, afterMs } = await db.promotedAway(before, frozenAt);
    const r = await load;
    const loss = await lossWindow(r, 'hung', frozenAt);
    report(
      'async, hung primary',
      r,
      `; promoted ${promoted} ${(afterMs / 1000).toFixed(1)} s after; ${loss.text}`,
    );
    expect(loss.rel.filter((t) => t < -FREEZE_WINDOW_MS || t > FREEZE_WINDOW_MS)).toEqual([]);
    await db.rejoinedAsStandby(before);
    await allPodsReady(ns, DB_PODS, 3);
  }, 600_000);

  it('a primary cut off but alive: what it acknowledged to a client that still reached it until it fenced itself is lost, and nothing acknowledged before the cut', async () => {
    const before = db.primaryOf();
    const load = writeFor(ns, WRITER, WRITE_SECONDS, 'isolated');
    await sleep(5000);
    const heal = isolatePod(ns, before, [db.podIP(WRITER)]);
    const cutAt = Date.now();
    let healed = false;
    try {
      const { promoted, afterMs } = await db.promotedAway(before, cutAt);
      const fence = db.fenceEvent(before);
      expect(fence).toBeDefined();
      const r = await load;
      const loss = await lossWindow(r, 'isolated', cutAt);
      report(
        'async, primary cut off but alive',
        r,
        `; fenced ${((fence!.at - cutAt) / 1000).toFixed(0)} s after the cut (Event time, 1 s resolution), ` +
          `promoted ${promoted} ${(afterMs / 1000).toFixed(1)} s after it; ${loss.text}`,
      );
      // Lost: only what the cut-off primary acknowledged after the cut and within the fence's bound.
      expect(loss.rel.filter((t) => t < -FREEZE_WINDOW_MS || t > FENCE_BOUND_MS)).toEqual([]);
      heal();
      healed = true;
    } finally {
      if (!healed) heal();
    }
    // Restarted by the operator once it reaches it again, it rewinds away what it alone had.
    const log = await db.rejoinedAsStandby(before);
    expect(log).toMatch(/rewinding to/);
    await allPodsReady(ns, DB_PODS, 3);
  }, 600_000);

  it('a new replica whose clone outlasts the old liveness window finishes it and joins, never restarted', async () => {
    // Before ADR 0018 liveness ran after 30 s and allowed 60 s more: a clone longer than that was
    // killed part-way and started over for ever. The startup probe now allows an hour.
    const OLD_LIVENESS_WINDOW_MS = 90_000;
    const primary = db.primaryOf();
    const padded = await padDatabase(ns, WRITER, 'clone_pad', CLONE_MEGABYTES);
    // The standbys first stream the padding unthrottled: the throttled link then carries the clone alone.
    await eventually('both standbys caught up', () => caughtUpStandbys(ns, primary) === 2, 300_000, 1000);
    const before = new Set(podStates(ns, DB_PODS).map((p) => p.name));
    const unthrottle = throttlePod(ns, primary, CLONE_RATE);
    try {
      kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(app(3)));
      const [added] = await eventually('the new instance', () => {
        const fresh = podStates(ns, DB_PODS).filter((p) => !before.has(p.name));
        return fresh.length === 1 && fresh;
      });
      await allPodsReady(ns, DB_PODS, 4);
      const pod = json<any>(['get', 'pod', added!.name, '-n', ns]);
      const started = Date.parse(pod.status.containerStatuses[0].state.running.startedAt);
      const ready = Date.parse(pod.status.conditions.find((c: any) => c.type === 'Ready').lastTransitionTime);
      console.log(
        `${added!.name} cloned ${(padded.bytes / 2 ** 20).toFixed(0)} MiB at ${CLONE_RATE}: ready ` +
          `${((ready - started) / 1000).toFixed(0)} s after its container started, ` +
          `${pod.status.containerStatuses[0].restartCount} restarts`,
      );
      // The case shows something only if the clone really outlasted the old window.
      expect(ready - started).toBeGreaterThan(OLD_LIVENESS_WINDOW_MS);
      expect(pod.status.containerStatuses[0].restartCount).toBe(0);
      expect(kubectl(['logs', '-n', ns, added!.name])).toMatch(/cloning .* with pg_basebackup/);
    } finally {
      unthrottle();
    }
  }, 600_000);
});
