// The operator's per-app series: set from the status it computed and the workloads it owns, a moved
// primary's old series gone, moves counted by reason, and nothing left of an app that went away.
import { Registry } from 'prom-client';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { ScalableAppStatus } from '../api/scalable-app.ts';
import { AppMetrics } from './app-metrics.ts';

const app = parseApp({
  web: { image: 'shop:1' },
  database: {},
  cache: {},
  shards: { count: 2, key: 'k' },
  queue: { queues: [{ name: 'q' }] },
  consumers: [{ name: 'w', image: 'w:1', queue: 'q', autoscaling: { minReplicas: 0, maxReplicas: 7 } }],
});

const cond = (type: string, status: 'True' | 'False') => ({
  type,
  status,
  reason: 'R',
  message: '',
  lastTransitionTime: '2026-12-05T00:00:00Z',
});

const status = (dbPrimary: string): ScalableAppStatus => ({
  conditions: [cond('Ready', 'False'), cond('WebReady', 'True'), cond('EdgeCacheReady', 'False')],
  database: { primary: dbPrimary, readyReplicas: 2 },
  cache: { primary: 'shop-cache-1', readyReplicas: 2 },
  shards: { ready: 2, ringVersion: 3, pendingRingVersion: 4, movedKeyRanges: 5 },
  consumers: [
    {
      name: 'w',
      replicas: 2,
      lastDecision: { time: 't', queueDepth: 40, desiredReplicas: 4, reason: 'ScaleUp' },
    },
  ],
});

const facts = { shards: { 'shop-shard-0': { primary: 'shop-shard-0-1' }, 'shop-shard-1': {} } };
const workloads: KubernetesObject[] = [
  {
    kind: 'StatefulSet',
    metadata: { name: 'shop-db', labels: { 'app.kubernetes.io/component': 'database' } },
    spec: { replicas: 3 },
    status: { readyReplicas: 2 },
  } as KubernetesObject,
  { kind: 'Service', metadata: { name: 'shop-db-rw' } },
];

/** Each sample of the registry as `name{labels} value`, sorted. */
async function samples(registry: Registry, prefix = 'scalableapp_'): Promise<string[]> {
  const text = await registry.metrics();
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .sort();
}

describe('AppMetrics', () => {
  it('sets every series from the status, the facts and the workloads', async () => {
    const registry = new Registry();
    const m = new AppMetrics(registry);
    m.queueDepth('prod/shop/w', 40);
    m.observe(app, status('shop-db-0'), facts, workloads);
    const s = await samples(registry);
    const on = 'namespace="prod",app="shop"';
    expect(s).toEqual(
      expect.arrayContaining([
        `scalableapp_tier_ready{${on},tier="web"} 1`,
        `scalableapp_tier_ready{${on},tier="edge-cache"} 0`,
        `scalableapp_workload_replicas{${on},tier="database",workload="shop-db"} 3`,
        `scalableapp_workload_ready_replicas{${on},tier="database",workload="shop-db"} 2`,
        `scalableapp_primary_info{${on},tier="database",cluster="shop-db",pod="shop-db-0"} 1`,
        `scalableapp_primary_info{${on},tier="cache",cluster="shop-cache",pod="shop-cache-1"} 1`,
        `scalableapp_primary_info{${on},tier="shard",cluster="shop-shard-0",pod="shop-shard-0-1"} 1`,
        `scalableapp_primary_info{${on},tier="shard",cluster="shop-shard-1",pod="shop-shard-1-0"} 1`,
        `scalableapp_consumer_replicas{${on},consumer="w"} 2`,
        `scalableapp_consumer_desired_replicas{${on},consumer="w"} 4`,
        `scalableapp_consumer_queue_depth{${on},consumer="w"} 40`,
        `scalableapp_consumer_max_replicas{${on},consumer="w"} 7`,
        `scalableapp_shard_ring_version{${on}} 3`,
        `scalableapp_shard_pending_ring_version{${on}} 4`,
        `scalableapp_shard_moved_key_ranges{${on}} 5`,
        // Every move counter from the first look, at 0: the first move is an increase.
        `scalableapp_primary_changes_total{${on},cluster="shop-db",reason="Failover"} 0`,
        `scalableapp_primary_changes_total{${on},cluster="shop-db",reason="Switchover"} 0`,
        `scalableapp_primary_changes_total{${on},cluster="shop-shard-1",reason="Failover"} 0`,
        `scalableapp_primary_changes_total{${on},cluster="shop-cache",reason="CacheFailover"} 0`,
      ]),
    );
    // The app-wide Ready is not a tier; a Service is not a workload.
    expect(s.filter((l) => /tier="ready"|workload="shop-db-rw"/.test(l))).toEqual([]);
  });

  it("says whether each tier's archiving keeps up, with the condition's reason, and nothing while it is Unknown", async () => {
    const registry = new Registry();
    const m = new AppMetrics(registry);
    const on = 'namespace="prod",app="shop"';
    const archiving = (db: string, reason: string, shards: string) =>
      ({
        ...status('shop-db-0'),
        conditions: [
          { type: 'DatabaseArchiving', status: db, reason, message: 'm', lastTransitionTime: 't' },
          {
            type: 'ShardsArchiving',
            status: shards,
            reason: 'PrimaryNotAsked',
            message: 'm',
            lastTransitionTime: 't',
          },
        ],
      }) as ScalableAppStatus;
    m.observe(app, archiving('False', 'ArchivingFailing', 'Unknown'), facts, workloads);
    expect((await samples(registry)).filter((l) => l.startsWith('scalableapp_archiving'))).toEqual([
      `scalableapp_archiving{${on},tier="database",reason="ArchivingFailing"} 0`,
    ]);
    // Recovered: the failing series goes, the new one is there.
    m.observe(app, archiving('True', 'Archiving', 'Unknown'), facts, workloads);
    expect((await samples(registry)).filter((l) => l.startsWith('scalableapp_archiving'))).toEqual([
      `scalableapp_archiving{${on},tier="database",reason="Archiving"} 1`,
    ]);
  });

  it("follows every poll's queue depth, not the status's (which keeps its decision while a backlog grows)", async () => {
    const registry = new Registry();
    const m = new AppMetrics(registry);
    m.observe(app, status('shop-db-0'), facts, workloads);
    m.queueDepth('prod/shop/w', 100);
    m.observe(app, status('shop-db-0'), facts, workloads);
    m.queueDepth('prod/shop/w', 250);
    m.observe(app, status('shop-db-0'), facts, workloads);
    expect((await samples(registry)).filter((l) => l.startsWith('scalableapp_consumer_queue_depth'))).toEqual(
      ['scalableapp_consumer_queue_depth{namespace="prod",app="shop",consumer="w"} 250'],
    );
  });

  it('drops the series of a primary that moved, and counts the move by reason', async () => {
    const registry = new Registry();
    const m = new AppMetrics(registry);
    m.observe(app, status('shop-db-0'), facts, workloads);
    m.moved(app, { cluster: 'shop-db', event: { type: 'Warning', reason: 'Failover' } });
    m.observe(app, status('shop-db-2'), facts, workloads);
    const s = await samples(registry);
    expect(s.filter((l) => l.startsWith('scalableapp_primary_info') && /cluster="shop-db"/.test(l))).toEqual([
      'scalableapp_primary_info{namespace="prod",app="shop",tier="database",cluster="shop-db",pod="shop-db-2"} 1',
    ]);
    expect(s).toContain(
      'scalableapp_primary_changes_total{namespace="prod",app="shop",cluster="shop-db",reason="Failover"} 1',
    );
  });

  it('forgets every series of an app that went away, and only of that app', async () => {
    const registry = new Registry();
    const m = new AppMetrics(registry);
    const other = parseApp({ web: { image: 'x:1' } }, 'other');
    m.observe(app, status('shop-db-0'), facts, workloads);
    m.moved(app, { cluster: 'shop-db', event: { type: 'Warning', reason: 'Failover' } });
    m.observe(other, { conditions: [cond('WebReady', 'True')] }, {}, []);
    m.forget('prod/shop');
    expect(await samples(registry)).toEqual([
      'scalableapp_tier_ready{namespace="prod",app="other",tier="web"} 1',
    ]);
  });
});
