import {
  CoordinationV1Api,
  createConfiguration,
  ResponseContext,
  SelfDecodingBody,
  ServerConfiguration,
  V1MicroTime,
  wrapHttpLibrary,
  type RequestContext,
  type V1Lease,
  type V1LeaseSpec,
} from '@kubernetes/client-node';
import { FakeClock, settle } from './fake-clock.ts';
import {
  clientNodeLeaseStore,
  LeaderElector,
  LeaseConflictError,
  type ElectionEnd,
  type LeaderElectorOptions,
  type LeaseStore,
  leaseBucket,
} from './leader-election.ts';
import { TokenBucket } from './rate-limiter.ts';

/** The apiserver's MicroTime format; it rejects a Lease time in any other. */
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

type Op = 'get' | 'create' | 'update';

/**
 * An in-memory Lease behaving like the apiserver: optimistic concurrency on resourceVersion (409 as
 * LeaseConflictError), MicroTime validation, and objects returned as parsed JSON (times as strings),
 * as client-node returns them.
 */
class MemoryLeaseStore implements LeaseStore {
  stored: V1Lease | undefined;
  calls: Op[] = [];
  /** Runs before each call: throw to fail it, or return a promise to hold it. */
  before: ((op: Op) => void | Promise<void>) | undefined;
  #rv = 0;

  async get(): Promise<V1Lease | undefined> {
    await this.#enter('get');
    return this.stored && structuredClone(this.stored);
  }

  async create(lease: V1Lease): Promise<V1Lease> {
    await this.#enter('create');
    if (this.stored) throw new LeaseConflictError('leases.coordination.k8s.io "l" already exists');
    return this.#write(lease);
  }

  async update(lease: V1Lease): Promise<V1Lease> {
    await this.#enter('update');
    if (!this.stored) throw Object.assign(new Error('not found'), { code: 404 });
    if (lease.metadata?.resourceVersion !== this.stored.metadata?.resourceVersion) {
      throw new LeaseConflictError('the object has been modified');
    }
    return this.#write(lease);
  }

  /** Another process writes the Lease directly (e.g. a leader that has since crashed). */
  put(spec: V1LeaseSpec): void {
    this.#write({ metadata: { name: 'l', namespace: 'ns' }, spec });
  }

  spec(): V1LeaseSpec {
    return this.stored?.spec ?? {};
  }

  async #enter(op: Op): Promise<void> {
    this.calls.push(op);
    await this.before?.(op);
  }

  #write(lease: V1Lease): V1Lease {
    const json = JSON.parse(JSON.stringify(lease)) as V1Lease;
    for (const field of ['acquireTime', 'renewTime'] as const) {
      const value = json.spec?.[field] as unknown;
      if (value !== undefined && !(typeof value === 'string' && MICRO_TIME.test(value))) {
        throw Object.assign(new Error(`400: spec.${field} ${String(value)} is not a MicroTime`), {
          code: 400,
        });
      }
    }
    json.metadata = { ...json.metadata, resourceVersion: String(++this.#rv) };
    this.stored = json;
    return structuredClone(json);
  }
}

interface Candidate {
  elector: LeaderElector;
  events: string[];
  stop: () => void;
  end: Promise<ElectionEnd>;
  /** The signal given to onStartedLeading, once leading. */
  leadership: () => AbortSignal | undefined;
}

function candidate(
  store: LeaseStore,
  clock: FakeClock,
  identity: string,
  options: Partial<LeaderElectorOptions> = {},
): Candidate {
  const events: string[] = [];
  let leadership: AbortSignal | undefined;
  const elector = new LeaderElector(store, {
    leaseName: 'l',
    namespace: 'ns',
    identity,
    clock,
    random: () => 0,
    onStartedLeading: (signal) => {
      leadership = signal;
      events.push('started');
    },
    onStoppedLeading: () => events.push('stopped'),
    onNewLeader: (leader) => events.push(`leader ${leader}`),
    ...options,
  });
  const controller = new AbortController();
  const end = elector.run(controller.signal);
  return { elector, events, stop: () => controller.abort(), end, leadership: () => leadership };
}

const SECOND = 1000;

describe('LeaderElector', () => {
  it('creates a missing Lease and leads, writing MicroTime timestamps', async () => {
    const clock = new FakeClock(Date.UTC(2025, 0, 1, 0, 0, 0, 250));
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a');
    await settle();
    expect(a.events).toEqual(['leader a', 'started']);
    expect(a.elector.isLeader()).toBe(true);
    expect(a.elector.getLeader()).toBe('a');
    expect(store.spec()).toEqual({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      acquireTime: '2025-01-01T00:00:00.250000Z',
      renewTime: '2025-01-01T00:00:00.250000Z',
      leaseTransitions: 0,
    });
    a.stop();
    await a.end;
  });

  it('renews every retry period by updating the lease it last wrote, without reading it first', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a');
    await settle();
    const acquireTime = store.spec().acquireTime;
    store.calls = [];
    await clock.advance(2 * SECOND);
    expect(new Date(store.spec().renewTime!).getTime()).toBe(clock.now());
    await clock.advance(2 * SECOND);
    expect(new Date(store.spec().renewTime!).getTime()).toBe(clock.now());
    expect(store.calls).toEqual(['update', 'update']);
    expect(store.spec().acquireTime).toBe(acquireTime);
    expect(store.spec().leaseTransitions).toBe(0);
    a.stop();
    await a.end;
  });

  it('lets only one of two candidates lead while the leader keeps renewing', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a');
    await settle();
    const b = candidate(store, clock, 'b');
    await clock.advance(120 * SECOND);
    expect(a.elector.isLeader()).toBe(true);
    expect(b.elector.isLeader()).toBe(false);
    expect(b.events).toEqual(['leader a']);
    expect(b.elector.getLeader()).toBe('a');
    b.stop();
    a.stop();
    await Promise.all([a.end, b.end]);
  });

  it("takes over a crashed leader's lease only a lease duration after it first saw it, whatever its renewTime", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    // Renewed an hour ago by our clock: clocks differ between nodes, so that alone proves nothing.
    const longAgo = new V1MicroTime(clock.now() - 3600 * SECOND);
    store.put({
      holderIdentity: 'crashed',
      leaseDurationSeconds: 15,
      acquireTime: longAgo,
      renewTime: longAgo,
      leaseTransitions: 4,
    });
    const b = candidate(store, clock, 'b');
    await settle();
    expect(b.events).toEqual(['leader crashed']);
    await clock.advance(14 * SECOND); // attempts at 0, 2 … 14 s: within 15 s of the first sight
    expect(b.elector.isLeader()).toBe(false);
    expect(store.spec().holderIdentity).toBe('crashed');
    await clock.advance(2 * SECOND); // the 16 s attempt: expired
    expect(b.elector.isLeader()).toBe(true);
    expect(store.spec()).toMatchObject({
      holderIdentity: 'b',
      leaseTransitions: 5,
      acquireTime: new V1MicroTime(clock.now()).toISOString(),
    });
    b.stop();
    await b.end;
  });

  it('restarts the expiry countdown whenever the holder renews', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const renew = (): void =>
      store.put({ holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: new V1MicroTime(clock.now()) });
    renew();
    const b = candidate(store, clock, 'b');
    await clock.advance(10 * SECOND);
    renew(); // observed at 12 s
    await clock.advance(16 * SECOND); // 26 s: less than 15 s after 12 s
    expect(b.elector.isLeader()).toBe(false);
    await clock.advance(2 * SECOND); // 28 s
    expect(b.elector.isLeader()).toBe(true);
    b.stop();
    await b.end;
  });

  it('loses a create race (409) and then follows the winner', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    store.before = (op) => {
      if (op === 'create') {
        store.before = undefined;
        store.put({ holderIdentity: 'c', leaseDurationSeconds: 15, renewTime: new V1MicroTime(clock.now()) });
      }
    };
    const b = candidate(store, clock, 'b');
    await settle();
    expect(store.calls).toEqual(['get', 'create']);
    expect(b.elector.isLeader()).toBe(false);
    expect(b.events).toEqual([]);
    await clock.advance(2 * SECOND);
    expect(b.events).toEqual(['leader c']);
    expect(b.elector.isLeader()).toBe(false);
    b.stop();
    await b.end;
  });

  it('loses an update race (409) for an expired lease without claiming leadership', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    store.put({ holderIdentity: '', leaseDurationSeconds: 1 });
    store.before = (op) => {
      if (op === 'update') {
        store.before = undefined;
        store.put({ holderIdentity: 'c', leaseDurationSeconds: 15, renewTime: new V1MicroTime(clock.now()) });
      }
    };
    const b = candidate(store, clock, 'b');
    await settle();
    expect(store.calls).toEqual(['get', 'update']);
    expect(b.elector.isLeader()).toBe(false);
    expect(store.spec().holderIdentity).toBe('c');
    b.stop();
    await b.end;
  });

  it('gives up leadership when renewals keep failing for the renew deadline', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a');
    await settle();
    store.before = () => {
      throw new Error('apiserver unavailable');
    };
    await clock.advance(10 * SECOND - 1); // attempts at 2, 4, 6, 8 s fail
    expect(a.elector.isLeader()).toBe(true);
    expect(a.leadership()!.aborted).toBe(false);
    await clock.advance(1);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadership()!.aborted).toBe(true);
    expect(a.events).toEqual(['leader a', 'started', 'stopped']);
    await expect(a.end).resolves.toBe('lost');
  });

  it("keeps leading while the reconcilers' request budget is exhausted: the lease has its own (leaseBucket)", async () => {
    // The operator's defaults (--qps 20, --burst 40) with 2,000 child writes queued: 100 s of backlog.
    const leadThroughBacklog = async (leaseLimiter: (clock: FakeClock, work: TokenBucket) => TokenBucket) => {
      const clock = new FakeClock();
      const work = new TokenBucket({ qps: 20, burst: 40, clock });
      const lease = leaseLimiter(clock, work);
      const store = new MemoryLeaseStore();
      store.before = () => lease.acquire();
      const a = candidate(store, clock, 'a');
      await clock.advance(0);
      expect(a.elector.isLeader()).toBe(true);
      for (let i = 0; i < 2000; i++) void work.acquire();
      await clock.advance(60 * SECOND);
      const leading = a.elector.isLeader();
      a.stop();
      await clock.advance(100 * SECOND);
      await a.end;
      return leading;
    };
    expect(await leadThroughBacklog((clock) => leaseBucket(2, clock))).toBe(true);
    // Sharing the reconcilers' bucket, as the operator once did, the renewal waits its turn and is lost.
    expect(await leadThroughBacklog((_clock, work) => work)).toBe(false);
  });

  it.each([
    {
      what: 'sized from the retry period (leaseBucket)',
      keeps: true,
      bucket: (c: FakeClock) => leaseBucket(0.5, c),
    },
    {
      what: 'of a fixed 2/s (as first written)',
      keeps: false,
      bucket: (c: FakeClock) => new TokenBucket({ qps: 2, burst: 4, clock: c }),
    },
  ])(
    'a lease budget $what, with 0.5 s retries through conflicts: still leading = $keeps',
    async ({ bucket, keeps }) => {
      // 0.5 s retries, 3 s lease, 2 s renew deadline (e2e/operator-resilience's settings) over 60 s,
      // while something else rewrites the Lease object every period (a label, an annotation): each
      // optimistic renewal then conflicts and takes three requests.
      const clock = new FakeClock();
      const lease = bucket(clock);
      const store = new MemoryLeaseStore();
      store.before = () => lease.acquire();
      const a = candidate(store, clock, 'a', {
        leaseDurationSeconds: 3,
        renewDeadlineSeconds: 2,
        retryPeriodSeconds: 0.5,
      });
      await clock.advance(0);
      for (let i = 0; i < 120 && a.elector.isLeader(); i++) {
        store.put(store.spec());
        await clock.advance(500);
      }
      expect(a.elector.isLeader()).toBe(keeps);
      a.stop();
      await clock.advance(10 * SECOND);
      await a.end;
    },
  );

  it('gives up leadership at the renew deadline when a renewal hangs', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a');
    await settle();
    store.before = () => new Promise(() => {}); // the request never returns
    await clock.advance(10 * SECOND - 1);
    expect(a.elector.isLeader()).toBe(true);
    await clock.advance(1);
    expect(a.elector.isLeader()).toBe(false);
    await expect(a.end).resolves.toBe('lost');
  });

  it('gives up leadership at once when it sees someone else holding the lease', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a');
    await settle();
    store.put({
      holderIdentity: 'usurper',
      leaseDurationSeconds: 15,
      renewTime: new V1MicroTime(clock.now()),
    });
    await clock.advance(2 * SECOND);
    expect(store.calls.slice(-2)).toEqual(['update', 'get']); // optimistic update conflicted, then read
    expect(a.elector.isLeader()).toBe(false);
    expect(a.events).toEqual(['leader a', 'started', 'leader usurper', 'stopped']);
    await expect(a.end).resolves.toBe('lost');
    expect(store.spec().holderIdentity).toBe('usurper');
  });

  it('on stop, waits for the leader work to end, releases the lease, and a follower takes over at once', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    let finishWork: () => void = () => {};
    const order: string[] = [];
    const a = candidate(store, clock, 'a', {
      onStartedLeading: (signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => order.push('work told to stop'));
          finishWork = () => {
            order.push('work stopped');
            resolve();
          };
        }),
      onStoppedLeading: () => order.push(`stopped, lease held by "${store.spec().holderIdentity}"`),
    });
    await settle();
    const b = candidate(store, clock, 'b');
    await clock.advance(4 * SECOND);
    a.stop();
    await settle();
    expect(order).toEqual(['work told to stop']);
    expect(store.spec().holderIdentity).toBe('a'); // not released while the work runs
    finishWork();
    await expect(a.end).resolves.toBe('stopped');
    expect(order).toEqual(['work told to stop', 'work stopped', 'stopped, lease held by ""']);
    expect(store.spec()).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await clock.advance(2 * SECOND); // b's next attempt, not a lease duration later
    expect(b.elector.isLeader()).toBe(true);
    expect(store.spec()).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    b.stop();
    await b.end;
  });

  it('does not release on stop when releaseOnStop is false', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a', { releaseOnStop: false });
    await settle();
    a.stop();
    await expect(a.end).resolves.toBe('stopped');
    expect(store.spec().holderIdentity).toBe('a');
    expect(a.events).toEqual(['leader a', 'started', 'stopped']);
  });

  it('release() does not overwrite a lease someone else has since taken', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a', { releaseOnStop: false });
    await settle();
    a.stop();
    await a.end;
    store.put({ holderIdentity: 'c', leaseDurationSeconds: 15, renewTime: new V1MicroTime(clock.now()) });
    await expect(a.elector.release()).resolves.toBe(false);
    expect(store.spec().holderIdentity).toBe('c');
  });

  it('stops waiting when stopped before it could acquire, without ever leading', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    store.put({ holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: new V1MicroTime(clock.now()) });
    const b = candidate(store, clock, 'b');
    await clock.advance(3 * SECOND);
    b.stop();
    await expect(b.end).resolves.toBe('stopped');
    expect(b.events).toEqual(['leader x']);
    expect(store.spec().holderIdentity).toBe('x');
  });

  it('releases a lease won by an attempt that was in flight when stopped', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    let proceed: () => void = () => {};
    store.before = (op) => {
      if (op === 'create') return new Promise<void>((resolve) => (proceed = resolve));
    };
    const a = candidate(store, clock, 'a');
    await settle();
    a.stop();
    store.before = undefined;
    proceed();
    await expect(a.end).resolves.toBe('stopped');
    expect(a.events).not.toContain('started');
    expect(store.spec().holderIdentity).toBe('');
  });

  it('waits between acquire attempts for the retry period plus up to 120% jitter', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    store.put({ holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: new V1MicroTime(clock.now()) });
    const b = candidate(store, clock, 'b', { random: () => 0.5 });
    await settle();
    await clock.advance(3.2 * SECOND - 1);
    expect(store.calls).toEqual(['get']);
    await clock.advance(1);
    expect(store.calls).toEqual(['get', 'get']);
    b.stop();
    await b.end;
  });

  it('keeps leading when onStartedLeading fails', async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate(store, clock, 'a', { onStartedLeading: () => Promise.reject(new Error('boom')) });
    await clock.advance(4 * SECOND);
    expect(a.elector.isLeader()).toBe(true);
    a.stop();
    await expect(a.end).resolves.toBe('stopped');
  });

  it('refuses timings that would let two leaders overlap, and a second run()', async () => {
    const store = new MemoryLeaseStore();
    const base = {
      leaseName: 'l',
      namespace: 'ns',
      identity: 'a',
      onStartedLeading: () => {},
      onStoppedLeading: () => {},
    };
    expect(
      () => new LeaderElector(store, { ...base, leaseDurationSeconds: 10, renewDeadlineSeconds: 10 }),
    ).toThrow(RangeError);
    expect(
      () => new LeaderElector(store, { ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 }),
    ).toThrow(RangeError);
    expect(() => new LeaderElector(store, { ...base, identity: '' })).toThrow(RangeError);
    const clock = new FakeClock();
    const elector = new LeaderElector(store, { ...base, clock });
    const stop = new AbortController();
    const running = elector.run(stop.signal);
    await expect(elector.run()).rejects.toThrow(/already running/);
    stop.abort();
    await running;
  });
});

describe('clientNodeLeaseStore', () => {
  /** A CoordinationV1Api whose HTTP transport is `respond`, recording the requests. */
  function api(respond: (req: RequestContext) => { status: number; body: unknown }): {
    store: LeaseStore;
    sent: RequestContext[];
  } {
    const sent: RequestContext[] = [];
    const httpApi = wrapHttpLibrary({
      async send(req) {
        sent.push(req);
        const { status, body } = respond(req);
        return new ResponseContext(
          status,
          { 'content-type': 'application/json' },
          new SelfDecodingBody(Promise.resolve(Buffer.from(JSON.stringify(body)))),
        );
      },
    });
    const coordination = new CoordinationV1Api(
      createConfiguration({ baseServer: new ServerConfiguration('https://k8s.test', {}), httpApi }),
    );
    return { store: clientNodeLeaseStore(coordination, 'ns', 'l'), sent };
  }
  const status = (code: number, reason: string) => ({
    status: code,
    body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code },
  });
  const wireLease = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'l', namespace: 'ns', resourceVersion: '7' },
    spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: '2025-01-01T00:00:01.123456Z' },
  };

  it('reads the Lease, with its times as V1MicroTime', async () => {
    const { store, sent } = api(() => ({ status: 200, body: wireLease }));
    const lease = await store.get();
    expect(sent[0]!.getHttpMethod()).toBe('GET');
    expect(sent[0]!.getUrl()).toBe('https://k8s.test/apis/coordination.k8s.io/v1/namespaces/ns/leases/l');
    expect(lease?.metadata?.resourceVersion).toBe('7');
    expect(lease?.spec?.renewTime).toBeInstanceOf(V1MicroTime);
    expect(lease?.spec?.renewTime?.getTime()).toBe(Date.UTC(2025, 0, 1, 0, 0, 1, 123));
  });

  it('maps a 404 on read to undefined', async () => {
    const { store } = api(() => status(404, 'NotFound'));
    await expect(store.get()).resolves.toBeUndefined();
  });

  it('sends times with microsecond precision even when given plain Dates', async () => {
    const { store, sent } = api(() => ({ status: 200, body: wireLease }));
    const when = new Date(Date.UTC(2025, 0, 1, 0, 0, 2, 500));
    await store.update({
      metadata: { resourceVersion: '7' },
      spec: { holderIdentity: 'a', renewTime: when, acquireTime: when },
    });
    expect(sent[0]!.getHttpMethod()).toBe('PUT');
    const body = JSON.parse(sent[0]!.getBody() as string) as V1Lease;
    expect(body.metadata).toEqual({ name: 'l', namespace: 'ns', resourceVersion: '7' });
    expect(body.spec?.renewTime).toBe('2025-01-01T00:00:02.500000Z');
    expect(body.spec?.acquireTime).toBe('2025-01-01T00:00:02.500000Z');
  });

  it('creates the Lease in its namespace', async () => {
    const { store, sent } = api(() => ({ status: 201, body: wireLease }));
    await store.create({ spec: { holderIdentity: 'a', renewTime: new V1MicroTime(0) } });
    expect(sent[0]!.getHttpMethod()).toBe('POST');
    expect(sent[0]!.getUrl()).toBe('https://k8s.test/apis/coordination.k8s.io/v1/namespaces/ns/leases');
    expect(JSON.parse(sent[0]!.getBody() as string)).toMatchObject({
      metadata: { name: 'l', namespace: 'ns' },
      spec: { renewTime: '1970-01-01T00:00:00.000000Z' },
    });
  });

  it('maps a 409 on create or replace to LeaseConflictError', async () => {
    const { store } = api(() => status(409, 'Conflict'));
    await expect(store.update({ spec: {} })).rejects.toBeInstanceOf(LeaseConflictError);
    await expect(store.create({ spec: {} })).rejects.toBeInstanceOf(LeaseConflictError);
  });

  it('wraps other failures with the Lease named and the API error as cause', async () => {
    const { store } = api(() => status(403, 'Forbidden'));
    const err = (await store.get().catch((e: unknown) => e)) as Error;
    expect(err).not.toBeInstanceOf(LeaseConflictError);
    expect(err.message).toBe('reading Lease ns/l');
    expect(err.cause).toMatchObject({ code: 403 });
  });
});
