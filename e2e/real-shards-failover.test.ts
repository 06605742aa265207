// One shard failing over on the real node while the others serve: two clients write at once, one to
// each shard's read-write Service (e2e/support/pg-writer.mjs, with the shards' login), and the
// primary of one shard hangs, is killed, or loses its pod, or is switched over by annotation. The
// operator in the cluster promotes one of that shard's standbys; the other shard's client must not
// notice (no outage beyond its normal pace, nothing lost). The shards replicate synchronously (ANY 1
// of 2 standbys) and fail over at once (delaySeconds 0), so every failure is a promotion and no
// acknowledged commit may be lost; what asynchronous replication loses is measured by
// real-database-async-failover.
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, kubectl } from './support/kube.ts';
import { PgFailover, report } from './support/pg-failover.ts';
import { writeFor, hang, signalPod, type WriteResult } from './support/pg-load.ts';
import { SWITCHOVER_ANNOTATION } from '../operator/controller/database-primary.ts';
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

const APP = 'social';
const SHARD_PODS = tierPods(APP, 'shard');
/** Enough for a hung primary's failover (about 20 s with delay 0) and writes after it. */
const WRITE_SECONDS = 60;
/** Enough for a killed or deleted primary's failover (under 5 s with delay 0) and a switchover. */
const SHORT_WRITE_SECONDS = 30;
/** Shard 1 serves if it acknowledges at least one write in every window this long (it writes every 10 ms). */
const SERVING_WINDOW_MS = 5000;

const app = () =>
  localApp(APP, {
    shards: {
      count: 2,
      key: 'user_id',
      replicasPerShard: 2,
      synchronousReplicas: 1,
      failover: { delaySeconds: 0 },
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
    },
  });

let ns: string;
let shard0: PgFailover;
let shard1: PgFailover;

beforeAll(async () => {
  ns = await appWithWriter('real-shards', app(), SHARD_PODS, 6);
  shard0 = new PgFailover(ns, APP, WRITER, `${APP}-shard-0`);
  shard1 = new PgFailover(ns, APP, WRITER, `${APP}-shard-1`);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

/** The windows of SERVING_WINDOW_MS from `from` to `to` in which `r` acknowledged nothing (ms after `from`). */
function silentWindows(r: WriteResult, from: number, to: number): number[] {
  const silent: number[] = [];
  for (let t = from; t < to; t += SERVING_WINDOW_MS)
    if (!r.at.some((a) => a >= t && a < t + SERVING_WINDOW_MS)) silent.push(t - from);
  return silent;
}

/** A client's longest time without an acknowledgement: its last one before, its first one after. */
function longestGap(r: WriteResult): { from: number; to: number } {
  let gap = { from: r.at[0]!, to: r.at[0]! };
  for (let i = 1; i < r.at.length; i++)
    if (r.at[i]! - r.at[i - 1]! > gap.to - gap.from) gap = { from: r.at[i - 1]!, to: r.at[i]! };
  return gap;
}

/**
 * The gap is the outage `at` caused: it spans `at`, began at most 10 s after it (a force-deleted pod
 * dies some time after the API call), and lasted at least a second (the writer's pace is 10 ms).
 */
function expectOutageAt(gap: { from: number; to: number }, at: number): void {
  expect(gap.to).toBeGreaterThanOrEqual(at);
  expect(gap.from).toBeLessThanOrEqual(at + 10_000);
  expect(gap.to - gap.from).toBeGreaterThanOrEqual(1000);
}

/**
 * Both shards written to; after 5 s `fail` breaks shard 0's primary. Shard 1 must serve all through
 * shard 0's outage and lose nothing; shard 0 must serve again on a promoted standby and lose nothing
 * either; its former primary rejoins as a standby.
 */
async function shard0Fails(what: string, table: string, seconds: number, fail: (pod: string) => void) {
  const before0 = shard0.primaryOf();
  const before1 = shard1.primaryOf();
  const load0 = writeFor(ns, WRITER, seconds, table, shard0.target);
  const load1 = writeFor(ns, WRITER, seconds, `${table}_other`, shard1.target);
  await sleep(5000);
  fail(before0);
  const failedAt = Date.now();
  const { promoted, afterMs: promotedAfterMs } = await shard0.promotedAway(before0, failedAt);
  const [r0, r1] = await Promise.all([load0, load1]);
  const lost0 = await shard0.lostOf(r0, table);
  // Shard 0's outage, as its client saw it: its longest time without an acknowledgement. (A
  // force-deleted pod dies some time after the API call: the outage, not the call, is the event.)
  const outage = longestGap(r0);
  report(
    `shard 0, ${what}`,
    r0,
    `; promoted ${promoted} ${(promotedAfterMs / 1000).toFixed(1)} s after; ${lost0.length} acknowledged lost`,
  );
  report('shard 1, meanwhile', r1);
  expectOutageAt(outage, failedAt);
  // Shard 1 never moved, kept acknowledging writes all through shard 0's outage, and has every one.
  expect(shard1.primaryOf()).toBe(before1);
  expect(silentWindows(r1, outage.from, outage.to)).toEqual([]);
  await shard1.expectNothingLost(r1, `${table}_other`);
  // Synchronous: the promoted standby had every commit shard 0 acknowledged.
  expect(lost0).toEqual([]);
  expect(shard0.primaryOf()).toBe(promoted);
  await shard0.rejoinedAsStandby(before0);
  await allPodsReady(ns, SHARD_PODS, 6);
}

describeReal('a shard failing over on the real node while the other serves', () => {
  it("shard 0's primary hung: a standby is promoted, shard 1's writes go on undisturbed, and neither loses an acknowledged write", async () => {
    await shard0Fails('hung primary', 'hung_shard', WRITE_SECONDS, (pod) =>
      expect(hang(ns, pod)).toBeGreaterThan(0),
    );
  }, 600_000);

  it("shard 0's primary container killed (SIGKILL): a standby is promoted at once, nothing acknowledged is lost, and shard 1 goes on undisturbed", async () => {
    await shard0Fails('killed primary container', 'killed_shard', SHORT_WRITE_SECONDS, (pod) =>
      expect(signalPod(ns, pod, 'postgres', 'SIGKILL')).toBeGreaterThan(0),
    );
  }, 600_000);

  it("shard 0's primary pod force-deleted: a standby is promoted at once, nothing acknowledged is lost, and shard 1 goes on undisturbed", async () => {
    await shard0Fails('force-deleted primary pod', 'deleted_shard', SHORT_WRITE_SECONDS, (pod) =>
      kubectl(['delete', 'pod', pod, '-n', ns, '--force', '--grace-period=0']),
    );
  }, 600_000);

  it('a switchover of shard 1 by annotation under writes: its standby becomes the primary, nothing acknowledged is lost, and shard 0 goes on undisturbed', async () => {
    const before0 = shard0.primaryOf();
    const before1 = shard1.primaryOf();
    const target = [0, 1, 2].map((i) => `${APP}-shard-1-${i}`).find((p) => p !== before1)!;
    const load0 = writeFor(ns, WRITER, SHORT_WRITE_SECONDS, 'switchover_other', shard0.target);
    const load1 = writeFor(ns, WRITER, SHORT_WRITE_SECONDS, 'switchover', shard1.target);
    await sleep(5000);
    const askedAt = Date.now();
    kubectl(['annotate', 'scalableapp', APP, '-n', ns, `${SWITCHOVER_ANNOTATION}=${target}`, '--overwrite']);
    await eventually("shard 1's record to name the target", () => shard1.primaryOf() === target, 60_000, 200);
    const recordedMs = Date.now() - askedAt;
    const [r0, r1] = await Promise.all([load0, load1]);
    report(
      'shard 1, switchover',
      r1,
      `; ${before1} to ${target}, recorded ${(recordedMs / 1000).toFixed(1)} s after the request`,
    );
    report('shard 0, meanwhile', r0);
    await shard1.expectNothingLost(r1, 'switchover');
    const outage = longestGap(r1);
    expectOutageAt(outage, askedAt);
    expect(shard0.primaryOf()).toBe(before0);
    expect(silentWindows(r0, outage.from, outage.to)).toEqual([]);
    await shard0.expectNothingLost(r0, 'switchover_other');
    await shard1.rejoinedAsStandby(before1);
    await allPodsReady(ns, SHARD_PODS, 6);
  }, 600_000);
});
