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
/** No series at all: what forget() keeps (counters included). */
const EMPTY = new Map<Gauge | Counter, Labels[]>();

export class AppMetrics {
  private readonly tierReady: Gauge;
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
  /** Per app key: each gauge's label sets set at its last look, to drop those gone since. */
  private readonly seen = new Map<string, Map<Gauge | Counter, Labels[]>>();

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
    const now = new Map<Gauge | Counter, Labels[]>();
    const set = (g: Gauge, labels: Labels, value: number) => {
      const all = { ...base, ...labels };
      g.set(all, value);
      now.set(g, [...(now.get(g) ?? []), all]);
    };
    for (const c of status.conditions ?? []) {
      const m = /^(.+)Ready$/.exec(c.type);
      if (m) set(this.tierReady, { tier: tierName(m[1]!) }, c.status === 'True' ? 1 : 0);
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
        now.set(this.primaryChanges, [...(now.get(this.primaryChanges) ?? []), all]);
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
      const depth = this.seen
        .get(key)
        ?.get(this.consumerDepth)
        ?.find((l) => l.consumer === c.name);
      if (depth) now.set(this.consumerDepth, [...(now.get(this.consumerDepth) ?? []), depth]);
      const spec = (app.spec.consumers ?? []).find((x) => x.name === c.name);
      const max = spec?.autoscaling?.maxReplicas ?? spec?.replicas;
      if (max !== undefined) set(this.consumerMax, labels, max);
    }
    if (status.shards) {
      set(this.ringVersion, {}, status.shards.ringVersion);
      set(this.pendingRing, {}, status.shards.pendingRingVersion ?? 0);
      set(this.movedRanges, {}, status.shards.movedKeyRanges ?? 0);
    }
    this.drop(this.seen.get(key), now);
    this.seen.set(key, now);
  }

  /** A poll of a consumer's queue (`key`: namespace/app/consumer) read this depth. */
  queueDepth(key: string, depth: number): void {
    const [namespace = '', app = '', consumer = ''] = key.split('/');
    const labels = { namespace, app, consumer };
    this.consumerDepth.set(labels, depth);
    const seen = this.seen.get(`${namespace}/${app}`) ?? new Map<Gauge | Counter, Labels[]>();
    const kept = (seen.get(this.consumerDepth) ?? []).filter((l) => l.consumer !== consumer);
    seen.set(this.consumerDepth, [...kept, labels]);
    this.seen.set(`${namespace}/${app}`, seen);
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
    const seen = this.seen.get(appKey(app)) ?? new Map<Gauge | Counter, Labels[]>();
    seen.set(this.primaryChanges, [...(seen.get(this.primaryChanges) ?? []), labels]);
    this.seen.set(appKey(app), seen);
  }

  /** The app is gone (or no longer this operator's): every series of it goes too. */
  forget(key: string): void {
    this.drop(this.seen.get(key), EMPTY);
    this.seen.delete(key);
  }

  /** Removes the label sets of `before` that `now` did not set again (counters are kept). */
  private drop(
    before: Map<Gauge | Counter, Labels[]> | undefined,
    now: Map<Gauge | Counter, Labels[]>,
  ): void {
    for (const [metric, sets] of before ?? []) {
      if (metric === this.primaryChanges && now !== EMPTY) {
        now.set(metric, [...(now.get(metric) ?? []), ...sets]);
        continue;
      }
      const kept = new Set((now.get(metric) ?? []).map((l) => JSON.stringify(l)));
      for (const l of sets) if (!kept.has(JSON.stringify(l))) metric.remove(l);
    }
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
