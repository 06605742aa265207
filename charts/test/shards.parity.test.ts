// The shards chart renders the operator's shards tier: for each input set, `helm template` of
// charts/shards and shardObjects() + networkPolicies() for a ScalableApp of the same name, namespace
// and spec.shards agree object by object — every shard's Postgres cluster, the shared login and the
// shard map's text to the byte — except where the chart has no operator to move a primary or publish
// the read-only endpoints (the exclusions below, each with its reason).
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import type { DatabaseCredentials } from '../../operator/tiers/postgres-cluster.ts';
import {
  hotShardName,
  shardClusters,
  shardMap,
  shardNames,
  shardObjects,
} from '../../operator/tiers/shards.ts';
import { networkPolicies } from '../../operator/tiers/network-policies.ts';
import { caObjects } from '../../operator/tiers/tls.ts';
import type { TlsFacts } from '../../operator/tiers/objects.ts';
import { ShardRouter } from '../../operator/sharding/router.ts';
import { renderChart } from './helm.ts';
import { parity, type Exclusion, TWO_SCRAPERS } from './parity.ts';
import { appWideExclusions } from './tier-chart-checks.ts';
import {
  expectTlsCompared,
  issuedTls,
  keptSecretExclusion,
  pgAuthValues,
  pgTlsValues,
  pgClusterExclusions,
  pgMonitoringValues,
  selfFenceExclusion,
} from './data-tier-checks.ts';

type Spec = NonNullable<ScalableAppInput['spec']>;

interface InputSet {
  readonly title: string;
  readonly release: string;
  readonly namespace: string;
  readonly shards: NonNullable<Spec['shards']>;
  readonly topology?: Spec['topology'];
  /** Each shard's recorded primary, as the operator keeps it; the chart's `primaries`. */
  readonly primaries?: Record<string, string>;
  readonly credentials: DatabaseCredentials;
  readonly appWide?: boolean;
  /** spec.monitoring: what the shards use of it is the chart's `monitoring`. */
  readonly monitoring?: Spec['monitoring'];
}

const HOT_KEYS = ['celebrity-42', 'odd "key" \\ <b>&amp;</b>', 'line\nbreak\ttab\u0001', 'ünï\u2028cødé'];

const INPUT_SETS: InputSet[] = [
  {
    title: 'the defaults',
    release: 'shop',
    namespace: 'prod',
    shards: { count: 2, key: 'user_id' },
    credentials: { superuser: 'su-secret', replication: 'repl-secret', app: 'app-secret' },
  },
  {
    title:
      'every field set: hot keys, another version and image, synchronous replicas, failover off, moved primaries, a storage class',
    release: 'shop',
    namespace: 'prod',
    shards: {
      count: 3,
      key: 'tenant_id',
      replicasPerShard: 2,
      synchronousReplicas: 1,
      failover: { enabled: false, delaySeconds: 120 },
      virtualNodes: 256,
      dedicated: [{ key: 'celebrity-42' }, { key: 'celebrity-7' }],
      allowedClients: [
        { podSelector: { matchLabels: { app: 'reporting' } } },
        {
          podSelector: { matchLabels: { app: 'etl', 'team.example.com/owner': 'data' } },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'analytics' } },
        },
      ],
      version: '16',
      image: 'registry.example/postgres:16.4-bookworm',
      deletionPolicy: 'Delete',
      storage: { size: '20Gi', storageClassName: 'fast-ssd' },
      resources: { requests: { cpu: 2, memory: '2Gi' }, limits: { cpu: '4', memory: 4294967296 } },
    },
    topology: {
      spreadAcrossZones: true,
      zoneKey: 'example.com/rack-zone',
      whenUnsatisfiable: 'ScheduleAnyway',
    },
    primaries: {
      'shop-shard-1': 'shop-shard-1-2',
      [hotShardName(parseApp({}, 'shop'), 'celebrity-7')]:
        `${hotShardName(parseApp({}, 'shop'), 'celebrity-7')}-1`,
    },
    credentials: { superuser: 'a', replication: 'b', app: 'c' },
  },
  {
    title:
      'odd values: hot keys that need escaping in JSON, no replicas, no spread, numeric sizes, no app-wide policies',
    release: 'my-shop-2',
    namespace: 'team-a-staging',
    shards: {
      count: 1,
      key: 'k',
      replicasPerShard: 0,
      virtualNodes: 1,
      dedicated: HOT_KEYS.map((key) => ({ key })),
      storage: { size: 21474836480 },
      resources: { requests: { memory: 1073741824, cpu: 0 } },
    },
    topology: { spreadAcrossZones: false },
    credentials: { superuser: 'ü'.repeat(100), replication: `a'b"c\\d`, app: 'a:b@c/d?e#f%25' },
    appWide: false,
  },
  {
    title: 'monitoring with its defaults: an exporter beside every instance of every shard',
    release: 'shop',
    namespace: 'prod',
    shards: { count: 2, key: 'user_id', dedicated: [{ key: 'celebrity-42' }] },
    monitoring: { enabled: true },
    credentials: {
      superuser: 'su-secret',
      replication: 'repl-secret',
      app: 'app-secret',
      monitor: 'mon-secret',
    },
  },
  {
    title: 'monitoring with everything given: an exporter image, its resources, two scrapers',
    release: 'storefront',
    namespace: 'retail-eu',
    shards: { count: 1, key: 'tenant_id', replicasPerShard: 2, synchronousReplicas: 1 },
    monitoring: {
      enabled: true,
      scrapers: TWO_SCRAPERS,
      exporterImages: { postgres: 'registry.example.com/postgres-exporter:v0.15.0' },
      resources: { requests: { cpu: '50m' }, limits: { cpu: 1, memory: '128Mi' } },
    },
    topology: { spreadAcrossZones: false },
    credentials: { superuser: 'a', replication: 'b', app: 'c', monitor: `m"o\\n&<i>tor` },
  },
  {
    title: 'TLS off with monitoring: plaintext, no certificates, no CA, the exporters without TLS',
    release: 'shop',
    namespace: 'prod',
    shards: { count: 2, key: 'user_id', dedicated: [{ key: 'celebrity-42' }], tls: { enabled: false } },
    monitoring: { enabled: true },
    credentials: { superuser: 'a', replication: 'b', app: 'c', monitor: 'd' },
  },
  {
    title: 'monitoring with no scrapers: the exporters run, no one is admitted to them',
    release: 'shop',
    namespace: 'prod',
    shards: { count: 1, key: 'k', replicasPerShard: 0 },
    monitoring: { enabled: true, scrapers: [] },
    credentials: { superuser: 'pw-1', replication: 'pw-2', app: 'pw-3', monitor: 'pw-4' },
  },
];

const tlsOn = (s: InputSet) => s.shards.tls?.enabled ?? true;

/** The certificates the operator would have issued for the set: one per shard (none with TLS off). */
const issued = async (s: InputSet): Promise<TlsFacts | undefined> =>
  tlsOn(s) ? issuedTls(shardClusters(appOf(s), { gatewayApi: false })) : undefined;

const values = (s: InputSet, tls?: TlsFacts) => ({
  ...s.shards,
  ...(tls
    ? {
        tls: {
          ...s.shards.tls,
          ...pgTlsValues(tls, shardClusters(appOf(s), { gatewayApi: false }), (certificates) => ({
            certificates,
          })),
        },
      }
    : {}),
  ...(s.topology ? { platform: { topology: s.topology } } : {}),
  ...(s.primaries ? { primaries: s.primaries } : {}),
  ...(s.appWide === undefined ? {} : { networkPolicies: { appWide: s.appWide } }),
  ...(s.monitoring ? { monitoring: pgMonitoringValues(s.monitoring) } : {}),
  auth: pgAuthValues(s.credentials),
});

const appOf = (s: InputSet) =>
  parseApp(
    {
      shards: s.shards,
      ...(s.topology ? { topology: s.topology } : {}),
      ...(s.monitoring ? { monitoring: s.monitoring } : {}),
    },
    s.release,
    s.namespace,
  );

function operatorObjects(s: InputSet, tls?: TlsFacts) {
  const app = appOf(s);
  const facts = {
    gatewayApi: false,
    shardCredentials: s.credentials,
    ...(tls ? { tls } : {}),
    shards: Object.fromEntries(
      Object.entries(s.primaries ?? {}).map(([shard, primary]) => [shard, { primary }]),
    ),
  };
  // The app's CA comes from desiredState (caObjects), beside the tier's own objects.
  return [...shardObjects(app, facts), ...caObjects(app, facts), ...networkPolicies(app)];
}

const shardsOf = (s: InputSet) => shardNames(shardMap(appOf(s), { gatewayApi: false }));

function exclusions(s: InputSet): Exclusion[] {
  const retained = (s.shards.deletionPolicy ?? 'Retain') === 'Retain';
  return [
    ...shardsOf(s).flatMap((shard) => pgClusterExclusions(shard)),
    ...shardClusters(appOf(s), { gatewayApi: false }).flatMap(selfFenceExclusion),
    { object: `Pod/${s.release}-shards-test`, onlyIn: 'chart', reason: 'the helm test hook' },
    {
      object: `NetworkPolicy/${s.release}-allow-shards-test`,
      onlyIn: 'chart',
      reason: 'the helm test hook that lets the test pod reach the shards while it runs',
    },
    ...(retained
      ? [
          keptSecretExclusion(
            `${s.release}-shards-credentials`,
            'retained volumes stay usable only with their passwords',
          ),
        ]
      : []),
    ...(s.appWide === false ? appWideExclusions(s.release) : []),
  ];
}

describe.each(INPUT_SETS)('charts/shards with $title', (s) => {
  const render = { chart: 'shards', release: s.release, namespace: s.namespace, values: values(s) };
  const rendered = () => renderChart('shards', render);
  const find = (kind: string, name: string) =>
    rendered().find((o) => o.kind === kind && o.metadata.name === name) as any;

  it('renders the objects the operator builds', async () => {
    const tls = await issued(s);
    const inputs = { values: values(s, tls), operator: operatorObjects(s, tls), exclusions: exclusions(s) };
    const report = parity({ ...render, ...inputs });
    expect(report.differences).toEqual([]);
    expectTlsCompared(report.compared, s.release, shardsOf(s), tls !== undefined);
    expect(report.compared).toEqual(
      expect.arrayContaining([
        `ConfigMap/${s.release}-shard-map`,
        `Secret/${s.release}-shards-credentials`,
        `NetworkPolicy/${s.release}-allow-shards-ingress`,
        `NetworkPolicy/${s.release}-allow-shards-egress`,
        ...shardsOf(s).flatMap((shard) => [
          `ConfigMap/${shard}-config`,
          `StatefulSet/${shard}`,
          `Service/${shard}-headless`,
          `Service/${shard}-rw`,
          `Service/${shard}-ro`,
          `PodDisruptionBudget/${shard}`,
        ]),
      ]),
    );
  });

  it('routes each shard to its recorded primary and reads to every instance of that shard only', () => {
    for (const shard of shardsOf(s)) {
      const own = {
        'app.kubernetes.io/instance': s.release,
        'app.kubernetes.io/component': 'shard',
        'scalableapp.io/shard': shard,
      };
      expect(find('Service', `${shard}-rw`).spec.selector).toEqual({
        ...own,
        'statefulset.kubernetes.io/pod-name': s.primaries?.[shard] ?? `${shard}-0`,
      });
      expect(find('Service', `${shard}-ro`).spec.selector).toEqual(own);
    }
  });

  it('publishes a map the router reads, sending every hot key to its own shard', () => {
    const router = ShardRouter.fromConfigMapData(find('ConfigMap', `${s.release}-shard-map`).data);
    expect(router.version).toBe(1);
    for (const { key } of s.shards.dedicated ?? []) {
      expect(router.route(key).shard).toBe(hotShardName(appOf(s), key));
    }
    expect(router.route('some-user').host).toMatch(
      new RegExp(`^${s.release}-shard-\\d+-rw\\.${s.namespace}\\.svc$`),
    );
  });
});

it('the comparison sees a difference in the map (so agreeing above means something)', async () => {
  const s = INPUT_SETS[0]!;
  const tls = await issued(s);
  const report = parity({
    chart: 'shards',
    release: s.release,
    namespace: s.namespace,
    values: { ...values(s, tls), virtualNodes: 64 },
    operator: operatorObjects(s, tls),
    exclusions: exclusions(s),
  });
  expect(report.differences).toEqual([
    expect.stringMatching(/^ConfigMap\/shop-shard-map: data\.shard-map\.json: chart ".*"virtualNodes\\": 64/),
  ]);
});
