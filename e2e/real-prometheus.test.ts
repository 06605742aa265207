// The operator's alert rules (operator/monitoring/alert-rules.ts) in a real Prometheus on the real
// node (e2e/support/prometheus.ts), scraping an app's exporters and the in-cluster operator with
// docs/monitoring.md's scrape config: every target is up and every series the rules read (of the tiers
// deployed) exists, and three alerts fire on the real events they are about — a failover, a standby
// whose replay is paused, a queue growing under a consumer at its maximum — with the labels they name.
// Every rule's `for` is shortened here (support/prometheus.ts says why); each case prints how long its
// alert took to fire.
import { ALERT_RULES } from '../operator/monitoring/alert-rules.ts';
import { OPERATOR_SERIES, dashboardQueries, withApp } from '../operator/monitoring/dashboards.ts';
import { eventually, kubectl, tryKubectl } from './support/kube.ts';
import { PgFailover } from './support/pg-failover.ts';
import { padDatabase, superuserQuery } from './support/pg-load.ts';
import { OPERATOR_NAMESPACE, Prometheus, SCRAPER_LABELS, type Alert } from './support/prometheus.ts';
import { consumerStatus, publishFor } from './support/queue-load.ts';
import {
  allPodsReady,
  applyAndAwaitReady,
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  installInClusterOperator,
  localApp,
  startProbe,
  tierPods,
  WRITER,
  WRITER_CLIENT,
  WRITER_LABELS,
} from './support/real-node.ts';

const APP = 'alerting';
const QUEUE = 'jobs';
const CONSUMER = 'worker';
/** How long any one alert may take to fire once its condition holds (scrape 5s, eval 5s, for 10s). */
const FIRE_WITHIN_MS = 150_000;

const app = (prometheusNamespace: string) =>
  localApp(APP, {
    database: {
      replicas: 1,
      synchronousReplicas: 0,
      storage: { size: '1Gi' },
      failover: { delaySeconds: 0 },
      allowedClients: [WRITER_CLIENT],
    },
    queue: {
      replicas: 1,
      queues: [{ name: QUEUE }],
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
    },
    // One shard of one instance: its exporter is a target, and the operator keeps its ring's series.
    shards: { count: 1, key: 'tenant_id', replicasPerShard: 0, storage: { size: '1Gi' } },
    consumers: [
      {
        name: CONSUMER,
        image: 'placeholder',
        queue: QUEUE,
        // Always at its maximum: one replica, which drains 5 messages a second (200 ms each, one at
        // a time), so a publisher outruns it.
        autoscaling: {
          minReplicas: 1,
          maxReplicas: 1,
          messagesPerReplica: 100,
          pollIntervalSeconds: 2,
          cooldownSeconds: 15,
        },
        env: [
          { name: 'CONSUMER_WORK_MS', value: '200' },
          { name: 'PREFETCH', value: '1' },
        ],
        healthCheck: { port: 8081, periodSeconds: 2 },
      },
    ],
    monitoring: {
      enabled: true,
      scrapers: [
        {
          podSelector: { matchLabels: SCRAPER_LABELS },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': prometheusNamespace } },
        },
      ],
    },
  });

let ns: string;
let prom: Prometheus | undefined;
let db: PgFailover;

beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-prometheus');
  prom = await Prometheus.deploy(ns);
  await applyAndAwaitReady(ns, app(prom.ns), `${APP} Ready on the real node`);
  await allPodsReady(ns, tierPods(APP, 'database'), 2);
  startProbe(ns, WRITER, WRITER_LABELS, `${APP}-connection`);
  await allPodsReady(ns, `scalableapp.io/test-client=${WRITER_LABELS['scalableapp.io/test-client']}`, 1);
  db = new PgFailover(ns, APP, WRITER);
}, 720_000);

afterAll(() => {
  prom?.cleanup();
  if (ns) deleteNamespaceAndWait(ns);
}, 400_000);

/** Waits until `alert` fires with `labels` (a subset); prints and returns how long it took. */
async function firing(
  alert: string,
  labels: Record<string, string>,
  since: number,
  within = FIRE_WITHIN_MS,
): Promise<{ alert: Alert; afterMs: number }> {
  const matches = (a: Alert) =>
    a.labels.alertname === alert && Object.entries(labels).every(([k, v]) => a.labels[k] === v);
  try {
    const found = await eventually(
      `${alert} firing with ${JSON.stringify(labels)}`,
      () => prom!.alerts().find(matches),
      within,
      2000,
    );
    const afterMs = Date.now() - since;
    console.log(
      `${alert} firing ${(afterMs / 1000).toFixed(1)} s after its cause: ${JSON.stringify(found.labels)}`,
    );
    return { alert: found, afterMs };
  } catch (err) {
    const all = prom!.alerts(true).map((a) => `${a.state} ${JSON.stringify(a.labels)}`);
    const expr = ALERT_RULES.find((r) => r.alert === alert)!.expr;
    throw new Error(
      `${(err as Error).message}\nalerts now: ${all.join('\n') || 'none'}\n` +
        `its expression now: ${JSON.stringify(prom!.query(expr))}`,
    );
  }
}

/**
 * The operator's per-app series (operator/controller/app-metrics.ts) for this app, within 30 s: the
 * two alerts below read nothing else. An operator image older than them exports none, and says so.
 */
async function expectOperatorSeries(): Promise<void> {
  const sel = `scalableapp_tier_ready{namespace="${ns}",app="${APP}"}`;
  await eventually(`${sel} scraped from the operator`, () => prom!.query(sel).length > 0, 30_000, 5000).catch(
    () => {
      const image = kubectl([
        'get',
        'deployment',
        'scalableapp-operator',
        '-n',
        OPERATOR_NAMESPACE,
        '-o',
        'jsonpath={.spec.template.spec.containers[0].image}',
      ]);
      throw new Error(
        `the operator exports no per-app series for ${ns}/${APP} (no ${sel}): the in-cluster operator ` +
          `(${image}) predates operator/controller/app-metrics.ts, or does not observe this app`,
      );
    },
  );
}

/** The metric names the rules read: every `pg_`, `redis_`, `scalableapp_`, `controller_runtime_` name. */
const ruleMetricNames = () =>
  [
    ...new Set(
      ALERT_RULES.flatMap(
        (r) => r.expr.match(/\b(?:pg|redis|scalableapp|controller_runtime)_[a-z0-9_]+/g) ?? [],
      ),
    ),
  ].sort();

describeReal('the alert rules in a real Prometheus on the real node', () => {
  it('every target of the app and the operator is up, and every series the rules read of these tiers exists', async () => {
    const since = Date.now();
    const expected = { database: 2, shard: 1, queue: 1, operator: 2 };
    const summary = () => {
      const t = prom!.targets();
      const app = t.filter((x) => x.scrapePool === 'scalableapp' && x.labels.namespace === ns);
      const op = t.filter((x) => x.scrapePool === 'scalableapp-operator');
      return {
        byTier: {
          database: app.filter((x) => x.labels.tier === 'database' && x.health === 'up').length,
          shard: app.filter((x) => x.labels.tier === 'shard' && x.health === 'up').length,
          queue: app.filter((x) => x.labels.tier === 'queue' && x.health === 'up').length,
          operator: op.filter((x) => x.health === 'up').length,
        },
        all: [...app, ...op].map((x) => `${x.scrapePool} ${x.scrapeUrl} ${x.health} ${x.lastError}`),
      };
    };
    let last: ReturnType<typeof summary> | undefined;
    await eventually(
      'every target up',
      () => {
        last = summary();
        return JSON.stringify(last.byTier) === JSON.stringify(expected);
      },
      120_000,
      2000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${last?.all.join('\n')}\n${prom!.log()}`);
    });
    console.log(`every target up ${((Date.now() - since) / 1000).toFixed(1)} s after the app was Ready`);
    expect(last!.all).toHaveLength(6);

    // Not deployed here, so no series: the cache's (redis_*); archiving, exported only for a tier
    // with spec.*.backup (operator/controller/app-metrics.test.ts reads it); and a primary
    // move is counted only once one happened (the failover case asks for it).
    const notHere = (n: string) =>
      n.startsWith('redis_') || n === 'scalableapp_archiving' || n === 'scalableapp_primary_changes_total';
    const names = ruleMetricNames();
    const wanted = names.filter((n) => !notHere(n));
    console.log(`rule series checked: ${wanted.join(' ')}; skipped: ${names.filter(notHere).join(' ')}`);
    expect(wanted).toEqual(expect.arrayContaining(['pg_up', 'scalableapp_consumer_queue_depth']));
    const missing: string[] = [];
    await eventually(
      'a series of every name the rules read',
      () => {
        missing.length = 0;
        for (const n of wanted) {
          // The app's series carry its namespace; the operator's controller series do not.
          const sel = n.startsWith('controller_runtime_') ? `${n}` : `${n}{namespace="${ns}"}`;
          if (prom!.query(sel).length === 0) missing.push(n);
        }
        return missing.length === 0;
      },
      60_000,
      5000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}: no series of ${missing.join(', ')}`);
    });
    // The consumer's series are the app's, from the operator (honor_labels kept its namespace).
    const consumer = prom!.query(`scalableapp_consumer_max_replicas{namespace="${ns}",app="${APP}"}`);
    expect(consumer.map((s) => [s.metric.consumer, s.value[1]])).toEqual([[CONSUMER, '1']]);
  }, 240_000);

  it('a standby whose replay is paused falls behind its primary: ScalableAppReplicationLagHigh fires for it', async () => {
    const primary = db.primaryOf();
    const standby = [`${APP}-db-0`, `${APP}-db-1`].find((p) => p !== primary)!;
    superuserQuery(ns, standby, 'SELECT pg_wal_replay_pause()');
    try {
      const since = Date.now();
      // More WAL than the default threshold (DEFAULT_THRESHOLDS.replicationLagMiB, 64 MiB): the primary sees the standby that far behind.
      const pad = await padDatabase(ns, WRITER, 'lagging', 80);
      console.log(
        `wrote ${pad.rows} rows (${(pad.bytes / 1048576).toFixed(0)} MiB) while ${standby} replayed nothing`,
      );
      const { alert } = await firing('ScalableAppReplicationLagHigh', { namespace: ns }, since);
      // Either expression names the standby: the primary's view (label standby) or its own (pod).
      expect([alert.labels.standby, alert.labels.pod]).toContain(standby);
    } finally {
      superuserQuery(ns, standby, 'SELECT pg_wal_replay_resume()');
    }
    await eventually(
      `${standby} replaying again`,
      () => superuserQuery(ns, standby, 'SELECT pg_is_wal_replay_paused()') === 'f',
      30_000,
      1000,
    );
  }, 300_000);

  it('a queue growing under a consumer at its maximum: ScalableAppQueueBacklogGrowing fires for that consumer', async () => {
    await expectOperatorSeries();
    const since = Date.now();
    // One publisher with confirms for 45 s: hundreds a second against the 5 one replica takes. The
    // alert fired within 20 s when measured; after the publisher stops, the depth's 5-minute slope
    // stays positive for minutes, so a slower run still sees it.
    const load = publishFor(ns, WRITER, QUEUE, 45);
    try {
      await firing('ScalableAppQueueBacklogGrowing', { namespace: ns, app: APP, consumer: CONSUMER }, since);
    } catch (err) {
      const series = prom!.query(`{__name__=~"scalableapp_consumer_.*",namespace="${ns}"}`);
      const status = JSON.stringify(consumerStatus(ns, APP, CONSUMER));
      throw new Error(
        `${(err as Error).message}\nconsumer series: ${JSON.stringify(series.map((s) => [s.metric, s.value]))}\nstatus: ${status}`,
      );
    } finally {
      const r = await load;
      console.log(`published ${r.ackedCount} messages confirmed of ${r.attempts}`);
    }
  }, 300_000);

  it('the primary pod force-deleted: a standby is promoted and ScalableAppPrimaryMoved fires with reason Failover', async () => {
    await expectOperatorSeries();
    const before = db.primaryOf();
    const since = Date.now();
    kubectl(['delete', 'pod', before, '-n', ns, '--force', '--grace-period=0']);
    const { promoted, afterMs } = await db.promotedAway(before, since);
    console.log(`promoted ${promoted} ${(afterMs / 1000).toFixed(1)} s after ${before} was deleted`);
    try {
      await firing(
        'ScalableAppPrimaryMoved',
        { namespace: ns, app: APP, cluster: `${APP}-db`, reason: 'Failover' },
        since,
      );
    } catch (err) {
      const raw = prom!.query(`scalableapp_primary_changes_total{namespace="${ns}"}[10m]`);
      const events = tryKubectl([
        'get',
        'events',
        '-n',
        ns,
        '--field-selector',
        `involvedObject.name=${APP}`,
      ]);
      throw new Error(
        `${(err as Error).message}\nscalableapp_primary_changes_total samples: ${JSON.stringify(raw)}\n` +
          `events:\n${events.stdout.slice(-2000)}`,
      );
    }
  }, 300_000);

  it("every dashboard query over the operator's series finds a series: this app's, or the operator's own", async () => {
    // After the failover case, so the primary moves have a count.
    const queries = dashboardQueries()
      .filter((q) => OPERATOR_SERIES.test(q.expr))
      .map((q) => ({ ...q, expr: withApp(q.expr, ns, APP) }));
    expect(queries.length).toBeGreaterThan(10);
    let empty: string[] = [];
    // A rate over [5m] needs two samples of its counter in the window.
    await eventually(
      'every query answered',
      () => {
        empty = queries.filter((q) => prom!.query(q.expr).length === 0).map((q) => `${q.panel}: ${q.expr}`);
        return empty.length === 0;
      },
      120_000,
      5000,
    ).catch(() => undefined);
    expect(empty).toEqual([]);
  });
});
