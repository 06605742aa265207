// What the operator knows of each app, as Prometheus series: every tier's readiness and instances,
// each Postgres cluster's and the cache's primary, primary moves by reason, the consumers' last
// scaling decision, and the shard ring. The alerts (monitoring/alerts.yaml) and dashboards read
// these beside the exporters' series. Labels are bounded by what the apps declare: namespace, app,
// tier, and a workload, cluster, consumer or pod name of that app; an app's series go with it.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { ScalableAppStatus } from '../api/scalable-app.ts';
import { LABEL } from '../tiers/labels.ts';
import type { Move } from './tier-module.ts';
import type { ObservedFacts } from '../tiers/objects.ts';

type Labels = Record<string, string>;
type Workload = KubernetesObject & {
  spec?: { replicas?: number };
  status?: { readyReplicas?: number };
};

const WORKLOAD_KINDS = new Set(['StatefulSet', 'Deployment']);
/** Label sets by metric, each once (keyed by its JSON). */
type LabelSets = Map<Gauge | Counter, Map<string, Labels>>;

function remember(sets: LabelSets, metric: Gauge | Counter, labels: Labels): void {
  let byKey = sets.get(metric);
  if (!byKey) sets.set(metric, (byKey = new Map()));
  byKey.set(JSON.stringify(labels), labels);
}

export class AppMetrics {
  private readonly tierReady: Gauge;
  private readonly archiving: Gauge;
  private readonly replicas: Gauge;
  private readonly readyReplicas: Gauge;
  private readonly primary: Gauge;
  private readonly primaryChanges: Counter;
  private readonly consumerReplicas: Gauge;
  private readonly consumerDesired: Gauge;
  private readonly consumerDepth: Gauge;
  private readonly consumerMax: Gauge;
  private readonly ringVersion: Gauge;
  private readonly pendingRing: Gauge;
  private readonly movedRanges: Gauge;
  /** Per app key: the gauges' label sets of its last look (and polls since), to drop those gone. */
  private readonly gauges = new Map<string, LabelSets>();
  /** Per app key: the counters' label sets, kept while the app lives (a count never resets). */
  private readonly counters = new Map<string, LabelSets>();

  constructor(registry: Registry) {
    const registers = [registry];
    const gauge = (name: string, help: string, labelNames: string[]) =>
      new Gauge({ name, help, labelNames, registers });
    const app = ['namespace', 'app'];
    this.tierReady = gauge(
      'scalableapp_tier_ready',
      '1 when the tier reports Ready (its <Tier>Ready condition).',
      [...app, 'tier'],
    );
    this.archiving = gauge(
      'scalableapp_archiving',
      "1 while a tier's WAL archiving keeps up (its <Tier>Archiving condition True), 0 while it fails, falls behind or fills its queue (False, with the condition's reason); absent while its primary cannot be asked.",
      [...app, 'tier', 'reason'],
    );
    this.replicas = gauge(
      'scalableapp_workload_replicas',
      "Desired pods of a tier's StatefulSet or Deployment.",
      [...app, 'tier', 'workload'],
    );
    this.readyReplicas = gauge(
      'scalableapp_workload_ready_replicas',
      "Ready pods of a tier's StatefulSet or Deployment.",
      [...app, 'tier', 'workload'],
    );
    this.primary = gauge(
      'scalableapp_primary_info',
      'The primary the operator records for a Postgres cluster (database, each shard) or the cache: 1 for its pod.',
      [...app, 'tier', 'cluster', 'pod'],
    );
    this.primaryChanges = new Counter({
      name: 'scalableapp_primary_changes_total',
      help: 'Primaries the operator moved, by cluster and reason (Failover, Switchover, CacheFailover).',
      labelNames: [...app, 'cluster', 'reason'],
      registers,
    });
    this.consumerReplicas = gauge(
      'scalableapp_consumer_replicas',
      'Replicas set by the last scaling decision.',
      [...app, 'consumer'],
    );
    this.consumerDesired = gauge(
      'scalableapp_consumer_desired_replicas',
      'What the last decision asked for.',
      [...app, 'consumer'],
    );
    this.consumerDepth = gauge(
      'scalableapp_consumer_queue_depth',
      'Ready plus unacknowledged messages the last decision saw.',
      [...app, 'consumer'],
    );
    this.consumerMax = gauge(
      'scalableapp_consumer_max_replicas',
      'The most replicas the consumer may scale to.',
      [...app, 'consumer'],
    );
    this.ringVersion = gauge(
      'scalableapp_shard_ring_version',
      'The version of the ring the app routes by.',
      app,
    );
    this.pendingRing = gauge(
      'scalableapp_shard_pending_ring_version',
      'A ring waiting for its data to be copied and verified; 0 when none.',
      app,
    );
    this.movedRanges = gauge(
      'scalableapp_shard_moved_key_ranges',
      'Ring ranges whose owner changes from the routed ring to the pending one.',
      app,
    );
  }

  /** Sets every series of `app` from the status just computed and the children it owns. */
  observe(
    app: ScalableApp,
    status: ScalableAppStatus,
    facts: Pick<ObservedFacts, 'shards'>,
    children: readonly KubernetesObject[],
  ): void {
    const key = appKey(app);
    const base = { namespace: app.metadata.namespace ?? '', app: app.metadata.name ?? '' };
    const now: LabelSets = new Map();
    const set = (g: Gauge, labels: Labels, value: number) => {
      const all = { ...base, ...labels };
      g.set(all, value);
      remember(now, g, all);
    };
    for (const c of status.conditions ?? []) {
      const m = /^(.+)Ready$/.exec(c.type);
      if (m) set(this.tierReady, { tier: tierName(m[1]!) }, c.status === 'True' ? 1 : 0);
      const a = /^(.+)Archiving$/.exec(c.type);
      if (a && c.status !== 'Unknown')
        set(this.archiving, { tier: tierName(a[1]!), reason: c.reason }, c.status === 'True' ? 1 : 0);
    }
    for (const w of children as Workload[]) {
      if (!WORKLOAD_KINDS.has(w.kind ?? '')) continue;
      const labels = { tier: w.metadata?.labels?.[LABEL.component] ?? '', workload: w.metadata?.name ?? '' };
      set(this.replicas, labels, w.spec?.replicas ?? 0);
      set(this.readyReplicas, labels, w.status?.readyReplicas ?? 0);
    }
    // The move counters exist at 0 from the first look, so the first move is an increase (a
    // series born at 1 has none to rate() or increase()).
    const moves = (cluster: string, reasons: readonly string[]) => {
      for (const reason of reasons) {
        const all = { ...base, cluster, reason };
        this.primaryChanges.inc(all, 0);
        remember(this.setsOf(this.counters, key), this.primaryChanges, all);
      }
    };
    if (app.spec.database) moves(`${base.app}-db`, ['Failover', 'Switchover']);
    for (const cluster of Object.keys(facts.shards ?? {})) moves(cluster, ['Failover', 'Switchover']);
    if (app.spec.cache) moves(`${base.app}-cache`, ['CacheFailover']);
    if (status.database?.primary)
      set(this.primary, { tier: 'database', cluster: `${base.app}-db`, pod: status.database.primary }, 1);
    if (status.cache?.primary)
      set(this.primary, { tier: 'cache', cluster: `${base.app}-cache`, pod: status.cache.primary }, 1);
    // Each shard's primary is recorded in its own ConfigMap, which the facts carry.
    for (const [cluster, shard] of Object.entries(facts.shards ?? {}))
      set(this.primary, { tier: 'shard', cluster, pod: shard.primary ?? `${cluster}-0` }, 1);
    for (const c of status.consumers ?? []) {
      const labels = { consumer: c.name };
      set(this.consumerReplicas, labels, c.replicas);
      if (c.lastDecision) set(this.consumerDesired, labels, c.lastDecision.desiredReplicas);
      // The depth comes from every poll (queueDepth), not the status, which changes only with a
      // decision: a consumer at its maximum keeps its decision while its backlog grows.
      const polled = { ...base, ...labels };
      if (this.gauges.get(key)?.get(this.consumerDepth)?.has(JSON.stringify(polled)))
        remember(now, this.consumerDepth, polled);
      const spec = (app.spec.consumers ?? []).find((x) => x.name === c.name);
      const max = spec?.autoscaling?.maxReplicas ?? spec?.replicas;
      if (max !== undefined) set(this.consumerMax, labels, max);
    }
    if (status.shards) {
      set(this.ringVersion, {}, status.shards.ringVersion);
      set(this.pendingRing, {}, status.shards.pendingRingVersion ?? 0);
      set(this.movedRanges, {}, status.shards.movedKeyRanges ?? 0);
    }
    this.drop(this.gauges.get(key), now);
    this.gauges.set(key, now);
  }

  /** A poll of a consumer's queue (`key`: namespace/app/consumer) read this depth. */
  queueDepth(key: string, depth: number): void {
    const [namespace = '', app = '', consumer = ''] = key.split('/');
    const labels = { namespace, app, consumer };
    this.consumerDepth.set(labels, depth);
    remember(this.setsOf(this.gauges, `${namespace}/${app}`), this.consumerDepth, labels);
  }

  /** One primary moved: counted by its cluster and the Event's reason. */
  moved(app: ScalableApp, move: Pick<Move, 'cluster' | 'event'>): void {
    const labels = {
      namespace: app.metadata.namespace ?? '',
      app: app.metadata.name ?? '',
      cluster: move.cluster,
      reason: move.event.reason,
    };
    this.primaryChanges.inc(labels);
    remember(this.setsOf(this.counters, appKey(app)), this.primaryChanges, labels);
  }

  /** The app is gone (or no longer this operator's): every series of it goes too, counts included. */
  forget(key: string): void {
    this.drop(this.gauges.get(key), new Map());
    this.drop(this.counters.get(key), new Map());
    this.gauges.delete(key);
    this.counters.delete(key);
  }

  private setsOf(all: Map<string, LabelSets>, key: string): LabelSets {
    let sets = all.get(key);
    if (!sets) all.set(key, (sets = new Map()));
    return sets;
  }

  /** Removes the label sets of `before` that `now` does not hold. */
  private drop(before: LabelSets | undefined, now: LabelSets): void {
    for (const [metric, sets] of before ?? [])
      for (const [k, labels] of sets) if (!now.get(metric)?.has(k)) metric.remove(labels);
  }
}

const appKey = (app: ScalableApp) => `${app.metadata.namespace}/${app.metadata.name}`;

/** WebReady -> web, EdgeCacheReady -> edge-cache, ShardsReady -> shards: the tier as the spec names it. */
const tierName = (condition: string) => condition.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();

const byRegistry = new WeakMap<Registry, AppMetrics>();

/** The AppMetrics of a registry: one set of series per registry, however many managers share it. */
export function appMetricsOf(registry: Registry): AppMetrics {
  let m = byRegistry.get(registry);
  if (!m) byRegistry.set(registry, (m = new AppMetrics(registry)));
  return m;
}
