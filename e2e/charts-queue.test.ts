// charts/queue on the local cluster, without the operator: helm installs it into a namespace that
// enforces the restricted Pod Security Standard, the brokers, their volumes and Services become
// ready with TLS (the default: the app's CA and the brokers' certificate, mounted), `helm test` runs
// its hooks (settleTestPod in charts/test/helm.ts says what that proves on KWOK: admission and helm's
// verdict, not that RabbitMQ answers), an upgrade keeps the generated login and the certificates
// (lookup), reissues the certificate from the kept CA when asked without restarting a broker, and
// refuses what the spec forbids, uninstall keeps the volumes (messages are data) and the login they
// hold, and a scale-up reissues the certificate for the new brokers' names.
import { X509Certificate } from 'node:crypto';
import { parseApp } from '../operator/api/testdata/apps.ts';
import { mqServerNames } from '../operator/tiers/queue.ts';
import { certDnsNames } from '../operator/tls/certificates.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';
import { readyEndpoints } from './support/pods.ts';
import {
  helmIn,
  helmTest,
  installChart,
  namedObject,
  objectExists,
  upgradeChart,
} from './support/helm-releases.ts';
import { claims, secretValues } from './support/release-state.ts';

let ns: string;
const release = 'shop';
const values = { replicas: 3, storage: { size: '1Gi' }, queues: [{ name: 'orders' }, { name: 'mail' }] };
const nodes = ['shop-mq-0', 'shop-mq-1', 'shop-mq-2'];

beforeAll(() => {
  ns = createNamespace('chart-mq', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => {
  helmIn(['uninstall', release, '-n', ns]);
  deleteNamespace(ns);
});

const credentials = () => secretValues(ns, 'shop-mq-credentials');
const certificate = () => secretValues(ns, 'shop-mq-tls');
const configHash = () =>
  json<any>(['get', 'statefulset', 'shop-mq', '-n', ns]).spec.template.metadata.annotations[
    'scalableapp.io/config-hash'
  ];

describe('the queue chart installed alone', () => {
  let firstClaims: string[][];

  it('installs into a restricted namespace, and the brokers, volumes and Services become ready', async () => {
    const r = installChart('queue', release, ns, values);
    expect(r).toMatchObject({ ok: true });
    const sts = json<any>(['get', 'statefulset', 'shop-mq', '-n', ns]);
    expect([sts.status.replicas, sts.status.readyReplicas]).toEqual([3, 3]);
    firstClaims = claims(ns);
    expect(firstClaims.map(([name, phase]) => [name, phase])).toEqual(
      nodes.map((n) => [`data-${n}`, 'Bound']),
    );
    // The endpoint and disruption controllers follow the pods on their own time.
    await eventually(
      'every broker behind both Services, and counted healthy by the budget',
      () =>
        readyEndpoints(ns, 'shop-mq').length === 3 &&
        readyEndpoints(ns, 'shop-mq-headless').length === 3 &&
        json<any>(['get', 'pdb', 'shop-mq', '-n', ns]).status.currentHealthy === 3,
    );
    expect(readyEndpoints(ns, 'shop-mq')).toEqual(nodes);
    expect(readyEndpoints(ns, 'shop-mq-headless')).toEqual(nodes);
    expect(
      json<{ items: any[] }>(['get', 'networkpolicy', '-n', ns])
        .items.map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['shop-allow-dns', 'shop-allow-queue-egress', 'shop-allow-queue-ingress', 'shop-default-deny']);
  });

  it("serves TLS by default: the app's CA and a certificate it signed, mounted in every broker", () => {
    const cert = certificate();
    expect(Object.keys(cert).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const ca = secretValues(ns, 'shop-ca')['tls.crt']!;
    expect(cert['ca.crt']).toBe(ca);
    expect(json<any>(['get', 'configmap', 'shop-ca-cert', '-n', ns]).data['ca.crt']).toBe(ca);
    expect(new X509Certificate(cert['tls.crt']!).checkIssued(new X509Certificate(ca))).toBe(true);
    const pod = json<any>(['get', 'statefulset', 'shop-mq', '-n', ns]).spec.template.spec;
    expect(pod.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'shop-mq-tls', defaultMode: 0o440 },
    });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'tls', mountPath: '/tls', readOnly: true });
    expect(json<any>(['get', 'configmap', 'shop-mq-config', '-n', ns]).data['rabbitmq.conf']).toContain(
      'listeners.tcp = none\nlisteners.ssl.default = 5672\n',
    );
  });

  it('generates the two logins and the Erlang cookie into the Secret only', () => {
    const c = credentials();
    expect(Object.keys(c).sort()).toEqual([
      'erlang-cookie',
      'monitoring-password',
      'monitoring-username',
      'password',
      'username',
    ]);
    for (const v of Object.values(c)) expect(v).toMatch(/^[A-Za-z0-9]{32}$/);
    const elsewhere = kubectl(['get', 'configmap,statefulset,pods,services', '-n', ns, '-o', 'json']);
    for (const v of Object.values(c)) expect(elsewhere).not.toContain(v);
  });

  it('`helm test` fails when the test pod fails, keeping the pod and removing the access policy', async () => {
    const run = await helmTest(ns, release, 'shop-mq-test', 'Failed');
    expect(run.result.ok).toBe(false);
    expect(namedObject(ns, 'pod/shop-mq-test').metadata.uid).toBe(run.pod.metadata.uid);
    expect(objectExists(ns, 'networkpolicy/shop-allow-queue-test')).toBe(false);
  });

  it('`helm test` passes when the test pod succeeds, and cleans up after itself', async () => {
    const run = await helmTest(ns, release, 'shop-mq-test', 'Succeeded', () => {
      expect(objectExists(ns, 'networkpolicy/shop-allow-queue-test')).toBe(true);
    });
    expect(run.result).toMatchObject({ ok: true });
    expect(run.result.stdout).toMatch(/TEST SUITE:\s+shop-mq-test\n[^]*Phase:\s+Succeeded/);
    expect(run.pod.spec.containers[0].env.map((e: any) => e.valueFrom.secretKeyRef)).toEqual([
      { name: 'shop-mq-credentials', key: 'monitoring-username' },
      { name: 'shop-mq-credentials', key: 'monitoring-password' },
    ]);
    // Over TLS, checking the brokers against the app's CA, with the broker's image (it has openssl).
    expect(run.pod.spec.volumes).toContainEqual({
      name: 'ca',
      configMap: expect.objectContaining({ name: 'shop-ca-cert' }),
    });
    expect(run.pod.spec.containers[0].image).toBe('rabbitmq:4.1-management');
    expect(run.pod.spec.containers[0].command[2]).toContain('openssl s_client');
    expect(objectExists(ns, 'pod/shop-mq-test')).toBe(false);
    expect(objectExists(ns, 'networkpolicy/shop-allow-queue-test')).toBe(false);
  });

  it('refuses the upgrades the spec forbids, with the rule that forbids them', () => {
    const storage = upgradeChart('queue', release, ns, ['--set', 'storage.storageClassName=fast']);
    expect(storage.ok).toBe(false);
    expect(storage.stderr).toContain(
      'storage.storageClassName: storageClassName is immutable: existing volumes cannot move to another storage class',
    );
    const even = upgradeChart('queue', release, ns, ['--set', 'replicas=4']);
    expect(even.ok).toBe(false);
    expect(even.stderr).toContain('replicas: replicas must be 1 or an odd number >= 3');
  });

  it('an upgrade that declares a queue keeps the login and the certificates, and restarts the brokers (their config changed)', () => {
    const before = credentials();
    const tls = certificate();
    const hash = configHash();
    const r = upgradeChart('queue', release, ns, [
      '--set-json',
      `queues=${JSON.stringify([...values.queues, { name: 'invoices' }])}`,
    ]);
    expect(r).toMatchObject({ ok: true });
    expect(credentials()).toEqual(before);
    expect(certificate()).toEqual(tls);
    expect(configHash()).not.toBe(hash);
    const definitions = JSON.parse(
      json<any>(['get', 'configmap', 'shop-mq-config', '-n', ns]).data['definitions.json'],
    );
    expect(definitions.queues.map((q: any) => q.name)).toEqual(['orders', 'mail', 'invoices']);
  });

  it('tls.reissue issues a new certificate from the kept CA, and no broker restarts (Erlang reads the new files)', () => {
    const before = certificate();
    const hash = configHash();
    const generation = json<any>(['get', 'statefulset', 'shop-mq', '-n', ns]).metadata.generation;
    const r = upgradeChart('queue', release, ns, ['--set', 'tls.reissue=true']);
    expect(r).toMatchObject({ ok: true });
    const after = certificate();
    expect(after['ca.crt']).toBe(before['ca.crt']);
    // Compared by fingerprint: a failure must not print a key.
    const fingerprint = (c: Record<string, string>) => new X509Certificate(c['tls.crt']!).fingerprint256;
    expect(fingerprint(after)).not.toBe(fingerprint(before));
    expect(new X509Certificate(after['tls.crt']!).checkIssued(new X509Certificate(after['ca.crt']!))).toBe(
      true,
    );
    expect(configHash()).toBe(hash);
    expect(json<any>(['get', 'statefulset', 'shop-mq', '-n', ns]).metadata.generation).toBe(generation);
    // Back to keeping it: --reuse-values would reissue on every later upgrade.
    expect(upgradeChart('queue', release, ns, ['--set', 'tls.reissue=false'])).toMatchObject({ ok: true });
    expect(fingerprint(certificate())).toBe(fingerprint(after));
  });

  it('uninstall keeps the volumes and the login they hold; a reinstall finds both', () => {
    const before = credentials();
    const un = helmIn(['uninstall', release, '-n', ns, '--wait']);
    expect(un.ok).toBe(true);
    expect(un.stdout).toContain('[Secret] shop-mq-credentials');
    expect(objectExists(ns, 'statefulset/shop-mq')).toBe(false);
    expect(claims(ns)).toEqual(firstClaims);
    expect(credentials()).toEqual(before);

    const again = installChart('queue', release, ns, values);
    expect(again).toMatchObject({ ok: true });
    expect(claims(ns)).toEqual(firstClaims);
    expect(credentials()).toEqual(before);
    expect(json<any>(['get', 'statefulset', 'shop-mq', '-n', ns]).status.readyReplicas).toBe(3);
  });

  it('a scale-up issues the certificate again from the kept CA, naming every broker exactly, as the operator does', () => {
    const before = certificate();
    const names = (c: Record<string, string>) => certDnsNames(new X509Certificate(c['tls.crt']!));
    expect(names(before)).not.toContain(`shop-mq-3.shop-mq-headless.${ns}.svc`);
    expect(upgradeChart('queue', release, ns, ['--set', 'replicas=5'])).toMatchObject({ ok: true });
    const after = certificate();
    expect(after['ca.crt']).toBe(before['ca.crt']);
    // The names the operator's certificate holds for the same five brokers, no more and no fewer.
    const app = parseApp({ queue: { ...values, replicas: 5 } }, release, ns);
    expect(names(after)).toEqual([...mqServerNames(app)].sort());
  });
});
