import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { brokersOnOtherDistribution } from './broker-distribution.ts';
import type { ChildLookup } from './tier-status.ts';

const app = (tls: boolean, replicas = 3) =>
  parseApp({ queue: { replicas, queues: [{ name: 'q' }], tls: { enabled: tls } } });

const tlsVolume = { name: 'tls', secret: { secretName: 'shop-mq-tls' } };
const broker = (i: number, tls: boolean, going = false): V1Pod => ({
  metadata: {
    name: `shop-mq-${i}`,
    namespace: 'prod',
    labels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'queue' },
    ...(going ? { deletionTimestamp: new Date() } : {}),
  },
  spec: { containers: [], volumes: tls ? [tlsVolume] : [] },
});
const statefulSet = (tls: boolean, seen = true): V1StatefulSet => ({
  metadata: { name: 'shop-mq', namespace: 'prod', generation: 4 },
  spec: {
    selector: {},
    serviceName: 'shop-mq-headless',
    template: { spec: { containers: [], volumes: tls ? [tlsVolume] : [] } },
  },
  status: { replicas: 3, observedGeneration: seen ? 4 : 3 },
});
const world = (sts: V1StatefulSet | undefined, pods: V1Pod[]): ChildLookup => ({
  get: (kind, ns, name) => (kind === 'StatefulSet' && ns === 'prod' && name === 'shop-mq' ? sts : undefined),
  select: (kind, ns) => (kind === 'Pod' && ns === 'prod' ? pods : []),
});
const restarted = (tls: boolean, w: ChildLookup, replicas = 3) =>
  brokersOnOtherDistribution(app(tls, replicas), w).map((r) => r.pod);

describe('brokersOnOtherDistribution: one Erlang distribution across the brokers', () => {
  it('restarts the brokers still on plaintext once one runs the distribution over TLS, and says why', () => {
    const w = world(statefulSet(true), [broker(0, false), broker(1, false), broker(2, true)]);
    const restarts = brokersOnOtherDistribution(app(true), w);
    expect(restarts.map((r) => r.pod)).toEqual(['shop-mq-0', 'shop-mq-1']);
    expect(restarts[0]!.why).toBe(
      'shop-mq-0 speaks the Erlang distribution in plaintext and shop-mq-2 over TLS (spec.queue.tls): ' +
        'they cannot cluster, so the brokers on the old one restart together',
    );
  });

  it('and the other way, when TLS is turned off', () => {
    const w = world(statefulSet(false), [broker(0, true), broker(1, true), broker(2, false)]);
    expect(restarted(false, w)).toEqual(['shop-mq-0', 'shop-mq-1']);
  });

  it('leaves the rolling update to start it: nothing while every broker runs the old kind', () => {
    expect(
      restarted(true, world(statefulSet(true), [broker(0, false), broker(1, false), broker(2, false)])),
    ).toEqual([]);
  });

  it('restarts nothing once they all agree, so it cannot loop', () => {
    expect(
      restarted(true, world(statefulSet(true), [broker(0, true), broker(1, true), broker(2, true)])),
    ).toEqual([]);
  });

  it('waits for the StatefulSet controller to have seen the new template: a pod deleted sooner comes back as it was', () => {
    const pods = [broker(0, false), broker(1, false), broker(2, true)];
    expect(restarted(true, world(statefulSet(true, false), pods))).toEqual([]);
    expect(restarted(true, world(statefulSet(false), pods))).toEqual([]);
    expect(restarted(true, world(undefined, pods))).toEqual([]);
  });

  it('does not delete a pod that is already going, nor anything of a single broker', () => {
    expect(
      restarted(true, world(statefulSet(true), [broker(0, false, true), broker(1, false), broker(2, true)])),
    ).toEqual(['shop-mq-1']);
    expect(restarted(true, world(statefulSet(true), [broker(0, false)]), 1)).toEqual([]);
  });
});
