// The poll loop behind queue-depth autoscaling: one poller per consumer reads its queue's depth every
// pollIntervalSeconds and runs `decide` on it. It knows nothing of Kubernetes: the controller hands it
// the consumer's policy and the Deployment's replicas, and is called back when a decision changes.
import type { BrokerAdmin } from '../dataplane/rabbitmq/admin.ts';
import { systemClock, type CancelTimer, type Clock } from '../runtime/clock.ts';
import {
  decide,
  initialScalerState,
  pollFailed,
  type Decision,
  type ScalerPolicy,
  type ScalerState,
} from './queue-scaler.ts';

/**
 * Ready + unacknowledged messages of a queue. Should give up on its own (e.g. an HTTP timeout): polls
 * never overlap, so a read that never settles stops that consumer's polling.
 */
export type DepthSource = (queue: string) => Promise<number>;

/** A broker's depth as the scaler counts it: ready + unacknowledged (messages a consumer still owes). */
export function queueDepthSource(admin: Pick<BrokerAdmin, 'queueDepth'>): DepthSource {
  return async (queue) => {
    const { ready, unacknowledged } = await admin.queueDepth(queue);
    return ready + unacknowledged;
  };
}

export type OnDecision = (key: string, decision: Decision) => void;

export interface ConsumerScaling {
  queue: string;
  policy: ScalerPolicy;
  pollIntervalSeconds: number;
  /**
   * The Deployment's replicas. Read only when the poller starts (also after an operator restart): from
   * then on the poller's own last decision is the current count, since the controller writes it.
   */
  currentReplicas: number;
}

export interface QueueScalersOptions {
  depth: DepthSource;
  clock?: Clock;
  /**
   * A read that fails, once per run of like failures: the first one, and again only when the error
   * says something else (a broker down for an hour is one report, not 720). Also every throw from
   * onDecision. The error stays out of the status.
   */
  onError?: (key: string, error: unknown) => void;
  /** A read that works again after failing (the failure was reported through onError). */
  onRecovered?: (key: string) => void;
  /** Every depth read, decision or not (the operator's metrics follow the backlog between decisions). */
  onDepth?: (key: string, depth: number) => void;
}

interface Poller {
  scaling: ConsumerScaling;
  onDecision: OnDecision;
  state: ScalerState;
  replicas: number;
  lastDepth: number;
  last: Decision | undefined;
  lastPollStartMs: number;
  timer: CancelTimer | undefined;
  /** Set while a read is in flight; settles once its decision is handled. */
  inFlight: Promise<void> | undefined;
  /** What the failing reads say, while they fail; undefined while reads work. */
  failing: string | undefined;
  stopped: boolean;
}

/** Whether a decision is worth a status write: a new replica count, or a different rule in force. */
function changed(previous: Decision | undefined, next: Decision): boolean {
  return (
    previous === undefined ||
    previous.desiredReplicas !== next.desiredReplicas ||
    previous.reason !== next.reason
  );
}

export class QueueScalers {
  readonly #depth: DepthSource;
  readonly #clock: Clock;
  readonly #onError: (key: string, error: unknown) => void;
  readonly #onRecovered: (key: string) => void;
  readonly #onDepth: (key: string, depth: number) => void;
  readonly #pollers = new Map<string, Poller>();

  constructor(options: QueueScalersOptions) {
    this.#depth = options.depth;
    this.#clock = options.clock ?? systemClock;
    this.#onError = options.onError ?? (() => {});
    this.#onRecovered = options.onRecovered ?? (() => {});
    this.#onDepth = options.onDepth ?? (() => {});
  }

  /**
   * Starts polling for `key` (`namespace/app/consumer`) at once, or updates a running poller's queue,
   * policy, interval and callback without losing its state. `onDecision` is called when the desired
   * replicas or the deciding rule change, not on every poll: an idle queue would otherwise cause a
   * status write every interval that changes nothing but the time.
   */
  ensure(key: string, scaling: ConsumerScaling, onDecision: OnDecision): void {
    const existing = this.#pollers.get(key);
    if (existing) {
      const intervalChanged = existing.scaling.pollIntervalSeconds !== scaling.pollIntervalSeconds;
      existing.scaling = scaling;
      existing.onDecision = onDecision;
      if (intervalChanged && existing.timer) this.#schedule(key, existing);
      return;
    }
    const poller: Poller = {
      scaling,
      onDecision,
      state: initialScalerState,
      replicas: scaling.currentReplicas,
      lastDepth: 0,
      last: undefined,
      lastPollStartMs: this.#clock.now(),
      timer: undefined,
      inFlight: undefined,
      failing: undefined,
      stopped: false,
    };
    this.#pollers.set(key, poller);
    this.#poll(key, poller);
  }

  /** Stops polling for `key`; a read in flight is discarded. */
  forget(key: string): void {
    const poller = this.#pollers.get(key);
    if (!poller) return;
    poller.stopped = true;
    poller.timer?.();
    poller.timer = undefined;
    this.#pollers.delete(key);
  }

  /** Stops every poller; resolves once reads in flight have settled (their results are discarded). */
  async stopAll(): Promise<void> {
    const inFlight = [...this.#pollers.values()].map((p) => p.inFlight);
    for (const key of [...this.#pollers.keys()]) this.forget(key);
    await Promise.all(inFlight);
  }

  lastDecision(key: string): Decision | undefined {
    return this.#pollers.get(key)?.last;
  }

  keys(): string[] {
    return [...this.#pollers.keys()];
  }

  #poll(key: string, poller: Poller): void {
    poller.timer = undefined;
    poller.lastPollStartMs = this.#clock.now();
    const { queue } = poller.scaling;
    // A source that throws synchronously fails this poll like one that rejects, not the timer callback.
    poller.inFlight = new Promise<number>((resolve) => resolve(this.#depth(queue)))
      .then((depth) => {
        if (!Number.isSafeInteger(depth) || depth < 0) {
          throw new Error(`queue ${queue}: depth source returned ${String(depth)}, not a count`);
        }
        return depth;
      })
      .then(
        (depth) => this.#handle(key, poller, depth),
        (error: unknown) => this.#handle(key, poller, undefined, error),
      );
  }

  #handle(key: string, poller: Poller, depth: number | undefined, error?: unknown): void {
    poller.inFlight = undefined;
    if (poller.stopped) return;
    const observation = { nowMs: this.#clock.now(), currentReplicas: poller.replicas };
    let decision: Decision;
    if (depth === undefined) {
      decision = pollFailed({ ...observation, lastDepth: poller.lastDepth });
      const text = error instanceof Error ? error.message : String(error);
      if (text !== poller.failing) this.#onError(key, error);
      poller.failing = text;
    } else {
      if (poller.failing !== undefined) this.#onRecovered(key);
      poller.failing = undefined;
      const result = decide(poller.scaling.policy, poller.state, { ...observation, depth });
      decision = result.decision;
      poller.state = result.state;
      poller.lastDepth = depth;
      this.#onDepth(key, depth);
    }
    const notify = changed(poller.last, decision);
    poller.last = decision;
    poller.replicas = decision.desiredReplicas;
    this.#schedule(key, poller);
    if (notify) {
      try {
        poller.onDecision(key, decision);
      } catch (err) {
        this.#onError(key, err);
      }
    }
  }

  /** The next read starts one interval after the last one started, or at once if that is past. */
  #schedule(key: string, poller: Poller): void {
    poller.timer?.();
    const dueMs = poller.lastPollStartMs + poller.scaling.pollIntervalSeconds * 1000;
    poller.timer = this.#clock.setTimer(() => this.#poll(key, poller), dueMs - this.#clock.now());
  }
}
