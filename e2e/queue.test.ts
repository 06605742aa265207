// The message queue and its consumers on the local control plane: the broker's objects, credentials
// only in Secrets, consumers wired to their queue, and queue-depth autoscaling driven end to end
// through the operator. No broker runs here, so depths come from an annotation on the broker's first
// pod (operator/dataplane/simulated-admin.ts); the real-broker side is server-tests/queue*.test.ts.
import { applyApp, decodeSecret, getApp, readyAt as readyAtGeneration } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('queue', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

const autoscaling = {
  minReplicas: 0,
  maxReplicas: 5,
  messagesPerReplica: 100,
  pollIntervalSeconds: 1,
  cooldownSeconds: 4,
  scaleDownStabilizationSeconds: 0,
};
const spec = {
  queue: { replicas: 3, storage: { size: '1Gi' }, queues: [{ name: 'photos' }, { name: 'audit' }] },
  consumers: [
    { name: 'resizer', image: 'registry.example/resizer:2', queue: 'photos', autoscaling },
    { name: 'auditor', image: 'registry.example/auditor:1', queue: 'audit', replicas: 2 },
  ],
};
const readyAt = (name: string) => readyAtGeneration(ns, name);
const replicas = (d: string) => json<any>(['get', 'deployment', d, '-n', ns]).spec.replicas;
const setDepths = (depths: Record<string, number>) =>
  kubectl([
    'annotate',
    'pod',
    'photos-mq-0',
    '-n',
    ns,
    '--overwrite',
    `scalableapp.io/simulated-queue-depths=${JSON.stringify(depths)}`,
  ]);
const resizer = () => getApp(ns, 'photos').status?.consumers?.find((c: any) => c.name === 'resizer');
const decision = () => resizer()?.lastDecision;
const lastScale = () => resizer()?.lastScale;

describe('a clustered broker with two queues, an autoscaled consumer and a fixed one', () => {
  it('runs three broker nodes with volumes, a budget, and credentials only in Secrets', async () => {
    applyApp(ns, 'photos', spec);
    const a = await readyAt('photos');
    expect(a.status.conditions.find((c: any) => c.type === 'QueueReady')).toMatchObject({ status: 'True' });
    expect(a.status.conditions.find((c: any) => c.type === 'ConsumersReady')).toMatchObject({
      status: 'True',
    });
    expect(a.status.endpoints.queue).toBe(`photos-mq.${ns}.svc:5672`);
    const sts = json<any>(['get', 'statefulset', 'photos-mq', '-n', ns]);
    expect(sts.spec.replicas).toBe(3);
    expect(sts.status.readyReplicas).toBe(3);
    kubectl(['get', 'pdb', 'photos-mq', '-n', ns]);
    const claims = json<{ items: any[] }>(['get', 'pvc', '-n', ns]).items;
    expect(
      claims.filter((c) => c.metadata.name.startsWith('data-photos-mq-') && c.status.phase === 'Bound'),
    ).toHaveLength(3);

    const creds = decodeSecret(json<any>(['get', 'secret', 'photos-mq-credentials', '-n', ns]));
    expect(Object.keys(creds).sort()).toEqual([
      'app-login',
      'app-login-password',
      'erlang-cookie',
      'monitoring-password',
      'monitoring-username',
      'operator-password',
      'password',
      'username',
    ]);
    // The operator's record of the app's login: what the brokers booted with.
    expect([creds['app-login'], creds['app-login-password']]).toEqual([creds.username, creds.password]);
    const conn = decodeSecret(json<any>(['get', 'secret', 'photos-connection', '-n', ns]));
    // TLS by default: amqps:// and the app's CA to check the broker against.
    expect(conn.QUEUE_URL).toBe(
      `amqps://${creds.username}:${encodeURIComponent(creds.password!)}@photos-mq.${ns}.svc:5672/%2F`,
    );
    expect(conn.QUEUE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    const served = json<any>(['get', 'secret', 'photos-mq-tls', '-n', ns]);
    expect(served.type).toBe('kubernetes.io/tls');
    const config = json<any>(['get', 'configmap', 'photos-mq-config', '-n', ns]).data;
    const definitions = JSON.parse(config['definitions.json']);
    expect(definitions.queues.map((q: any) => [q.name, q.arguments['x-queue-type']]).sort()).toEqual([
      ['audit', 'quorum'],
      ['photos', 'quorum'],
    ]);
    const visible = kubectl(['get', 'configmap,statefulset,deployment,sapp,events', '-n', ns, '-o', 'json']);
    expect(visible).not.toContain(creds.password);
    expect(visible).not.toContain(creds['erlang-cookie']);
    expect(visible).not.toContain(creds['monitoring-password']);
    expect(visible).not.toContain(creds['operator-password']);
    expect(conn).not.toHaveProperty('QUEUE_MANAGEMENT_URL');
  });

  it('wires each consumer to its queue', () => {
    for (const [name, queue] of [
      ['photos-resizer', 'photos'],
      ['photos-auditor', 'audit'],
    ]) {
      const c = json<any>(['get', 'deployment', name!, '-n', ns]).spec.template.spec.containers[0];
      expect(c.env).toContainEqual({ name: 'QUEUE_NAME', value: queue });
      expect(c.envFrom).toEqual([{ secretRef: { name: 'photos-connection' } }]);
    }
    expect(replicas('photos-auditor')).toBe(2);
    // Nothing read yet (no broker answers): an idle autoscaled consumer sleeps at its minimum.
    expect(replicas('photos-resizer')).toBe(0);
  });

  it('lets the broker accept clients from the app and the operator only', () => {
    const policy = json<any>(['get', 'networkpolicy', 'photos-allow-queue-ingress', '-n', ns]).spec;
    const sources = policy.ingress.flatMap((r: any) => r.from);
    expect(sources).toContainEqual({
      podSelector: {
        matchLabels: { 'app.kubernetes.io/instance': 'photos', 'app.kubernetes.io/component': 'consumer' },
      },
    });
    // The operator's pods only (by their label), not everything in the operator's namespace.
    expect(sources).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'scalableapp-system' } },
      podSelector: { matchLabels: { 'scalableapp.io/operator': 'true' } },
    });
    expect(sources.every((s: any) => s.podSelector || s.namespaceSelector)).toBe(true);
  });

  it('wakes the consumer on a backlog with ceil(depth / messagesPerReplica) replicas and says why', async () => {
    setDepths({ photos: 350 });
    await eventually('resizer scaled to 4', () => replicas('photos-resizer') === 4);
    // The next poll at the same depth decides Steady; the change and its reason stay in lastScale.
    const s = await eventually('the change in status', () => lastScale()?.toReplicas === 4 && lastScale());
    expect(s).toMatchObject({ queueDepth: 350, toReplicas: 4 });
    expect(['WakeFromZero', 'ScaleUp']).toContain(s.reason);
    expect(s.fromReplicas).toBeLessThan(4);
    const d = await eventually('decision in status', () => decision()?.desiredReplicas === 4 && decision());
    expect(d).toMatchObject({ queueDepth: 350 });
    expect(['WakeFromZero', 'ScaleUp', 'Steady']).toContain(d.reason);
    const st = getApp(ns, 'photos').status.consumers.find((c: any) => c.name === 'resizer');
    expect(st.replicas).toBe(4);
    setDepths({ photos: 1000 });
    await eventually('clamped to maxReplicas', () => replicas('photos-resizer') === 5);
  });

  it('keeps a restarted operator from scaling a busy consumer down', async () => {
    const before = await eventually(
      'the clamp on record',
      () => lastScale()?.toReplicas === 5 && lastScale(),
    );
    expect(before).toMatchObject({ reason: 'AtMax', queueDepth: 1000 });
    await op.stop();
    op = await startOperator({ namespace: ns });
    await eventually('a decision from the new operator', () => decision()?.queueDepth === 1000);
    expect(replicas('photos-resizer')).toBe(5);
    // The new operator changed nothing, so the change on record is still the one that set 5.
    expect(lastScale()).toEqual(before);
  });

  it('scales to zero only after the queue stayed empty for the cooldown', async () => {
    setDepths({ photos: 0 });
    const held = await eventually(
      'cooldown decision',
      () => decision()?.reason === 'CooldownBeforeZero' && decision(),
    );
    // Read from the decision itself: the Deployment may already have moved on when we look at it.
    expect(held.queueDepth).toBe(0);
    expect(held.desiredReplicas).toBeGreaterThan(0);
    // The change, not the latest poll (which turns Steady once the consumer is at zero).
    const zero = await eventually(
      'decided to scale to zero',
      () => lastScale()?.reason === 'ScaleToZero' && lastScale(),
    );
    expect(zero).toMatchObject({ toReplicas: 0, queueDepth: 0 });
    expect(Date.parse(zero.time)).toBeGreaterThanOrEqual(Date.parse(held.time));
    await eventually('resizer at zero', () => replicas('photos-resizer') === 0);
    // The first message wakes it again.
    setDepths({ photos: 1 });
    await eventually('awake', () => replicas('photos-resizer') === 1);
    await eventually(
      'woken from zero',
      () => lastScale()?.reason === 'WakeFromZero' && lastScale()?.queueDepth === 1,
    );
    expect(lastScale()).toMatchObject({ fromReplicas: 0, toReplicas: 1 });
  });
});
