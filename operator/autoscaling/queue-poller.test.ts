import { FakeClock, settle } from '../runtime/fake-clock.ts';
import { QueueScalers, queueDepthSource, type ConsumerScaling } from './queue-poller.ts';
import { consumer } from '../api/queue.ts';
import { scalerPolicy, type Decision, type ScalerPolicy } from './queue-scaler.ts';

const SECOND = 1000;
const KEY = 'shop/app/photo-processor';

/** The API's defaults, which the tests' figures assume (cooldown 300 s, window 60 s, 100 per replica). */
const policy = (overrides: Partial<ScalerPolicy> = {}): ScalerPolicy =>
  scalerPolicy(consumer.shape.autoscaling.unwrap().parse({ maxReplicas: 10, ...overrides }));

const scaling = (overrides: Partial<ConsumerScaling> = {}): ConsumerScaling => ({
  queue: 'photos',
  policy: policy(),
  pollIntervalSeconds: 5,
  currentReplicas: 0,
  ...overrides,
});

interface Deferred {
  resolve: (depth: number) => void;
  reject: (error: unknown) => void;
}

/**
 * Queues whose depth a test sets; each read is recorded with the fake time it started. With `hold`
 * set, reads wait until the test settles them, to stand for a slow broker.
 */
class FakeBroker {
  depths = new Map<string, number>();
  reads: { queue: string; atMs: number }[] = [];
  failure: unknown;
  hold = false;
  held: Deferred[] = [];
  readonly clock: FakeClock;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  depth = (queue: string): Promise<number> => {
    this.reads.push({ queue, atMs: this.clock.now() });
    if (this.hold) return new Promise((resolve, reject) => this.held.push({ resolve, reject }));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return Promise.resolve(this.depths.get(queue) ?? 0);
  };
}

function setup(start = 0) {
  const clock = new FakeClock(Date.UTC(2025, 0, 1) + start);
  const broker = new FakeBroker(clock);
  const errors: [string, unknown][] = [];
  const scalers = new QueueScalers({
    depth: broker.depth,
    clock,
    onError: (key, error) => errors.push([key, error]),
  });
  const decisions: [string, Decision][] = [];
  const onDecision = (key: string, decision: Decision) => decisions.push([key, decision]);
  const summary = () => decisions.map(([, d]) => [d.desiredReplicas, d.reason]);
  /** Seconds since the clock started of each read. */
  const readTimes = () => broker.reads.map((r) => (r.atMs - Date.UTC(2025, 0, 1) - start) / SECOND);
  return { clock, broker, errors, scalers, decisions, onDecision, summary, readTimes };
}

describe('QueueScalers', () => {
  it('polls at once on ensure, then every interval', async () => {
    const t = setup();
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    expect(t.readTimes()).toEqual([0]);
    await t.clock.advance(5 * SECOND - 1);
    expect(t.readTimes()).toEqual([0]);
    await t.clock.advance(1 + 10 * SECOND);
    expect(t.readTimes()).toEqual([0, 5, 10, 15]);
    expect(t.broker.reads.every((r) => r.queue === 'photos')).toBe(true);
  });

  it('decides on the first poll that sees a backlog, within one interval of it arriving', async () => {
    const t = setup();
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await t.clock.advance(7_300);
    t.broker.depths.set('photos', 350);
    await t.clock.advance(2_699);
    expect(t.scalers.lastDecision(KEY)?.desiredReplicas).toBe(0);
    await t.clock.advance(1);
    expect(t.scalers.lastDecision(KEY)).toMatchObject({
      time: '2025-01-01T00:00:10.000Z',
      queueDepth: 350,
      currentReplicas: 0,
      desiredReplicas: 4,
      reason: 'WakeFromZero',
    });
    expect(t.summary()).toEqual([
      [0, 'Steady'],
      [4, 'WakeFromZero'],
    ]);
  });

  it('calls back when the replicas or the rule change, not on every poll', async () => {
    const t = setup();
    t.scalers.ensure(
      KEY,
      scaling({ policy: policy({ cooldownSeconds: 20, scaleDownStabilizationSeconds: 10 }) }),
      t.onDecision,
    );
    await t.clock.advance(60 * SECOND); // an idle queue: 13 polls
    t.broker.depths.set('photos', 250);
    await t.clock.advance(15 * SECOND);
    t.broker.depths.set('photos', 290); // same replicas, same rule
    await t.clock.advance(15 * SECOND);
    t.broker.depths.set('photos', 0);
    await t.clock.advance(60 * SECOND);
    expect(t.readTimes()).toHaveLength(31);
    expect(t.summary()).toEqual([
      [0, 'Steady'],
      [3, 'WakeFromZero'],
      [3, 'Steady'],
      [3, 'HeldByStabilization'],
      [1, 'CooldownBeforeZero'],
      [0, 'ScaleToZero'],
      [0, 'Steady'],
    ]);
    expect(t.decisions.every(([key]) => key === KEY)).toBe(true);
  });

  it('reports every depth it reads, also between decisions, and no depth for a failed read', async () => {
    const clock = new FakeClock(Date.UTC(2025, 0, 1));
    const broker = new FakeBroker(clock);
    const depths: [string, number][] = [];
    const scalers = new QueueScalers({
      depth: broker.depth,
      clock,
      onDepth: (key, d) => depths.push([key, d]),
    });
    const decisions: Decision[] = [];
    broker.depths.set('photos', 250);
    scalers.ensure(KEY, scaling({ policy: policy({ messagesPerReplica: 1000 }) }), (_k, d) =>
      decisions.push(d),
    );
    await clock.advance(5 * SECOND);
    broker.depths.set('photos', 290); // the same replicas and rule: no decision reported, a depth still
    await clock.advance(5 * SECOND);
    broker.failure = new Error('broker down');
    await clock.advance(5 * SECOND);
    expect(broker.reads).toHaveLength(4);
    expect(depths).toEqual([
      [KEY, 250],
      [KEY, 250],
      [KEY, 290],
    ]);
    // No decision at the read of 290 (the same replicas and rule); the failed read is one.
    expect(decisions.map((d) => d.reason)).toEqual(['WakeFromZero', 'Steady', 'PollFailed']);
    await scalers.stopAll();
  });

  it('starts each decision from the replicas the previous one decided', async () => {
    const t = setup();
    t.broker.depths.set('photos', 120);
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await t.clock.advance(5 * SECOND);
    t.broker.depths.set('photos', 480);
    await t.clock.advance(5 * SECOND);
    expect(t.decisions.map(([, d]) => [d.currentReplicas, d.desiredReplicas])).toEqual([
      [0, 2],
      [2, 2],
      [2, 5],
    ]);
  });

  describe('after an operator restart, from the Deployment replicas', () => {
    it('does not scale a busy consumer to zero on an empty poll', async () => {
      const t = setup();
      t.scalers.ensure(KEY, scaling({ currentReplicas: 6 }), t.onDecision);
      await settle();
      expect(t.scalers.lastDecision(KEY)).toMatchObject({
        currentReplicas: 6,
        desiredReplicas: 6,
        reason: 'HeldByStabilization',
      });
    });

    it('does not wake an idle consumer', async () => {
      const t = setup();
      t.scalers.ensure(KEY, scaling({ currentReplicas: 0 }), t.onDecision);
      await t.clock.advance(3600 * SECOND);
      expect(t.summary()).toEqual([[0, 'Steady']]);
    });
  });

  it('takes a changed policy without losing its state or polling again', async () => {
    const t = setup();
    t.broker.depths.set('photos', 800);
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    t.scalers.ensure(KEY, scaling({ policy: policy({ messagesPerReplica: 200 }) }), t.onDecision);
    await settle();
    expect(t.readTimes()).toEqual([0]);
    await t.clock.advance(5 * SECOND);
    // The new formula asks for 4; the window still holds the 8 decided under the old policy.
    expect(t.summary()).toEqual([
      [8, 'WakeFromZero'],
      [8, 'HeldByStabilization'],
    ]);
    expect(t.scalers.lastDecision(KEY)?.message).toContain('200 messages per replica');
  });

  it('ignores the replicas given to a running poller', async () => {
    const t = setup();
    t.broker.depths.set('photos', 300);
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    t.scalers.ensure(KEY, scaling({ currentReplicas: 0 }), t.onDecision);
    await t.clock.advance(5 * SECOND);
    expect(t.scalers.lastDecision(KEY)).toMatchObject({ currentReplicas: 3, reason: 'Steady' });
  });

  it('reschedules the next poll when the interval changes', async () => {
    const t = setup();
    t.scalers.ensure(KEY, scaling({ pollIntervalSeconds: 300 }), t.onDecision);
    await t.clock.advance(10 * SECOND);
    t.scalers.ensure(KEY, scaling({ pollIntervalSeconds: 30 }), t.onDecision);
    await t.clock.advance(50 * SECOND);
    // Due 30 s after the last poll started; the next 30 s after that.
    expect(t.readTimes()).toEqual([0, 30, 60]);
    await t.clock.advance(5 * SECOND);
    t.scalers.ensure(KEY, scaling({ pollIntervalSeconds: 1 }), t.onDecision);
    await t.clock.advance(0);
    // Already overdue (60 + 1 < 65): at once.
    expect(t.readTimes()).toEqual([0, 30, 60, 65]);
  });

  it('never overlaps polls: a slow read delays the next one', async () => {
    const t = setup();
    t.broker.hold = true;
    t.scalers.ensure(KEY, scaling({ pollIntervalSeconds: 1 }), t.onDecision);
    await t.clock.advance(30 * SECOND);
    expect(t.readTimes()).toEqual([0]);
    expect(t.scalers.lastDecision(KEY)).toBeUndefined();
    t.broker.held.shift()!.resolve(150);
    await settle();
    expect(t.summary()).toEqual([[2, 'WakeFromZero']]);
    // The next read was due long ago: it starts at once, and one at a time again.
    await t.clock.advance(0);
    expect(t.readTimes()).toEqual([0, 30]);
    await t.clock.advance(1 * SECOND);
    expect(t.readTimes()).toEqual([0, 30]);
    t.broker.hold = false;
    t.broker.held.shift()!.resolve(150);
    await t.clock.advance(0);
    await t.clock.advance(1 * SECOND);
    expect(t.readTimes()).toEqual([0, 30, 31, 32]);
  });

  it.each([
    ['a rejected read', (b: FakeBroker) => (b.failure = new Error('connect ECONNREFUSED 127.0.0.1:15672'))],
    ['a negative depth', (b: FakeBroker) => b.depths.set('photos', -1)],
    ['a depth that is not a count', (b: FakeBroker) => b.depths.set('photos', Number.NaN)],
  ])('reports %s as PollFailed with the replicas unchanged, and through onError', async (_what, breakIt) => {
    const t = setup();
    t.broker.depths.set('photos', 420);
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    breakIt(t.broker);
    await t.clock.advance(10 * SECOND);
    expect(t.summary()).toEqual([
      [5, 'WakeFromZero'],
      [5, 'PollFailed'],
    ]);
    expect(t.scalers.lastDecision(KEY)).toMatchObject({
      queueDepth: 420,
      currentReplicas: 5,
      desiredReplicas: 5,
    });
    // Two failed reads (5 s, 10 s) saying the same: reported once.
    expect(t.errors).toHaveLength(1);
    expect(t.errors.every(([key, error]) => key === KEY && error instanceof Error)).toBe(true);
    expect(t.scalers.lastDecision(KEY)?.message).not.toContain('ECONNREFUSED');
  });

  it('recovers from failed polls with its state intact', async () => {
    const t = setup();
    t.broker.depths.set('photos', 700);
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    t.broker.failure = new Error('broker down');
    await t.clock.advance(20 * SECOND);
    t.broker.failure = undefined;
    t.broker.depths.set('photos', 100);
    await t.clock.advance(5 * SECOND);
    // 7 from t=0 is still in the 60 s window: a failure did not reset it.
    expect(t.summary()).toEqual([
      [7, 'WakeFromZero'],
      [7, 'PollFailed'],
      [7, 'HeldByStabilization'],
    ]);
  });

  it('reports a run of failures once, again when the error changes, and the recovery once', async () => {
    const t = setup();
    const recovered: string[] = [];
    const scalers = new QueueScalers({
      depth: t.broker.depth,
      clock: t.clock,
      onError: (key, error) => t.errors.push([key, error]),
      onRecovered: (key) => recovered.push(key),
    });
    t.broker.depths.set('photos', 10);
    scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    t.broker.failure = new Error('connect ECONNREFUSED');
    await t.clock.advance(60 * SECOND); // 12 failed reads
    t.broker.failure = new Error('401 Unauthorized');
    await t.clock.advance(10 * SECOND); // 2 more, saying something else
    expect(t.errors.map(([, e]) => (e as Error).message)).toEqual([
      'connect ECONNREFUSED',
      '401 Unauthorized',
    ]);
    expect(recovered).toEqual([]);
    t.broker.failure = undefined;
    await t.clock.advance(10 * SECOND);
    expect(recovered).toEqual([KEY]);
    t.broker.failure = new Error('connect ECONNREFUSED');
    await t.clock.advance(5 * SECOND);
    expect(t.errors).toHaveLength(3); // a new run of failures is a new report
    await scalers.stopAll();
  });

  it('fails a poll whose source throws instead of rejecting, and keeps polling', async () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    let reads = 0;
    const scalers = new QueueScalers({
      clock,
      depth: () => {
        reads++;
        throw new Error('not connected');
      },
      onError: (_key, error) => errors.push(error),
    });
    const decisions: Decision[] = [];
    scalers.ensure(KEY, scaling(), (_key, d) => decisions.push(d));
    await clock.advance(5 * SECOND);
    expect(reads).toBe(2);
    expect(errors).toHaveLength(1);
    expect(decisions.map((d) => d.reason)).toEqual(['PollFailed']);
  });

  it('keeps polling when onDecision throws, and reports it', async () => {
    const t = setup();
    t.broker.depths.set('photos', 100);
    const thrown = new Error('status write failed');
    t.scalers.ensure(KEY, scaling(), () => {
      throw thrown;
    });
    await settle();
    t.broker.depths.set('photos', 900);
    await t.clock.advance(5 * SECOND);
    expect(t.errors).toEqual([
      [KEY, thrown],
      [KEY, thrown],
    ]);
    expect(t.scalers.lastDecision(KEY)?.desiredReplicas).toBe(9);
  });

  it('polls each consumer on its own queue and interval', async () => {
    const t = setup();
    t.broker.depths.set('photos', 250);
    t.broker.depths.set('emails', 30);
    t.scalers.ensure('shop/app/photos', scaling({ queue: 'photos', pollIntervalSeconds: 2 }), t.onDecision);
    t.scalers.ensure('shop/app/emails', scaling({ queue: 'emails', pollIntervalSeconds: 3 }), t.onDecision);
    await t.clock.advance(6 * SECOND);
    expect(t.broker.reads.filter((r) => r.queue === 'photos')).toHaveLength(4);
    expect(t.broker.reads.filter((r) => r.queue === 'emails')).toHaveLength(3);
    expect(t.scalers.lastDecision('shop/app/photos')?.desiredReplicas).toBe(3);
    expect(t.scalers.lastDecision('shop/app/emails')?.desiredReplicas).toBe(1);
    expect(t.scalers.keys().sort()).toEqual(['shop/app/emails', 'shop/app/photos']);
  });

  it('forget stops polling and discards a read in flight', async () => {
    const t = setup();
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    t.broker.hold = true;
    await t.clock.advance(5 * SECOND);
    expect(t.readTimes()).toEqual([0, 5]);
    t.scalers.forget(KEY);
    t.broker.held.shift()!.resolve(1000);
    await t.clock.advance(60 * SECOND);
    expect(t.readTimes()).toEqual([0, 5]);
    expect(t.summary()).toEqual([[0, 'Steady']]);
    expect(t.scalers.lastDecision(KEY)).toBeUndefined();
    expect(t.clock.pendingTimers()).toBe(0);
  });

  it('starts afresh, from the replicas given, on ensure after forget', async () => {
    const t = setup();
    t.broker.depths.set('photos', 500);
    t.scalers.ensure(KEY, scaling(), t.onDecision);
    await settle();
    t.scalers.forget(KEY);
    t.broker.depths.set('photos', 0);
    t.scalers.ensure(KEY, scaling({ currentReplicas: 2 }), t.onDecision);
    await settle();
    // A fresh window holds the 2 replicas it started from, not the 5 of the forgotten poller.
    expect(t.summary()).toEqual([
      [5, 'WakeFromZero'],
      [2, 'HeldByStabilization'],
    ]);
  });

  it('stopAll stops every poller and waits for reads in flight', async () => {
    const t = setup();
    t.broker.hold = true;
    t.scalers.ensure('a/b/c', scaling(), t.onDecision);
    t.scalers.ensure('a/b/d', scaling(), t.onDecision);
    let stopped = false;
    const stopping = t.scalers.stopAll().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    for (const read of t.broker.held) read.resolve(100);
    await stopping;
    await t.clock.advance(60 * SECOND);
    expect(t.broker.reads).toHaveLength(2);
    expect(t.decisions).toEqual([]);
    expect(t.scalers.keys()).toEqual([]);
    expect(t.clock.pendingTimers()).toBe(0);
  });
});

describe('queueDepthSource', () => {
  it('counts ready and unacknowledged messages, not consumers', async () => {
    const asked: string[] = [];
    const depth = queueDepthSource({
      queueDepth: async (queue) => {
        asked.push(queue);
        return { ready: 120, unacknowledged: 35, consumers: 4 };
      },
    });
    await expect(depth('photos')).resolves.toBe(155);
    expect(asked).toEqual(['photos']);
  });
});
