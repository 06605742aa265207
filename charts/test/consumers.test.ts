// What the consumers chart does that parity cannot show: how many replicas run without the
// operator, the KEDA objects when KEDA is served, where QUEUE_URL comes from, the queue's TLS (the
// CA mounted, KEDA and the helm test over https), the spec's rules it enforces with `fail`, and
// restricted pods everywhere, the helm test's included. QUEUE_URL read from the queue's credentials
// Secret needs a cluster: e2e/charts-consumers.test.ts.
import { CONSUMER_RESOURCES, queue as queueSchema } from '../../operator/api/queue.ts';
import { injectedEnvMessage } from '../../operator/api/common.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { renderChart, templateChart } from './helm.ts';
import { brokenResourceRules, testCelRules } from './parity.ts';
import { podSpecs } from './tier-chart-checks.ts';

const KEDA_API = ['keda.sh/v1alpha1/ScaledObject', 'keda.sh/v1alpha1/TriggerAuthentication'];
const QUEUE_URL = 'amqps://u:p@shop-mq.prod.svc:5672/%2F';
const orders = { name: 'orders', image: 'o:1', queue: 'orders' };
const base = { consumers: [orders], connection: { entries: { QUEUE_URL } } };
const render = (values: object, apiVersions: string[] = []) =>
  renderChart('consumers', {
    release: 'shop',
    namespace: 'prod',
    values: { ...base, ...values },
    apiVersions,
  });
const find = (objects: ReturnType<typeof render>, kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as any;
const failure = (values: object) => {
  const r = templateChart('consumers', {
    release: 'shop',
    namespace: 'prod',
    values: { ...base, ...values },
  });
  expect(r.ok).toBe(false);
  return r.stderr;
};

describe('replicas without the operator', () => {
  const replicasOf = (consumer: object, apiVersions: string[] = [], keda = false) =>
    find(
      render({ consumers: [{ ...orders, ...consumer }], keda: { enabled: keda } }, apiVersions),
      'Deployment',
      'shop-orders',
    ).spec.replicas;

  it('a fixed consumer runs its replicas, 0 included', () => {
    expect(replicasOf({ replicas: 4 })).toBe(4);
    expect(replicasOf({ replicas: 0 })).toBe(0);
  });

  it('an autoscaled consumer runs its minimum, but at least 1: nothing would wake it from 0', () => {
    expect(replicasOf({ autoscaling: { minReplicas: 3, maxReplicas: 9 } })).toBe(3);
    expect(replicasOf({ autoscaling: { maxReplicas: 9 } })).toBe(1);
  });

  it('with KEDA asked for but not served, nothing changes: no KEDA object, the same replicas', () => {
    const objects = render({
      consumers: [{ ...orders, autoscaling: { maxReplicas: 9 } }],
      keda: { enabled: true },
    });
    expect(objects.filter((o) => o.apiVersion.startsWith('keda.sh/'))).toEqual([]);
    expect(find(objects, 'Deployment', 'shop-orders').spec.replicas).toBe(1);
  });

  it("with KEDA served and asked for, the autoscaled Deployment leaves its replicas to KEDA's autoscaler", () => {
    expect(replicasOf({ autoscaling: { maxReplicas: 9 } }, KEDA_API, true)).toBeUndefined();
    expect(replicasOf({ replicas: 2 }, KEDA_API, true)).toBe(2);
  });
});

describe('KEDA', () => {
  const autoscaling = {
    minReplicas: 0,
    maxReplicas: 12,
    messagesPerReplica: 40,
    cooldownSeconds: 90,
    pollIntervalSeconds: 3,
    scaleDownStabilizationSeconds: 45,
  };
  const objects = () =>
    render(
      {
        consumers: [
          { ...orders, queue: 'orders.v2', autoscaling },
          { name: 'fixed', image: 'f:1', queue: 'orders' },
        ],
        keda: { enabled: true, namespace: 'autoscalers' },
        queue: { release: 'shop-queue' },
      },
      KEDA_API,
    );

  const plain = () =>
    render(
      {
        consumers: [{ ...orders, autoscaling }],
        keda: { enabled: true },
        queue: { release: 'shop-queue', tls: false },
      },
      KEDA_API,
    );

  it("scales on the operator's inputs: depth / messagesPerReplica within min..max, its poll, cooldown and stabilization", () => {
    const scaled = objects().filter((o) => o.kind === 'ScaledObject');
    expect(scaled.map((o) => o.metadata.name)).toEqual(['shop-orders']);
    expect(scaled[0]!.spec).toEqual({
      scaleTargetRef: { name: 'shop-orders' },
      pollingInterval: 3,
      cooldownPeriod: 90,
      minReplicaCount: 0,
      maxReplicaCount: 12,
      advanced: {
        horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 45 } } },
      },
      triggers: [
        {
          type: 'rabbitmq',
          // http: the management API counts ready + unacknowledged messages, as the operator does.
          metadata: {
            // The address only; the login is the TriggerAuthentication's. https: the queue's TLS.
            host: 'https://shop-queue-mq.prod.svc:15672',
            protocol: 'http',
            mode: 'QueueLength',
            value: '40',
            queueName: 'orders.v2',
            vhostName: '/',
          },
          authenticationRef: { name: 'shop-queue-scaler' },
        },
      ],
    });
  });

  const login = [
    { parameter: 'username', name: 'shop-queue-mq-credentials', key: 'monitoring-username' },
    { parameter: 'password', name: 'shop-queue-mq-credentials', key: 'monitoring-password' },
  ];

  it('logs in with the queue’s monitoring login, never the application’s, and checks the broker against the app’s CA', () => {
    const rendered = objects();
    expect(find(rendered, 'TriggerAuthentication', 'shop-queue-scaler').spec).toEqual({
      secretTargetRef: login,
      // KEDA's rabbitmq scaler: `tls: enable` and the CA (PEM) it verifies the server with.
      configMapTargetRef: [
        { parameter: 'tls', name: 'shop-queue-scaler', key: 'tls' },
        { parameter: 'ca', name: 'shop-queue-ca-cert', key: 'ca.crt' },
      ],
    });
    expect(find(rendered, 'ConfigMap', 'shop-queue-scaler').data).toEqual({ tls: 'enable' });
    // The CA named is the one the consumers mount: ca.configMapName when given.
    const given = render(
      {
        consumers: [{ ...orders, autoscaling }],
        keda: { enabled: true },
        ca: { configMapName: 'app-ca-cert' },
      },
      KEDA_API,
    );
    expect(find(given, 'TriggerAuthentication', 'shop-queue-scaler').spec.configMapTargetRef[1]).toEqual({
      parameter: 'ca',
      name: 'app-ca-cert',
      key: 'ca.crt',
    });
  });

  it('with queue.tls false asks over http, with the login alone', () => {
    const objects = plain();
    expect(find(objects, 'ScaledObject', 'shop-orders').spec.triggers[0].metadata.host).toBe(
      'http://shop-queue-mq.prod.svc:15672',
    );
    expect(find(objects, 'TriggerAuthentication', 'shop-queue-scaler').spec).toEqual({
      secretTargetRef: login,
    });
    expect(objects.filter((o) => o.kind === 'ConfigMap')).toEqual([]);
  });

  it('nothing secret in the objects: the login is referenced, never written', () => {
    const text = JSON.stringify(
      [...objects(), ...plain()].filter((o) => o.apiVersion.startsWith('keda.sh/')),
    );
    expect(text).not.toMatch(/password"\s*:\s*"[^"]/);
    expect(text).not.toContain('QUEUE_URL');
  });

  it("lets KEDA's namespace in to the queue's management API, and nothing else", () => {
    expect(find(objects(), 'NetworkPolicy', 'shop-allow-keda-queue').spec).toEqual({
      podSelector: {
        matchLabels: { 'app.kubernetes.io/instance': 'shop-queue', 'app.kubernetes.io/component': 'queue' },
      },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'autoscalers' } } }],
          ports: [{ protocol: 'TCP', port: 15672 }],
        },
      ],
    });
  });
});

describe('the connection Secret', () => {
  const data = (objects: ReturnType<typeof render>) =>
    Object.fromEntries(
      Object.entries(find(objects, 'Secret', 'shop-connection').data as Record<string, string>).map(
        ([k, v]) => [k, Buffer.from(v, 'base64').toString()],
      ),
    );

  it("holds the app's name, the queue's URL and the entries, and nothing of the management API", () => {
    expect(
      data(render({ queue: { release: 'mq' }, connection: { entries: { QUEUE_URL, EXTRA: 'x' } } })),
    ).toEqual({
      SCALABLEAPP_NAME: 'shop',
      QUEUE_URL,
      EXTRA: 'x',
    });
  });

  it('refuses to render without a queue to build QUEUE_URL from, saying what to give', () => {
    expect(failure({ queue: { release: 'mq' }, connection: { entries: {} } })).toContain(
      "connection.entries.QUEUE_URL: the consumers need the queue's URL: no Secret mq-mq-credentials with username and password in prod",
    );
  });

  it('with secretName creates none, needs no QUEUE_URL, and mounts the one named', () => {
    const objects = render({ connection: { secretName: 'shop-connection', hash: '0123456789abcdef' } });
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const pod = find(objects, 'Deployment', 'shop-orders').spec.template;
    expect(pod.metadata.annotations).toEqual({ 'scalableapp.io/connection-hash': '0123456789abcdef' });
    expect(pod.spec.containers[0].envFrom).toEqual([{ secretRef: { name: 'shop-connection' } }]);
  });

  it('without consumers renders only the app-wide policies (no Secret, no test)', () => {
    const objects = renderChart('consumers', { release: 'shop', namespace: 'prod', values: {} });
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'NetworkPolicy/shop-allow-dns',
      'NetworkPolicy/shop-default-deny',
    ]);
  });
});

describe("the spec's rules the schema cannot say", () => {
  testCelRules('consumers', base, {
    [injectedEnvMessage]: {
      values: { consumers: [{ ...orders, env: [{ name: 'QUEUE_NAME', value: 'other' }] }] },
      field: 'consumers[0].env[0].name',
    },
    'name must not be web or edge: its Deployment <app>-<name> would be the web or edge cache tier': {
      values: { consumers: [orders, { ...orders, name: 'edge' }] },
      field: 'consumers[1].name',
    },
    'minReplicas must be <= maxReplicas': {
      values: {
        consumers: [orders, { ...orders, name: 'b', autoscaling: { minReplicas: 5, maxReplicas: 4 } }],
      },
      field: 'consumers[1].autoscaling.minReplicas',
    },
    'set exactly one of value or secretKeyRef': {
      values: {
        consumers: [
          {
            ...orders,
            env: [
              { name: 'A', value: 'a' },
              { name: 'B', value: 'b', secretKeyRef: { name: 's', key: 'k' } },
            ],
          },
        ],
      },
      field: 'consumers[0].env[1]',
    },
  });

  // Not a CEL rule for consumers (the apiserver's cost budget cannot afford it for a list of 20):
  // the operator refuses it through the schema, and the chart as for every other tier.
  it.each(
    Object.entries(
      brokenResourceRules(
        (resources) => ({ consumers: [orders, { ...orders, name: 'b', resources }] }),
        CONSUMER_RESOURCES.memoryFloor,
        'consumers[1].resources',
      ),
    ),
  )('%s', (message, { values, field }) => {
    const r = templateChart('consumers', {
      release: 'shop',
      namespace: 'prod',
      values: { ...base, ...values },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(`${field}: ${message}`);
  });

  it.each([
    [{ consumers: [orders, orders] }, 'consumers[1].name: consumer "orders" is listed twice'],
    [
      {
        consumers: [
          {
            ...orders,
            env: [
              { name: 'A', value: '1' },
              { name: 'A', value: '2' },
            ],
          },
        ],
      },
      'consumers[0].env[1].name: "A" is listed twice',
    ],
  ])(
    'refuses a list entry twice, as the spec (lists keyed by name) cannot hold it: %j',
    (values, message) => {
      expect(failure(values)).toContain(message);
    },
  );

  it.each([
    [{ consumers: [{ ...orders, name: 'Orders' }] }, '/consumers/0/name'],
    [{ consumers: [{ ...orders, name: 'x'.repeat(31) }] }, '/consumers/0/name'],
    [{ consumers: [{ name: 'o', image: 'o:1' }] }, "missing property 'queue'"],
    [{ consumers: [{ ...orders, autoscaling: { minReplicas: 1 } }] }, "missing property 'maxReplicas'"],
    [
      { consumers: [{ ...orders, autoscaling: { maxReplicas: 2, pollIntervalSeconds: 0 } }] },
      '/consumers/0/autoscaling/pollIntervalSeconds',
    ],
    [{ keda: { namespace: 'KEDA' } }, '/keda/namespace'],
    [{ queue: { release: 'my_queue' } }, '/queue/release'],
  ])('the schema rejects %j naming %s', (values, field) => {
    expect(failure(values)).toContain(field);
  });
});

describe("the queue's TLS", () => {
  const pod = (objects: ReturnType<typeof render>, name: string) =>
    podSpecs(objects).find(([n]) => n === name)![1];
  const caVolume = (name: string) => ({ name: 'ca', configMap: { name } });
  const caMount = { name: 'ca', mountPath: '/etc/scalableapp/ca', readOnly: true };

  it("mounts the app's CA where QUEUE_CA_FILE points: ca.configMapName, else the queue's <release>-ca-cert", () => {
    const byDefault = pod(render({ queue: { release: 'mq' } }), 'Deployment/shop-orders');
    expect(byDefault.volumes).toContainEqual(caVolume('mq-ca-cert'));
    expect(byDefault.containers[0]!.volumeMounts).toContainEqual(caMount);
    const given = pod(
      render({ queue: { release: 'mq' }, ca: { configMapName: 'shop-ca-cert' } }),
      'Deployment/shop-orders',
    );
    expect(given.volumes).toContainEqual(caVolume('shop-ca-cert'));
  });

  it('with queue.tls false mounts no CA unless ca.configMapName names one (another tier serves TLS)', () => {
    const none = pod(render({ queue: { tls: false } }), 'Deployment/shop-orders');
    expect(JSON.stringify(none)).not.toContain('/etc/scalableapp/ca');
    const cache = pod(
      render({ queue: { tls: false }, ca: { configMapName: 'shop-ca-cert' } }),
      'Deployment/shop-orders',
    );
    expect(cache.volumes).toContainEqual(caVolume('shop-ca-cert'));
  });

  it("has its helm test speak TLS to the management API, checking the broker against the mounted CA and the queue's name", () => {
    const objects = render({ queue: { release: 'mq' } });
    const test = pod(objects, 'Pod/shop-consumers-test');
    // The queue chart's default image, which has openssl.
    expect(test.containers[0]!.image).toBe(queueSchema.shape.image.parse(undefined));
    const script = test.containers[0]!.command![2]!;
    expect(script).toContain('-CAfile /etc/scalableapp/ca/ca.crt');
    expect(script).toContain(
      '-connect mq-mq.prod.svc:15672 -servername mq-mq.prod.svc -verify_hostname mq-mq.prod.svc',
    );
    expect(script).toContain('json=$(mgmt_get "/api/queues/%2F/$1")');
    expect(test.volumes).toEqual([caVolume('mq-ca-cert')]);
    expect(test.containers[0]!.volumeMounts).toEqual([caMount]);
    expect(
      pod(render({ test: { image: 'toolbox:1' } }), 'Pod/shop-consumers-test').containers[0]!.image,
    ).toBe('toolbox:1');
  });

  it('with queue.tls false tests over plain HTTP with nc, in busybox', () => {
    const test = pod(render({ queue: { tls: false } }), 'Pod/shop-consumers-test');
    expect(test.containers[0]!.image).toBe('busybox:1.37');
    expect(test.containers[0]!.command![2]).toContain('nc -w 5 shop-mq.prod.svc 15672');
    expect(JSON.stringify(test)).not.toMatch(/openssl|\/etc\/scalableapp\/ca/);
  });
});

describe('pods', () => {
  it('pass the restricted Pod Security Standard, the helm test pod included', () => {
    const pods = podSpecs(render({ consumers: [orders, { ...orders, name: 'b' }] }));
    expect(pods.map(([name]) => name).sort()).toEqual([
      'Deployment/shop-b',
      'Deployment/shop-orders',
      'Pod/shop-consumers-test',
    ]);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });

  it('mount the shard map as the operator does for an app with shards', () => {
    const pod = find(render({ shardMap: { configMapName: 'shop-shard-map' } }), 'Deployment', 'shop-orders')
      .spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'shard-map', configMap: { name: 'shop-shard-map' } });
    expect(pod.containers[0].volumeMounts).toContainEqual({
      name: 'shard-map',
      mountPath: '/etc/scalableapp/shard-map',
      readOnly: true,
    });
  });

  it('the test expects a consumer attached to each queue whose consumer runs, and only the queue to exist otherwise', () => {
    const objects = render(
      {
        consumers: [
          { ...orders, replicas: 2 },
          { name: 'idle', image: 'i:1', queue: 'idle-q', replicas: 0 },
          { name: 'scaled', image: 's:1', queue: 'scaled-q', autoscaling: { maxReplicas: 3 } },
        ],
        keda: { enabled: true },
      },
      KEDA_API,
    );
    const script = (objects.find((o) => o.kind === 'Pod') as any).spec.containers[0].command[2] as string;
    expect(script.match(/^check .*$/gm)).toEqual([
      "check 'orders' 1",
      "check 'idle-q' 0",
      "check 'scaled-q' 0",
    ]);
  });
});
