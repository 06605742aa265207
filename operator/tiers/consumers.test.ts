import type { V1Deployment } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import type { ObservedFacts } from './objects.ts';
import { consumerObjects, consumerReplicas } from './consumers.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';

const connection = { name: 'shop-connection', hash: 'abc' };
const autoscaling = { minReplicas: 1, maxReplicas: 4 };
const app = parseApp({
  queue: { queues: [{ name: 'orders' }, { name: 'mail' }] },
  consumers: [
    { name: 'orders', image: 'r/orders:1', queue: 'orders', autoscaling },
    { name: 'mailer', image: 'r/mail:1', queue: 'mail', replicas: 3, env: [{ name: 'FROM', value: 'x@y' }] },
  ],
});
const deployments = (facts: ObservedFacts = { gatewayApi: false }) =>
  consumerObjects(app, facts, connection) as unknown as V1Deployment[];

describe('consumer Deployments', () => {
  it('one per consumer, restricted, each selecting only its own pods', () => {
    const [orders, mailer] = deployments();
    expect(orders!.metadata!.name).toBe('shop-orders');
    expect(mailer!.metadata!.name).toBe('shop-mailer');
    expect(orders!.spec!.selector.matchLabels).not.toEqual(mailer!.spec!.selector.matchLabels);
    for (const d of [orders!, mailer!]) {
      expect(restrictedViolations(d.spec!.template.spec!)).toEqual([]);
      expect(d.spec!.template.metadata!.labels).toMatchObject(d.spec!.selector.matchLabels!);
      expect(d.spec!.template.metadata!.labels!['app.kubernetes.io/component']).toBe('consumer');
    }
  });

  it("injects the queue's name beside the connection Secret (which holds QUEUE_URL), and the user's env", () => {
    const c = deployments()[1]!.spec!.template.spec!.containers[0]!;
    expect(c.envFrom).toEqual([{ secretRef: { name: 'shop-connection' } }]);
    expect(c.env).toEqual([
      { name: 'QUEUE_NAME', value: 'mail' },
      { name: 'FROM', value: 'x@y' },
    ]);
  });

  it('has no probes without a health endpoint, and probes the one it names with it', () => {
    const plain = deployments()[0]!.spec!.template.spec!.containers[0]!;
    expect([plain.readinessProbe, plain.livenessProbe, plain.ports]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    const probed = parseApp({
      queue: { queues: [{ name: 'orders' }] },
      consumers: [{ name: 'orders', image: 'r/o:1', queue: 'orders', healthCheck: { port: 8081 } }],
    });
    const d = consumerObjects(probed, { gatewayApi: false }, connection)[0] as unknown as V1Deployment;
    const c = d.spec!.template.spec!.containers[0]!;
    expect(c.ports).toEqual([{ name: 'health', containerPort: 8081, protocol: 'TCP' }]);
    expect(c.readinessProbe).toEqual({
      httpGet: { path: '/healthz', port: 'health' },
      periodSeconds: 10,
      failureThreshold: 3,
    });
    // Liveness never asks what readiness asks (ADR 0018): a broker outage must not restart it.
    expect(c.livenessProbe).toEqual({
      tcpSocket: { port: 'health' },
      periodSeconds: 10,
      failureThreshold: 6,
    });
    expect(restrictedViolations(d.spec!.template.spec!)).toEqual([]);
  });

  it("runs the autoscaler's decision, clamped to the current bounds, and the minimum before any", () => {
    const orders = app.spec.consumers![0]!;
    const mailer = app.spec.consumers![1]!;
    expect(consumerReplicas(mailer, { gatewayApi: false })).toBe(3);
    expect(consumerReplicas(orders, { gatewayApi: false })).toBe(1);
    const scale = (replicas: number): ObservedFacts => ({
      gatewayApi: false,
      consumerScale: { orders: { replicas } },
    });
    expect(consumerReplicas(orders, scale(3))).toBe(3);
    expect(consumerReplicas(orders, scale(9))).toBe(4);
    expect(consumerReplicas(orders, scale(0))).toBe(1);
    expect(deployments(scale(3))[0]!.spec!.replicas).toBe(3);
  });
});
