import { consumer } from '../api/queue.ts';
import {
  decide,
  initialScalerState,
  pollFailed,
  scalerPolicy,
  type DecisionReason,
  type ScalerPolicy,
  type ScalerState,
} from './queue-scaler.ts';

const T0 = Date.UTC(2025, 0, 1);
const at = (seconds: number) => T0 + seconds * 1000;

/** The API's defaults, which the tests' figures assume (cooldown 300 s, window 60 s, 100 per replica). */
const policy = (overrides: Partial<ScalerPolicy> = {}): ScalerPolicy =>
  scalerPolicy(consumer.shape.autoscaling.unwrap().parse({ maxReplicas: 10, ...overrides }));

/** A poll: at `t` seconds the queue holds `depth` messages. */
type Poll = [t: number, depth: number];
/** What a poll decided: [t, desiredReplicas, reason]. */
type Outcome = [t: number, desired: number, reason: DecisionReason];

/** Feeds polls in order, each starting from the replicas the previous one decided, as the poller does. */
function run(p: ScalerPolicy, polls: Poll[], startReplicas = 0, state: ScalerState = initialScalerState) {
  let replicas = startReplicas;
  const outcomes: Outcome[] = [];
  for (const [t, depth] of polls) {
    const result = decide(p, state, { nowMs: at(t), depth, currentReplicas: replicas });
    state = result.state;
    replicas = result.decision.desiredReplicas;
    outcomes.push([t, replicas, result.decision.reason]);
  }
  return { outcomes, state };
}

describe('decide: one poll', () => {
  // [what, policy overrides, depth, current replicas, desired, reason]
  const cases: [string, Partial<ScalerPolicy>, number, number, number, DecisionReason][] = [
    ['ceil(depth / messagesPerReplica)', {}, 350, 2, 4, 'ScaleUp'],
    ['a full replica is exactly messagesPerReplica', {}, 100, 0, 1, 'WakeFromZero'],
    ['one message over needs another replica', {}, 101, 1, 2, 'ScaleUp'],
    ['one message per replica', { messagesPerReplica: 1 }, 7, 3, 7, 'ScaleUp'],
    ['the first message wakes a sleeping consumer', {}, 1, 0, 1, 'WakeFromZero'],
    ['a backlog wakes straight to the formula', {}, 350, 0, 4, 'WakeFromZero'],
    ['a wake-up is capped at maxReplicas', {}, 5000, 0, 10, 'WakeFromZero'],
    ['maxReplicas caps a scale-up', {}, 5000, 3, 10, 'AtMax'],
    ['at maxReplicas with more to do', {}, 5000, 10, 10, 'AtMax'],
    ['exactly at the formula', {}, 400, 4, 4, 'Steady'],
    ['an idle consumer is not woken', {}, 0, 0, 0, 'Steady'],
    ['minReplicas raises a consumer at zero', { minReplicas: 2 }, 0, 0, 2, 'ScaleUp'],
    ['minReplicas raises a small recommendation', { minReplicas: 3 }, 50, 1, 3, 'ScaleUp'],
    [
      'minReplicas equal to maxReplicas pins the count',
      { minReplicas: 5, maxReplicas: 5 },
      0,
      5,
      5,
      'Steady',
    ],
    [
      'without a window, a scale-down is immediate',
      { scaleDownStabilizationSeconds: 0 },
      150,
      6,
      2,
      'ScaleDown',
    ],
    [
      'without a window, scale-down stops at minReplicas',
      { scaleDownStabilizationSeconds: 0, minReplicas: 2 },
      0,
      6,
      2,
      'ScaleDown',
    ],
  ];
  it.each(cases)('%s', (_what, overrides, depth, current, desired, reason) => {
    const { decision } = decide(policy(overrides), initialScalerState, {
      nowMs: at(0),
      depth,
      currentReplicas: current,
    });
    expect(decision).toMatchObject({
      time: '2025-01-01T00:00:00.000Z',
      queueDepth: depth,
      currentReplicas: current,
      desiredReplicas: desired,
      reason,
    });
  });

  it('says what it saw and what it did in the message', () => {
    const { decision } = decide(policy(), initialScalerState, {
      nowMs: at(0),
      depth: 5000,
      currentReplicas: 3,
    });
    expect(decision.message).toBe(
      'depth 5000, 100 messages per replica, 3 replicas now; the formula asks for 50, held at maxReplicas 10',
    );
  });
});

describe('decide: over time', () => {
  it('scales up at once but down only to the highest recommendation of the window', () => {
    const { outcomes } = run(policy(), [
      [0, 800],
      [10, 200],
      [20, 900],
      [30, 500],
      [79, 200],
      [80, 200],
      [89, 200],
      [90, 200],
    ]);
    expect(outcomes).toEqual([
      [0, 8, 'WakeFromZero'],
      [10, 8, 'HeldByStabilization'], // 8 (t=0) is in the window
      [20, 9, 'ScaleUp'], // the window never delays a scale-up
      [30, 9, 'HeldByStabilization'],
      [79, 9, 'HeldByStabilization'], // 9 (t=20) is 59 s old
      [80, 5, 'HeldByStabilization'], // 9 left the window at exactly 60 s; 5 (t=30) is the highest left
      [89, 5, 'HeldByStabilization'],
      [90, 2, 'ScaleDown'],
    ]);
  });

  it('keeps only the recommendations that can still be the highest of the window', () => {
    const { state } = run(policy(), [
      [0, 800],
      [10, 200],
      [20, 900],
      [30, 500],
      [40, 700],
      [50, 300],
    ]);
    expect(state.recommendations).toEqual([
      { atMs: at(20), replicas: 9 },
      { atMs: at(40), replicas: 7 },
      { atMs: at(50), replicas: 3 },
    ]);
  });

  it('agrees with the highest recommendation of the window recomputed from every poll', () => {
    // A small deterministic generator (no Math.random, so a failure can be replayed).
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const p = policy({
      minReplicas: 1,
      maxReplicas: 20,
      cooldownSeconds: 0,
      scaleDownStabilizationSeconds: 30,
    });
    let state = initialScalerState;
    let replicas = 1;
    const history: { t: number; replicas: number }[] = [];
    let t = 0;
    let scaleDownsHeld = 0;
    for (let i = 0; i < 2000; i++) {
      t += 1 + Math.floor(next() * 10);
      const depth = Math.floor(next() * 2500);
      const recommended = Math.min(20, Math.max(1, Math.ceil(depth / 100)));
      history.push({ t, replicas: recommended });
      const windowMax = Math.max(...history.filter((h) => h.t > t - 30).map((h) => h.replicas));
      const expected = recommended >= replicas ? recommended : Math.min(replicas, windowMax);
      if (expected > recommended) scaleDownsHeld++;
      const result = decide(p, state, { nowMs: at(t), depth, currentReplicas: replicas });
      expect([t, result.decision.desiredReplicas]).toEqual([t, expected]);
      state = result.state;
      replicas = expected;
    }
    // The walk must exercise the window, or this test shows nothing.
    expect(scaleDownsHeld).toBeGreaterThan(100);
  });

  it('scales to zero only once the queue has been empty for the cooldown since the last non-empty poll', () => {
    const { outcomes } = run(policy(), [
      [0, 50],
      [100, 50],
      [101, 0],
      [200, 3], // a trickle restarts the cooldown
      [201, 0],
      [499, 0],
      [500, 0],
      [505, 0],
    ]);
    expect(outcomes).toEqual([
      [0, 1, 'WakeFromZero'],
      [100, 1, 'Steady'],
      [101, 1, 'CooldownBeforeZero'],
      [200, 1, 'Steady'],
      [201, 1, 'CooldownBeforeZero'],
      [499, 1, 'CooldownBeforeZero'],
      [500, 0, 'ScaleToZero'], // 300 s after t=200, the last poll that saw a message
      [505, 0, 'Steady'],
    ]);
  });

  it('steps a drained consumer down to one after the window, and to zero after the cooldown', () => {
    const { outcomes } = run(policy(), [
      [0, 600],
      [5, 0],
      [59, 0],
      [60, 0],
      [299, 0],
      [300, 0],
    ]);
    expect(outcomes).toEqual([
      [0, 6, 'WakeFromZero'],
      [5, 6, 'HeldByStabilization'],
      [59, 6, 'HeldByStabilization'],
      [60, 1, 'CooldownBeforeZero'],
      [299, 1, 'CooldownBeforeZero'],
      [300, 0, 'ScaleToZero'],
    ]);
  });

  it('reports the cooldown, not the window, when both keep the last replica', () => {
    const { outcomes } = run(policy({ cooldownSeconds: 100 }), [
      [0, 40],
      [1, 0],
    ]);
    expect(outcomes).toEqual([
      [0, 1, 'WakeFromZero'],
      [1, 1, 'CooldownBeforeZero'],
    ]);
  });

  it('applies the window to the scale to zero too, when the cooldown is shorter', () => {
    const { outcomes } = run(policy({ cooldownSeconds: 3 }), [
      [0, 50],
      [1, 0],
      [4, 0],
      [59, 0],
      [60, 0],
    ]);
    expect(outcomes).toEqual([
      [0, 1, 'WakeFromZero'],
      [1, 1, 'CooldownBeforeZero'],
      [4, 1, 'HeldByStabilization'],
      [59, 1, 'HeldByStabilization'],
      [60, 0, 'ScaleToZero'],
    ]);
  });

  it('scales to zero at the first empty poll when there is neither cooldown nor window', () => {
    const { outcomes } = run(policy({ cooldownSeconds: 0, scaleDownStabilizationSeconds: 0 }), [
      [0, 250],
      [1, 0],
    ]);
    expect(outcomes).toEqual([
      [0, 3, 'WakeFromZero'],
      [1, 0, 'ScaleToZero'],
    ]);
  });

  it('never reaches zero when minReplicas > 0', () => {
    const { outcomes } = run(
      policy({ minReplicas: 2, cooldownSeconds: 0 }),
      [
        [0, 700],
        [1, 0],
        [61, 0],
        [10_000, 0],
      ],
      2,
    );
    expect(outcomes).toEqual([
      [0, 7, 'ScaleUp'], // from minReplicas, not a wake-up
      [1, 7, 'HeldByStabilization'],
      [61, 2, 'ScaleDown'],
      [10_000, 2, 'Steady'],
    ]);
  });

  it('wakes from zero to the formula, not to the higher recommendations still in the window', () => {
    const state: ScalerState = { recommendations: [{ atMs: at(0), replicas: 8 }], lastActiveMs: at(0) };
    const { outcomes } = run(policy(), [[10, 1]], 0, state);
    expect(outcomes).toEqual([[10, 1, 'WakeFromZero']]);
  });

  it('wakes from zero at once even right after scaling to zero', () => {
    const { outcomes } = run(policy({ cooldownSeconds: 0, scaleDownStabilizationSeconds: 0 }), [
      [0, 100],
      [1, 0],
      [1.001, 1],
    ]);
    expect(outcomes.map(([, desired, reason]) => [desired, reason])).toEqual([
      [1, 'WakeFromZero'],
      [0, 'ScaleToZero'],
      [1, 'WakeFromZero'],
    ]);
  });

  describe('after an operator restart (no state, replicas from the Deployment)', () => {
    it('does not scale a busy consumer down before a full window, nor to zero before a full cooldown', () => {
      const { outcomes } = run(
        policy(),
        [
          [0, 0],
          [59, 0],
          [60, 0],
          [299, 0],
          [300, 0],
        ],
        5,
      );
      expect(outcomes).toEqual([
        [0, 5, 'HeldByStabilization'],
        [59, 5, 'HeldByStabilization'],
        [60, 1, 'CooldownBeforeZero'],
        [299, 1, 'CooldownBeforeZero'],
        [300, 0, 'ScaleToZero'],
      ]);
    });

    it('does not wake an idle consumer', () => {
      const { outcomes } = run(
        policy(),
        [
          [0, 0],
          [1000, 0],
        ],
        0,
      );
      expect(outcomes).toEqual([
        [0, 0, 'Steady'],
        [1000, 0, 'Steady'],
      ]);
    });

    it('scales a restarted consumer up at once', () => {
      const { outcomes } = run(policy(), [[0, 900]], 5);
      expect(outcomes).toEqual([[0, 9, 'ScaleUp']]);
    });
  });
});

describe('pollFailed', () => {
  it('keeps the replicas, with the last depth read, and no error text', () => {
    expect(pollFailed({ nowMs: at(7), currentReplicas: 3, lastDepth: 250 })).toEqual({
      time: '2025-01-01T00:00:07.000Z',
      queueDepth: 250,
      currentReplicas: 3,
      desiredReplicas: 3,
      reason: 'PollFailed',
      message: 'could not read the queue depth (last read: 250); keeping 3 replicas',
    });
  });

  it('keeps a consumer at zero at zero', () => {
    expect(pollFailed({ nowMs: at(0), currentReplicas: 0, lastDepth: 0 }).desiredReplicas).toBe(0);
  });
});
