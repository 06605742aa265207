// What the queue chart does that parity cannot show: the login and cookie it generates or is given,
// the certificates it makes itself or takes, the spec's rules it enforces with `fail`, and
// restricted pods everywhere, the helm test's included. Its copies of the operator's broker texts
// are generated (charts/test/chart-files.test.ts).
import { X509Certificate } from 'node:crypto';
import { BROKER_SHRINK_MESSAGE, QUEUE_RESOURCES, RESERVED_QUEUE_MESSAGE } from '../../operator/api/queue.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { mqServerNames } from '../../operator/tiers/queue.ts';
import { serverCertProblem } from '../../operator/tls/certificates.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { renderChart, templateChart, type RenderedObject } from './helm.ts';
import { podSpecs } from './tier-chart-checks.ts';
import {
  brokenStorageRules,
  expectGeneratedTls,
  expectOnlyInSecrets,
  isPasswordSecret,
  issuedTls,
  queueTlsServer,
  testOneServerTlsSources,
  testTierRules,
} from './data-tier-checks.ts';
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
    // The certificates' Secrets are TLS's (below); names only, never a key in a failure.
    expect(objects.filter(isPasswordSecret).map((o) => o.metadata.name)).toEqual([]);
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
    const script: string = pod.spec.containers[0].command[2];
    expect(script).toContain("for queue in 'orders' 'mail' ; do");
    expect(script).toContain('response=$(mgmt_get "/api/queues/%2F/$queue")');
    expect(script).toContain('Host: shop-mq.prod.svc:15672');
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

describe('TLS, as the operator serves it, with certificates of its own', () => {
  const app = parseApp({ queue: base }, 'shop', 'prod');
  const find = (objects: readonly RenderedObject[], kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name) as any;
  const conf = (objects: readonly RenderedObject[]): string =>
    find(objects, 'ConfigMap', 'shop-mq-config').data['rabbitmq.conf'];
  const pod = (objects: readonly RenderedObject[], name: string) =>
    podSpecs(objects).find(([n]) => n === name)![1];
  const testScript = (objects: readonly RenderedObject[]): string =>
    pod(objects, 'Pod/shop-mq-test').containers[0]!.command![2]!;
  // Names only in failures: never a key.
  const tlsSecrets = (objects: readonly RenderedObject[]) =>
    objects.filter((o) => o.kind === 'Secret' && !isPasswordSecret(o)).map((o) => o.metadata.name);

  it("generates the app's CA and a certificate it signed for exactly the broker's names (mqServerNames)", () => {
    expectGeneratedTls(render(base), 'shop', [queueTlsServer(app)]);
  });

  it('clusters over TLS with a certificate for client use too, one the operator would keep (serverCertProblem)', () => {
    const objects = render(base);
    const decoded = (name: string, key: string) =>
      Buffer.from(find(objects, 'Secret', name).data[key], 'base64').toString();
    const pair = (name: string, cert: string) => ({
      cert: decoded(name, cert),
      key: decoded(name, 'tls.key'),
    });
    expect(
      serverCertProblem(
        pair('shop-mq-tls', 'tls.crt'),
        pair('shop-ca', 'tls.crt'),
        mqServerNames(app),
        new Date(),
        {
          clientAuth: true,
        },
      ),
    ).toBeUndefined();
    const env = (o: readonly RenderedObject[]) =>
      pod(o, 'StatefulSet/shop-mq').containers[0]!.env!.map((e) => e.name);
    expect(env(objects)).toContain('RABBITMQ_CTL_ERL_ARGS');
    expect(find(objects, 'ConfigMap', 'shop-mq-config').data).toHaveProperty(['inter-node-tls.config']);
    const plain = render({ ...base, tls: { enabled: false } });
    expect(env(plain)).not.toContain('RABBITMQ_CTL_ERL_ARGS');
    expect(find(plain, 'ConfigMap', 'shop-mq-config').data).not.toHaveProperty(['inter-node-tls.config']);
  });

  it('serves AMQP and the management API over TLS alone, from the certificate mounted at /tls', () => {
    const objects = render(base);
    expect(conf(objects)).toContain('listeners.tcp = none\nlisteners.ssl.default = 5672\n');
    expect(conf(objects)).toContain('management.ssl.port = 15672\n');
    expect(conf(objects)).not.toMatch(/management\.tcp|listeners\.tcp\.default/);
    const broker = pod(objects, 'StatefulSet/shop-mq');
    expect(broker.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'shop-mq-tls', defaultMode: 0o440 },
    });
    expect(broker.containers[0]!.volumeMounts).toContainEqual({
      name: 'tls',
      mountPath: '/tls',
      readOnly: true,
    });
  });

  it("has its helm test speak TLS, checking the chain against the mounted CA and the Service's name, in the broker's image", () => {
    const objects = render({ ...base, image: 'registry.example/rabbitmq:4.1' });
    const test = pod(objects, 'Pod/shop-mq-test');
    expect(test.containers[0]!.image).toBe('registry.example/rabbitmq:4.1');
    const script = testScript(objects);
    expect(script).toContain(
      'timeout 10 openssl s_client -quiet -verify_quiet -verify_return_error -CAfile /etc/scalableapp/ca/ca.crt',
    );
    expect(script).toContain(
      '-connect shop-mq.prod.svc:15672 -servername shop-mq.prod.svc -verify_hostname shop-mq.prod.svc',
    );
    expect(script).not.toMatch(/\bnc\b/);
    expect(test.volumes).toEqual([{ name: 'ca', configMap: { name: 'shop-ca-cert' } }]);
    expect(test.containers[0]!.volumeMounts).toEqual([
      { name: 'ca', mountPath: '/etc/scalableapp/ca', readOnly: true },
    ]);
    // An image given is the image that runs: it must have openssl.
    const given = render({ ...base, test: { image: 'registry.example/toolbox:1' } });
    expect(pod(given, 'Pod/shop-mq-test').containers[0]!.image).toBe('registry.example/toolbox:1');
  });

  it('with tls.enabled false serves plaintext, renders no TLS object and no mount, and tests with nc in busybox', () => {
    const objects = render({ ...base, tls: { enabled: false } });
    expect(tlsSecrets(objects)).toEqual([]);
    expect(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name)).toEqual([
      'shop-mq-config',
    ]);
    expect(conf(objects)).toContain('listeners.tcp.default = 5672\nmanagement.tcp.port = 15672\n');
    expect(conf(objects)).not.toContain('ssl');
    const text = JSON.stringify(objects);
    for (const word of ['/tls', 'openssl', 'ca.crt', 'amqps']) expect(text).not.toContain(word);
    expect(pod(objects, 'Pod/shop-mq-test').containers[0]!.image).toBe('busybox:1.37');
    expect(testScript(objects)).toContain('nc -w 5 shop-mq.prod.svc 15672');
  });

  it('serves a given certificate and CA as they are', async () => {
    const tls = await issuedTls([queueTlsServer(app)]);
    const given = tls.servers['shop-mq-tls']!;
    const objects = render({ ...base, tls: { ca: tls.ca, certificate: given } });
    const decoded = (name: string, key: string) =>
      Buffer.from(find(objects, 'Secret', name).data[key], 'base64').toString();
    expect(new X509Certificate(decoded('shop-mq-tls', 'tls.crt')).fingerprint256).toBe(
      new X509Certificate(given.cert).fingerprint256,
    );
    expect(decoded('shop-mq-tls', 'tls.key') === given.key).toBe(true);
    expect(decoded('shop-mq-tls', 'ca.crt')).toBe(tls.ca.cert);
    expect(find(objects, 'ConfigMap', 'shop-ca-cert').data['ca.crt']).toBe(tls.ca.cert);
  });

  testOneServerTlsSources('queue', base, { server: 'StatefulSet/shop-mq', ownSecret: 'shop-mq-tls' });
});
