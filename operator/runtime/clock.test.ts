import { sleep, systemClock } from './clock.ts';
import { FakeClock, settle } from './fake-clock.ts';

describe('FakeClock', () => {
  it('stands still until advanced, then fires due timers in time order, each at its own instant', async () => {
    const clock = new FakeClock(1000);
    const fired: Array<[string, number]> = [];
    clock.setTimer(() => fired.push(['late', clock.now()]), 300);
    clock.setTimer(() => fired.push(['early', clock.now()]), 100);
    clock.setTimer(() => fired.push(['same time, made later', clock.now()]), 100);
    expect(clock.now()).toBe(1000);
    await clock.advance(299);
    expect(fired).toEqual([
      ['early', 1100],
      ['same time, made later', 1100],
    ]);
    expect(clock.now()).toBe(1299);
    await clock.advance(1);
    expect(fired.at(-1)).toEqual(['late', 1300]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('fires timers set by timers within the same advance, and not cancelled ones', async () => {
    const clock = new FakeClock(0);
    const fired: number[] = [];
    clock.setTimer(() => clock.setTimer(() => fired.push(clock.now()), 50), 50);
    const cancel = clock.setTimer(() => fired.push(-1), 10);
    cancel();
    await clock.advance(100);
    expect(fired).toEqual([100]);
  });
});

describe('sleep', () => {
  it('resolves after the time on the given clock', async () => {
    const clock = new FakeClock();
    let woke = false;
    void sleep(clock, 500).then(() => (woke = true));
    await clock.advance(499);
    expect(woke).toBe(false);
    await clock.advance(1);
    expect(woke).toBe(true);
  });

  it('resolves early when its signal aborts, and cancels its timer', async () => {
    const clock = new FakeClock();
    const stop = new AbortController();
    let woke = false;
    void sleep(clock, 60_000, stop.signal).then(() => (woke = true));
    stop.abort();
    await settle();
    expect(woke).toBe(true);
    expect(clock.pendingTimers()).toBe(0);
    await expect(sleep(clock, 60_000, stop.signal)).resolves.toBeUndefined(); // already aborted
  });

  it('works on the system clock', async () => {
    await expect(sleep(systemClock, 1)).resolves.toBeUndefined();
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});
