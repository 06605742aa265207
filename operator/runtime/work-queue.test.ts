import { sleep } from './clock.ts';
import { FakeClock, settle } from './fake-clock.ts';
import { runWorkers, WorkQueue, type HandlerOutcome, type ReconcileResult } from './work-queue.ts';

function newQueue(options: ConstructorParameters<typeof WorkQueue>[0] = {}): {
  queue: WorkQueue;
  clock: FakeClock;
} {
  const clock = new FakeClock();
  return { queue: new WorkQueue({ clock, ...options }), clock };
}

/** Keys get() hands out right now, without waiting (each is then done()). */
async function drainReady(queue: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (queue.len() > 0) {
    const key = (await queue.get()) as string;
    keys.push(key);
    queue.done(key);
  }
  return keys;
}

/** A promise whose settlement can be observed synchronously. */
function track<T>(promise: Promise<T>): { settled: () => boolean; value: () => T | undefined } {
  let settled = false;
  let value: T | undefined;
  void promise.then((v) => {
    settled = true;
    value = v;
  });
  return { settled: () => settled, value: () => value };
}

describe('WorkQueue', () => {
  it('hands keys out in FIFO order and deduplicates a key that is already waiting', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/a');
    expect(queue.len()).toBe(2);
    expect(await drainReady(queue)).toEqual(['ns/a', 'ns/b']);
  });

  it('parks a key re-added while it is processed and re-queues it only after done()', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    const key = await queue.get();
    expect(key).toBe('ns/a');
    queue.add('ns/a');
    queue.add('ns/a');
    expect(queue.len()).toBe(0); // a second worker must not get it now
    queue.done('ns/a');
    expect(queue.len()).toBe(1);
    expect(await drainReady(queue)).toEqual(['ns/a']);
  });

  it('does not re-queue a processed key that was not added again', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.done((await queue.get()) as string);
    expect(queue.len()).toBe(0);
  });

  it('get() waits until a key is added', async () => {
    const { queue } = newQueue();
    const got = track(queue.get());
    await settle();
    expect(got.settled()).toBe(false);
    queue.add('ns/a');
    await settle();
    expect(got.value()).toBe('ns/a');
  });

  it('after shutDown(), get() returns undefined (also to waiting callers) and adds are ignored', async () => {
    const { queue } = newQueue();
    const waiting = track(queue.get());
    queue.add('ns/a');
    await settle();
    const waitingAgain = track(queue.get());
    queue.add('ns/b');
    queue.shutDown();
    await settle();
    expect(waiting.value()).toBe('ns/a');
    expect(waitingAgain.settled()).toBe(true);
    expect(waitingAgain.value()).toBeUndefined();
    queue.add('ns/c');
    expect(queue.len()).toBe(0);
    expect(await queue.get()).toBeUndefined();
    expect(queue.isShuttingDown()).toBe(true);
  });

  it('addAfter() makes the key ready only once the delay has passed; the earlier schedule wins', async () => {
    const { queue, clock } = newQueue();
    queue.addAfter('ns/a', 1000);
    queue.addAfter('ns/a', 300);
    queue.addAfter('ns/a', 2000);
    await clock.advance(299);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
    await drainReady(queue);
    await clock.advance(5000);
    expect(queue.len()).toBe(0); // the later schedules were replaced, not kept
  });

  it('addAfter() with no delay adds at once', () => {
    const { queue } = newQueue();
    queue.addAfter('ns/a', 0);
    expect(queue.len()).toBe(1);
  });

  it('addRateLimited() backs off exponentially per key up to the cap, and forget() resets it', async () => {
    const { queue, clock } = newQueue({ baseDelayMs: 5, maxDelayMs: 40 });
    /** How long after addRateLimited the key becomes ready. */
    const delayOf = async (key: string): Promise<number> => {
      queue.addRateLimited(key);
      let waited = 0;
      while (queue.len() === 0) {
        await clock.advance(1);
        waited++;
      }
      await drainReady(queue);
      return waited;
    };
    const delays = [];
    for (let i = 0; i < 6; i++) delays.push(await delayOf('ns/a'));
    expect(delays).toEqual([5, 10, 20, 40, 40, 40]);
    expect(queue.numRequeues('ns/a')).toBe(6);
    expect(await delayOf('ns/b')).toBe(5); // per key
    queue.forget('ns/a');
    expect(queue.numRequeues('ns/a')).toBe(0);
    expect(await delayOf('ns/a')).toBe(5);
  });

  it('defaults to a 5 ms base and a 60 s cap', async () => {
    const { queue, clock } = newQueue();
    for (let i = 0; i < 30; i++) queue.addRateLimited('ns/a'); // the 30th waits 5 ms × 2^29, capped
    await clock.advance(4);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1); // earliest schedule (5 ms) wins
    await drainReady(queue);
    queue.addRateLimited('ns/a');
    await clock.advance(59_999);
    expect(queue.len()).toBe(0);
    await clock.advance(1);
    expect(queue.len()).toBe(1);
  });

  it('shutDown() cancels delayed keys', async () => {
    const { queue, clock } = newQueue();
    queue.addAfter('ns/a', 10);
    queue.shutDown();
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(100);
    expect(queue.len()).toBe(0);
  });

  it('shutDownWithDrain() resolves only once every key in flight is done()', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.add('ns/b');
    const a = (await queue.get()) as string;
    const b = (await queue.get()) as string;
    const drained = track(queue.shutDownWithDrain());
    queue.done(a);
    await settle();
    expect(drained.settled()).toBe(false);
    queue.done(b);
    await settle();
    expect(drained.settled()).toBe(true);
  });

  it('shutDownWithDrain() resolves at once when nothing is in flight', async () => {
    const { queue } = newQueue();
    await expect(queue.shutDownWithDrain()).resolves.toBeUndefined();
  });

  it('reports depth, adds, queue latency, work duration, retries and unfinished work', async () => {
    const depth: number[] = [];
    const latency: number[] = [];
    const work: number[] = [];
    let adds = 0;
    let retries = 0;
    const { queue, clock } = newQueue({
      hooks: {
        depth: (d) => depth.push(d),
        add: () => adds++,
        queueLatency: (s) => latency.push(s),
        workDuration: (s) => work.push(s),
        retry: () => retries++,
      },
    });
    queue.add('ns/a');
    queue.add('ns/a'); // deduplicated: not an add
    queue.add('ns/b');
    await clock.advance(250);
    const a = (await queue.get()) as string;
    await clock.advance(1500);
    expect(queue.unfinishedWorkSeconds()).toBe(1.5);
    const b = (await queue.get()) as string;
    await clock.advance(500);
    expect(queue.unfinishedWorkSeconds()).toBe(2.5);
    expect(queue.longestRunningProcessorSeconds()).toBe(2);
    queue.done(a);
    queue.done(b);
    expect(queue.unfinishedWorkSeconds()).toBe(0);
    queue.addRateLimited('ns/a');
    queue.addAfter('ns/b', 10);

    expect(adds).toBe(2);
    expect(depth).toEqual([1, 2, 1, 0]);
    expect(latency).toEqual([0.25, 1.75]);
    expect(work).toEqual([2, 0.5]);
    expect(retries).toBe(2);
  });

  it('rejects a backoff whose cap is below its base', () => {
    expect(() => new WorkQueue({ baseDelayMs: 10, maxDelayMs: 5 })).toThrow(RangeError);
  });
});

describe('runWorkers', () => {
  /** A handler whose calls stay in flight until the test settles them. */
  function controllableHandler(): {
    handler: (key: string) => Promise<HandlerOutcome>;
    calls: string[];
    inFlight: Map<string, { resolve: (o: HandlerOutcome) => void; reject: (e: unknown) => void }>;
    maxInFlight: () => number;
  } {
    const calls: string[] = [];
    const inFlight = new Map<
      string,
      { resolve: (o: HandlerOutcome) => void; reject: (e: unknown) => void }
    >();
    let max = 0;
    const handler = (key: string): Promise<HandlerOutcome> =>
      new Promise((resolve, reject) => {
        if (inFlight.has(key)) throw new Error(`two workers on ${key}`);
        calls.push(key);
        inFlight.set(key, {
          resolve: (o) => {
            inFlight.delete(key);
            resolve(o);
          },
          reject: (e) => {
            inFlight.delete(key);
            reject(e);
          },
        });
        max = Math.max(max, inFlight.size);
      });
    return { handler, calls, inFlight, maxInFlight: () => max };
  }

  it('runs at most `concurrency` handlers at once and never two on one key', async () => {
    const { queue } = newQueue();
    const h = controllableHandler();
    const running = runWorkers(queue, 2, h.handler);
    for (const k of ['ns/a', 'ns/b', 'ns/c']) queue.add(k);
    await settle();
    expect([...h.inFlight.keys()]).toEqual(['ns/a', 'ns/b']);
    queue.add('ns/a'); // while ns/a is processed
    h.inFlight.get('ns/a')!.resolve('ok');
    await settle();
    expect([...h.inFlight.keys()].sort()).toEqual(['ns/b', 'ns/c']);
    h.inFlight.get('ns/b')!.resolve('ok');
    await settle();
    expect([...h.inFlight.keys()].sort()).toEqual(['ns/a', 'ns/c']); // the parked ns/a, once done
    h.inFlight.get('ns/a')!.resolve('ok');
    h.inFlight.get('ns/c')!.resolve('ok');
    await settle();
    expect(h.calls).toEqual(['ns/a', 'ns/b', 'ns/c', 'ns/a']);
    expect(h.maxInFlight()).toBe(2);
    queue.shutDown();
    await running;
  });

  it('requeues a failing key with backoff, forgets it on success, and honours requeueAfterMs', async () => {
    const { queue, clock } = newQueue({ baseDelayMs: 100 });
    const results: Array<[string, ReconcileResult, unknown]> = [];
    const outcomes: Array<HandlerOutcome | Error> = [
      new Error('boom'),
      new Error('boom again'),
      { requeueAfterMs: 5000 },
      'ok',
    ];
    const calledAt: number[] = [];
    const running = runWorkers(
      queue,
      1,
      async () => {
        calledAt.push(clock.now());
        const next = outcomes.shift() ?? 'ok';
        if (next instanceof Error) throw next;
        return next;
      },
      {
        finished: (key, result, _s, err) => results.push([key, result, (err as Error | undefined)?.message]),
      },
    );
    const t0 = clock.now();
    queue.add('ns/a');
    await settle();
    expect(queue.numRequeues('ns/a')).toBe(1);
    await clock.advance(100);
    expect(queue.numRequeues('ns/a')).toBe(2);
    await clock.advance(199);
    expect(calledAt).toHaveLength(2); // second backoff is 200 ms
    await clock.advance(1);
    expect(queue.numRequeues('ns/a')).toBe(0); // requeue-after forgets the backoff
    await clock.advance(5000);
    expect(calledAt.map((t) => t - t0)).toEqual([0, 100, 300, 5300]);
    expect(results).toEqual([
      ['ns/a', 'error', 'boom'],
      ['ns/a', 'error', 'boom again'],
      ['ns/a', 'requeue_after', undefined],
      ['ns/a', 'success', undefined],
    ]);
    await clock.advance(60_000);
    expect(calledAt).toHaveLength(4);
    queue.shutDown();
    await running;
  });

  it('treats requeueAfterMs <= 0 as a rate-limited requeue', async () => {
    const { queue, clock } = newQueue({ baseDelayMs: 100 });
    const results: ReconcileResult[] = [];
    let calls = 0;
    const running = runWorkers(queue, 1, async () => (++calls === 1 ? { requeueAfterMs: 0 } : 'ok'), {
      finished: (_k, r) => results.push(r),
    });
    queue.add('ns/a');
    await settle();
    expect(calls).toBe(1);
    await clock.advance(100);
    expect(results).toEqual(['requeue', 'success']);
    queue.shutDown();
    await running;
  });

  it('reports each key it starts and how long it took', async () => {
    const { queue, clock } = newQueue();
    const events: string[] = [];
    const running = runWorkers(
      queue,
      1,
      async () => {
        await sleep(clock, 300);
        return 'ok';
      },
      { started: (k) => events.push(`start ${k}`), finished: (k, r, s) => events.push(`${r} ${k} ${s}`) },
    );
    queue.add('ns/a');
    await settle();
    expect(events).toEqual(['start ns/a']);
    await clock.advance(300);
    expect(events).toEqual(['start ns/a', 'success ns/a 0.3']);
    queue.shutDown();
    await running;
  });

  it('resolves once the queue shuts down and rejects a bad concurrency', async () => {
    const { queue } = newQueue();
    const running = track(runWorkers(queue, 3, async () => 'ok'));
    await settle();
    expect(running.settled()).toBe(false);
    queue.shutDown();
    await settle();
    expect(running.settled()).toBe(true);
    await expect(runWorkers(queue, 0, async () => 'ok')).rejects.toThrow(RangeError);
  });
});
