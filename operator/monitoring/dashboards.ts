// Grafana dashboards for the operator and every tier, as the seed's "Logging, metrics, automation"
// chapter sorts metrics: the aggregated level of each tier (database, cache, queue, edge cache), and
// the host level of the pods that run them. Written here beside the series they read, copied to
// charts/operator/files/dashboards/ (tools/generate-chart-files.ts), which the operator chart ships
// as ConfigMaps Grafana's dashboard sidecar loads. Every query is checked: promtool parses it
// (server-tests/dashboards.test.ts) and a real Prometheus answers it with a series.

/** One panel: its title (in the seed's words where it has them) and its queries. */
export interface Panel {
  readonly title: string;
  readonly description: string;
  readonly unit?: string;
  /** The queries, each with the legend Grafana draws for its series. */
  readonly queries: readonly { readonly expr: string; readonly legend: string }[];
}

export interface Dashboard {
  /** The file's name and the dashboard's uid. */
  readonly uid: string;
  readonly title: string;
  readonly description: string;
  /** Which variables the queries use: every app dashboard filters by namespace and app. */
  readonly perApp: boolean;
  readonly panels: readonly Panel[];
}

/** The filter every per-app query carries: Grafana fills the variables in. */
const APP = 'namespace=~"$namespace", app=~"$app"';
const pg = `tier=~"database|shard", ${APP}`;

export const DASHBOARDS: readonly Dashboard[] = [
  {
    uid: 'scalableapp-overview',
    title: 'ScalableApp: every tier',
    description:
      'Aggregated level metrics: is each tier of the app ready, with how many pods, and who is primary.',
    perApp: true,
    panels: [
      {
        title: 'Tiers ready',
        description: '1 while the tier reports Ready (its <Tier>Ready condition).',
        queries: [{ expr: `scalableapp_tier_ready{${APP}}`, legend: '{{app}} {{tier}}' }],
      },
      {
        title: 'Pods ready against desired, per tier',
        description: "Each tier's StatefulSets and Deployments.",
        queries: [
          { expr: `scalableapp_workload_ready_replicas{${APP}}`, legend: '{{workload}} ready' },
          { expr: `scalableapp_workload_replicas{${APP}}`, legend: '{{workload}} desired' },
        ],
      },
      {
        title: 'Primary of each database, shard and cache',
        description: 'The pod the operator records as primary; a change is a failover or a switchover.',
        queries: [{ expr: `scalableapp_primary_info{${APP}} == 1`, legend: '{{cluster}}: {{pod}}' }],
      },
      {
        title: 'Failovers and switchovers',
        description: 'Primaries the operator moved in each hour, by reason.',
        queries: [
          {
            expr: `sum by (cluster, reason) (increase(scalableapp_primary_changes_total{${APP}}[1h]))`,
            legend: '{{cluster}} {{reason}}',
          },
        ],
      },
      {
        title: 'Host level metrics: CPU of the cache servers',
        description:
          "CPU seconds per second each cache server reports of itself (INFO). Pod CPU, memory and disk I/O of every tier come from the kubelet's cAdvisor, which kube-prometheus-stack scrapes.",
        unit: 'percentunit',
        queries: [
          {
            expr: `sum by (pod) (rate(redis_cpu_sys_seconds_total{${APP}}[5m]) + rate(redis_cpu_user_seconds_total{${APP}}[5m]))`,
            legend: '{{pod}}',
          },
        ],
      },
      {
        title: 'Host level metrics: memory of the cache servers and brokers',
        description: 'Resident memory the cache servers and RabbitMQ nodes report of themselves.',
        unit: 'bytes',
        queries: [
          { expr: `redis_memory_used_rss_bytes{${APP}}`, legend: '{{pod}}' },
          { expr: `rabbitmq_process_resident_memory_bytes{${APP}}`, legend: '{{pod}}' },
        ],
      },
    ],
  },
  {
    uid: 'scalableapp-database',
    title: 'ScalableApp: database tier',
    description: 'The performance of the entire database tier: the database and every shard, per instance.',
    perApp: true,
    panels: [
      {
        title: 'Database tier performance: transactions per second',
        description: 'Commits and rollbacks in the app database.',
        unit: 'ops',
        queries: [
          {
            expr: `sum by (pod) (rate(pg_stat_database_xact_commit{${pg}, datname="app"}[5m]))`,
            legend: '{{pod}} commits',
          },
          {
            expr: `sum by (pod) (rate(pg_stat_database_xact_rollback{${pg}, datname="app"}[5m]))`,
            legend: '{{pod}} rollbacks',
          },
        ],
      },
      {
        title: 'Connections against max_connections',
        description: 'Client connections per instance; at the maximum, new clients are refused.',
        queries: [
          { expr: `pg_connections_clients{${pg}}`, legend: '{{pod}}' },
          { expr: `max by (app) (pg_connections_max{${pg}})`, legend: 'max_connections' },
        ],
      },
      {
        title: 'Replication lag of each standby',
        description: 'WAL each standby has not replayed yet, as its primary sees it.',
        unit: 'bytes',
        queries: [
          { expr: `pg_standby_replay_lag_bytes{${pg}}`, legend: '{{pod}} → {{standby}} ({{sync_state}})' },
        ],
      },
      {
        title: 'Synchronous standbys against those required',
        description: 'On each primary: with fewer than required, every commit waits.',
        queries: [
          {
            expr: `pg_synchronous_standbys{${pg}} and on (namespace, pod) (pg_instance_standby == 0)`,
            legend: '{{pod}} connected',
          },
          {
            expr: `pg_synchronous_required{${pg}} and on (namespace, pod) (pg_instance_standby == 0)`,
            legend: '{{pod}} required',
          },
        ],
      },
      {
        title: 'Instances up, and which are standbys',
        description: 'pg_up: the exporter reaches its server; standby: 1 in recovery, 0 the primary.',
        queries: [
          { expr: `pg_up{${pg}}`, legend: '{{pod}} up' },
          { expr: `pg_instance_standby{${pg}}`, legend: '{{pod}} standby' },
        ],
      },
      {
        title: 'WAL on disk',
        description: 'The size of pg_wal on each instance: it grows when a standby or archive falls behind.',
        unit: 'bytes',
        queries: [{ expr: `pg_wal_directory_bytes{${pg}}`, legend: '{{pod}}' }],
      },
    ],
  },
  {
    uid: 'scalableapp-cache',
    title: 'ScalableApp: cache tier',
    description: 'The performance of the entire cache tier.',
    perApp: true,
    panels: [
      {
        title: 'Cache tier performance: hit ratio',
        description: 'Reads the cache answered, of all reads by key.',
        unit: 'percentunit',
        queries: [
          {
            expr: `sum by (app) (rate(redis_keyspace_hits_total{${APP}}[5m])) / (sum by (app) (rate(redis_keyspace_hits_total{${APP}}[5m])) + sum by (app) (rate(redis_keyspace_misses_total{${APP}}[5m])))`,
            legend: '{{app}}',
          },
        ],
      },
      {
        title: 'Memory against maxmemory',
        description: 'At maxmemory the cache evicts keys (its eviction policy).',
        unit: 'bytes',
        queries: [
          { expr: `redis_memory_used_bytes{${APP}}`, legend: '{{pod}} used' },
          { expr: `redis_memory_max_bytes{${APP}}`, legend: '{{pod}} maxmemory' },
        ],
      },
      {
        title: 'Evicted and expired keys per second',
        description: 'Evictions mean the cache is too small for what it is asked to hold.',
        queries: [
          { expr: `rate(redis_evicted_keys_total{${APP}}[5m])`, legend: '{{pod}} evicted' },
          { expr: `rate(redis_expired_keys_total{${APP}}[5m])`, legend: '{{pod}} expired' },
        ],
      },
      {
        title: 'Commands per second',
        description: 'Every command each server ran.',
        unit: 'ops',
        queries: [{ expr: `rate(redis_commands_processed_total{${APP}}[5m])`, legend: '{{pod}}' }],
      },
      {
        title: 'Replication offset of each server',
        description: 'Replicas follow their primary’s offset; a gap is lag.',
        unit: 'bytes',
        queries: [{ expr: `redis_master_repl_offset{${APP}}`, legend: '{{pod}}' }],
      },
    ],
  },
  {
    uid: 'scalableapp-queue',
    title: 'ScalableApp: message queue',
    description: 'Messages waiting in each queue, and the consumers scaled on them.',
    perApp: true,
    panels: [
      {
        title: 'Messages waiting in each queue',
        description: 'Ready to deliver, and delivered but not yet acknowledged.',
        queries: [
          { expr: `sum by (queue) (rabbitmq_queue_messages_ready{${APP}})`, legend: '{{queue}} ready' },
          {
            expr: `sum by (queue) (rabbitmq_queue_messages_unacked{${APP}})`,
            legend: '{{queue}} unacknowledged',
          },
        ],
      },
      {
        title: 'Consumers attached to each queue',
        description: "The broker's count of consumers per queue.",
        queries: [{ expr: `sum by (queue) (rabbitmq_queue_consumers{${APP}})`, legend: '{{queue}}' }],
      },
      {
        title: 'Consumer replicas: running, asked for, at most',
        description: "The operator's last scaling decision for each consumer, and its maximum.",
        queries: [
          { expr: `scalableapp_consumer_replicas{${APP}}`, legend: '{{consumer}} replicas' },
          { expr: `scalableapp_consumer_desired_replicas{${APP}}`, legend: '{{consumer}} desired' },
          { expr: `scalableapp_consumer_max_replicas{${APP}}`, legend: '{{consumer}} max' },
        ],
      },
      {
        title: 'Queue depth the autoscaler saw',
        description: 'Ready plus unacknowledged messages at the last decision.',
        queries: [{ expr: `scalableapp_consumer_queue_depth{${APP}}`, legend: '{{consumer}}' }],
      },
    ],
  },
  {
    uid: 'scalableapp-edge-cache',
    title: 'ScalableApp: edge cache',
    description: 'The in-cluster CDN in front of the web tier.',
    perApp: true,
    panels: [
      {
        title: 'Requests per second',
        description: 'Every request each proxy served.',
        unit: 'reqps',
        queries: [{ expr: `rate(nginx_http_requests_total{${APP}}[5m])`, legend: '{{pod}}' }],
      },
      {
        title: 'Connections',
        description: 'Open connections per proxy, and those reading, writing and waiting.',
        queries: [
          { expr: `nginx_connections_active{${APP}}`, legend: '{{pod}} active' },
          { expr: `nginx_connections_waiting{${APP}}`, legend: '{{pod}} idle keep-alive' },
        ],
      },
    ],
  },
  {
    uid: 'scalableapp-shards',
    title: 'ScalableApp: shards',
    description: 'The shard ring, and a resharding under way.',
    perApp: true,
    panels: [
      {
        title: 'Ring version routed by, and pending',
        description: 'A pending ring waits for its moved ranges to be copied and verified.',
        queries: [
          { expr: `scalableapp_shard_ring_version{${APP}}`, legend: '{{app}} routed' },
          { expr: `scalableapp_shard_pending_ring_version{${APP}}`, legend: '{{app}} pending' },
        ],
      },
      {
        title: 'Key ranges changing owner',
        description: 'Ranges the pending ring gives to another shard.',
        queries: [{ expr: `scalableapp_shard_moved_key_ranges{${APP}}`, legend: '{{app}}' }],
      },
    ],
  },
  {
    uid: 'scalableapp-operator',
    title: 'ScalableApp: operator',
    description: 'The operator itself: reconciles, its work queue and its requests to the apiserver.',
    perApp: false,
    panels: [
      {
        title: 'Reconciles per second, by result',
        description: 'success, error, requeue and requeue_after.',
        unit: 'ops',
        queries: [
          {
            expr: 'sum by (result) (rate(controller_runtime_reconcile_total{controller="scalableapp"}[5m]))',
            legend: '{{result}}',
          },
        ],
      },
      {
        title: 'Reconcile time, 99th percentile',
        description: 'How long one app’s reconcile takes.',
        unit: 's',
        queries: [
          {
            expr: 'histogram_quantile(0.99, sum by (le) (rate(controller_runtime_reconcile_time_seconds_bucket{controller="scalableapp"}[5m])))',
            legend: 'p99',
          },
        ],
      },
      {
        title: 'Work queue depth',
        description: 'Apps waiting for a reconcile.',
        queries: [{ expr: 'workqueue_depth{name="scalableapp"}', legend: 'depth' }],
      },
      {
        title: 'Requests to the apiserver per second',
        description: 'By verb, the operator’s own (not the cluster’s).',
        unit: 'reqps',
        queries: [{ expr: 'sum by (verb) (rate(scalableapp_api_requests_total[5m]))', legend: '{{verb}}' }],
      },
      {
        title: 'Leader',
        description: '1 on the replica that holds the lease.',
        queries: [{ expr: 'leader_election_master_status', legend: '{{pod}}' }],
      },
    ],
  },
];

/** A dashboard as Grafana's JSON model (schemaVersion 39), its panels two per row. */
export function grafanaDashboard(d: Dashboard): object {
  const variable = (name: string, label: string, query: string) => ({
    name,
    label,
    type: 'query',
    datasource: { type: 'prometheus', uid: '${datasource}' },
    query: { query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    refresh: 2,
    current: {},
  });
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: ['scalableapp'],
    schemaVersion: 39,
    editable: true,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {} },
        ...(d.perApp
          ? [
              variable('namespace', 'Namespace', 'label_values(scalableapp_tier_ready, namespace)'),
              variable('app', 'App', 'label_values(scalableapp_tier_ready{namespace=~"$namespace"}, app)'),
            ]
          : []),
      ],
    },
    panels: d.panels.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      description: p.description,
      datasource: { type: 'prometheus', uid: '${datasource}' },
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      fieldConfig: { defaults: { ...(p.unit ? { unit: p.unit } : {}) }, overrides: [] },
      targets: p.queries.map((q, j) => ({
        refId: String.fromCharCode(65 + j),
        datasource: { type: 'prometheus', uid: '${datasource}' },
        expr: q.expr,
        legendFormat: q.legend,
      })),
    })),
  };
}

/** A query as Grafana sends it with "All" chosen for every variable (tests run it so). */
export const withAllSelected = (expr: string): string => expr.replace(/\$(namespace|app)\b/g, '.*');

/** A query as Grafana sends it with one app chosen. */
export const withApp = (expr: string, namespace: string, app: string): string =>
  expr.replace(/\$namespace\b/g, namespace).replace(/\$app\b/g, app);

/** Series only the operator exports, its own and those it keeps per app; the exporters export the rest. */
export const OPERATOR_SERIES = /scalableapp_|controller_runtime_|workqueue_|leader_election_/;

/** Every query of every dashboard, named by its dashboard and panel. */
export const dashboardQueries = (): { panel: string; expr: string }[] =>
  DASHBOARDS.flatMap((d) =>
    d.panels.flatMap((p) => p.queries.map((q) => ({ panel: `${d.uid}: ${p.title}`, expr: q.expr }))),
  );

export const dashboardFile = (d: Dashboard): string => `${JSON.stringify(grafanaDashboard(d), null, 2)}\n`;
