import type {
  V1ConfigMap,
  V1PodDisruptionBudget,
  V1Secret,
  V1Service,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { contentHash } from './content-hash.ts';
import type { ObservedFacts } from './objects.ts';
import { mqConfigHash, mqServerNames, queueEntries, queueObjects, type QueueCredentials } from './queue.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';
import { TEST_TLS } from './testdata/facts.ts';
import { expectServerCertificate } from './testdata/server-tls.ts';

const credentials: QueueCredentials = {
  username: 'u-1',
  password: 'p/w:1@x',
  monitoringUsername: 'm-1',
  monitoringPassword: 'mon/pw:2',
  erlangCookie: 'cookie-1',
};
const facts: ObservedFacts = { gatewayApi: false, queueCredentials: credentials, tls: TEST_TLS };
const app = parseApp({
  web: { image: 'x' },
  queue: {
    replicas: 3,
    queues: [{ name: 'photos' }, { name: 'mail' }],
    storage: { size: '10Gi', storageClassName: 'fast' },
  },
});
const find = <T>(kind: string, name?: string, a = app) =>
  queueObjects(a, facts).find((o) => o.kind === kind && (!name || o.metadata.name === name)) as unknown as T;
const sts = (a = app) => find<V1StatefulSet>('StatefulSet', undefined, a);
const container = (a = app) => sts(a).spec!.template.spec!.containers[0]!;
const envOf = (a = app) => Object.fromEntries(container(a).env!.map((e) => [e.name, e.value ?? e.valueFrom]));

describe('queue tier objects', () => {
  it('is nothing without spec.queue', () => {
    expect(queueObjects(parseApp({ web: { image: 'x' } }), facts)).toEqual([]);
  });

  it('builds the broker: credentials, config, two Services, the StatefulSet and its budget', () => {
    expect(queueObjects(app, facts).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Secret/shop-mq-credentials',
      'Secret/shop-mq-tls',
      'ConfigMap/shop-mq-config',
      'Service/shop-mq-headless',
      'Service/shop-mq',
      'StatefulSet/shop-mq',
      'PodDisruptionBudget/shop-mq',
    ]);
    for (const o of queueObjects(app, facts)) {
      expect(o.metadata.labels).toMatchObject({ 'app.kubernetes.io/component': 'queue' });
    }
  });

  it('refuses to build without generated credentials', () => {
    expect(() => queueObjects(app, { gatewayApi: false })).toThrow(/queue credentials not generated/);
  });

  it('runs the replicas in parallel under the restricted profile, as the image user, with retained volumes', () => {
    const s = sts();
    expect(s.spec!.replicas).toBe(3);
    expect(s.spec!.podManagementPolicy).toBe('Parallel');
    expect(s.spec!.serviceName).toBe('shop-mq-headless');
    expect(restrictedViolations(s.spec!.template.spec!)).toEqual([]);
    expect(s.spec!.template.spec!.securityContext).toMatchObject({
      runAsUser: 999,
      runAsGroup: 999,
      fsGroup: 999,
      runAsNonRoot: true,
    });
    expect(container().securityContext).toMatchObject({ readOnlyRootFilesystem: true });
    expect(s.spec!.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: 'Retain',
      whenScaled: 'Retain',
    });
    expect(s.spec!.volumeClaimTemplates![0]!.spec).toMatchObject({
      storageClassName: 'fast',
      resources: { requests: { storage: '10Gi' } },
    });
  });

  it('can write where the broker writes: its data volume, HOME and /tmp', () => {
    const c = container();
    const env = envOf();
    const mounts = c.volumeMounts!;
    const volumes = sts().spec!.template.spec!.volumes!;
    const writable = mounts.filter((m) => !m.readOnly).map((m) => m.mountPath);
    expect(writable.sort()).toEqual(['/run/rabbitmq', '/tmp', '/var/lib/rabbitmq']);
    expect(env.HOME).toBe('/run/rabbitmq');
    expect(String(env.RABBITMQ_MNESIA_BASE).startsWith('/var/lib/rabbitmq/')).toBe(true);
    const home = mounts.find((m) => m.mountPath === '/run/rabbitmq')!.name;
    expect(volumes.find((v) => v.name === home)!.emptyDir).toBeDefined();
    // The definitions file the start script writes lands in that emptyDir.
    expect(find<V1ConfigMap>('ConfigMap').data!['rabbitmq.conf']).toContain(
      'definitions.local.path = /run/rabbitmq/definitions.json',
    );
  });

  it('names each node as the peer list does, from the pod name, with long names', () => {
    const env = envOf();
    expect(env.POD_NAME).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.RABBITMQ_USE_LONGNAME).toBe('true');
    const conf = find<V1ConfigMap>('ConfigMap').data!['rabbitmq.conf']!;
    for (const pod of ['shop-mq-0', 'shop-mq-1', 'shop-mq-2']) {
      const name = String(env.RABBITMQ_NODENAME).replace('$(POD_NAME)', pod);
      expect(conf).toContain(`= ${name}\n`);
      expect(name).toBe(`rabbit@${pod}.shop-mq-headless.prod.svc`);
    }
    expect(conf).toContain('cluster_partition_handling = pause_minority');
    const single = find<V1ConfigMap>(
      'ConfigMap',
      undefined,
      parseApp({ queue: { replicas: 1, queues: [{ name: 'q' }] } }),
    );
    expect(single.data!['rabbitmq.conf']).not.toContain('pause_minority');
  });

  it('declares every spec queue as a durable quorum queue', () => {
    const defs = JSON.parse(find<V1ConfigMap>('ConfigMap').data!['definitions.json']!);
    expect(
      defs.queues.map((q: { name: string; durable: boolean; arguments: object }) => [
        q.name,
        q.durable,
        q.arguments,
      ]),
    ).toEqual([
      ['photos', true, { 'x-queue-type': 'quorum' }],
      ['mail', true, { 'x-queue-type': 'quorum' }],
    ]);
  });

  it('derives the memory watermark from the limit, and the disk alarm from the volume', () => {
    const conf = find<V1ConfigMap>('ConfigMap').data!['rabbitmq.conf']!;
    // The API's default limit, 1Gi: 40%.
    expect(conf).toContain('vm_memory_high_watermark.absolute = 429496729');
    expect(conf).toContain('disk_free_limit.absolute = 1073741824');
    // A request given alone keeps the default limit, and with it the watermark.
    const requestOnly = parseApp({
      queue: { queues: [{ name: 'q' }], resources: { requests: { memory: '1Gi' } } },
    });
    expect(find<V1ConfigMap>('ConfigMap', undefined, requestOnly).data!['rabbitmq.conf']).toContain(
      'vm_memory_high_watermark.absolute = 429496729',
    );
  });

  it('restarts the nodes when the configuration changes, e.g. a queue is added', () => {
    const hash = sts().spec!.template.metadata!.annotations!['scalableapp.io/config-hash'];
    expect(hash).toBe(contentHash(find<V1ConfigMap>('ConfigMap').data));
    expect(hash).toBe(mqConfigHash(app));
    const more = parseApp({
      queue: {
        replicas: 3,
        queues: [{ name: 'photos' }, { name: 'mail' }, { name: 'more' }],
        storage: { size: '10Gi' },
      },
    });
    expect(mqConfigHash(more)).not.toBe(hash);
  });

  it('keeps the login and the cookie in the Secret only', () => {
    const secret = find<V1Secret>('Secret', 'shop-mq-credentials');
    const decoded = Object.fromEntries(
      Object.entries(secret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
    expect(decoded).toEqual({
      username: 'u-1',
      password: 'p/w:1@x',
      'monitoring-username': 'm-1',
      'monitoring-password': 'mon/pw:2',
      'erlang-cookie': 'cookie-1',
    });
    const others = JSON.stringify(
      queueObjects(app, facts).filter((o) => o.metadata.name !== 'shop-mq-credentials'),
    );
    for (const v of [credentials.password, credentials.monitoringPassword, credentials.erlangCookie])
      expect(others).not.toContain(v);
    const volume = sts().spec!.template.spec!.volumes!.find((v) => v.name === 'credentials')!;
    expect(volume.secret).toEqual({ secretName: 'shop-mq-credentials', defaultMode: 0o440 });
  });

  it('publishes every node, ready or not, and serves clients on AMQP and the management API', () => {
    const headless = find<V1Service>('Service', 'shop-mq-headless').spec!;
    expect(headless).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(headless.ports!.map((p) => [p.name, p.port])).toEqual([
      ['amqp', 5672],
      ['management', 15672],
      ['epmd', 4369],
      ['dist', 25672],
    ]);
    const client = find<V1Service>('Service', 'shop-mq').spec!;
    expect(client.clusterIP).toBeUndefined();
    expect(client.ports!.map((p) => [p.name, p.port])).toEqual([
      ['amqp', 5672],
      ['management', 15672],
    ]);
    expect(client.selector).toEqual({
      'app.kubernetes.io/instance': 'shop',
      'app.kubernetes.io/component': 'queue',
    });
  });

  it('is ready when AMQP accepts connections, alive while the management listener answers, over TLS by default', () => {
    const c = container();
    expect(c.readinessProbe!.tcpSocket).toEqual({ port: 'amqp' });
    // Not an exec of the CLI: that starts an Erlang VM per check (bench/broker-probe-cost.ts).
    expect(c.livenessProbe!.exec).toBeUndefined();
    expect(c.livenessProbe!.httpGet).toEqual({ path: '/', port: 'management', scheme: 'HTTPS' });
    // Liveness waits for the startup probe, not for a guessed delay.
    expect(c.livenessProbe!.initialDelaySeconds).toBeUndefined();
    expect(c.command).toEqual(['sh', '/config/start.sh']);
  });

  it("gives a starting broker longer than Mnesia's wait for its peers (10 tries of 30 s) before liveness may restart it", () => {
    const c = container();
    expect(c.startupProbe!.tcpSocket).toEqual({ port: 'amqp' });
    const windowSeconds = c.startupProbe!.periodSeconds! * c.startupProbe!.failureThreshold!;
    expect(windowSeconds).toBeGreaterThanOrEqual(2 * 10 * 30);
  });

  it('spreads the nodes over zones and lets a drain take one at a time', () => {
    expect(sts().spec!.template.spec!.topologySpreadConstraints![0]).toMatchObject({
      maxSkew: 1,
      topologyKey: 'topology.kubernetes.io/zone',
    });
    const unspread = parseApp({ topology: { spreadAcrossZones: false }, queue: { queues: [{ name: 'q' }] } });
    expect(sts(unspread).spec!.template.spec!.topologySpreadConstraints).toBeUndefined();
    expect(find<V1PodDisruptionBudget>('PodDisruptionBudget').spec!.maxUnavailable).toBe(1);
  });
});

describe('the broker serves TLS only unless spec.queue.tls says otherwise (ADR 0023)', () => {
  const plain = parseApp({ queue: { queues: [{ name: 'q' }], tls: { enabled: false } } });
  const conf = (a = app) => find<V1ConfigMap>('ConfigMap', undefined, a).data!['rabbitmq.conf']!;

  it('has no plaintext listener: AMQP and the management API take TLS on their usual ports', () => {
    expect(conf()).toContain('listeners.tcp = none\nlisteners.ssl.default = 5672\n');
    expect(conf()).toContain('management.ssl.port = 15672\n');
    expect(conf()).not.toMatch(/management\.tcp|listeners\.tcp\.default/);
    for (const prefix of ['ssl_options', 'management.ssl'])
      expect(conf()).toContain(
        `${prefix}.cacertfile = /tls/ca.crt\n${prefix}.certfile = /tls/tls.crt\n${prefix}.keyfile = /tls/tls.key\n`,
      );
    // Passwords, not client certificates, and only TLS 1.2 and 1.3.
    expect(conf()).toContain('ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n');
    expect(conf()).toContain('ssl_options.versions.1 = tlsv1.3\nssl_options.versions.2 = tlsv1.2\n');
  });

  it('runs the Erlang distribution over TLS, and gives a CLI run in the pod the same', () => {
    const files = find<V1ConfigMap>('ConfigMap').data!;
    expect(files['inter-node-tls.config']).toContain('{verify, verify_peer}, {fail_if_no_peer_cert, true}');
    expect(files['inter-node-tls.config']).toContain('{certfile, "/tls/tls.crt"}');
    expect(envOf().RABBITMQ_CTL_ERL_ARGS).toBe(
      '-proto_dist inet_tls -ssl_dist_optfile /config/inter-node-tls.config',
    );
    expect(find<V1ConfigMap>('ConfigMap', undefined, plain).data).not.toHaveProperty('inter-node-tls.config');
    expect(envOf(plain)).not.toHaveProperty('RABBITMQ_CTL_ERL_ARGS');
  });

  it('names the client Service and every broker, by wildcard and exactly (the distribution matches no wildcard)', () => {
    expect(mqServerNames(app)).toEqual([
      'shop-mq',
      'shop-mq.prod',
      'shop-mq.prod.svc',
      'shop-mq.prod.svc.cluster.local',
      '*.shop-mq-headless.prod.svc',
      '*.shop-mq-headless.prod.svc.cluster.local',
      'shop-mq-0.shop-mq-headless.prod.svc',
      'shop-mq-1.shop-mq-headless.prod.svc',
      'shop-mq-2.shop-mq-headless.prod.svc',
    ]);
  });

  it("mounts a certificate for the client Service and every node's name, issued from the app's CA", () => {
    expectServerCertificate(
      find<V1Secret>('Secret', 'shop-mq-tls'),
      sts().spec!.template.spec!,
      'shop-mq-tls',
    );
  });

  it('hands the app amqps:// and the CA to check the broker against', () => {
    expect(queueEntries(app, facts)).toEqual({
      QUEUE_URL: 'amqps://u-1:p%2Fw%3A1%40x@shop-mq.prod.svc:5672/%2F',
      QUEUE_CA_FILE: '/etc/scalableapp/ca/ca.crt',
    });
  });

  it('with tls.enabled false: plaintext listeners, no certificate, amqp://, and a restart to switch', () => {
    expect(conf(plain)).toContain('listeners.tcp.default = 5672\nmanagement.tcp.port = 15672\n');
    expect(conf(plain)).not.toMatch(/ssl/);
    expect(queueObjects(plain, facts).map((o) => o.metadata.name)).not.toContain('shop-mq-tls');
    expect(sts(plain).spec!.template.spec!.volumes!.map((v) => v.name)).not.toContain('tls');
    expect(container(plain).livenessProbe!.httpGet!.scheme).toBe('HTTP');
    expect(queueEntries(plain, facts)).toEqual({
      QUEUE_URL: 'amqp://u-1:p%2Fw%3A1%40x@shop-mq.prod.svc:5672/%2F',
    });
    const tlsApp = parseApp({ queue: { queues: [{ name: 'q' }] } });
    expect(mqConfigHash(plain)).not.toBe(mqConfigHash(tlsApp));
  });

  it('refuses to build without the issued certificate', () => {
    const { tls: _none, ...untrusted } = facts;
    expect(() => queueObjects(app, untrusted)).toThrow(/shop-mq-tls: certificates not issued/);
  });
});

describe('queueEntries', () => {
  it('hands the app its own AMQP login, URL-encoded, and nothing of the management API', () => {
    expect(queueEntries(app, facts).QUEUE_URL).toBe('amqps://u-1:p%2Fw%3A1%40x@shop-mq.prod.svc:5672/%2F');
    expect(JSON.stringify(queueEntries(app, facts))).not.toContain(credentials.monitoringUsername);
    const url = new URL(queueEntries(app, facts).QUEUE_URL!);
    expect(decodeURIComponent(url.password)).toBe(credentials.password);
  });

  it('is empty without a queue or before the credentials exist', () => {
    expect(queueEntries(parseApp({ web: { image: 'x' } }), facts)).toEqual({});
    expect(queueEntries(app, { gatewayApi: false })).toEqual({});
  });
});
