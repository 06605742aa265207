// The queue chart renders the operator's queue tier: for each input set, `helm template` of
// charts/queue and queueObjects() + networkPolicies() for a ScalableApp of the same name, namespace
// and spec.queue agree object by object — the broker's configuration files to the byte, the memory
// and disk alarms computed from the same quantities — except the helm test hooks.
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { queueObjects, type QueueCredentials } from '../../operator/tiers/queue.ts';
import { networkPolicies } from '../../operator/tiers/network-policies.ts';
import { diskFreeLimitBytes, memoryHighWatermarkBytes } from '../../operator/server-config/rabbitmq.ts';
import { templateChart } from './helm.ts';
import { parity, type Exclusion, TWO_SCRAPERS } from './parity.ts';
import { appWideExclusions } from './tier-chart-checks.ts';
import { keptSecretExclusion } from './data-tier-checks.ts';

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

const INPUT_SETS: InputSet[] = [
  {
    title: 'the defaults (the queues are the only input)',
    release: 'shop',
    namespace: 'prod',
    queue: { queues: [{ name: 'orders' }] },
    credentials: {
      username: 'u',
      password: 'p',
      monitoringUsername: 'm',
      monitoringPassword: 'mp',
      erlangCookie: 'c',
    },
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
    credentials: {
      username: 'u',
      password: 'p',
      monitoringUsername: 'm',
      monitoringPassword: 'mp',
      erlangCookie: 'c',
    },
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
    credentials: {
      username: 'u',
      password: 'p',
      monitoringUsername: 'm',
      monitoringPassword: 'mp',
      erlangCookie: 'c',
    },
  },
  {
    title: 'monitoring with no scrapers: the plugin runs, no one is admitted to it',
    release: 'shop',
    namespace: 'prod',
    queue: { queues: [{ name: 'orders' }] },
    monitoring: { enabled: true, scrapers: [] },
    credentials: {
      username: 'u',
      password: 'p',
      monitoringUsername: 'm',
      monitoringPassword: 'mp',
      erlangCookie: 'c',
    },
  },
];

/** The spec's monitoring as the queue chart takes it: whether, and who may scrape. */
const monitoringValues = ({ enabled, scrapers }: NonNullable<Spec['monitoring']>) => ({
  ...(enabled === undefined ? {} : { enabled }),
  ...(scrapers ? { scrapers } : {}),
});

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

function operatorObjects(s: InputSet) {
  const app = parseApp(
    {
      queue: s.queue,
      ...(s.topology ? { topology: s.topology } : {}),
      ...(s.monitoring ? { monitoring: s.monitoring } : {}),
    },
    s.release,
    s.namespace,
  );
  return [
    ...queueObjects(app, { gatewayApi: false, queueCredentials: s.credentials }),
    ...networkPolicies(app),
  ];
}

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
  it('renders the objects the operator builds', () => {
    const report = parity({
      chart: 'queue',
      release: s.release,
      namespace: s.namespace,
      values: values(s),
      operator: operatorObjects(s),
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
  });
});

it('the comparison sees a difference (so agreeing above means something)', () => {
  const s = INPUT_SETS[0]!;
  const report = parity({
    chart: 'queue',
    release: s.release,
    namespace: s.namespace,
    values: { ...values(s), queues: [{ name: 'orders' }, { name: 'extra' }] },
    operator: operatorObjects(s),
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
