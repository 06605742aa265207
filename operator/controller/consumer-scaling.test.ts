import { parseApp } from '../api/testdata/apps.ts';
import { FakeClock, settle } from '../runtime/fake-clock.ts';
import { ConsumerScaling } from './consumer-scaling.ts';

const autoscaling = { minReplicas: 0, maxReplicas: 10, pollIntervalSeconds: 2, cooldownSeconds: 30 };
const app = (consumers: object[]) =>
  parseApp(
    { queue: { queues: [{ name: 'jobs' }, { name: 'mail' }] }, consumers: consumers as never },
    'shop',
    'prod',
  );
const jobs = { name: 'worker', image: 'r/w:1', queue: 'jobs', autoscaling };
const mail = { name: 'mailer', image: 'r/m:1', queue: 'mail', replicas: 2 };

function setup(depths: Record<string, number>) {
  const clock = new FakeClock();
  const enqueued: string[] = [];
  const read: string[] = [];
  const closed: number[] = [];
  let opened = 0;
  let connectionKey = 'broker A';
  const scaling = new ConsumerScaling({
    clock,
    enqueue: (k) => enqueued.push(k),
    onError: () => {},
    depthFor: (a) => ({
      key: connectionKey,
      open: () => {
        const reader = ++opened;
        return {
          depth: async (queue) => {
            read.push(`${a.metadata.name}/${queue}`);
            return depths[queue] ?? 0;
          },
          close: async () => void closed.push(reader),
        };
      },
    }),
  });
  return {
    clock,
    enqueued,
    read,
    scaling,
    closed,
    opened: () => opened,
    connect: (key: string) => void (connectionKey = key),
  };
}

describe('ConsumerScaling', () => {
  it('polls only autoscaled consumers and asks for a reconcile when a decision changes', async () => {
    const t = setup({ jobs: 250 });
    const a = app([jobs, mail]);
    // Before the first read: the Deployment's replicas (none yet: the minimum).
    expect(t.scaling.sync(a, { gatewayApi: false }, () => undefined)).toEqual({ worker: { replicas: 0 } });
    await settle();
    expect(t.read).toEqual(['shop/jobs']);
    expect(t.enqueued).toEqual(['prod/shop']);
    const scale = t.scaling.sync(a, { gatewayApi: false }, () => 0);
    expect(scale.worker).toMatchObject({ replicas: 3, decision: { queueDepth: 250, desiredReplicas: 3 } });
    await t.scaling.stopAll();
  });

  it('reports the decision that changed something, not every poll (an idle queue writes no status)', async () => {
    const t = setup({ jobs: 250 });
    const a = app([jobs]);
    t.scaling.sync(a, { gatewayApi: false }, () => 0);
    await settle();
    await t.clock.advance(2_000); // the second poll: WakeFromZero becomes Steady, a change worth reporting
    const steady = t.scaling.sync(a, { gatewayApi: false }, () => 3).worker!.decision;
    expect(steady).toMatchObject({ reason: 'Steady', desiredReplicas: 3 });
    const reads = t.read.length;
    await t.clock.advance(10_000); // five more polls at the same depth: nothing changes
    expect(t.read.length).toBe(reads + 5);
    expect(t.scaling.sync(a, { gatewayApi: false }, () => 3).worker!.decision).toEqual(steady);
    expect(t.enqueued).toHaveLength(2);
    await t.scaling.stopAll();
  });

  it('keeps the decision that last changed the replicas when the next poll turns Steady', async () => {
    const depths = { jobs: 250 };
    const t = setup(depths);
    const a = app([jobs]);
    t.scaling.sync(a, { gatewayApi: false }, () => 0);
    await settle();
    await t.clock.advance(2_000);
    const after = t.scaling.sync(a, { gatewayApi: false }, () => 3).worker!;
    expect(after.decision).toMatchObject({ reason: 'Steady' });
    expect(after.lastScale).toMatchObject({
      reason: 'WakeFromZero',
      currentReplicas: 0,
      desiredReplicas: 3,
      queueDepth: 250,
    });
    depths.jobs = 420;
    await t.clock.advance(2_000);
    expect(t.scaling.sync(a, { gatewayApi: false }, () => 3).worker!.lastScale).toMatchObject({
      reason: 'ScaleUp',
      currentReplicas: 3,
      desiredReplicas: 5,
    });
    await t.scaling.stopAll();
  });

  it('starts a restarted operator from the replicas the Deployment runs', async () => {
    const t = setup({ jobs: 0 });
    t.scaling.sync(app([jobs]), { gatewayApi: false }, () => 4);
    await settle();
    // An empty queue, but 4 running: held for a whole cooldown of its own, not dropped to zero.
    expect(t.scaling.sync(app([jobs]), { gatewayApi: false }, () => 4).worker!.replicas).toBeGreaterThan(0);
    await t.scaling.stopAll();
  });

  it('stops polling a consumer that left the spec, and an app that is gone', async () => {
    const t = setup({ jobs: 1 });
    t.scaling.sync(app([jobs]), { gatewayApi: false }, () => undefined);
    await settle();
    expect(t.scaling.sync(app([mail]), { gatewayApi: false }, () => undefined)).toEqual({});
    await t.clock.advance(10_000);
    expect(t.read).toEqual(['shop/jobs']);
    t.scaling.sync(app([jobs]), { gatewayApi: false }, () => undefined);
    await settle();
    t.scaling.forget('prod/shop');
    await t.clock.advance(10_000);
    expect(t.read).toEqual(['shop/jobs', 'shop/jobs']);
    // Each time the app left, its reader's connections were closed.
    await settle();
    expect(t.closed).toEqual([1, 2]);
  });

  it('keeps one reader (one connection pool) while the broker, login and CA stay, and replaces it when one changes', async () => {
    const t = setup({ jobs: 1 });
    const a = app([jobs]);
    for (let i = 0; i < 5; i++) {
      t.scaling.sync(a, { gatewayApi: false }, () => undefined);
      await t.clock.advance(2_000);
    }
    expect(t.opened()).toBe(1);
    expect(t.closed).toEqual([]);
    // A new login (or CA, or address): the next sync opens a new reader, the next poll uses it.
    t.connect('broker A, rotated login');
    t.scaling.sync(a, { gatewayApi: false }, () => undefined);
    expect(t.opened()).toBe(2);
    await settle();
    expect(t.closed).toEqual([1]);
    const reads = t.read.length;
    await t.clock.advance(2_000);
    expect(t.read.length).toBe(reads + 1);
    await t.scaling.stopAll();
    expect(t.closed).toEqual([1, 2]);
  });
});
