// charts/consumers on the local cluster, without the operator, beside charts/queue installed as
// another release: the consumers' connection Secret gets the QUEUE_URL (amqps://, the queue serving
// TLS by default) and QUEUE_CA_FILE the operator would write, built from the queue's live
// credentials, and the pods mount the queue's CA; the Deployments become available in a namespace that
// enforces the restricted Pod Security Standard; `helm test` runs its hooks (settleTestPod in
// charts/test/helm.ts: admission and helm's verdict on KWOK, not that a consumer is attached); with
// KEDA's API served the autoscaled consumer is left to KEDA; uninstall leaves the queue's volumes.
//
// KEDA is not installed here: its two CRDs are stood in for by CRDs of the same group, version and
// kinds with an open schema. That shows the chart detects KEDA's API on a real apiserver and its
// objects are stored, not that KEDA accepts them or scales anything.
import { parseApp } from '../operator/api/testdata/apps.ts';
import { queueEntries } from '../operator/tiers/queue.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { helmIn, helmTest, installChart, objectExists, upgradeChart } from './support/helm-releases.ts';
import { claims, secretValues } from './support/release-state.ts';

let ns: string;
const queueRelease = 'shop';
const release = 'shop-workers';
// A login that needs URL encoding in QUEUE_URL.
const auth = {
  username: 'mq user',
  password: 'p@ss:w/rd ü€',
  monitoringUsername: 'mq monitor',
  monitoringPassword: 'm0n',
  erlangCookie: 'cookie',
};
const queues = [{ name: 'orders' }, { name: 'mail' }];
const values = {
  queue: { release: queueRelease },
  consumers: [
    { name: 'mailer', image: 'registry.example/mailer:1', queue: 'mail', replicas: 2 },
    { name: 'orders', image: 'registry.example/orders:1', queue: 'orders', autoscaling: { maxReplicas: 5 } },
  ],
};

const KEDA_CRDS = ['scaledobjects.keda.sh', 'triggerauthentications.keda.sh'];
const stubCrd = (plural: string, kind: string) => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${plural}.keda.sh` },
  spec: {
    group: 'keda.sh',
    scope: 'Namespaced',
    names: { plural, kind, singular: kind.toLowerCase(), listKind: `${kind}List` },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      },
    ],
  },
});
let createdCrds = false;

beforeAll(() => {
  ns = createNamespace('chart-consumers', { 'pod-security.kubernetes.io/enforce': 'restricted' });
});
afterAll(() => {
  helmIn(['uninstall', release, '-n', ns]);
  helmIn(['uninstall', queueRelease, '-n', ns]);
  if (createdCrds) tryKubectl(['delete', 'crd', ...KEDA_CRDS, '--wait=false']);
  deleteNamespace(ns);
});

const deployment = (name: string) => json<any>(['get', 'deployment', name, '-n', ns]);

describe('the consumers chart beside a queue of another release', () => {
  it('refuses to install before there is a queue to connect to, saying what is missing', () => {
    const r = installChart('consumers', release, ns, values);
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(
      `connection.entries.QUEUE_URL: the consumers need the queue's URL: no Secret shop-mq-credentials with username and password in ${ns}`,
    );
    expect(objectExists(ns, 'deployment/shop-workers-orders')).toBe(false);
  });

  it('installs into a restricted namespace with the QUEUE_URL the operator would write, and the consumers become available', () => {
    expect(
      installChart('queue', queueRelease, ns, { replicas: 1, storage: { size: '1Gi' }, queues, auth }),
    ).toMatchObject({ ok: true });
    expect(installChart('consumers', release, ns, values)).toMatchObject({ ok: true });
    const wanted = queueEntries(parseApp({ queue: { queues } }, queueRelease, ns), {
      gatewayApi: false,
      queueCredentials: auth,
    });
    expect(secretValues(ns, 'shop-workers-connection')).toEqual({ SCALABLEAPP_NAME: release, ...wanted });
    expect(wanted.QUEUE_URL).toMatch(/^amqps:\/\/mq%20user:p%40ss%3Aw%2Frd%20%C3%BC%E2%82%AC@shop-mq\./);
    expect(wanted.QUEUE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    for (const [name, replicas] of [
      ['shop-workers-mailer', 2],
      ['shop-workers-orders', 1],
    ] as const) {
      const d = deployment(name);
      expect([
        name,
        d.status.readyReplicas,
        d.status.conditions.find((c: any) => c.type === 'Available').status,
      ]).toEqual([name, replicas, 'True']);
      // QUEUE_CA_FILE is the queue release's CA, mounted where it points.
      const pod = d.spec.template.spec;
      expect(pod.volumes).toContainEqual({
        name: 'ca',
        configMap: expect.objectContaining({ name: 'shop-ca-cert' }),
      });
      expect(pod.containers[0].volumeMounts).toContainEqual({
        name: 'ca',
        mountPath: '/etc/scalableapp/ca',
        readOnly: true,
      });
    }
  });

  it("rolls the consumers when the queue's CA changes: the connection hash covers it", () => {
    const hash = () =>
      deployment('shop-workers-mailer').spec.template.metadata.annotations['scalableapp.io/connection-hash'];
    const before = hash();
    kubectl(['delete', 'secret', 'shop-ca', '-n', ns]);
    expect(upgradeChart('queue', queueRelease, ns, [])).toMatchObject({ ok: true });
    expect(upgradeChart('consumers', release, ns, [])).toMatchObject({ ok: true });
    expect(hash()).not.toBe(before);
  });

  it("lets these consumers out to the other release's queue, and in there", () => {
    const policies = json<{ items: any[] }>(['get', 'networkpolicy', '-n', ns]).items.map(
      (p) => p.metadata.name,
    );
    expect(policies).toEqual(
      expect.arrayContaining([
        'shop-workers-allow-consumers-queue-egress',
        'shop-workers-allow-consumers-queue-ingress',
        'shop-workers-default-deny',
        'shop-allow-queue-ingress',
      ]),
    );
    const ingress = json<any>([
      'get',
      'networkpolicy',
      'shop-workers-allow-consumers-queue-ingress',
      '-n',
      ns,
    ]);
    expect(ingress.spec.podSelector.matchLabels).toEqual({
      'app.kubernetes.io/instance': queueRelease,
      'app.kubernetes.io/component': 'queue',
    });
  });

  it('`helm test` passes when the test pod succeeds, and cleans up after itself', async () => {
    const run = await helmTest(ns, release, 'shop-workers-consumers-test', 'Succeeded', () => {
      expect(objectExists(ns, 'networkpolicy/shop-workers-allow-consumers-test')).toBe(true);
    });
    expect(run.result).toMatchObject({ ok: true });
    expect(run.pod.spec.containers[0].command[2]).toContain("check 'mail' 1\ncheck 'orders' 1");
    // Over TLS to the queue's management API, checking it against the queue's CA.
    expect(run.pod.spec.containers[0].command[2]).toContain('-verify_hostname shop-mq.' + ns + '.svc');
    expect(run.pod.spec.volumes).toContainEqual({
      name: 'ca',
      configMap: expect.objectContaining({ name: 'shop-ca-cert' }),
    });
    expect(run.pod.spec.containers[0].env.map((e: any) => e.valueFrom.secretKeyRef)).toEqual([
      { name: 'shop-mq-credentials', key: 'monitoring-username' },
      { name: 'shop-mq-credentials', key: 'monitoring-password' },
    ]);
    expect(objectExists(ns, 'pod/shop-workers-consumers-test')).toBe(false);
    expect(objectExists(ns, 'networkpolicy/shop-workers-allow-consumers-test')).toBe(false);
  });

  it("with KEDA's API served, leaves the autoscaled consumer's replicas to KEDA across upgrades", async () => {
    if (!KEDA_CRDS.every((crd) => tryKubectl(['get', 'crd', crd]).ok)) {
      kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: [
            stubCrd('scaledobjects', 'ScaledObject'),
            stubCrd('triggerauthentications', 'TriggerAuthentication'),
          ],
        }),
      );
      createdCrds = true;
    }
    kubectl(['wait', '--for=condition=Established', ...KEDA_CRDS.map((c) => `crd/${c}`)]);
    expect(upgradeChart('consumers', release, ns, ['--set', 'keda.enabled=true'])).toMatchObject({
      ok: true,
    });
    const scaled = json<any>(['get', 'scaledobjects.keda.sh', 'shop-workers-orders', '-n', ns]);
    expect(scaled.spec).toMatchObject({
      scaleTargetRef: { name: 'shop-workers-orders' },
      minReplicaCount: 0,
      maxReplicaCount: 5,
    });
    expect(objectExists(ns, 'scaledobjects.keda.sh/shop-workers-mailer')).toBe(false);
    expect(scaled.spec.triggers[0].metadata.host).toBe(`https://shop-mq.${ns}.svc:15672`);
    const auth = json<any>([
      'get',
      'triggerauthentications.keda.sh',
      'shop-workers-queue-scaler',
      '-n',
      ns,
    ]).spec;
    expect(auth.secretTargetRef).toHaveLength(2);
    // KEDA's https to the management API: `tls: enable` and the queue's CA, both from ConfigMaps.
    expect(auth.configMapTargetRef).toEqual([
      { parameter: 'tls', name: 'shop-workers-queue-scaler', key: 'tls' },
      { parameter: 'ca', name: 'shop-ca-cert', key: 'ca.crt' },
    ]);
    expect(json<any>(['get', 'configmap', 'shop-workers-queue-scaler', '-n', ns]).data).toEqual({
      tls: 'enable',
    });

    // What KEDA's autoscaler would do; the next upgrade must not undo it (the fixed consumer keeps its own).
    kubectl(['scale', 'deployment', 'shop-workers-orders', '-n', ns, '--replicas=4']);
    expect(
      upgradeChart('consumers', release, ns, [
        '--set-json',
        `consumers=${JSON.stringify([{ ...values.consumers[0], replicas: 3 }, values.consumers[1]])}`,
      ]),
    ).toMatchObject({ ok: true });
    await eventually('both Deployments rolled out', () =>
      ['shop-workers-mailer', 'shop-workers-orders'].every(
        (d) => deployment(d).status.readyReplicas === deployment(d).spec.replicas,
      ),
    );
    expect(deployment('shop-workers-orders').spec.replicas).toBe(4);
    expect(deployment('shop-workers-mailer').spec.replicas).toBe(3);
  });

  it("uninstall removes the consumers and their Secret, and leaves the queue's volume", () => {
    const before = claims(ns);
    expect(before).toHaveLength(1);
    expect(helmIn(['uninstall', release, '-n', ns, '--wait']).ok).toBe(true);
    for (const o of [
      'deployment/shop-workers-orders',
      'deployment/shop-workers-mailer',
      'secret/shop-workers-connection',
      'configmap/shop-workers-queue-scaler',
    ])
      expect([o, objectExists(ns, o)]).toEqual([o, false]);
    expect(helmIn(['uninstall', queueRelease, '-n', ns, '--wait']).ok).toBe(true);
    expect(claims(ns)).toEqual(before);
  });
});
