// Queue-depth autoscaling against a REAL RabbitMQ (Debian's rabbitmq-server, started from the config
// the operator generates, on loopback): the poller reads depths through the management API, as the
// operator does, and its decisions are checked against what it read.
//
// Real clock, no timing assertions. Every poll is recorded in order (its depth, whether it started
// after the test itself saw the backlog, and the decision it led to), and the assertions are relations
// over that record: which poll decided, and, for the cooldown, what each poll should have decided given
// the times the poller itself stamped on its decisions. A slow machine changes how many polls there
// are, never whether the relations hold.
import { eventually } from '../e2e/support/eventually.ts';
import { QueueScalers, queueDepthSource, type DepthSource } from '../operator/autoscaling/queue-poller.ts';
import type { Decision, ScalerPolicy } from '../operator/autoscaling/queue-scaler.ts';
import { startBroker, type LocalBroker } from './support/rabbitmq-local.ts';

const QUEUE = 'photos';
const KEY = 'shop/app/photo-processor';
const BACKLOG = 350;
const POLICY: ScalerPolicy = {
  minReplicas: 0,
  maxReplicas: 10,
  messagesPerReplica: 100,
  cooldownSeconds: 3,
  // No window, so that every empty poll is decided by the cooldown alone.
  scaleDownStabilizationSeconds: 0,
};
// A deadline against a hang, never a measure of speed.
const HANG = 90_000;

interface Poll {
  /** Whether it started after the test had itself read the whole backlog from the broker. */
  afterVisible: boolean;
  depth?: number;
  /** The decision it led to; known once the next poll starts (polls never overlap). */
  decision?: Decision;
}

let broker: LocalBroker;

beforeAll(async () => {
  broker = await startBroker({ nodes: 1, queues: [{ name: QUEUE }] });
});

afterAll(async () => {
  await broker?.stop();
});

/** A poller on the real broker whose every poll is recorded. */
function recordedScalers(source: DepthSource) {
  const polls: Poll[] = [];
  const notified: Decision[] = [];
  const errors: unknown[] = [];
  let visible = false;
  const scalers = new QueueScalers({
    depth: async (queue) => {
      const previous = polls.at(-1);
      if (previous) previous.decision = scalers.lastDecision(KEY);
      const poll: Poll = { afterVisible: visible };
      polls.push(poll);
      poll.depth = await source(queue);
      return poll.depth;
    },
    onError: (_key, error) => errors.push(error),
  });
  return {
    scalers,
    polls,
    notified,
    errors,
    onDecision: (_key: string, decision: Decision) => notified.push(decision),
    markVisible: () => (visible = true),
    decided: () => polls.filter((p): p is Poll & { decision: Decision } => p.decision !== undefined),
  };
}

const depthOf = queueDepthSource({ queueDepth: (queue) => broker.admin.queueDepth(queue) });

describe('queue-depth autoscaling on a real broker', () => {
  it('scales a backlog by the formula at the first poll that sees it, and to zero only after the cooldown', async () => {
    const r = recordedScalers(depthOf);
    r.scalers.ensure(
      KEY,
      { queue: QUEUE, policy: POLICY, pollIntervalSeconds: 1, currentReplicas: 0 },
      r.onDecision,
    );
    try {
      await eventually('a first decision on the empty queue', () => r.decided().length > 0, HANG, 50);
      expect(r.decided()[0]!.decision).toMatchObject({ queueDepth: 0, desiredReplicas: 0, reason: 'Steady' });

      await broker.publish(
        QUEUE,
        Array.from({ length: BACKLOG }, (_, i) => `photo-${i}`),
      );
      await eventually(
        'the test to read the whole backlog',
        async () => (await depthOf(QUEUE)) === BACKLOG,
        HANG,
        50,
      );
      r.markVisible();
      await eventually(
        'a decision for the whole backlog',
        () => r.decided().some((p) => p.afterVisible),
        HANG,
        50,
      );

      const growing = r.decided();
      // The first message woke the consumer at once.
      const wake = growing.find((p) => p.depth! > 0)!;
      expect(wake.decision).toMatchObject({ currentReplicas: 0, reason: 'WakeFromZero' });
      // 4 replicas for 350 messages, by the formula. The poll that first asked for 4 is no later than the
      // first poll that started after the backlog was visible: the decision came within one interval. (On
      // a slow machine the publishing is slow too, and 301 messages may already have asked for 4.)
      const full = growing.findIndex((p) => p.depth === BACKLOG);
      const reachedFour = growing.findIndex((p) => p.decision.desiredReplicas === 4);
      const firstAfterVisible = growing.findIndex((p) => p.afterVisible);
      expect(growing[full]?.decision).toMatchObject({ queueDepth: BACKLOG, desiredReplicas: 4 });
      expect(reachedFour).toBeGreaterThanOrEqual(0);
      expect(reachedFour).toBeLessThanOrEqual(firstAfterVisible);
      expect(growing[reachedFour]!.decision.currentReplicas).toBeLessThan(4);
      expect(r.notified).toContainEqual(growing[reachedFour]!.decision);

      // Drain it, as consumers would (taken and acknowledged).
      const taken = await broker.take(QUEUE, BACKLOG);
      expect(taken).toHaveLength(BACKLOG);
      await eventually(
        'a scale to zero',
        () => r.decided().some((p) => p.decision.reason === 'ScaleToZero'),
        HANG,
        50,
      );
    } finally {
      await r.scalers.stopAll();
    }

    const all = r.decided();
    // Without a window, every poll that saw messages (also those that caught the drain half done)
    // decided by the formula alone.
    for (const p of all.filter((p) => p.depth! > 0)) {
      expect([p.depth, p.decision.desiredReplicas]).toEqual([p.depth, Math.ceil(p.depth! / 100)]);
    }
    const lastBusy = all.findLastIndex((p) => p.depth! > 0);
    const lastActiveMs = Date.parse(all[lastBusy]!.decision.time);
    // After the last poll that saw a message, each poll's decision follows from its own time alone.
    const empty = all.slice(lastBusy + 1);
    expect(empty.every((p) => p.depth === 0)).toBe(true);
    let zero = false;
    const expected = empty.map((p) => {
      const coolingDown = Date.parse(p.decision.time) - lastActiveMs < POLICY.cooldownSeconds * 1000;
      if (coolingDown) return [1, 'CooldownBeforeZero'];
      const reason = zero ? 'Steady' : 'ScaleToZero';
      zero = true;
      return [0, reason];
    });
    expect(empty.map((p) => [p.decision.desiredReplicas, p.decision.reason])).toEqual(expected);
    // Status writes: one per change of replicas or rule, not one per poll. (Past the record, the last
    // poll may have notified too: its decision is not recorded yet.)
    const changes = all
      .filter((p, i) => {
        const before = all[i - 1]?.decision;
        return (
          !before ||
          before.desiredReplicas !== p.decision.desiredReplicas ||
          before.reason !== p.decision.reason
        );
      })
      .map((p) => p.decision);
    expect(changes.length).toBeLessThan(all.length);
    expect(r.notified.slice(0, changes.length)).toEqual(changes);
    expect(r.errors).toEqual([]);
  });

  it('reports a queue it cannot read as PollFailed, keeping the replicas, without the password', async () => {
    const r = recordedScalers(depthOf);
    r.scalers.ensure(
      KEY,
      { queue: 'no-such-queue', policy: POLICY, pollIntervalSeconds: 1, currentReplicas: 2 },
      r.onDecision,
    );
    try {
      // Three polls started: the first two have failed.
      await eventually('two failed polls', () => r.polls.length >= 3, HANG, 50);
    } finally {
      await r.scalers.stopAll();
    }
    // Failures that say the same are reported once.
    expect(r.errors).toHaveLength(1);
    expect(r.notified).toHaveLength(1);
    expect(r.notified[0]).toMatchObject({ currentReplicas: 2, desiredReplicas: 2, reason: 'PollFailed' });
    for (const error of r.errors) {
      expect(String(error)).toContain('does not exist');
      expect(String(error)).not.toContain(broker.password);
    }
  });
});
