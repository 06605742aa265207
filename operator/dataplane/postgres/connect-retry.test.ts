import { connectWithin, isTransientConnectError } from './connect-retry.ts';

const failure = (code: string) => Object.assign(new Error(`connect ${code}`), { code });

/** Clients that fail to connect with these errors in turn, then connect; what happened to each. */
function clients(failures: Error[]) {
  const log: string[] = [];
  let n = 0;
  const make = () => {
    const i = n++;
    return {
      i,
      connect: async () => {
        const f = failures[i];
        log.push(`connect ${i}`);
        if (f) throw f;
      },
      end: async () => void log.push(`end ${i}`),
    };
  };
  return { make, log };
}

describe('connecting to a server that may be away for a moment', () => {
  it('tries again with a new client while the server refuses, and returns the one that connected', async () => {
    const c = clients([failure('ECONNREFUSED'), failure('57P03')]);
    const retried: unknown[] = [];
    const client = await connectWithin(c.make, {
      withinMs: 10_000,
      pauseMs: 1,
      onRetry: (e) => retried.push(e),
    });
    expect(client.i).toBe(2);
    expect(c.log).toEqual(['connect 0', 'end 0', 'connect 1', 'end 1', 'connect 2']);
    expect(retried).toHaveLength(2);
  });

  it('throws at once what the server answered: a refused password is no reason to wait', async () => {
    const c = clients([failure('28P01')]);
    await expect(connectWithin(c.make, { withinMs: 10_000, pauseMs: 1 })).rejects.toThrow('connect 28P01');
    expect(c.log).toEqual(['connect 0', 'end 0']);
  });

  it('gives up past the deadline with the last error', async () => {
    const c = clients(Array.from({ length: 1000 }, () => failure('ECONNREFUSED')));
    await expect(connectWithin(c.make, { withinMs: 50, pauseMs: 10 })).rejects.toThrow(
      'connect ECONNREFUSED',
    );
    // Tried more than once, and stopped long before the failures ran out.
    const tries = c.log.filter((l) => l.startsWith('connect')).length;
    expect(tries).toBeGreaterThan(1);
    expect(tries).toBeLessThan(1000);
  });

  it('counts node-postgres’ connect timeout as transient, and nothing it does not know', () => {
    expect(isTransientConnectError(new Error('timeout expired'))).toBe(true);
    expect(isTransientConnectError(new Error('relation "events" does not exist'))).toBe(false);
    expect(isTransientConnectError(undefined)).toBe(false);
  });
});
