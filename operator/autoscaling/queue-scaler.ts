// How many replicas a queue consumer should run, decided from its queue's depth: one pure function over
// explicit state, so every rule can be tested without a broker, a clock or Kubernetes.
//
// Rules, in the order they apply:
//   recommendation = ceil(depth / messagesPerReplica), clamped to [minReplicas, maxReplicas]
//   scale-up (recommendation >= current) is immediate, and so is waking from zero on the first message;
//   scale-down goes only to the highest recommendation of the last scaleDownStabilizationSeconds (as the
//   HPA's behavior.scaleDown.stabilizationWindowSeconds does), never below what the formula asks for;
//   zero is reached only once the queue has been empty for cooldownSeconds since the last non-empty poll.
import type { z } from 'zod';
import type { consumer } from '../api/queue.ts';

/** The consumer's spec.autoscaling, with its defaults applied, less what only the poller reads. */
export interface ScalerPolicy {
  minReplicas: number;
  maxReplicas: number;
  messagesPerReplica: number;
  cooldownSeconds: number;
  scaleDownStabilizationSeconds: number;
}

export type ConsumerAutoscaling = NonNullable<z.output<typeof consumer>['autoscaling']>;

export function scalerPolicy(a: ConsumerAutoscaling): ScalerPolicy {
  const { minReplicas, maxReplicas, messagesPerReplica, cooldownSeconds, scaleDownStabilizationSeconds } = a;
  return { minReplicas, maxReplicas, messagesPerReplica, cooldownSeconds, scaleDownStabilizationSeconds };
}

/** What the formula asked for at one poll. */
export interface Recommendation {
  atMs: number;
  replicas: number;
}

export interface ScalerState {
  /**
   * Recommendations with times within the stabilisation window, oldest first. Only those that can still
   * be the window's highest are kept: a value is dropped once a later one is as high, because it would
   * leave the window first. So the list is strictly decreasing and its head is the window's maximum.
   */
  recommendations: readonly Recommendation[];
  /**
   * When depth was last > 0 (ms). Also set when observation starts with replicas already running: the
   * queue's history is then unknown, and a restarted operator must not scale a busy consumer to zero
   * before a full cooldown of its own.
   */
  lastActiveMs?: number;
}

export const initialScalerState: ScalerState = { recommendations: [] };

export interface Observation {
  nowMs: number;
  /** Ready + unacknowledged messages. */
  depth: number;
  /** Replicas the consumer runs now (or was last told to run). */
  currentReplicas: number;
}

export const DECISION_REASONS = [
  'WakeFromZero',
  'ScaleUp',
  'AtMax',
  'ScaleDown',
  'HeldByStabilization',
  'CooldownBeforeZero',
  'ScaleToZero',
  'Steady',
  'PollFailed',
] as const;
export type DecisionReason = (typeof DECISION_REASONS)[number];

export interface Decision {
  /** When it was made (ISO 8601). */
  time: string;
  /** The depth it was made on; for PollFailed the last depth read successfully (0 before any). */
  queueDepth: number;
  currentReplicas: number;
  desiredReplicas: number;
  /** The rule that decided the number. */
  reason: DecisionReason;
  /** The same, for people, with the inputs. Never contains the broker's error text (it may hold URLs). */
  message: string;
}

export interface DecideResult {
  decision: Decision;
  state: ScalerState;
}

const clamp = (n: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, n));
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function decide(policy: ScalerPolicy, state: ScalerState, observation: Observation): DecideResult {
  const { nowMs, depth, currentReplicas: current } = observation;
  const { minReplicas: min, maxReplicas: max, messagesPerReplica: perReplica } = policy;
  const formula = Math.ceil(depth / perReplica);
  const recommended = clamp(formula, min, max);

  // Nothing seen yet (a new consumer, or a restarted operator): count the running replicas as a
  // recommendation made now, as the HPA does, so a restart does not allow an immediate scale-down.
  const seen =
    state.recommendations.length > 0 ? state.recommendations : [{ atMs: nowMs, replicas: current }];
  const windowStartMs = nowMs - policy.scaleDownStabilizationSeconds * 1000;
  const recommendations = [
    ...seen.filter((r) => r.atMs > windowStartMs && r.replicas > recommended),
    { atMs: nowMs, replicas: recommended },
  ];
  const windowMax = recommendations[0]!.replicas;

  const lastActiveMs =
    depth > 0 || (state.lastActiveMs === undefined && current > 0) ? nowMs : state.lastActiveMs;
  const emptyForMs = lastActiveMs === undefined ? Infinity : nowMs - lastActiveMs;
  const coolingDown = emptyForMs < policy.cooldownSeconds * 1000;

  const inputs = `depth ${depth}, ${plural(perReplica, 'message')} per replica`;
  let desired: number;
  let reason: DecisionReason;
  let why: string;
  if (recommended >= current) {
    desired = recommended;
    if (current === 0 && desired > 0 && depth > 0) {
      reason = 'WakeFromZero';
      why = `first messages while at zero: waking to ${desired}${formula > max ? ` (maxReplicas)` : ''}`;
    } else if (formula > max) {
      reason = 'AtMax';
      why = `the formula asks for ${formula}, held at maxReplicas ${max}`;
    } else if (desired > current) {
      reason = 'ScaleUp';
      why = formula < min ? `raising to minReplicas ${min}` : `scaling up to ${desired}`;
    } else {
      reason = 'Steady';
      why = `staying at ${desired}`;
    }
  } else {
    const stabilized = Math.min(current, windowMax);
    // An empty queue keeps one replica until the cooldown is over (recommended is 0 only when empty).
    const floor = recommended === 0 && coolingDown ? 1 : 0;
    desired = Math.max(stabilized, floor);
    if (floor > 0 && desired === floor) {
      reason = 'CooldownBeforeZero';
      why =
        `queue empty for ${Math.floor(emptyForMs / 1000)}s of the ${policy.cooldownSeconds}s cooldown: ` +
        `keeping ${desired} before scaling to zero`;
    } else if (stabilized > recommended) {
      reason = 'HeldByStabilization';
      why =
        `the formula asks for ${recommended}, the last ${policy.scaleDownStabilizationSeconds}s ` +
        `asked for up to ${windowMax}: keeping ${desired}`;
    } else if (desired === 0) {
      reason = 'ScaleToZero';
      why = `queue empty for the ${policy.cooldownSeconds}s cooldown: scaling to zero`;
    } else {
      reason = 'ScaleDown';
      why = formula < min ? `lowering to minReplicas ${min}` : `scaling down to ${desired}`;
    }
  }

  return {
    decision: {
      time: new Date(nowMs).toISOString(),
      queueDepth: depth,
      currentReplicas: current,
      desiredReplicas: desired,
      reason,
      message: `${inputs}, ${plural(current, 'replica')} now; ${why}`,
    },
    state: lastActiveMs === undefined ? { recommendations } : { recommendations, lastActiveMs },
  };
}

/**
 * The decision when the depth could not be read: replicas stay where they are and the state does not
 * move (an unread queue is neither busy nor empty, so it neither starts nor ends a cooldown).
 */
export function pollFailed(observation: {
  nowMs: number;
  currentReplicas: number;
  lastDepth: number;
}): Decision {
  const { nowMs, currentReplicas, lastDepth } = observation;
  return {
    time: new Date(nowMs).toISOString(),
    queueDepth: lastDepth,
    currentReplicas,
    desiredReplicas: currentReplicas,
    reason: 'PollFailed',
    message: `could not read the queue depth (last read: ${lastDepth}); keeping ${plural(currentReplicas, 'replica')}`,
  };
}
