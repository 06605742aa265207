// The consumers chart renders the operator's consumers: for each input set, `helm template` of
// charts/consumers and what desiredState() builds for a ScalableApp of the same name, namespace and
// spec.consumers (its consumer Deployments, the app-wide policies and the connection Secret the
// chart stands in for) agree object by object, except what only exists without the operator (KEDA,
// policies towards a queue of another release, the helm test) — the exclusions, each with its reason.
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableApp, ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { connectionEntries, connectionHash, connectionSecret } from '../../operator/tiers/connection.ts';
import { steadyCachePassword, type ObservedFacts } from '../../operator/tiers/objects.ts';
import { parity, tierObjects, type Exclusion } from './parity.ts';
import { appWideExclusions } from './tier-chart-checks.ts';
import { appTls, caValues } from './data-tier-checks.ts';
import { usesTls } from '../../operator/tiers/tls.ts';
import { queueTls } from '../../operator/tiers/queue.ts';

type Spec = NonNullable<ScalableAppInput['spec']>;

const KEDA_API = ['keda.sh/v1alpha1/ScaledObject', 'keda.sh/v1alpha1/TriggerAuthentication'];
const queueCredentials = {
  username: 'mq-user',
  password: 'p@ss:w/rd ü',
  monitoringUsername: 'mq-monitor',
  monitoringPassword: 'mon pw',
  erlangCookie: 'cookie',
};

interface Case {
  name: string;
  release?: string;
  namespace?: string;
  /** The ScalableApp spec (the operator's input); its `consumers` are the chart's values. */
  spec: Spec & { consumers: NonNullable<Spec['consumers']>; queue: NonNullable<Spec['queue']> };
  facts?: Partial<ObservedFacts>;
  /** Chart-only values, for what the operator knows from the rest of the app. */
  chartOnly?: (app: ScalableApp, facts: ObservedFacts) => Record<string, unknown>;
  apiVersions?: string[];
  exclusions?: (release: string) => Exclusion[];
}

const testHooks = (release: string): Exclusion[] => [
  { object: `Pod/${release}-consumers-test`, onlyIn: 'chart', reason: 'the helm test hook' },
  {
    object: `NetworkPolicy/${release}-allow-consumers-test`,
    onlyIn: 'chart',
    reason: 'the helm test hook that lets the test pod reach the management API while it runs',
  },
];

const cases: Case[] = [
  {
    name: 'defaults (a name, an image and a queue)',
    spec: {
      queue: { queues: [{ name: 'orders' }] },
      consumers: [{ name: 'orders', image: 'registry.example/orders:1', queue: 'orders' }],
    },
  },
  {
    name: 'a maximal spec: several consumers, autoscaled ones at their minimum, env, numeric quantities, topology, shards',
    release: 'storefront',
    namespace: 'retail-eu',
    spec: {
      queue: { queues: [{ name: 'orders' }, { name: 'mail.outbound' }] },
      shards: { count: 2, key: 'user_id' },
      consumers: [
        {
          name: 'orders',
          image:
            'registry.example/orders@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
          queue: 'orders',
          resources: { requests: { cpu: 2, memory: '1.5Gi' }, limits: { cpu: '4', memory: 4294967296 } },
          env: [
            { name: 'FEATURE_FLAGS', value: 'a,b' },
            { name: 'API_KEY', secretKeyRef: { name: 'orders-api', key: 'key' } },
          ],
          autoscaling: {
            minReplicas: 2,
            maxReplicas: 40,
            messagesPerReplica: 25,
            cooldownSeconds: 60,
            pollIntervalSeconds: 2,
            scaleDownStabilizationSeconds: 120,
          },
        },
        {
          name: 'mailer',
          image: 'registry.example/mailer:3',
          queue: 'mail.outbound',
          replicas: 5,
          healthCheck: { port: 8081 },
        },
        {
          name: 'mailer-probed',
          image: 'registry.example/mailer:3',
          queue: 'mail.outbound',
          healthCheck: { port: 9000, path: '/live', periodSeconds: 3, failureThreshold: 5 },
        },
        { name: 'mailer-slow', image: 'registry.example/mailer:3', queue: 'mail.outbound', replicas: 0 },
      ],
      topology: { zoneKey: 'example.com/rack', whenUnsatisfiable: 'ScheduleAnyway' },
    },
    facts: { shardCredentials: { superuser: 'su', replication: 'repl', app: 'shards-pw' } },
    chartOnly: (app) => ({ shardMap: { configMapName: `${app.metadata.name}-shard-map` } }),
  },
  {
    name: 'an autoscaled consumer whose minimum is 0, without KEDA',
    spec: {
      queue: { queues: [{ name: 'orders' }] },
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders', autoscaling: { maxReplicas: 4 } }],
    },
    exclusions: (release) => [
      {
        object: `Deployment/${release}-orders`,
        path: 'spec.replicas',
        reason:
          'the operator starts it at its minimum (0) and wakes it on queue depth; nothing would without it, so the chart runs at least 1',
      },
    ],
  },
  {
    name: 'KEDA served and enabled: it owns the autoscaled replicas, the fixed ones keep theirs',
    spec: {
      queue: { queues: [{ name: 'orders' }, { name: 'mail' }] },
      consumers: [
        { name: 'orders', image: 'o:1', queue: 'orders', autoscaling: { minReplicas: 1, maxReplicas: 4 } },
        { name: 'mailer', image: 'm:1', queue: 'mail', replicas: 2 },
      ],
    },
    chartOnly: () => ({ keda: { enabled: true } }),
    apiVersions: KEDA_API,
    exclusions: (release) => [
      {
        object: `Deployment/${release}-orders`,
        path: 'spec.replicas',
        reason:
          "KEDA's HorizontalPodAutoscaler owns the replicas; setting them would fight it on every upgrade",
      },
      {
        object: `ScaledObject/${release}-orders`,
        onlyIn: 'chart',
        reason: "KEDA stands in for the operator's queue-depth autoscaler",
      },
      {
        object: `TriggerAuthentication/${release}-queue-scaler`,
        onlyIn: 'chart',
        reason: 'how KEDA logs in to the management API',
      },
      {
        object: `ConfigMap/${release}-queue-scaler`,
        onlyIn: 'chart',
        reason: "KEDA's rabbitmq scaler takes its `tls: enable` switch from an authentication reference only",
      },
      {
        object: `NetworkPolicy/${release}-allow-keda-queue`,
        onlyIn: 'chart',
        reason: "lets KEDA's pods reach the management API, which the queue's policies admit only the app to",
      },
    ],
  },
  {
    name: "a database with TLS (the default): the URLs verify the server against the app's CA, mounted in the pods",
    spec: {
      queue: { queues: [{ name: 'orders' }] },
      database: {},
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders' }],
    },
    facts: { dbCredentials: { superuser: 'su', replication: 'repl', app: 'db pw/1' } },
  },
  {
    name: "a cache with TLS (the default) and no other TLS tier: rediss:// URLs, CACHE_CA_FILE, the app's CA mounted",
    spec: {
      queue: { queues: [{ name: 'orders' }], tls: { enabled: false } },
      cache: {},
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders' }],
    },
    facts: {
      cachePassword: steadyCachePassword('cache pw/1'),
      cacheLogins: { operator: 'op', replication: 'repl' },
    },
  },
  {
    name: 'a cache and the queue with TLS off: redis:// and amqp:// URLs, no CA',
    spec: {
      queue: { queues: [{ name: 'orders' }], tls: { enabled: false } },
      cache: { tls: { enabled: false } },
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders' }],
    },
    facts: {
      cachePassword: steadyCachePassword('cache-pw'),
      cacheLogins: { operator: 'op', replication: 'repl' },
    },
  },
  {
    name: 'a database, shards and the queue with TLS off: plaintext URLs, SHARDS_SSLMODE disable, no CA',
    spec: {
      queue: { queues: [{ name: 'orders' }], tls: { enabled: false } },
      database: { tls: { enabled: false } },
      shards: { count: 1, key: 'tenant', tls: { enabled: false } },
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders' }],
    },
    facts: {
      dbCredentials: { superuser: 'su', replication: 'repl', app: 'db-pw' },
      shardCredentials: { superuser: 'su', replication: 'repl', app: 'shards-pw' },
    },
    chartOnly: () => ({ shardMap: { configMapName: 'shop-shard-map' } }),
  },
  {
    name: "the queue alone serves TLS (the default) beside a plaintext database: amqps://, QUEUE_CA_FILE, the app's CA mounted",
    spec: {
      queue: { queues: [{ name: 'orders' }, { name: 'mail' }] },
      database: { tls: { enabled: false } },
      consumers: [
        { name: 'orders', image: 'o:1', queue: 'orders' },
        { name: 'mailer', image: 'm:1', queue: 'mail', replicas: 2 },
      ],
    },
    facts: { dbCredentials: { superuser: 'su', replication: 'repl', app: 'db-pw' } },
  },
  {
    name: "an existing connection Secret (the operator's), its hash given",
    spec: {
      queue: { queues: [{ name: 'orders' }] },
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders', replicas: 3 }],
    },
    chartOnly: (app, facts) => ({
      connection: {
        secretName: `${app.metadata.name}-connection`,
        // As desiredState() computes it: with the app's CA, which the queue's TLS makes.
        hash: connectionHash(connectionSecret(app, facts), usesTls(app) ? facts.tls?.ca.cert : undefined),
      },
    }),
    exclusions: (release) => [
      {
        object: `Secret/${release}-connection`,
        onlyIn: 'operator',
        reason: 'with connection.secretName the Secret exists already (the chart only reads it)',
      },
    ],
  },
  {
    name: 'odd values: a queue of another release, an empty and an HTML env value, no spread, no app-wide policies',
    release: 'a',
    namespace: 'x',
    spec: {
      queue: { queues: [{ name: 'q:1' }] },
      consumers: [
        {
          name: 'c',
          image: 'x',
          queue: 'q:1',
          replicas: 0,
          resources: {},
          env: [
            { name: 'EMPTY', value: '' },
            { name: 'HTML', value: '<b>&amp;</b>' },
          ],
        },
      ],
      topology: { spreadAcrossZones: false },
    },
    // The operator's QUEUE_URL names this app's queue; given, the Secret is the operator's.
    chartOnly: (_app, facts) => ({
      queue: { release: 'a-queue' },
      networkPolicies: { appWide: false },
      connection: {
        entries: connectionEntries(parseApp({ queue: { queues: [{ name: 'q' }] } }, 'a', 'x'), facts),
      },
    }),
    exclusions: (release) => [
      ...appWideExclusions(release),
      {
        object: `NetworkPolicy/${release}-allow-consumers-queue-egress`,
        onlyIn: 'chart',
        reason:
          'a queue of another release: the consumers are let out to it (the operator runs both as one app)',
      },
      {
        object: `NetworkPolicy/${release}-allow-consumers-queue-ingress`,
        onlyIn: 'chart',
        reason: "a queue of another release admits only its own app's consumers: these are let in",
      },
    ],
  },
];

describe('charts/consumers renders what the operator builds for spec.consumers', () => {
  it.each(cases)('$name', async (c) => {
    const release = c.release ?? 'shop';
    const namespace = c.namespace ?? 'prod';
    const given: ObservedFacts = { gatewayApi: false, queueCredentials, ...c.facts };
    const app = parseApp(c.spec, release, namespace);
    const tls = await appTls(app, given);
    const facts: ObservedFacts = tls ? { ...given, tls } : given;
    // What the other tiers put in the connection Secret reaches the chart as entries (it computes
    // SCALABLEAPP_NAME itself; QUEUE_URL it would read from the cluster).
    const { SCALABLEAPP_NAME: _name, ...others } = connectionEntries(app, facts);
    const chartOnly = c.chartOnly?.(app, facts) ?? {};
    const values: Record<string, unknown> = {
      consumers: c.spec.consumers,
      connection: { entries: others },
      ...caValues(app, tls),
      ...chartOnly,
      // Whether the queue serves TLS, as the queue chart was installed (its tls.enabled).
      queue: { tls: queueTls(app), ...(chartOnly.queue as object | undefined) },
    };
    if (c.spec.topology) values.platform = { topology: c.spec.topology };
    const report = parity({
      chart: 'consumers',
      release,
      namespace,
      values,
      apiVersions: c.apiVersions ?? [],
      operator: tierObjects(desiredState(app, facts), ['consumer', 'network', 'connection']),
      exclusions: [...testHooks(release), ...(c.exclusions?.(release) ?? [])],
    });
    expect(report.differences).toEqual([]);
    expect(report.compared).toEqual(
      expect.arrayContaining(c.spec.consumers.map((consumer) => `Deployment/${release}-${consumer.name}`)),
    );
  });

  it('the comparison sees a difference (so agreeing above means something)', async () => {
    const spec = {
      queue: { queues: [{ name: 'orders' }] },
      consumers: [{ name: 'orders', image: 'o:1', queue: 'orders' }],
    };
    const app = parseApp(spec);
    const given: ObservedFacts = { gatewayApi: false, queueCredentials };
    const tls = await appTls(app, given);
    const facts: ObservedFacts = { ...given, ...(tls ? { tls } : {}) };
    const { SCALABLEAPP_NAME: _n, ...others } = connectionEntries(app, facts);
    const report = parity({
      chart: 'consumers',
      release: 'shop',
      namespace: 'prod',
      values: {
        consumers: [{ ...spec.consumers[0], queue: 'mail' }],
        connection: { entries: others },
        ...caValues(app, tls),
      },
      operator: tierObjects(desiredState(app, facts), ['consumer', 'network', 'connection']),
      exclusions: testHooks('shop'),
    });
    expect(report.differences).toEqual([
      'Deployment/shop-orders: spec.template.spec.containers[0].env[0].value: chart "mail" ≠ operator "orders"',
    ]);
  });
});
