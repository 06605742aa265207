// The queue chart renders the operator's queue tier: for each input set, `helm template` of
// charts/queue and what desiredState() builds for a ScalableApp of the same name, namespace and
// spec.queue (the queue's objects, the app-wide policies and, with TLS, the app's CA) agree object
// by object — the broker's configuration files to the byte, the memory and disk alarms computed
// from the same quantities, the certificates the operator issued given to the chart — except the
// helm test hooks.
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { queueTls, type QueueCredentials } from '../../operator/tiers/queue.ts';
import type { ObservedFacts } from '../../operator/tiers/objects.ts';
import { diskFreeLimitBytes, memoryHighWatermarkBytes } from '../../operator/server-config/rabbitmq.ts';
import { templateChart } from './helm.ts';
import { parity, tierObjects, type Exclusion, TWO_SCRAPERS } from './parity.ts';
import { appWideExclusions } from './tier-chart-checks.ts';
import {
  expectTlsCompared,
  issuedTls,
  keptSecretExclusion,
  queueTlsServer,
  queueTlsValues,
} from './data-tier-checks.ts';

type Spec = NonNullable<ScalableAppInput['spec']>;

interface InputSet {
  readonly title: string;
  readonly release: string;
  readonly namespace: string;
  readonly queue: NonNullable<Spec['queue']>;
  readonly topology?: Spec['topology'];
  readonly credentials: QueueCredentials;
  readonly appWide?: boolean;
  /** spec.monitoring: what the queue uses of it (enabled, scrapers) is the chart's `monitoring`. */
  readonly monitoring?: Spec['monitoring'];
}

/** The logins of the input sets that are not about them. */
const LOGIN: QueueCredentials = {
  username: 'u',
  password: 'p',
  monitoringUsername: 'm',
  monitoringPassword: 'mp',
  erlangCookie: 'c',
};

const INPUT_SETS: InputSet[] = [
  {
    title: 'the defaults (the queues are the only input)',
    release: 'shop',
    namespace: 'prod',
    queue: { queues: [{ name: 'orders' }] },
    credentials: LOGIN,
  },
  {
    title: 'every field set: seven nodes, another image, numeric quantities, a storage class, topology',
    release: 'storefront',
    namespace: 'retail-eu',
    queue: {
      image: 'registry.example/rabbitmq:4.1.2-management',
      replicas: 7,
      resources: { requests: { cpu: 1, memory: '2Gi' }, limits: { cpu: '2', memory: 4294967296 } },
      storage: { size: '50Gi', storageClassName: 'fast-ssd' },
      queues: [{ name: 'orders' }, { name: 'mail.outbound' }, { name: 'a:b_c-d' }],
      allowedClients: [
        { podSelector: { matchLabels: { app: 'reporting' } } },
        {
          podSelector: { matchLabels: { app: 'etl', 'team.example.com/owner': 'data' } },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'analytics' } },
        },
      ],
    },
    topology: { spreadAcrossZones: true, zoneKey: 'example.com/rack', whenUnsatisfiable: 'ScheduleAnyway' },
    credentials: {
      username: 'app-1',
      password: 'long-password-1234567890',
      monitoringUsername: 'monitor-1',
      monitoringPassword: 'another-long-password-0987',
      erlangCookie: 'COOKIE',
    },
  },
  {
    title:
      'odd values: one node, no memory limit, a volume smaller than twice the memory, a login that needs escaping, no spread, no app-wide policies',
    release: 'q',
    namespace: 'n',
    queue: {
      replicas: 1,
      resources: { requests: { memory: '256Mi' } },
      storage: { size: 1073741824 },
      queues: [{ name: 'only' }],
    },
    topology: { spreadAcrossZones: false },
    credentials: {
      username: 'ü "u" \\',
      password: 'p:a/s@s%w"o\'rd',
      monitoringUsername: 'm "ü" \\',
      monitoringPassword: 'm:p/w@"\'',
      erlangCookie: 'C00KIE!',
    },
    appWide: false,
  },
  {
    title: 'monitoring with its defaults: the Prometheus plugin, its port, the default scrapers',
    release: 'shop',
    namespace: 'prod',
    queue: { queues: [{ name: 'orders' }, { name: 'mail.outbound' }] },
    monitoring: { enabled: true },
    credentials: LOGIN,
  },
  {
    title: 'monitoring with two scrapers, one node, no memory limit',
    release: 'storefront',
    namespace: 'retail-eu',
    queue: { replicas: 1, resources: { requests: { memory: '256Mi' } }, queues: [{ name: 'only' }] },
    monitoring: {
      enabled: true,
      scrapers: TWO_SCRAPERS,
    },
    credentials: LOGIN,
  },
  {
    title: 'TLS off: plaintext listeners, no certificate, no CA',
    release: 'shop',
    namespace: 'prod',
    queue: { queues: [{ name: 'orders' }], tls: { enabled: false } },
    credentials: LOGIN,
  },
  {
    title: 'TLS off with monitoring, one node, no app-wide policies',
    release: 'q',
    namespace: 'n',
    queue: { replicas: 1, queues: [{ name: 'only' }], tls: { enabled: false } },
    monitoring: { enabled: true },
    credentials: LOGIN,
    appWide: false,
  },
  {
    title: 'monitoring with no scrapers: the plugin runs, no one is admitted to it',
    release: 'shop',
    namespace: 'prod',
    queue: { queues: [{ name: 'orders' }] },
    monitoring: { enabled: true, scrapers: [] },
    credentials: LOGIN,
  },
];

/** The spec's monitoring as the queue chart takes it: whether, and who may scrape. */
const monitoringValues = ({ enabled, scrapers }: NonNullable<Spec['monitoring']>) => ({
  ...(enabled === undefined ? {} : { enabled }),
  ...(scrapers ? { scrapers } : {}),
});

const app = (s: InputSet) =>
  parseApp(
    {
      queue: s.queue,
      ...(s.topology ? { topology: s.topology } : {}),
      ...(s.monitoring ? { monitoring: s.monitoring } : {}),
    },
    s.release,
    s.namespace,
  );

/** Both sides' inputs: the chart's values and the operator's facts, with the same issued certificates. */
async function inputs(s: InputSet) {
  const a = app(s);
  const tls = queueTls(a) ? await issuedTls([queueTlsServer(a)]) : undefined;
  const facts: ObservedFacts = {
    gatewayApi: false,
    queueCredentials: s.credentials,
    ...(tls ? { tls } : {}),
  };
  const chart = values(s);
  return {
    values: tls ? { ...chart, tls: { ...s.queue.tls, ...queueTlsValues(tls, a) } } : chart,
    // The app's CA is the tls component's (caObjects): the queue chart stands in for it alone.
    operator: tierObjects(desiredState(a, facts), ['queue', 'network', 'tls']),
    tls: tls !== undefined,
  };
}

const values = (s: InputSet) => ({
  ...s.queue,
  ...(s.topology ? { platform: { topology: s.topology } } : {}),
  ...(s.appWide === undefined ? {} : { networkPolicies: { appWide: s.appWide } }),
  ...(s.monitoring ? { monitoring: monitoringValues(s.monitoring) } : {}),
  auth: {
    username: s.credentials.username,
    password: s.credentials.password,
    monitoringUsername: s.credentials.monitoringUsername,
    monitoringPassword: s.credentials.monitoringPassword,
    erlangCookie: s.credentials.erlangCookie,
  },
});

const exclusions = (s: InputSet): Exclusion[] => [
  keptSecretExclusion(
    `${s.release}-mq-credentials`,
    'the retained volumes hold the imported login; a reinstall must find it',
  ),
  { object: `Pod/${s.release}-mq-test`, onlyIn: 'chart', reason: 'the helm test hook' },
  {
    object: `NetworkPolicy/${s.release}-allow-queue-test`,
    onlyIn: 'chart',
    reason: 'the helm test hook that lets the test pod reach the management API while it runs',
  },
  ...(s.appWide === false ? appWideExclusions(s.release) : []),
];

describe.each(INPUT_SETS)('charts/queue with $title', (s) => {
  it('renders the objects the operator builds', async () => {
    const { values, operator, tls } = await inputs(s);
    const report = parity({
      chart: 'queue',
      release: s.release,
      namespace: s.namespace,
      values,
      operator,
      exclusions: exclusions(s),
    });
    expect(report.differences).toEqual([]);
    const mq = `${s.release}-mq`;
    expect(report.compared).toEqual(
      expect.arrayContaining([
        `Secret/${mq}-credentials`,
        `ConfigMap/${mq}-config`,
        `Service/${mq}-headless`,
        `Service/${mq}`,
        `StatefulSet/${mq}`,
        `PodDisruptionBudget/${mq}`,
        `NetworkPolicy/${s.release}-allow-queue-ingress`,
        `NetworkPolicy/${s.release}-allow-queue-egress`,
      ]),
    );
    expectTlsCompared(report.compared, s.release, [`${s.release}-mq`], tls);
  });
});

it('the comparison sees a difference (so agreeing above means something)', async () => {
  const s = INPUT_SETS[0]!;
  const { values, operator } = await inputs(s);
  const report = parity({
    chart: 'queue',
    release: s.release,
    namespace: s.namespace,
    values: { ...values, queues: [{ name: 'orders' }, { name: 'extra' }] },
    operator,
    exclusions: exclusions(s),
  });
  expect(report.differences).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^ConfigMap\/shop-mq-config: data\.definitions\.json: chart ".*extra/),
      expect.stringMatching(
        /^StatefulSet\/shop-mq: spec\.template\.metadata\.annotations\.scalableapp\.io\/config-hash/,
      ),
    ]),
  );
});

describe('the resource alarms: the chart computes the operator’s bytes', () => {
  const alarmsOf = (memory: string | number | undefined, size: string | number) => {
    const r = templateChart('queue', {
      release: 'shop',
      namespace: 'prod',
      values: {
        queues: [{ name: 'q' }],
        // A zero request: below every limit tried here, so only the alarms are judged. Without a
        // limit given, the default one (1Gi) applies, as in the spec.
        resources: { requests: { memory: 0 }, ...(memory === undefined ? {} : { limits: { memory } }) },
        storage: { size },
        auth: { username: 'u', password: 'p', erlangCookie: 'c' },
      },
    });
    if (!r.ok) return { error: r.stderr };
    const watermark = /vm_memory_high_watermark\.absolute = (\d+)/.exec(r.stdout)?.[1];
    return {
      ...(watermark ? { watermark: Number(watermark) } : {}),
      diskFree: Number(/disk_free_limit\.absolute = (\d+)/.exec(r.stdout)![1]),
    };
  };

  it.each<[string | number | undefined, string | number]>([
    ['1Gi', '5Gi'],
    ['1Gi', '1Gi'],
    [undefined, '10Gi'],
    [undefined, '1Gi'],
    ['1.5Gi', '100G'],
    ['700Mi', '1.5e9'],
    ['300Mi', '5Gi'],
    [268435457, 10737418241],
    ['4Ti', '1Pi'],
  ])('memory limit %s, volume %s', (memory, size) => {
    const limit = memory ?? '1Gi';
    expect(alarmsOf(memory, size)).toEqual({
      watermark: memoryHighWatermarkBytes(limit),
      diskFree: diskFreeLimitBytes(size, limit),
    });
  });
});
