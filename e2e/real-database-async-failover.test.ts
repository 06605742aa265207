// The database tier with asynchronous replication (synchronousReplicas 0, the default) failing over
// on the real node under a client writing through the read-write Service: what it may lose, measured.
// A primary acknowledges a commit before any standby has it, so a failover can lose what the
// promoted standby had not received: the loss window. These cases bound it and print it:
// - a hung primary: only commits acknowledged in the instant before it froze;
// - a primary cut off but alive: the commits it acknowledged until it fenced itself (ADR 0019), to
//   clients that still reached it, and none acknowledged before the cut.
// With synchronousReplicas >= 1 none is lost (real-database-failover.test.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from './support/kube.ts';
import { PgFailover, report } from './support/pg-failover.ts';
import { acknowledgedAt, isolatePod, writeFor, type WriteResult, hang } from './support/pg-load.ts';
import {
  allPodsReady,
  appWithWriter,
  deleteNamespaceAndWait,
  describeReal,
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
const FENCE_BOUND_MS = (FENCE_AFTER_SECONDS + READY_PERIOD_SECONDS + 1) * 1000;

const app = () =>
  localApp(APP, {
    database: {
      replicas: 2,
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
async function promotedAway(before: string, since: number): Promise<{ promoted: string; afterMs: number }> {
  const promoted = await eventually(
    'another instance promoted',
    () => {
      const p = db.primaryOf();
      return p !== before && p;
    },
    120_000,
    500,
  );
  return { promoted, afterMs: Date.now() - since };
}

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
    const { promoted, afterMs } = await promotedAway(before, frozenAt);
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
      const { promoted, afterMs } = await promotedAway(before, cutAt);
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
});
