// The cache tier losing its primary on the real node, under a client writing sessions through the
// primary Service (CACHE_URL) and counting what was acknowledged (e2e/support/cache-writer.mjs), with
// the operator running in the cluster. A cache persists nothing and replicates asynchronously: a
// write the primary acknowledged in its last moments may be lost (the loss window, printed), but
// every session written before it must survive — also when the primary comes back empty before the
// operator moved it (its start script holds it: docs/adr/0021).
import { setTimeout as sleep } from 'node:timers/promises';
import { getApp } from './support/apps.ts';
import { eventsWhere, eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { acknowledgedAt, resumed, storedSessions, writeSessionsFor } from './support/cache-load.ts';
import type { LoopResult } from './support/pod-writer.ts';
import { lost, signalPod } from './support/pg-load.ts';
import { readyEndpoints } from './support/pods.ts';
import {
  allPodsReady,
  appWithWriter,
  deleteNamespaceAndWait,
  describeReal,
  WRITER,
  podStates,
  tierPods,
  localApp,
  WRITER_CLIENT,
} from './support/real-node.ts';
import { ROLE_LABEL } from '../operator/tiers/labels.ts';

const APP = 'sessions';
const CACHE_PODS = tierPods(APP, 'cache');
/** How long each case writes: the failover and the old primary's return both happen inside it. */
const WRITE_SECONDS = 40;
/**
 * The bound on what may be lost: only writes acknowledged this shortly before the primary died.
 * Replication to the replicas on the same node takes milliseconds; a second is generous.
 */
const LOSS_WINDOW_MS = 1000;

/** A cache alone (two replicas), whose client the writer is by the allowedClients field. */
const app = () =>
  localApp(APP, {
    cache: {
      replicas: 2,
      allowedClients: [WRITER_CLIENT],
    },
  });

let ns: string;

beforeAll(async () => {
  ns = await appWithWriter('real-cache-failover', app(), CACHE_PODS, 3);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

const primaryOf = (): string | undefined => getApp(ns, APP).status?.cache?.primary;
/** A new primary is recorded, and the primary Service sends to it alone. */
async function serviceFollows(before: string): Promise<string> {
  const after = await eventually(
    'a replica promoted',
    () => {
      const p = primaryOf();
      return p && p !== before && p;
    },
    120_000,
    500,
  );
  await eventually(
    `the primary Service on ${after} alone`,
    () => readyEndpoints(ns, `${APP}-cache`).join() === after,
    60_000,
    500,
  );
  return after;
}

/** The old primary is a ready replica, labelled so, behind the replicas Service. */
async function rejoinedAsReplica(pod: string): Promise<void> {
  await eventually(
    `${pod} back as a replica behind the replicas Service`,
    () => {
      const p = json<any>(['get', 'pod', pod, '-n', ns]);
      const ready = p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True');
      return (
        ready &&
        p.metadata.labels?.[ROLE_LABEL] === 'replica' &&
        readyEndpoints(ns, `${APP}-cache-replicas`).includes(pod)
      );
    },
    180_000,
    1000,
  );
}

/**
 * Every acknowledged session is there but those acknowledged within LOSS_WINDOW_MS before the
 * primary died; says how many were lost and how old the oldest was, and that writes resumed.
 */
async function expectOnlyTheLossWindowLost(w: LoopResult, prefix: string, diedAt: number) {
  expect(w.ackedCount).toBeGreaterThan(0);
  const stored = await storedSessions(ns, WRITER, prefix, w.attempts);
  const missing = lost(w.acked, stored.ids);
  const ages = acknowledgedAt(w, missing).map((t) => diedAt - t);
  const oldest = ages.length ? Math.max(...ages) : 0;
  console.log(
    `${prefix}: ${w.ackedCount} sessions acknowledged of ${w.attempts} attempts (${w.failed} failed), ` +
      `longest time without an acknowledgement ${w.longestGapMs} ms; ${missing.length} acknowledged ` +
      `lost` +
      (missing.length ? `, acknowledged at most ${oldest} ms before the primary died` : ''),
  );
  expect(ages.filter((age) => age > LOSS_WINDOW_MS)).toEqual([]);
  expect(resumed(w)).toBe(true);
}

describeReal('the cache tier losing its primary on the real node under session writes', () => {
  it('its server killed (SIGKILL), restarted in place empty: held, a replica is promoted at once, the Service follows, no session from before the loss window is lost, the old primary rejoins', async () => {
    const before = primaryOf()!;
    const restartsBefore = podStates(ns, `statefulset.kubernetes.io/pod-name=${before}`)[0]!.containers[0]!
      .restarts;
    const load = writeSessionsFor(ns, WRITER, WRITE_SECONDS, 'killed');
    await sleep(5000);
    const diedAt = Date.now();
    expect(signalPod(ns, before, 'redis-server', 'SIGKILL')).toBe(1);
    // What the client saw first: a primary that came back empty and kept serving would show here.
    const w = await load;
    await expectOnlyTheLossWindowLost(w, 'killed', diedAt);
    const after = await serviceFollows(before);
    // It came back in the same pod, held by its start script, and the operator said why it moved.
    expect(podStates(ns, `statefulset.kubernetes.io/pod-name=${before}`)[0]!.containers[0]!.restarts).toBe(
      restartsBefore + 1,
    );
    expect(tryKubectl(['logs', '-n', ns, before]).stdout).toMatch(/held as a replica of nothing/);
    // Promoted once it answered held, or (had it stayed away past the failover delay) as unready.
    const moved = eventsWhere(ns, 'reason=CacheFailover').map((e) => e.message ?? '');
    expect(moved).toContainEqual(expect.stringMatching(new RegExp(`^${before} .*; promoted ${after} `)));
    console.log(`killed: ${moved.at(-1)}`);
    await rejoinedAsReplica(before);
    await allPodsReady(ns, CACHE_PODS, 3);
  }, 600_000);

  it('its pod deleted, a new pod of its name starting empty: held, a replica is promoted, no session from before the loss window is lost, the new pod joins as a replica', async () => {
    const before = primaryOf()!;
    const load = writeSessionsFor(ns, WRITER, WRITE_SECONDS, 'deleted');
    await sleep(5000);
    const diedAt = Date.now();
    kubectl(['delete', 'pod', before, '-n', ns, '--wait=false']);
    const w = await load;
    await expectOnlyTheLossWindowLost(w, 'deleted', diedAt);
    await serviceFollows(before);
    await rejoinedAsReplica(before);
    await allPodsReady(ns, CACHE_PODS, 3);
  }, 600_000);

  // ADR 0030: a readiness probe killed on its timeout leaves orphans (its redis-cli), which go to PID 1.
  // The server as PID 1 left them zombies (it reaps only while a fork of its own runs); seen here.
  it('an orphan in a cache container is reaped by the start script (PID 1), the server its child', async () => {
    const pod = primaryOf()!;
    const exec = (...args: string[]) => kubectl(['exec', '-n', ns, pod, '-c', 'cache', '--', ...args]);
    expect(exec('cat', '/proc/1/cmdline').split('\0')).toEqual(['sh', '/config/start.sh', '']);
    // What a killed probe leaves: a shell whose parent is gone and that exits a moment later.
    const orphan = exec(
      'sh',
      '-c',
      '(exec sh -c "sleep 1; exit 141" </dev/null >/dev/null 2>&1 & echo $!)',
    ).trim();
    expect(orphan).toMatch(/^\d+$/);
    // Gone once it has exited, not left a zombie (which keeps its /proc entry): the script reaped it.
    await eventually(
      'the orphan reaped',
      () => !tryKubectl(['exec', '-n', ns, pod, '-c', 'cache', '--', 'test', '-e', `/proc/${orphan}`]).ok,
      30_000,
      1000,
    );
  }, 60_000);
});
