// What the queue chart does that parity cannot show: the login and cookie it generates or is given,
// the spec's rules it enforces with `fail`, and restricted pods everywhere, the helm test's included.
// Its copies of the operator's broker texts are generated (charts/test/chart-files.test.ts).
import { BROKER_SHRINK_MESSAGE, QUEUE_RESOURCES, RESERVED_QUEUE_MESSAGE } from '../../operator/api/queue.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { renderChart, templateChart } from './helm.ts';
import { podSpecs } from './tier-chart-checks.ts';
import { brokenStorageRules, expectOnlyInSecrets, testTierRules } from './data-tier-checks.ts';
import { brokenAllowedClients, brokenResourceRules, testMonitoringRules } from './parity.ts';

const base = { queues: [{ name: 'orders' }, { name: 'mail' }] };
const render = (values: object) => renderChart('queue', { release: 'shop', namespace: 'prod', values });
const failure = (values: object) => {
  const r = templateChart('queue', { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
  expect(r.ok).toBe(false);
  return r.stderr;
};
const decode = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('credentials', () => {
  const secretOf = (objects: ReturnType<typeof render>) =>
    objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'shop-mq-credentials') as any;

  it('generates two logins and an Erlang cookie, 32 characters each, when none is given', () => {
    const data = secretOf(render(base)).data as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual([
      'erlang-cookie',
      'monitoring-password',
      'monitoring-username',
      'password',
      'username',
    ]);
    const values = Object.values(data).map(decode);
    for (const v of values) expect(v).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(new Set(values).size).toBe(5);
  });

  it('refuses one user name for both logins, naming the field', () => {
    expect(failure({ ...base, auth: { username: 'same', monitoringUsername: 'same' } })).toContain(
      'auth.monitoringUsername: must differ from auth.username',
    );
  });

  it('uses a given value and generates only the others', () => {
    const data = secretOf(render({ ...base, auth: { password: 'given "pw"' } })).data;
    expect(decode(data.password)).toBe('given "pw"');
    expect(decode(data.username)).toMatch(/^[A-Za-z0-9]{32}$/);
  });

  it('with existingSecret creates no Secret, and the brokers and the test (its monitoring login) read the one named', () => {
    const objects = render({ ...base, auth: { existingSecret: 'vault-synced-mq' } });
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const sts = objects.find((o) => o.kind === 'StatefulSet') as any;
    expect(sts.spec.template.spec.volumes.find((v: any) => v.name === 'credentials').secret.secretName).toBe(
      'vault-synced-mq',
    );
    const test = objects.find((o) => o.kind === 'Pod') as any;
    expect(test.spec.containers[0].env.map((e: any) => e.valueFrom.secretKeyRef)).toEqual([
      { name: 'vault-synced-mq', key: 'monitoring-username' },
      { name: 'vault-synced-mq', key: 'monitoring-password' },
    ]);
  });

  it('never writes the login or the cookie into anything but the Secret', () => {
    const auth = {
      username: 'U5er-S3cret',
      password: 'Pw-S3cret',
      monitoringUsername: 'M0nitor-S3cret',
      monitoringPassword: 'MPw-S3cret',
      erlangCookie: 'C00kie-S3cret',
    };
    expectOnlyInSecrets(render({ ...base, auth }), Object.values(auth));
  });
});

describe("the spec's rules the schema cannot say", () => {
  // Each CEL rule of spec.queue, broken once: the chart fails naming the field. The rule on changes
  // (oldSelf) needs the live release: the chart checks it on upgrade with `lookup`, which
  // e2e/charts-queue.test.ts breaks on the cluster.
  testTierRules(
    'queue',
    base,
    {
      'replicas must be 1 or an odd number >= 3 (quorum queues need a majority)': {
        field: 'replicas',
        values: { replicas: 4 },
      },
      [RESERVED_QUEUE_MESSAGE]: {
        field: 'queues[1].name',
        values: { queues: [{ name: 'q' }, { name: 'amq.jobs' }] },
      },
      [BROKER_SHRINK_MESSAGE]: { field: 'replicas' },
      ...brokenStorageRules(),
      ...brokenAllowedClients(),
      ...brokenResourceRules((resources) => ({ resources }), QUEUE_RESOURCES.memoryFloor),
    },
    ['queue/templates/_queue.tpl', 'scalableapp-lib/templates/_resources.tpl'],
  );

  it.each([1, 3, 5, 7])('accepts %d nodes', (replicas) => {
    expect(
      templateChart('queue', { release: 'shop', namespace: 'prod', values: { ...base, replicas } }).ok,
    ).toBe(true);
  });

  it('refuses a queue declared twice, as the spec (a list keyed by name) cannot hold it', () => {
    expect(failure({ queues: [{ name: 'a' }, { name: 'a' }] })).toContain(
      'queues[1].name: queue "a" is declared twice',
    );
  });

  it.each([
    [{ queues: [] }, '/queues'],
    [{ queues: [{ name: 'with space' }] }, '/queues/0/name'],
    [{ replicas: 9 }, '/replicas'],
    [{ auth: { password: 'two\nlines' } }, '/auth/password'],
    [{ auth: { erlangCookie: 'has space' } }, '/auth/erlangCookie'],
    [{ storage: { size: '5 GB' } }, '/storage/size'],
  ])('the schema rejects %j naming %s', (values, field) => {
    expect(failure(values)).toContain(field);
  });
});

describe('pods', () => {
  it('pass the restricted Pod Security Standard, the helm test pod included', () => {
    const pods = podSpecs(render(base));
    expect(pods.map(([name]) => name).sort()).toEqual(['Pod/shop-mq-test', 'StatefulSet/shop-mq']);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });

  it('the test asks the management API for every queue, let in by a test-only policy', () => {
    const objects = render(base);
    const pod = objects.find((o) => o.kind === 'Pod') as any;
    expect(pod.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(pod.spec.containers[0].command[2]).toContain("for queue in 'orders' 'mail' ; do");
    expect(pod.spec.containers[0].command[2]).toContain(
      'http://shop-mq.prod.svc:15672/api/queues/%2F/$queue',
    );
    const policy = objects.find((o) => o.metadata.name === 'shop-allow-queue-test') as any;
    expect(policy.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(policy.spec.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/instance': 'shop',
                'app.kubernetes.io/component': 'queue-test',
              },
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: 15672 }],
      },
    ]);
  });
});

describe('monitoring', () => {
  testMonitoringRules('queue', base);

  it('the schema takes no exporter image or resources: the broker serves its own metrics', () => {
    expect(failure({ monitoring: { enabled: true, resources: {} } })).toContain('resources');
    expect(failure({ monitoring: { enabled: true, exporterImages: {} } })).toContain('exporterImages');
  });

  it('enables the Prometheus plugin and opens its port only with monitoring', () => {
    const config = (enabled: boolean) =>
      (
        render({ ...base, monitoring: { enabled } }).find(
          (o) => o.kind === 'ConfigMap' && o.metadata.name === 'shop-mq-config',
        ) as any
      ).data as Record<string, string>;
    expect(config(false)['enabled_plugins']).toBe('[rabbitmq_management].\n');
    expect(config(false)['rabbitmq.conf']).not.toContain('prometheus');
    expect(config(true)['enabled_plugins']).toBe('[rabbitmq_management,rabbitmq_prometheus].\n');
    expect(config(true)['rabbitmq.conf']).toContain('prometheus.tcp.port = 15692\n');
  });

  it('with monitoring, every pod passes the restricted Pod Security Standard', () => {
    const objects = render({ ...base, monitoring: { enabled: true } });
    expect(JSON.stringify(objects)).toContain('"name":"metrics"');
    for (const [name, spec] of podSpecs(objects))
      expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });
});
