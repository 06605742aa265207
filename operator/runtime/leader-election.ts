// Leader election on a coordination.k8s.io/v1 Lease, following client-go's LeaderElector: only one
// replica reconciles at a time, and a crashed leader is replaced once its lease has gone unrenewed for a
// lease duration. Expiry is judged by our own clock from when we last saw the record change, never by
// comparing the renewTime written by another machine with our clock (clocks across nodes differ).
import { V1MicroTime, type CoordinationV1Api, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import { sleep, systemClock, type Clock } from './clock.ts';
import { discardLogger, type Logger } from './log.ts';
import { TokenBucket } from './rate-limiter.ts';

/** Someone else wrote the Lease first (HTTP 409): they won this round. */
export class LeaseConflictError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LeaseConflictError';
  }
}

/** The Kubernetes calls leader election needs, on one Lease; see `clientNodeLeaseStore`. */
export interface LeaseStore {
  /** The Lease, or undefined when it does not exist. */
  get(): Promise<V1Lease | undefined>;
  /** Creates the Lease; LeaseConflictError if it already exists. */
  create(lease: V1Lease): Promise<V1Lease>;
  /** Replaces the Lease if its metadata.resourceVersion is current; LeaseConflictError otherwise. */
  update(lease: V1Lease): Promise<V1Lease>;
}

export interface LeaderElectorOptions {
  leaseName: string;
  namespace: string;
  /** Unique per process (e.g. pod name plus a random suffix): a restarted process must not pass for the old one. */
  identity: string;
  /** How long followers wait after the last change they saw before taking over. Default 15. */
  leaseDurationSeconds?: number;
  /** How long the leader keeps trying to renew before giving up leadership. Default 10. */
  renewDeadlineSeconds?: number;
  /** Interval between attempts to acquire or renew. Default 2. */
  retryPeriodSeconds?: number;
  /** On a graceful stop, hand the lease over at once instead of letting it expire. Default true. */
  releaseOnStop?: boolean;
  /**
   * Called when we become leader. `signal` aborts when leadership ends. If it returns a promise, that
   * should settle once the work it started has stopped: on a graceful stop the lease is released only
   * then, so that two leaders never work at once.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called once leadership has ended (after the release, on a graceful stop). */
  onStoppedLeading: () => void;
  /** Called when the leader we observe changes, including to ourselves. */
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  /** Source of the jitter added to acquire retries (as client-go does); default Math.random. */
  random?: () => number;
  logger?: Logger;
}

/** Why run() returned: stopped through its signal, or leadership lost because renewal failed. */
export type ElectionEnd = 'stopped' | 'lost';

// client-go's JitterFactor: acquire retries wait retryPeriod × (1 + 1.2 × random).
const JITTER = 1.2;

/** Milliseconds since the epoch of a Lease time, whichever form it came in; undefined if absent. */
function timeOf(value: Date | string | undefined): number | undefined {
  return value === undefined || value === null ? undefined : new Date(value).getTime();
}

function microTime(value: Date | string | undefined): V1MicroTime | undefined {
  if (value === undefined || value === null || value instanceof V1MicroTime) return value ?? undefined;
  return new V1MicroTime(value);
}

/** Returns `lease` with acquireTime and renewTime as V1MicroTime, which serialises with microseconds. */
export function withMicroTimes(lease: V1Lease): V1Lease {
  if (!lease.spec) return lease;
  const spec: V1LeaseSpec = { ...lease.spec };
  const acquireTime = microTime(lease.spec.acquireTime);
  const renewTime = microTime(lease.spec.renewTime);
  if (acquireTime) spec.acquireTime = acquireTime;
  if (renewTime) spec.renewTime = renewTime;
  return { ...lease, spec };
}

/** The parts of the record whose change restarts the expiry countdown. */
function recordKey(spec: V1LeaseSpec | undefined): string {
  return JSON.stringify([
    spec?.holderIdentity ?? '',
    spec?.leaseDurationSeconds,
    timeOf(spec?.acquireTime),
    timeOf(spec?.renewTime),
    spec?.leaseTransitions ?? 0,
  ]);
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectorOptions, 'onNewLeader'>> &
    Pick<LeaderElectorOptions, 'onNewLeader'>;
  readonly #store: LeaseStore;
  readonly #log: Logger;
  #observedLease: V1Lease | undefined;
  #observedKey: string | undefined;
  /** Our clock's time when we last saw the record change. */
  #observedTime = 0;
  #reportedLeader: string | undefined;
  /** Our clock's time when the latest acquire-or-renew attempt started. */
  #lastAttemptStart = 0;
  /** Why the last leadership ended 'lost', for its log line. */
  #lostBecause = '';
  #leading = false;
  #running = false;

  constructor(store: LeaseStore, options: LeaderElectorOptions) {
    this.#store = store;
    this.#o = {
      ...options,
      leaseDurationSeconds: options.leaseDurationSeconds ?? 15,
      renewDeadlineSeconds: options.renewDeadlineSeconds ?? 10,
      retryPeriodSeconds: options.retryPeriodSeconds ?? 2,
      releaseOnStop: options.releaseOnStop ?? true,
      clock: options.clock ?? systemClock,
      random: options.random ?? Math.random,
      logger: options.logger ?? discardLogger,
    };
    const { leaseDurationSeconds: lease, renewDeadlineSeconds: renew, retryPeriodSeconds: retry } = this.#o;
    // client-go's checks: a leader must give up before followers may take over, and must get more than
    // one renewal attempt before it does.
    if (!(lease > renew))
      throw new RangeError('leader election: leaseDurationSeconds must exceed renewDeadlineSeconds');
    if (!(renew > JITTER * retry)) {
      throw new RangeError('leader election: renewDeadlineSeconds must exceed 1.2 × retryPeriodSeconds');
    }
    if (!(retry > 0)) throw new RangeError('leader election: retryPeriodSeconds must be positive');
    if (!Number.isInteger(lease))
      throw new RangeError('leader election: leaseDurationSeconds must be an integer');
    if (options.identity === '') throw new RangeError('leader election: identity must not be empty');
    this.#log = this.#o.logger.with({
      lease: `${options.namespace}/${options.leaseName}`,
      identity: options.identity,
    });
  }

  /** Whether we lead now (between onStartedLeading and onStoppedLeading). */
  isLeader(): boolean {
    return this.#leading;
  }

  /** The holder of the lease as last observed; undefined before the first observation or when free. */
  getLeader(): string | undefined {
    return this.#observedLease?.spec?.holderIdentity || undefined;
  }

  /**
   * Tries to acquire the lease until it does, then leads and renews it until `signal` aborts
   * ('stopped', the lease is released if releaseOnStop) or renewal fails for renewDeadline ('lost').
   */
  async run(signal: AbortSignal = new AbortController().signal): Promise<ElectionEnd> {
    if (this.#running) throw new Error('leader election: run() is already running');
    this.#running = true;
    try {
      this.#log.info('waiting to acquire the lease');
      let acquired = false;
      while (!signal.aborted) {
        acquired = await this.#tryAcquireOrRenew();
        if (acquired) break;
        const retryMs = this.#o.retryPeriodSeconds * 1000 * (1 + JITTER * this.#o.random());
        await sleep(this.#o.clock, retryMs, signal);
      }
      if (signal.aborted) {
        // Stopped while an attempt was in flight that may have won: do not leave the lease held.
        if (acquired && this.#o.releaseOnStop) await this.release();
        return 'stopped';
      }

      this.#log.info('acquired the lease; leading');
      this.#leading = true;
      const leadership = new AbortController();
      const work = this.#startLeading(leadership.signal);
      const end = await this.#renewUntilStoppedOrLost(signal);
      this.#leading = false;
      leadership.abort();
      if (end === 'stopped') {
        await work;
        if (this.#o.releaseOnStop) await this.release();
      } else {
        this.#log.error(`lost the lease: ${this.#lostBecause}`);
      }
      this.#o.onStoppedLeading();
      return end;
    } finally {
      this.#running = false;
    }
  }

  /**
   * Hands the lease over if we hold it: holder emptied and a 1 s duration, so a follower takes it on its
   * next attempt. Written against the version we last wrote, so it cannot clobber a newer holder.
   * Returns whether the lease was released.
   */
  async release(): Promise<boolean> {
    const lease = this.#observedLease;
    if (!lease || lease.spec?.holderIdentity !== this.#o.identity) return false;
    const now = this.#o.clock.now();
    try {
      const released = await this.#store.update({
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          acquireTime: new V1MicroTime(now),
          renewTime: new V1MicroTime(now),
          leaseTransitions: lease.spec.leaseTransitions ?? 0,
        },
      });
      this.#observe(released, now);
      this.#log.info('released the lease');
      return true;
    } catch (err) {
      this.#log.warn('could not release the lease', { err });
      return false;
    }
  }

  #startLeading(signal: AbortSignal): Promise<void> {
    // The callback's own failure is the caller's to handle; it must not break the renew loop.
    return Promise.resolve()
      .then(() => this.#o.onStartedLeading(signal))
      .catch((err: unknown) => this.#log.error('onStartedLeading failed', { err }));
  }

  async #renewUntilStoppedOrLost(signal: AbortSignal): Promise<ElectionEnd> {
    const { clock } = this.#o;
    const renewDeadlineMs = this.#o.renewDeadlineSeconds * 1000;
    // Counted from the start of the last successful attempt: the apiserver applied it no earlier, so
    // followers cannot have seen it earlier either.
    let renewedFrom = this.#lastAttemptStart;
    for (;;) {
      await sleep(clock, this.#o.retryPeriodSeconds * 1000, signal);
      if (signal.aborted) return 'stopped';
      const deadline = renewedFrom + renewDeadlineMs;
      this.#lostBecause = 'could not renew it within the renew deadline';
      if (clock.now() >= deadline) return 'lost';
      const attemptStart = clock.now();
      const renewed = await this.#beforeDeadline(this.#tryAcquireOrRenew(), deadline);
      if (renewed === true) {
        renewedFrom = attemptStart;
        continue;
      }
      if (renewed === 'timeout') return 'lost';
      const holder = this.#observedLease?.spec?.holderIdentity;
      if (holder && holder !== this.#o.identity) {
        // Someone else holds it: stop at once, not at the deadline (two leaders would both reconcile).
        this.#lostBecause = `${holder} holds it now`;
        return 'lost';
      }
    }
  }

  #beforeDeadline<T>(attempt: Promise<T>, deadline: number): Promise<T | 'timeout'> {
    return new Promise((resolve) => {
      const cancel = this.#o.clock.setTimer(() => resolve('timeout'), deadline - this.#o.clock.now());
      void attempt.then((value) => {
        cancel();
        resolve(value);
      });
    });
  }

  /** One round of client-go's tryAcquireOrRenew; never throws. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = this.#o.clock.now();
    this.#lastAttemptStart = now;
    const { identity, leaseDurationSeconds } = this.#o;

    // Fast path: the leader updates the lease it last wrote without reading it first; a conflict means
    // it changed, so read it.
    const observed = this.#observedLease;
    if (this.#leading && observed?.spec?.holderIdentity === identity) {
      try {
        this.#observe(await this.#store.update(this.#withRecord(observed, now, true)), now);
        return true;
      } catch (err) {
        this.#log.debug('optimistic renewal failed; reading the lease', { err });
      }
    }

    let current: V1Lease | undefined;
    try {
      current = await this.#store.get();
    } catch (err) {
      this.#log.error('could not read the lease', { err });
      return false;
    }
    if (!current) {
      const lease: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.#o.leaseName, namespace: this.#o.namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds,
          acquireTime: new V1MicroTime(now),
          renewTime: new V1MicroTime(now),
          leaseTransitions: 0,
        },
      };
      try {
        this.#observe(await this.#store.create(lease), now);
        return true;
      } catch (err) {
        this.#logWriteFailure('create', err);
        return false;
      }
    }

    this.#observe(current, now);
    const holder = current.spec?.holderIdentity ?? '';
    const durationMs = (current.spec?.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder !== '' && holder !== identity && this.#observedTime + durationMs > now) {
      return false; // held by someone else and not expired as far as we can tell
    }
    try {
      this.#observe(await this.#store.update(this.#withRecord(current, now, holder === identity)), now);
      return true;
    } catch (err) {
      this.#logWriteFailure('update', err);
      return false;
    }
  }

  /** `lease` claimed or renewed by us at `now`; a renewal keeps acquireTime and the transition count. */
  #withRecord(lease: V1Lease, now: number, renewal: boolean): V1Lease {
    const old = lease.spec ?? {};
    const transitions = old.leaseTransitions ?? 0;
    const acquireTime = renewal ? microTime(old.acquireTime) : undefined;
    return {
      ...lease,
      spec: {
        ...old,
        holderIdentity: this.#o.identity,
        leaseDurationSeconds: this.#o.leaseDurationSeconds,
        acquireTime: acquireTime ?? new V1MicroTime(now),
        renewTime: new V1MicroTime(now),
        leaseTransitions: renewal ? transitions : transitions + 1,
      },
    };
  }

  #observe(lease: V1Lease, now: number): void {
    this.#observedLease = lease;
    const key = recordKey(lease.spec);
    if (key !== this.#observedKey) {
      this.#observedKey = key;
      this.#observedTime = now;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== '' && holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      this.#log.info('new leader observed', { leader: holder });
      this.#o.onNewLeader?.(holder);
    }
  }

  #logWriteFailure(what: string, err: unknown): void {
    if (err instanceof LeaseConflictError) this.#log.debug(`lease ${what} lost a race`, { err });
    else this.#log.error(`could not ${what} the lease`, { err });
  }
}

/**
 * Leader election's own request budget, never the reconcilers' (`--qps`, `--burst`): a renewal queued
 * behind a thousand child writes misses its deadline, and the leader steps down exactly when it has
 * the most to do (ten full-stack apps at once did that). controller-runtime gives leader election its
 * own client for the same reason. An attempt every retry period takes at most two requests (a read
 * and a write; a failed optimistic renewal three), so the budget is twice that rate, scaled with the
 * retry period: a fixed 2/s starved a 0.5 s retry period, which renewed late and lost the lease.
 */
export function leaseBucket(retryPeriodSeconds: number, clock?: Clock): TokenBucket {
  const perAttempt = 4;
  return new TokenBucket({
    qps: perAttempt / retryPeriodSeconds,
    burst: 2 * perAttempt,
    ...(clock ? { clock } : {}),
  });
}

/** The CoordinationV1Api calls `clientNodeLeaseStore` uses. */
export type LeaseApi = Pick<
  CoordinationV1Api,
  'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'
>;

/** The HTTP status of a client-node ApiException (or anything shaped like one). */
function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * A LeaseStore on the Lease `namespace/name` through client-node: 404 on read is "no lease", 409 is a
 * LeaseConflictError. Lease times are converted to V1MicroTime both ways: client-node returns them as
 * strings, and a plain Date would be sent with millisecond precision, which the apiserver rejects.
 */
export function clientNodeLeaseStore(api: LeaseApi, namespace: string, name: string): LeaseStore {
  const ref = `Lease ${namespace}/${name}`;
  const fail = (verb: string, err: unknown): Error =>
    statusOf(err) === 409
      ? new LeaseConflictError(`${verb} ${ref}: conflict`, { cause: err })
      : new Error(`${verb} ${ref}`, { cause: err });
  const body = (lease: V1Lease): V1Lease =>
    withMicroTimes({ ...lease, metadata: { ...lease.metadata, name, namespace } });
  return {
    async get() {
      try {
        return withMicroTimes(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw fail('reading', err);
      }
    },
    async create(lease) {
      try {
        return withMicroTimes(await api.createNamespacedLease({ namespace, body: body(lease) }));
      } catch (err) {
        throw fail('creating', err);
      }
    },
    async update(lease) {
      try {
        return withMicroTimes(await api.replaceNamespacedLease({ name, namespace, body: body(lease) }));
      } catch (err) {
        throw fail('replacing', err);
      }
    },
  };
}
