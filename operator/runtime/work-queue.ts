// A rate-limited work queue with client-go's semantics: keys ("namespace/name") are deduplicated while
// they wait, a key is never handed to two workers at once (re-adds during processing are parked as
// "dirty" and re-queued by done()), and failures back off exponentially per key.
import { systemClock, type CancelTimer, type Clock } from './clock.ts';

/** Observation points for the workqueue_* metrics (see metrics.ts `connectWorkQueueMetrics`). */
export interface WorkQueueHooks {
  /** The number of keys waiting to be handed out is now `depth`. */
  depth?(depth: number): void;
  /** add() accepted a key (deduplicated adds are not counted, as in client-go). */
  add?(): void;
  /** A key waited `seconds` between add() and being handed out by get(). */
  queueLatency?(seconds: number): void;
  /** A key was processed for `seconds` between get() and done(). */
  workDuration?(seconds: number): void;
  /** addAfter() (and so addRateLimited()) was called: client-go counts these as retries. */
  retry?(): void;
}

export interface WorkQueueOptions {
  /** The `name` label of the workqueue_* metrics; by convention the controller's name. */
  name?: string;
  clock?: Clock;
  /** First addRateLimited() delay for a key; doubles on each further failure. Default 5 ms. */
  baseDelayMs?: number;
  /** Cap of the per-key backoff. Default 60 s. */
  maxDelayMs?: number;
  hooks?: WorkQueueHooks;
}

export class WorkQueue {
  readonly name: string;
  readonly clock: Clock;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  #hooks: WorkQueueHooks;

  /** Keys ready to be handed out, in FIFO order; each also in #dirty. */
  #queue: string[] = [];
  /** Keys that need processing: waiting in #queue, or parked until their current processing is done. */
  readonly #dirty = new Set<string>();
  /** Keys handed out by get() and not yet done(), with when they were handed out. */
  readonly #processing = new Map<string, number>();
  /** When each dirty key was added, for the queue latency. */
  readonly #addedAt = new Map<string, number>();
  /** Keys scheduled by addAfter(), with when they become ready. */
  readonly #delayed = new Map<string, { readyAt: number; cancel: CancelTimer }>();
  readonly #failures = new Map<string, number>();
  #getters: Array<() => void> = [];
  #drainers: Array<() => void> = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.name = options.name ?? 'workqueue';
    this.clock = options.clock ?? systemClock;
    this.#baseDelayMs = options.baseDelayMs ?? 5;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    if (!(this.#baseDelayMs > 0) || !(this.#maxDelayMs >= this.#baseDelayMs)) {
      throw new RangeError(`work queue ${this.name}: need 0 < baseDelayMs <= maxDelayMs`);
    }
    this.#hooks = options.hooks ?? {};
  }

  /** Replaces the hooks; metrics are usually connected after the queue is made. */
  setHooks(hooks: WorkQueueHooks): void {
    this.#hooks = hooks;
  }

  /** Queues `key` unless it is already waiting; if it is being processed, queues it again after done(). */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    this.#addedAt.set(key, this.clock.now());
    this.#hooks.add?.();
    if (this.#processing.has(key)) return;
    this.#push(key);
  }

  /** Waits for a key; undefined once the queue is shut down. Call done(key) when finished with it. */
  async get(): Promise<string | undefined> {
    while (!this.#shuttingDown && this.#queue.length === 0) {
      await new Promise<void>((resolve) => this.#getters.push(resolve));
    }
    if (this.#shuttingDown) return undefined;
    const key = this.#queue.shift() as string;
    const now = this.clock.now();
    this.#hooks.depth?.(this.#queue.length);
    const addedAt = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (addedAt !== undefined) this.#hooks.queueLatency?.((now - addedAt) / 1000);
    this.#dirty.delete(key);
    this.#processing.set(key, now);
    return key;
  }

  /** Marks `key` processed; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    const startedAt = this.#processing.get(key);
    if (startedAt === undefined) return;
    this.#processing.delete(key);
    this.#hooks.workDuration?.((this.clock.now() - startedAt) / 1000);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
    if (this.#processing.size === 0) {
      for (const resolve of this.#drainers.splice(0)) resolve();
    }
  }

  /** Adds `key` after `ms`; if it is already scheduled, the earlier of the two times wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    this.#hooks.retry?.();
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + ms;
    const scheduled = this.#delayed.get(key);
    if (scheduled && scheduled.readyAt <= readyAt) return;
    scheduled?.cancel();
    const cancel = this.clock.setTimer(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { readyAt, cancel });
  }

  /** Adds `key` after its backoff: base, 2×base, 4×base… up to the cap, until forget(key). */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.addAfter(key, Math.min(this.#baseDelayMs * 2 ** failures, this.#maxDelayMs));
  }

  /** Resets the backoff of `key` (call after it was processed successfully). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times addRateLimited(key) was called since the last forget(key). */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Keys ready to be handed out (not counting those being processed or delayed). */
  len(): number {
    return this.#queue.length;
  }

  isShuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Seconds that keys now being processed have been in flight, summed (client-go's unfinished work). */
  unfinishedWorkSeconds(): number {
    const now = this.clock.now();
    let total = 0;
    for (const startedAt of this.#processing.values()) total += now - startedAt;
    return total / 1000;
  }

  /** Seconds the longest-running key now being processed has been in flight; 0 when idle. */
  longestRunningProcessorSeconds(): number {
    const now = this.clock.now();
    let longest = 0;
    for (const startedAt of this.#processing.values()) longest = Math.max(longest, now - startedAt);
    return longest / 1000;
  }

  /**
   * Stops the queue at once: get() returns undefined, adds are ignored, waiting and delayed keys are
   * dropped. Keys being processed may still be done(); they are not re-queued.
   */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { cancel } of this.#delayed.values()) cancel();
    this.#delayed.clear();
    this.#queue = [];
    this.#dirty.clear();
    this.#addedAt.clear();
    this.#hooks.depth?.(0);
    for (const wake of this.#getters.splice(0)) wake();
    if (this.#processing.size === 0) {
      for (const resolve of this.#drainers.splice(0)) resolve();
    }
  }

  /** shutDown(), then waits until every key being processed is done(). */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.#processing.size === 0) return;
    await new Promise<void>((resolve) => this.#drainers.push(resolve));
  }

  #push(key: string): void {
    this.#queue.push(key);
    this.#hooks.depth?.(this.#queue.length);
    this.#getters.shift()?.();
  }
}

/** What a reconcile handler asks for: nothing more, or another pass after a delay. */
export type HandlerOutcome = 'ok' | { requeueAfterMs: number };

/** controller-runtime's `result` label values. */
export type ReconcileResult = 'success' | 'error' | 'requeue' | 'requeue_after';

/** Told about each key runWorkers processes; used for metrics and logging. */
export interface WorkerObserver {
  started?(key: string): void;
  finished?(key: string, result: ReconcileResult, seconds: number, error?: unknown): void;
}

/** Calls each observer in turn. */
export function combineObservers(...observers: WorkerObserver[]): WorkerObserver {
  return {
    started: (key) => observers.forEach((o) => o.started?.(key)),
    finished: (key, result, seconds, error) =>
      observers.forEach((o) => o.finished?.(key, result, seconds, error)),
  };
}

/**
 * Processes keys from `queue` with `concurrency` workers until it shuts down, as controller-runtime does:
 * success forgets the key's backoff; `{ requeueAfterMs > 0 }` forgets it and adds the key after that
 * delay; `{ requeueAfterMs <= 0 }` re-adds it rate-limited (so an immediate requeue cannot hot-loop);
 * a throw or rejection re-adds it rate-limited. Resolves when every worker has stopped.
 */
export async function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  handler: (key: string) => Promise<HandlerOutcome>,
  observer: WorkerObserver = {},
): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`runWorkers: concurrency must be a positive integer, got ${concurrency}`);
  }
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const startedAt = queue.clock.now();
      observer.started?.(key);
      let result: ReconcileResult;
      let error: unknown;
      try {
        const outcome = await handler(key);
        if (outcome === 'ok') {
          queue.forget(key);
          result = 'success';
        } else if (outcome.requeueAfterMs > 0) {
          queue.forget(key);
          queue.addAfter(key, outcome.requeueAfterMs);
          result = 'requeue_after';
        } else {
          queue.addRateLimited(key);
          result = 'requeue';
        }
      } catch (err) {
        queue.addRateLimited(key);
        result = 'error';
        error = err;
      } finally {
        queue.done(key);
      }
      observer.finished?.(key, result, (queue.clock.now() - startedAt) / 1000, error);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
