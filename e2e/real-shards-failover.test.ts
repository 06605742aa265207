// One shard failing over on the real node while the others serve: two clients write at once, one to
// each shard's read-write Service (e2e/support/pg-writer.mjs, with the shards' login), and the
// primary of shard 0 hangs. Shard 0's standby is promoted by the operator in the cluster; shard 1's
// client must not notice (no outage beyond its normal pace, nothing lost). Shards replicate
// asynchronously by default: what shard 0 lost, if anything, is printed.
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from './support/kube.ts';
import { PgFailover, report } from './support/pg-failover.ts';
import { acknowledgedAt, writeFor, hang } from './support/pg-load.ts';
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
const WRITE_SECONDS = 60;
/** Shard 1 serves if it acknowledges at least one write in every window this long (it writes every 10 ms). */
const SERVING_WINDOW_MS = 5000;
/** Streaming to a standby on the same node takes milliseconds: what a hang may lose is this recent. */
const FREEZE_WINDOW_MS = 1000;

const app = () =>
  localApp(APP, {
    shards: {
      count: 2,
      key: 'user_id',
      replicasPerShard: 1,
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
    },
  });

let ns: string;
let shard0: PgFailover;
let shard1: PgFailover;

beforeAll(async () => {
  ns = await appWithWriter('real-shards', app(), SHARD_PODS, 4);
  shard0 = new PgFailover(ns, APP, WRITER, `${APP}-shard-0`);
  shard1 = new PgFailover(ns, APP, WRITER, `${APP}-shard-1`);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

describeReal('a shard failing over on the real node while the other serves', () => {
  it("shard 0's primary hung: its standby is promoted, shard 1's writes go on undisturbed, and neither loses what it acknowledged before the hang", async () => {
    const before0 = shard0.primaryOf();
    const before1 = shard1.primaryOf();
    const load0 = writeFor(ns, WRITER, WRITE_SECONDS, 'hung_shard', shard0.target);
    const load1 = writeFor(ns, WRITER, WRITE_SECONDS, 'other_shard', shard1.target);
    await sleep(5000);
    expect(hang(ns, before0)).toBeGreaterThan(0);
    const frozenAt = Date.now();
    const promoted = await eventually(
      'shard 0 failed over',
      () => {
        const p = shard0.primaryOf();
        return p !== before0 && p;
      },
      120_000,
      500,
    );
    const promotedAfterMs = Date.now() - frozenAt;
    const [r0, r1] = await Promise.all([load0, load1]);
    const lost0 = await shard0.lostOf(r0, 'hung_shard');
    report(
      'shard 0, hung primary',
      r0,
      `; promoted ${promoted} ${(promotedAfterMs / 1000).toFixed(1)} s after; ${lost0.length} acknowledged lost`,
    );
    report('shard 1, meanwhile', r1);
    // Shard 1 never moved, kept acknowledging writes all through shard 0's outage (in every window
    // of SERVING_WINDOW_MS from the hang to the promotion), and has every one it acknowledged.
    expect(shard1.primaryOf()).toBe(before1);
    const silent: number[] = [];
    for (let t = frozenAt; t < frozenAt + promotedAfterMs; t += SERVING_WINDOW_MS)
      if (!r1.at.some((a) => a >= t && a < t + SERVING_WINDOW_MS)) silent.push(t - frozenAt);
    expect(silent).toEqual([]);
    await shard1.expectNothingLost(r1, 'other_shard');
    // What shard 0 may have lost was acknowledged in the instant before the hang (asynchronous).
    const ages = acknowledgedAt(r0, lost0).map((t) => frozenAt - t);
    expect(ages.filter((age) => age > FREEZE_WINDOW_MS || age < -FREEZE_WINDOW_MS)).toEqual([]);
    await shard0.rejoinedAsStandby(before0);
    await allPodsReady(ns, SHARD_PODS, 4);
  }, 600_000);
});
