// The alerts for every ScalableApp, as one Prometheus rule group: what the seed's "Logging, metrics,
// automation" chapter asks a team to be woken for, in the series the exporters (operator/tiers/
// monitoring.ts) and the operator (controller/app-metrics.ts, runtime/metrics.ts) expose. One group
// serves every app: each alert carries the app, tier and object it is about in its labels.
//
// The expressions assume the target labels of docs/monitoring.md's scrape config: `namespace` and
// `pod` on every exporter series, and the operator's own series scraped with honor_labels (its
// `namespace` is the app's). The operator chart ships the group as a PrometheusRule and as a plain
// rules file (tools/generate-chart-files.ts); server-tests/alert-rules.test.ts runs promtool on them.
import { stringify } from 'yaml';

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly severity: 'critical' | 'warning';
  readonly summary: string;
  readonly description: string;
}

/**
 * What a team may tune, each with its default (the operator chart's metrics.prometheusRule.thresholds).
 * Numbers stay below a million: Helm renders larger ones in exponent notation.
 */
export interface AlertThresholds {
  /** Replication lag that deserves a look: a standby this far behind makes a failover lose or wait. */
  readonly replicationLagMiB: number;
  readonly replicationLagSeconds: number;
  /** Of maxmemory, while keys are evicted. */
  readonly cacheMemoryRatio: number;
  /** How long a queue may grow under a consumer at its maximum before anyone is told. */
  readonly queueBacklogFor: string;
  /** How long messages may wait with no consumer running. */
  readonly consumerStuckFor: string;
  /** How long a published ring may wait for its moved ranges to be copied and verified. */
  readonly shardRingPendingFor: string;
  /** How long a tier may stay not Ready (a rollout of a data tier takes minutes). */
  readonly tierNotReadyFor: string;
}

export const DEFAULT_THRESHOLDS: AlertThresholds = {
  replicationLagMiB: 64,
  replicationLagSeconds: 30,
  cacheMemoryRatio: 0.9,
  queueBacklogFor: '10m',
  consumerStuckFor: '5m',
  shardRingPendingFor: '1h',
  tierNotReadyFor: '15m',
};

const MiB = 1024 * 1024;

/** The alerts with these thresholds. */
export const alertRules = (t: AlertThresholds = DEFAULT_THRESHOLDS): readonly AlertRule[] => [
  {
    alert: 'ScalableAppPrimaryMoved',
    expr: 'increase(scalableapp_primary_changes_total[10m]) > 0',
    for: '0m',
    severity: 'warning',
    summary:
      '{{ $labels.namespace }}/{{ $labels.app }}: the primary of {{ $labels.cluster }} moved ({{ $labels.reason }})',
    description:
      'The operator moved a primary in the last 10 minutes: a failover (the old one was lost) or a switchover someone asked for. See the app’s Events and status.',
  },
  {
    alert: 'ScalableAppPrimaryDown',
    // The recorded primary's exporter does not reach its server, or the pod is gone altogether.
    expr: [
      '(scalableapp_primary_info{tier=~"database|shard"} unless on (namespace, pod) (pg_up == 1))',
      'or (scalableapp_primary_info{tier="cache"} unless on (namespace, pod) (redis_up == 1))',
    ].join('\n'),
    for: '1m',
    severity: 'critical',
    summary:
      '{{ $labels.namespace }}/{{ $labels.app }}: primary {{ $labels.pod }} of {{ $labels.cluster }} is down',
    description:
      'The primary the operator records does not answer its metrics exporter. Writes to this {{ $labels.tier }} fail until it is back or the operator fails over (spec.<tier>.failover).',
  },
  {
    alert: 'ScalableAppReplicationLagHigh',
    expr: `pg_standby_replay_lag_bytes > ${t.replicationLagMiB} * ${MiB} or pg_instance_replay_lag_seconds > ${t.replicationLagSeconds}`,
    for: '2m',
    severity: 'warning',
    summary: '{{ $labels.namespace }}/{{ $labels.pod }}: a standby is behind its primary',
    description: `A standby is more than ${t.replicationLagMiB} MiB or ${t.replicationLagSeconds} s of replay behind ({{ $value | humanize }}): reads from it are stale, and a failover to it would lose or wait for that much.`,
  },
  {
    alert: 'ScalableAppSynchronousStandbyMissing',
    // On the primary only: a standby reports no standbys of its own, yet shares the setting.
    expr: 'pg_synchronous_standbys < pg_synchronous_required and on (namespace, pod) (pg_instance_standby == 0)',
    for: '1m',
    severity: 'critical',
    summary:
      '{{ $labels.namespace }}/{{ $labels.pod }}: fewer synchronous standbys than every commit waits for',
    description:
      'The primary has {{ $value }} synchronous standbys connected, fewer than synchronousReplicas: commits wait until one is back, so writes stall.',
  },
  {
    alert: 'ScalableAppCacheMemoryFull',
    expr: [
      'redis_memory_max_bytes > 0',
      `and on (namespace, pod) (redis_memory_used_bytes / redis_memory_max_bytes > ${t.cacheMemoryRatio})`,
      'and on (namespace, pod) (rate(redis_evicted_keys_total[5m]) > 0)',
    ].join('\n'),
    for: '5m',
    severity: 'warning',
    summary: '{{ $labels.namespace }}/{{ $labels.pod }}: the cache is near maxmemory and evicting',
    description: `Memory is above ${t.cacheMemoryRatio} of maxmemory and keys are being evicted: the hit ratio falls. Raise spec.cache.resources.limits.memory (maxmemory follows it) or shorten TTLs.`,
  },
  {
    alert: 'ScalableAppQueueBacklogGrowing',
    expr: [
      'scalableapp_consumer_replicas >= scalableapp_consumer_max_replicas',
      'and on (namespace, app, consumer) (deriv(scalableapp_consumer_queue_depth[5m]) > 0)',
    ].join('\n'),
    for: t.queueBacklogFor,
    severity: 'warning',
    summary:
      '{{ $labels.namespace }}/{{ $labels.app }}: consumer {{ $labels.consumer }} is at its maximum and its queue still grows',
    description:
      'The consumer runs its most replicas (autoscaling.maxReplicas) and its backlog keeps growing: raise maxReplicas or make each message cheaper.',
  },
  {
    alert: 'ScalableAppConsumerStuckAtZero',
    expr: 'scalableapp_consumer_replicas == 0 and on (namespace, app, consumer) (scalableapp_consumer_queue_depth > 0)',
    for: t.consumerStuckFor,
    severity: 'critical',
    summary:
      '{{ $labels.namespace }}/{{ $labels.app }}: consumer {{ $labels.consumer }} runs no replica while messages wait',
    description:
      'Messages are waiting and no consumer runs: the operator should have woken it from zero. Check its Events and the operator log.',
  },
  {
    alert: 'ScalableAppShardRingPending',
    expr: 'scalableapp_shard_pending_ring_version > 0',
    for: t.shardRingPendingFor,
    severity: 'warning',
    summary: `{{ $labels.namespace }}/{{ $labels.app }}: shard ring {{ $value }} has waited over ${t.shardRingPendingFor} to be flipped`,
    description:
      'A new ring is published but the moved ranges are not copied and verified yet, so routing still follows the old one (docs/sharding.md).',
  },
  {
    alert: 'ScalableAppTierNotReady',
    expr: 'scalableapp_tier_ready == 0',
    for: t.tierNotReadyFor,
    severity: 'warning',
    summary: `{{ $labels.namespace }}/{{ $labels.app }}: the {{ $labels.tier }} tier has not been Ready for ${t.tierNotReadyFor}`,
    description: 'Its <Tier>Ready condition names the object that holds it back.',
  },
  {
    alert: 'ScalableAppArchivingFailing',
    // Over the reasons: a cause that changes (failing, then filling) is one outage, one wait.
    expr: 'min by (namespace, app, tier) (scalableapp_archiving) == 0',
    for: '5m',
    severity: 'critical',
    summary:
      '{{ $labels.namespace }}/{{ $labels.app }}: WAL archiving of the {{ $labels.tier }} tier has not kept up for 5 minutes',
    description:
      "No point-in-time recovery reaches past the last archived segment, and past backup.walQueueLimit segments are dropped from the archive. The <Tier>Archiving condition says why and names the cluster; pgBackRest's error is in the primary's log (docs/backups.md).",
  },
  {
    alert: 'ScalableAppOperatorReconcileErrors',
    expr: 'rate(controller_runtime_reconcile_errors_total{controller="scalableapp"}[5m]) > 0',
    for: '10m',
    severity: 'warning',
    summary: 'The ScalableApp operator keeps failing reconciles',
    description: 'Reconciles have failed for 10 minutes: the operator log says which app and why.',
  },
];

export const ALERT_RULES: readonly AlertRule[] = alertRules();

/** One rule as Prometheus reads it. */
export interface PrometheusAlertingRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

/** The rule group as a Prometheus rules file (and a PrometheusRule's spec). */
export function alertRuleGroups(t: AlertThresholds = DEFAULT_THRESHOLDS): {
  groups: { name: string; rules: PrometheusAlertingRule[] }[];
} {
  return {
    groups: [
      {
        name: 'scalableapp',
        rules: alertRules(t).map((r) => ({
          alert: r.alert,
          expr: r.expr,
          for: r.for,
          labels: { severity: r.severity },
          annotations: { summary: r.summary, description: r.description },
        })),
      },
    ],
  };
}

const GENERATED =
  '# Generated from operator/monitoring/alert-rules.ts by tools/generate-chart-files.ts; do not edit.';

/** With the default thresholds, for a Prometheus that loads rule files. */
export const alertRulesFile = (): string => `${GENERATED}\n${stringify(alertRuleGroups(), { lineWidth: 0 })}`;

/**
 * The threshold `key` as it stands in alertRulesTemplate(): the operator chart replaces each with
 * its metrics.prometheusRule.thresholds value.
 */
export const thresholdPlaceholder = (key: keyof AlertThresholds): string => `__${key}__`;

/**
 * The rules with a placeholder for every threshold, for the operator chart's PrometheusRule. Not a
 * Helm template: the annotations' {{ }} are Prometheus's, and Helm must leave them alone.
 */
export function alertRulesTemplate(): string {
  const placeholders = Object.fromEntries(
    Object.keys(DEFAULT_THRESHOLDS).map((k) => [k, thresholdPlaceholder(k as keyof AlertThresholds)]),
  ) as unknown as AlertThresholds;
  return `${GENERATED}\n# Every __<threshold>__ is replaced by the chart (templates/prometheusrule.yaml).\n${stringify(alertRuleGroups(placeholders), { lineWidth: 0 })}`;
}
