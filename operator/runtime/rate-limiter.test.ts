import {
  CoordinationV1Api,
  KubeConfig,
  ResponseContext,
  SelfDecodingBody,
  wrapHttpLibrary,
  type RequestContext,
} from '@kubernetes/client-node';
import { FakeClock, settle } from './fake-clock.ts';
import { rateLimited, rateLimitedApiClient, TokenBucket } from './rate-limiter.ts';

describe('TokenBucket', () => {
  it('allows a burst, then one call per 1/qps seconds', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 3, clock });
    expect([bucket.tryAcquire(), bucket.tryAcquire(), bucket.tryAcquire(), bucket.tryAcquire()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    await clock.advance(99);
    expect(bucket.tryAcquire()).toBe(false);
    await clock.advance(1);
    expect(bucket.tryAcquire()).toBe(true);
    expect(bucket.tryAcquire()).toBe(false);
  });

  it('refills no further than the burst', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 2, clock });
    await clock.advance(60_000);
    expect(bucket.available()).toBe(2);
  });

  it('acquire() returns at once while tokens last, then serves waiters in order at the refill rate', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 5, burst: 2, clock });
    const t0 = clock.now();
    const doneAt: Array<[number, number]> = [];
    const calls = [0, 1, 2, 3].map((i) => bucket.acquire().then(() => doneAt.push([i, clock.now() - t0])));
    await settle();
    expect(doneAt).toEqual([
      [0, 0],
      [1, 0],
    ]);
    expect(bucket.tryAcquire()).toBe(false); // the waiters hold the next tokens
    await clock.advance(400);
    await Promise.all(calls);
    expect(doneAt).toEqual([
      [0, 0],
      [1, 0],
      [2, 200],
      [3, 400],
    ]);
  });

  it('rejects a non-positive rate or burst', () => {
    expect(() => new TokenBucket({ qps: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ qps: 1, burst: 0 })).toThrow(RangeError);
    expect(() => new TokenBucket({ qps: 1, burst: 1.5 })).toThrow(RangeError);
  });
});

describe('rateLimited', () => {
  it('waits for a token before each call and passes arguments, `this` and results through', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    const seen: string[] = [];
    const target = {
      prefix: 'got',
      async call(x: string): Promise<string> {
        seen.push(x);
        return `${this.prefix} ${x}`;
      },
    };
    const limited = rateLimited(target.call, bucket);
    const first = limited.call(target, 'a');
    const second = limited.call(target, 'b');
    await settle();
    expect(seen).toEqual(['a']);
    await expect(first).resolves.toBe('got a');
    await clock.advance(1000);
    expect(seen).toEqual(['a', 'b']);
    await expect(second).resolves.toBe('got b');
  });

  it('passes a rejection through', async () => {
    const limited = rateLimited(async () => Promise.reject(new Error('nope')), { acquire: async () => {} });
    await expect(limited()).rejects.toThrow('nope');
  });
});

describe('rateLimitedApiClient', () => {
  function kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://k8s.test:6443', skipTLSVerify: false }],
      users: [{ name: 'u', token: 'abc' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  }

  it('sends each request to the current cluster with its credentials, one token per request', async () => {
    const clock = new FakeClock();
    const sent: RequestContext[] = [];
    const httpApi = wrapHttpLibrary({
      async send(request) {
        sent.push(request);
        const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l' } };
        return new ResponseContext(
          200,
          { 'content-type': 'application/json' },
          new SelfDecodingBody(Promise.resolve(Buffer.from(JSON.stringify(lease)))),
        );
      },
    });
    const api = rateLimitedApiClient(
      kubeConfig(),
      CoordinationV1Api,
      new TokenBucket({ qps: 2, burst: 1, clock }),
      { httpApi, userAgent: 'test-agent' },
    );
    const first = api.readNamespacedLease({ name: 'l', namespace: 'ns' });
    const second = api.readNamespacedLease({ name: 'l', namespace: 'ns' });
    await expect(first).resolves.toMatchObject({ metadata: { name: 'l' } });
    expect(sent).toHaveLength(1);
    await clock.advance(500);
    await expect(second).resolves.toMatchObject({ metadata: { name: 'l' } });
    expect(sent).toHaveLength(2);
    expect(sent[0]!.getUrl()).toBe(
      'https://k8s.test:6443/apis/coordination.k8s.io/v1/namespaces/ns/leases/l',
    );
    expect(sent[0]!.getHeaders()).toMatchObject({ Authorization: 'Bearer abc', 'User-Agent': 'test-agent' });
  });

  it('refuses a kubeconfig without a current cluster', () => {
    expect(() =>
      rateLimitedApiClient(new KubeConfig(), CoordinationV1Api, new TokenBucket({ qps: 1, burst: 1 })),
    ).toThrow(/no current cluster/);
  });
});
