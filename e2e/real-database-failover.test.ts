// The database tier failing over on the real node, under a client writing through the read-write
// Service and counting what was acknowledged (e2e/support/pg-writer.mjs), with the operator running
// in the cluster. Synchronous replication (ANY 1 of 2 standbys): no acknowledged commit may be lost.
// Each case breaks the primary a different way; the figures each prints are in the session notes.
import { setTimeout as sleep } from 'node:timers/promises';
import { getApp } from './support/apps.ts';
import { eventsWhere, eventually, kubectl, tryKubectl } from './support/kube.ts';
import { PgFailover, report } from './support/pg-failover.ts';
import {
  isolatePod,
  podProcesses,
  signalPod,
  writeDirectly,
  writeFor,
  type WriteResult,
  hang,
  superuserQuery,
} from './support/pg-load.ts';
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
import { SWITCHOVER_ANNOTATION } from '../operator/controller/database-primary.ts';
import { PG_CONTAINER } from '../operator/tiers/postgres-cluster.ts';

const APP = 'ledger';
const DB_PODS = tierPods(APP, 'database');
const WEB_PODS = tierPods(APP, 'web');
/** How long each case writes: the failover and the old primary's return both happen inside it. */
const WRITE_SECONDS = 75;

/**
 * A database, whose client the writer is by the allowedClients field, and the demo app as the web
 * tier: ready only while every tier answers (/readyz), probed every 2 s, so a failover takes it out
 * of the Service within seconds. Its liveness is left to the default, which must not restart it then.
 */
const app = (delaySeconds?: number) =>
  localApp(APP, {
    web: {
      image: 'placeholder',
      port: 8080,
      replicas: 2,
      healthCheck: { path: '/readyz', periodSeconds: 2, failureThreshold: 2 },
    },
    database: {
      replicas: 2,
      synchronousReplicas: 1,
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
      ...(delaySeconds === undefined ? {} : { failover: { delaySeconds } }),
    },
  });

let ns: string;
/** The primary the cut-off case isolated (and healed), for the case after it. */
let cutOff: string | undefined;

beforeAll(async () => {
  ns = await appWithWriter('real-db-failover', app(), DB_PODS, 3);
  await allPodsReady(ns, WEB_PODS, 2);
  db = new PgFailover(ns, APP, WRITER);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

let db: PgFailover;
const primaryOf = () => db.primaryOf();
const restarts = (pod: string) => db.restarts(pod);
const podIP = (pod: string) => db.podIP(pod);
const rejoinedAsStandby = (pod: string) => db.rejoinedAsStandby(pod);
const expectNothingLost = (r: WriteResult, table: string) => db.expectNothingLost(r, table);
const fenceEvent = (pod: string) => db.fenceEvent(pod);
/** The operator's restarts of standbys that did not stream (InstanceRestarted Events), for the report. */
const stalledRestarts = () =>
  eventsWhere(ns, 'reason=InstanceRestarted')
    .map((e) => e.message ?? '')
    .filter((m) => /neither streamed/.test(m))
    .map((m) => m.split(' ')[0]!);

describeReal('the database tier failing over on the real node under writes', () => {
  // Each case starts from a whole tier: a case that ends early (its writer failed) must not leave
  // the next one a primary still restarting, and fail it for a reason of its own.
  beforeEach(() => allPodsReady(ns, DB_PODS, 3), 320_000);

  // ADR 0030: PID 1 of a container inherits its orphans, and a readiness probe killed on its timeout
  // leaves some. Were the postmaster PID 1, it would take one exiting with an error for a crashed
  // backend and restart every session; that happened here on a loaded node.
  it('an orphan in the primary container exiting with an error is reaped by the start script (PID 1): no session restarts', async () => {
    const primary = primaryOf();
    const exec = (...args: string[]) =>
      kubectl(['exec', '-n', ns, primary, '-c', PG_CONTAINER, '--', ...args]);
    expect(exec('cat', '/proc/1/cmdline').split('\0')).toEqual(['sh', '/config/start.sh', '']);
    const started = superuserQuery(ns, primary, 'SELECT pg_postmaster_start_time()');
    // What a killed probe leaves: a shell whose parent is gone and that fails a moment later.
    exec('sh', '-c', '(exec sh -c "sleep 1; exit 141" </dev/null >/dev/null 2>&1 &)');
    await sleep(5000);
    const log = kubectl(['logs', '-n', ns, primary, '-c', PG_CONTAINER]);
    expect(log).not.toMatch(/exited with exit code 141|terminating any other active server processes/);
    expect(superuserQuery(ns, primary, 'SELECT pg_postmaster_start_time()')).toBe(started);
  }, 60_000);

  it('a hung primary (every postgres process stopped): a standby is promoted, writes resume, none acknowledged is lost, the old primary is restarted and rejoins as a standby', async () => {
    const before = primaryOf();
    const load = writeFor(ns, WRITER, WRITE_SECONDS, 'hung');
    await sleep(5000);
    // Twice: a backend forked while the first pass ran is stopped by the second.
    expect(hang(ns, before)).toBeGreaterThan(0);
    let webUnready = false;
    const { promoted } = await db.promotedAway(before, Date.now(), () => {
      webUnready ||= podStates(ns, WEB_PODS).some((p) => !p.ready);
    });
    const r = await load;
    report('hung primary', r, `; promoted ${promoted}`);
    await expectNothingLost(r, 'hung');
    // Its liveness probe fails, the kubelet restarts it, and it comes back as a standby.
    const log = await rejoinedAsStandby(before);
    expect(restarts(before)).toBeGreaterThan(0);
    // Killed by the kubelet, it left a lock file whose PID is the new container's start script:
    // rewound all the same, not cloned anew.
    expect(log).toMatch(/rewinding to/);
    expect(log).not.toMatch(/cloning/);
    // The web pods left the Service while the database was gone, and were never restarted for it:
    // their liveness does not ask what their readiness asks.
    expect(webUnready).toBe(true);
    await allPodsReady(ns, WEB_PODS, 2);
    expect(podStates(ns, WEB_PODS).map((p) => p.containers[0]!.restarts)).toEqual([0, 0]);
  }, 600_000);

  it('the primary container killed (SIGKILL): the same instance or a promoted standby serves, none acknowledged is lost, and the old data is rewound, not cloned again', async () => {
    const before = primaryOf();
    const restartsBefore = restarts(before);
    const load = writeFor(ns, WRITER, WRITE_SECONDS, 'killed');
    await sleep(5000);
    expect(podProcesses(ns, before, 'postgres').length).toBeGreaterThan(0);
    signalPod(ns, before, 'postgres', 'SIGKILL');
    await eventually('the container restarted', () => restarts(before) > restartsBefore, 120_000, 500);
    const r = await load;
    const after = primaryOf();
    report('killed primary container', r, after === before ? '; restarted in place' : `; promoted ${after}`);
    await expectNothingLost(r, 'killed');
    if (after !== before) {
      const log = await rejoinedAsStandby(before);
      // The lock file of the killed postmaster no longer stops pg_rewind (its PID was the script's).
      expect(log).toMatch(/rewinding to/);
      expect(log).not.toMatch(/cloning/);
    }
    await allPodsReady(ns, DB_PODS, 3);
  }, 600_000);

  // A force-deleted pod's replacement can start while its old container still runs on the same
  // volume (StatefulSets promise at most one pod only without force). In the fresh run of 2026-12-04
  // that left the old primary not Ready for 5 minutes after a promotion. The start script now holds
  // a file lock on the volume, so a second postgres waits for the first to exit; the line below says
  // whether this run met the race.
  it('the primary pod force-deleted: a primary serves again, none acknowledged is lost, every instance Ready', async () => {
    const before = primaryOf();
    const load = writeFor(ns, WRITER, WRITE_SECONDS, 'deleted');
    await sleep(5000);
    kubectl(['delete', 'pod', before, '-n', ns, '--force', '--grace-period=0']);
    const r = await load;
    const after = primaryOf();
    const waited = /another postgres still runs on this volume/.test(
      tryKubectl(['logs', '-n', ns, before]).stdout,
    );
    report(
      'force-deleted primary pod',
      r,
      (after === before ? '; recreated in place' : `; promoted ${after}`) +
        (waited ? '; the new container waited for the old one' : ''),
    );
    await expectNothingLost(r, 'deleted');
    if (after !== before) await rejoinedAsStandby(before);
    await allPodsReady(ns, DB_PODS, 3);
  }, 600_000);

  /** Applies the app with `failover.delaySeconds` and waits until the operator has read it. */
  async function applyDelay(delaySeconds?: number): Promise<void> {
    kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(app(delaySeconds)));
    await eventually(
      `the delay of ${delaySeconds ?? 'default'} applied`,
      () => getApp(ns, APP).status?.observedGeneration === getApp(ns, APP).metadata.generation,
      60_000,
      500,
    );
  }

  // With the default delay (5 s) a killed container or a deleted pod that is back within it keeps its
  // role, so the cases above may see no promotion (bench/real-failover.ts: 2 of 5 killed runs and 5
  // of 5 force-deleted stayed). With no delay the operator decides as soon as the pod turns unready
  // or goes, before a restarting container answers its ping (the benchmark's killed runs: promoted
  // 5 of 5): the promotion path. Were the restart ever faster than the decision, the record would
  // stay and this case would say so.
  async function promotedAtOnce(what: string, table: string, fail: (pod: string) => void): Promise<void> {
    await applyDelay(0);
    let failure: unknown;
    try {
      const before = primaryOf();
      const load = writeFor(ns, WRITER, 30, table);
      await sleep(5000);
      fail(before);
      const r = await load;
      const after = primaryOf();
      report(`${what}, delaySeconds 0`, r, `; promoted ${after}`);
      expect(after).not.toBe(before);
      await expectNothingLost(r, table);
      const log = await rejoinedAsStandby(before);
      expect(log).toMatch(/rewinding to/);
      expect(log).not.toMatch(/cloning/);
    } catch (err) {
      failure = err;
    }
    // The cases after this one run with the default delay and every instance Ready, also when this
    // one failed; a failure here then does not hide the case's own.
    try {
      await applyDelay();
      await allPodsReady(ns, DB_PODS, 3);
    } catch (err) {
      failure ??= err;
    }
    if (failure) throw failure;
  }

  it('with delaySeconds 0, the primary container killed: a standby is promoted at once, none acknowledged is lost, and the old primary is rewound into a standby behind the read-only Service', async () => {
    await promotedAtOnce('killed primary container', 'killed_now', (pod) =>
      expect(signalPod(ns, pod, 'postgres', 'SIGKILL')).toBeGreaterThan(0),
    );
  }, 600_000);

  it('with delaySeconds 0, the primary pod force-deleted: a standby is promoted at once, none acknowledged is lost, and the new pod is rewound into a standby behind the read-only Service', async () => {
    await promotedAtOnce('force-deleted primary pod', 'deleted_now', (pod) =>
      kubectl(['delete', 'pod', pod, '-n', ns, '--force', '--grace-period=0']),
    );
  }, 600_000);

  it('a switchover asked for by annotation under writes: the named standby becomes the primary, none acknowledged is lost, the old primary rejoins as a standby', async () => {
    const before = primaryOf();
    const target = ['0', '1', '2'].map((i) => `${APP}-db-${i}`).find((n) => n !== before)!;
    const load = writeFor(ns, WRITER, 40, 'switchover');
    await sleep(5000);
    const askedAt = Date.now();
    kubectl(['annotate', 'scalableapp', APP, '-n', ns, `${SWITCHOVER_ANNOTATION}=${target}`, '--overwrite']);
    await eventually('the record to name the target', () => primaryOf() === target, 60_000, 200);
    const recordedMs = Date.now() - askedAt;
    const r = await load;
    report(
      'switchover',
      r,
      `; ${before} to ${target}, recorded ${(recordedMs / 1000).toFixed(1)} s after the request`,
    );
    await expectNothingLost(r, 'switchover');
    expect(eventsWhere(ns, 'reason=Switchover').length).toBeGreaterThan(0);
    // Done, the request is removed: the next case's failover away from the target is not undone.
    await eventually(
      'the switchover request removed',
      () => getApp(ns, APP).metadata.annotations?.[SWITCHOVER_ANNOTATION] === undefined,
    );
    const log = await rejoinedAsStandby(before);
    expect(log).not.toMatch(/cloning/);
    await allPodsReady(ns, DB_PODS, 3);
  }, 600_000);

  // Until 2026-12-06 this case failed in most full runs: the remaining standby had replayed past the
  // point where the promoted one's timeline forked, could never follow it, and with ANY 1 no commit
  // returned. The operator now restarts a standby that neither streams nor replays for 20 s, and its
  // start script rewinds it (server-tests/postgres.test.ts shows the rewind on real servers). So
  // this case writes longer than the others: the repair may take a minute after the promotion.
  it('a primary cut off from its standbys and the operator but reachable by a client fences itself before a standby is promoted, and none acknowledged is lost', async () => {
    const before = primaryOf();
    const writerIP = podIP(WRITER);
    const load = writeFor(ns, WRITER, 2 * WRITE_SECONDS, 'isolated');
    await sleep(5000);
    // Only the writer still reaches it: no standby, no operator, no API server, no DNS.
    const heal = isolatePod(ns, before, [writerIP]);
    const isolatedAt = Date.now();
    let healed = false;
    try {
      const { promoted, afterMs: promotedAfterMs } = await db.promotedAway(before, isolatedAt);
      // The fence came first: the pod said so in its readiness probe before the promotion.
      const fence = fenceEvent(before);
      expect(fence?.message).toMatch(/fenced: no standby report and no operator heartbeat/);
      // A client that still reaches the old primary directly, not through the Service, is refused.
      // By address (the cut-off pod has no DNS), its certificate checked against its own name.
      const direct = await writeDirectly(
        ns,
        WRITER,
        'isolated',
        podIP(before),
        `${before}.${APP}-db-headless.${ns}.svc`,
      );
      expect(direct).toEqual({ acknowledged: false, error: expect.stringMatching(/pg_hba\.conf/) });
      const r = await load;
      report(
        'primary cut off but alive',
        r,
        `; fenced ${fence ? ((fence.at - isolatedAt) / 1000).toFixed(0) : '?'} s after the cut (Event time, 1 s resolution), ` +
          `promoted ${promoted} ${(promotedAfterMs / 1000).toFixed(1)} s after the cut` +
          `; standbys restarted for not streaming: ${stalledRestarts().join(', ') || 'none'}`,
      );
      await expectNothingLost(r, 'isolated');
      heal();
      healed = true;
      cutOff = before;
    } finally {
      if (!healed) heal();
    }
  }, 600_000);

  // Found by this case: the switchover request of the case before named this pod and stayed on the
  // app, so once it rejoined the operator switched back to it. A request is now removed once done.
  it('the cut-off primary, once the partition heals, is restarted by the operator and rejoins as a standby', async () => {
    // The operator reaches it again, finds a primary that is not the recorded one, restarts it,
    // and its start script rewinds it (and drops its fence): a standby of the new primary.
    // Without the case before, there is nothing to rejoin: say so instead of waiting on no pod.
    if (!cutOff) throw new Error('the case before cut off no primary (see its failure): nothing to rejoin');
    const log = await rejoinedAsStandby(cutOff);
    expect(log).toMatch(/rewinding to/);
    await allPodsReady(ns, DB_PODS, 3);
  }, 600_000);
});
