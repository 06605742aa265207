// Every alert of operator/monitoring/alert-rules.ts, run by the real promtool (Prometheus 2.42,
// tools/dataplane-deps.sh) against series shaped as the exporters and the operator expose them:
// each fires when its condition holds for its `for`, with the labels that name the app and object,
// and stays silent in the near miss beside it. The shipped file is also checked as it is.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  ALERT_RULES,
  DEFAULT_THRESHOLDS,
  alertRuleGroups,
  type AlertThresholds,
} from '../operator/monitoring/alert-rules.ts';
import { chartFileUrl } from '../tools/generate-chart-files.ts';

const LAG_BYTES = DEFAULT_THRESHOLDS.replicationLagMiB * 1024 * 1024;

type Labels = Record<string, string>;
interface Case {
  /** What the case shows. */
  readonly what: string;
  readonly series: readonly { readonly series: string; readonly values: string }[];
  readonly at: string;
  /** The alerts' labels (severity included); empty: it must not fire. */
  readonly fires: readonly Labels[];
}

const ns = 'prod';
const app = 'shop';
const pgPod = (pod: string) => `namespace="${ns}",pod="${pod}"`;
const appLabels = `namespace="${ns}",app="${app}"`;

/** Per alert: a case where it fires and one where it must not. */
const CASES: Record<string, readonly Case[]> = {
  ScalableAppPrimaryMoved: [
    {
      what: 'a failover in the last 10 minutes',
      series: [
        {
          series: `scalableapp_primary_changes_total{${appLabels},cluster="shop-db",reason="Failover"}`,
          values: '0 0 1 1 1',
        },
      ],
      at: '4m',
      fires: [{ namespace: ns, app, cluster: 'shop-db', reason: 'Failover', severity: 'warning' }],
    },
    {
      what: 'no move',
      series: [
        {
          series: `scalableapp_primary_changes_total{${appLabels},cluster="shop-db",reason="Failover"}`,
          values: '1x15',
        },
      ],
      at: '14m',
      fires: [],
    },
  ],
  ScalableAppPrimaryDown: [
    {
      what: "the recorded database primary's exporter cannot reach it, and a cache primary's pod is gone",
      series: [
        {
          series: `scalableapp_primary_info{${appLabels},tier="database",cluster="shop-db",pod="shop-db-0"}`,
          values: '1x10',
        },
        { series: `pg_up{${pgPod('shop-db-0')}}`, values: '1 1 0 0 0 0 0 0 0 0' },
        {
          series: `scalableapp_primary_info{${appLabels},tier="cache",cluster="shop-cache",pod="shop-cache-1"}`,
          values: '1x10',
        },
      ],
      at: '5m',
      fires: [
        { namespace: ns, app, tier: 'database', cluster: 'shop-db', pod: 'shop-db-0', severity: 'critical' },
        {
          namespace: ns,
          app,
          tier: 'cache',
          cluster: 'shop-cache',
          pod: 'shop-cache-1',
          severity: 'critical',
        },
      ],
    },
    {
      what: 'the primaries answer; a standby that does not is no primary',
      series: [
        {
          series: `scalableapp_primary_info{${appLabels},tier="shard",cluster="shop-shard-0",pod="shop-shard-0-1"}`,
          values: '1x10',
        },
        { series: `pg_up{${pgPod('shop-shard-0-1')}}`, values: '1x10' },
        { series: `pg_up{${pgPod('shop-shard-0-0')}}`, values: '0x10' },
        {
          series: `scalableapp_primary_info{${appLabels},tier="cache",cluster="shop-cache",pod="shop-cache-0"}`,
          values: '1x10',
        },
        { series: `redis_up{${pgPod('shop-cache-0')}}`, values: '1x10' },
      ],
      at: '5m',
      fires: [],
    },
  ],
  ScalableAppReplicationLagHigh: [
    {
      what: 'a standby 100 MB behind for 3 minutes',
      series: [
        {
          series: `pg_standby_replay_lag_bytes{${pgPod('shop-db-0')},standby="shop-db-1",sync_state="async"}`,
          values: `${LAG_BYTES + 1}x6`,
        },
      ],
      at: '3m',
      fires: [
        { namespace: ns, pod: 'shop-db-0', standby: 'shop-db-1', sync_state: 'async', severity: 'warning' },
      ],
    },
    {
      what: 'a standby a little behind, and one far behind for a moment only',
      series: [
        {
          series: `pg_standby_replay_lag_bytes{${pgPod('shop-db-0')},standby="shop-db-1",sync_state="async"}`,
          values: '4096x6',
        },
        { series: `pg_instance_replay_lag_seconds{${pgPod('shop-db-2')}}`, values: '0 0 90 0 0 0' },
      ],
      at: '5m',
      fires: [],
    },
  ],
  ScalableAppSynchronousStandbyMissing: [
    {
      what: 'a primary without the synchronous standby it needs; its standby shares the setting and is not named',
      series: [
        { series: `pg_synchronous_standbys{${pgPod('shop-db-0')}}`, values: '1 0 0 0 0' },
        { series: `pg_synchronous_required{${pgPod('shop-db-0')}}`, values: '1x5' },
        { series: `pg_instance_standby{${pgPod('shop-db-0')}}`, values: '0x5' },
        { series: `pg_synchronous_standbys{${pgPod('shop-db-1')}}`, values: '0x5' },
        { series: `pg_synchronous_required{${pgPod('shop-db-1')}}`, values: '1x5' },
        { series: `pg_instance_standby{${pgPod('shop-db-1')}}`, values: '1x5' },
      ],
      at: '3m',
      fires: [{ namespace: ns, pod: 'shop-db-0', severity: 'critical' }],
    },
    {
      what: 'asynchronous replication requires none',
      series: [
        { series: `pg_synchronous_standbys{${pgPod('shop-db-0')}}`, values: '0x5' },
        { series: `pg_synchronous_required{${pgPod('shop-db-0')}}`, values: '0x5' },
        { series: `pg_instance_standby{${pgPod('shop-db-0')}}`, values: '0x5' },
      ],
      at: '3m',
      fires: [],
    },
  ],
  ScalableAppCacheMemoryFull: [
    {
      what: 'memory at 95% of maxmemory while keys are evicted',
      series: [
        { series: `redis_memory_max_bytes{${pgPod('shop-cache-0')}}`, values: '1000x15' },
        { series: `redis_memory_used_bytes{${pgPod('shop-cache-0')}}`, values: '950x15' },
        { series: `redis_evicted_keys_total{${pgPod('shop-cache-0')}}`, values: '0+10x15' },
      ],
      at: '12m',
      fires: [{ namespace: ns, pod: 'shop-cache-0', severity: 'warning' }],
    },
    {
      what: 'full but not evicting, and no maxmemory at all',
      series: [
        { series: `redis_memory_max_bytes{${pgPod('shop-cache-0')}}`, values: '1000x15' },
        { series: `redis_memory_used_bytes{${pgPod('shop-cache-0')}}`, values: '950x15' },
        { series: `redis_evicted_keys_total{${pgPod('shop-cache-0')}}`, values: '5x15' },
        { series: `redis_memory_max_bytes{${pgPod('shop-cache-1')}}`, values: '0x15' },
        { series: `redis_memory_used_bytes{${pgPod('shop-cache-1')}}`, values: '950x15' },
        { series: `redis_evicted_keys_total{${pgPod('shop-cache-1')}}`, values: '0+10x15' },
      ],
      at: '12m',
      fires: [],
    },
  ],
  ScalableAppQueueBacklogGrowing: [
    {
      what: 'a consumer at its maximum while its queue grows',
      series: [
        { series: `scalableapp_consumer_replicas{${appLabels},consumer="worker"}`, values: '7x25' },
        { series: `scalableapp_consumer_max_replicas{${appLabels},consumer="worker"}`, values: '7x25' },
        { series: `scalableapp_consumer_queue_depth{${appLabels},consumer="worker"}`, values: '100+50x25' },
      ],
      at: '20m',
      fires: [{ namespace: ns, app, consumer: 'worker', severity: 'warning' }],
    },
    {
      what: 'room to scale, or at the maximum with the queue draining',
      series: [
        { series: `scalableapp_consumer_replicas{${appLabels},consumer="worker"}`, values: '5x25' },
        { series: `scalableapp_consumer_max_replicas{${appLabels},consumer="worker"}`, values: '7x25' },
        { series: `scalableapp_consumer_queue_depth{${appLabels},consumer="worker"}`, values: '100+50x25' },
        { series: `scalableapp_consumer_replicas{${appLabels},consumer="mailer"}`, values: '3x25' },
        { series: `scalableapp_consumer_max_replicas{${appLabels},consumer="mailer"}`, values: '3x25' },
        { series: `scalableapp_consumer_queue_depth{${appLabels},consumer="mailer"}`, values: '5000-100x25' },
      ],
      at: '20m',
      fires: [],
    },
  ],
  ScalableAppConsumerStuckAtZero: [
    {
      what: 'messages wait and no replica runs',
      series: [
        { series: `scalableapp_consumer_replicas{${appLabels},consumer="worker"}`, values: '0x10' },
        { series: `scalableapp_consumer_queue_depth{${appLabels},consumer="worker"}`, values: '10x10' },
      ],
      at: '7m',
      fires: [{ namespace: ns, app, consumer: 'worker', severity: 'critical' }],
    },
    {
      what: 'at zero with an empty queue',
      series: [
        { series: `scalableapp_consumer_replicas{${appLabels},consumer="worker"}`, values: '0x10' },
        { series: `scalableapp_consumer_queue_depth{${appLabels},consumer="worker"}`, values: '0x10' },
      ],
      at: '7m',
      fires: [],
    },
  ],
  ScalableAppShardRingPending: [
    {
      what: 'a ring pending for over an hour',
      series: [{ series: `scalableapp_shard_pending_ring_version{${appLabels}}`, values: '4x70' }],
      at: '65m',
      fires: [{ namespace: ns, app, severity: 'warning' }],
    },
    {
      what: 'a ring pending for half an hour, then flipped',
      series: [{ series: `scalableapp_shard_pending_ring_version{${appLabels}}`, values: '4x30 0x40' }],
      at: '65m',
      fires: [],
    },
  ],
  ScalableAppTierNotReady: [
    {
      what: 'a tier not Ready for 20 minutes',
      series: [{ series: `scalableapp_tier_ready{${appLabels},tier="database"}`, values: '0x20' }],
      at: '20m',
      fires: [{ namespace: ns, app, tier: 'database', severity: 'warning' }],
    },
    {
      what: 'a tier that recovered within 15 minutes',
      series: [{ series: `scalableapp_tier_ready{${appLabels},tier="database"}`, values: '0x10 1x10' }],
      at: '20m',
      fires: [],
    },
  ],
  ScalableAppArchivingFailing: [
    {
      what: 'archiving failing for 10 minutes',
      series: [
        {
          series: `scalableapp_archiving{${appLabels},tier="database",reason="ArchivingFailing"}`,
          values: '0x10',
        },
      ],
      at: '10m',
      fires: [{ namespace: ns, app, tier: 'database', severity: 'critical' }],
    },
    {
      // Each series alone is shorter than the wait (the first goes stale at 4m, the second is 4 minutes
      // old at 8m): only the grouping over reasons makes them one outage.
      what: 'failing for 4 minutes, then its queue filling for 4 more: one outage of 8 minutes',
      series: [
        {
          series: `scalableapp_archiving{${appLabels},tier="database",reason="ArchivingFailing"}`,
          values: '0x3 stale',
        },
        {
          series: `scalableapp_archiving{${appLabels},tier="database",reason="ArchiveQueueFilling"}`,
          values: '_x3 0x4',
        },
      ],
      at: '8m',
      fires: [{ namespace: ns, app, tier: 'database', severity: 'critical' }],
    },
    {
      what: 'a store away for 4 minutes, then archiving again',
      series: [
        {
          series: `scalableapp_archiving{${appLabels},tier="database",reason="ArchivingFailing"}`,
          values: '0x3 stale',
        },
        {
          series: `scalableapp_archiving{${appLabels},tier="database",reason="Archiving"}`,
          values: '_x3 1x6',
        },
      ],
      at: '10m',
      fires: [],
    },
  ],
  ScalableAppOperatorReconcileErrors: [
    {
      what: 'reconciles failing for 20 minutes',
      series: [
        { series: 'controller_runtime_reconcile_errors_total{controller="scalableapp"}', values: '0+1x30' },
      ],
      at: '20m',
      fires: [{ controller: 'scalableapp', severity: 'warning' }],
    },
    {
      what: 'one error long ago',
      series: [
        { series: 'controller_runtime_reconcile_errors_total{controller="scalableapp"}', values: '0 1x30' },
      ],
      at: '20m',
      fires: [],
    },
  ],
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'scalableapp-alerts-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const promtool = (...args: string[]) => execFileSync('promtool', args, { cwd: dir, encoding: 'utf8' });

it('the shipped rules file passes promtool check rules', () => {
  expect(promtool('check', 'rules', chartFileUrl('operator/files/prometheus-rules.yaml').pathname)).toMatch(
    new RegExp(`SUCCESS: ${ALERT_RULES.length} rules found`),
  );
});

it('every alert has a firing case and a near miss', () => {
  expect(Object.keys(CASES).sort()).toEqual(ALERT_RULES.map((r) => r.alert).sort());
  for (const cases of Object.values(CASES)) {
    expect(cases.some((c) => c.fires.length > 0)).toBe(true);
    expect(cases.some((c) => c.fires.length === 0)).toBe(true);
  }
});

/** Runs one case of `alert` under `promtool test rules`, with the rules of these thresholds. */
function promtoolCase(alert: string, c: Case, thresholds: AlertThresholds = DEFAULT_THRESHOLDS): void {
  // The annotations are text for people (checked by `check rules` above); the test compares labels.
  const groups = alertRuleGroups(thresholds).groups.map((g) => ({
    ...g,
    rules: g.rules.map(({ annotations: _a, ...r }) => r),
  }));
  writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
  writeFileSync(
    join(dir, 'test.yaml'),
    stringify({
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: c.series,
          alert_rule_test: [
            {
              eval_time: c.at,
              alertname: alert,
              exp_alerts: c.fires.map((labels) => ({ exp_labels: labels })),
            },
          ],
        },
      ],
    }),
  );
  let out: string;
  try {
    out = promtool('test', 'rules', 'test.yaml');
  } catch (err) {
    throw new Error(`promtool test rules failed:\n${(err as { stdout?: string }).stdout ?? err}`);
  }
  expect(out).toMatch(/SUCCESS/);
}

describe.each(ALERT_RULES.map((r) => r.alert))('%s under promtool test rules', (alert) => {
  it.each(CASES[alert] ?? [])('$what', (c) => promtoolCase(alert, c));
});

describe("thresholds a team sets (the operator chart's metrics.prometheusRule.thresholds)", () => {
  const lowered: AlertThresholds = { ...DEFAULT_THRESHOLDS, replicationLagMiB: 8, tierNotReadyFor: '5m' };
  const lag16MiB: Case = {
    what: 'a standby 16 MiB behind for 3 minutes',
    series: [
      {
        series: `pg_standby_replay_lag_bytes{${pgPod('shop-db-0')},standby="shop-db-1",sync_state="async"}`,
        values: `${16 * 1024 * 1024}x6`,
      },
    ],
    at: '3m',
    fires: [
      { namespace: ns, pod: 'shop-db-0', standby: 'shop-db-1', sync_state: 'async', severity: 'warning' },
    ],
  };
  const notReady6m: Case = {
    what: 'the cache tier not Ready for 6 minutes',
    series: [{ series: `scalableapp_tier_ready{${appLabels},tier="cache"}`, values: '0x8' }],
    at: '6m',
    fires: [{ namespace: ns, app, tier: 'cache', severity: 'warning' }],
  };

  it('a lag below the default threshold but above a lowered one fires only under the lowered one', () => {
    promtoolCase('ScalableAppReplicationLagHigh', lag16MiB, lowered);
    promtoolCase('ScalableAppReplicationLagHigh', { ...lag16MiB, fires: [] });
  });

  it('a tier not Ready for less than the default wait but more than a shortened one fires only under the shortened one', () => {
    promtoolCase('ScalableAppTierNotReady', notReady6m, lowered);
    promtoolCase('ScalableAppTierNotReady', { ...notReady6m, fires: [] });
  });
});
