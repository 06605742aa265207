// Client-side rate limiting of apiserver requests, like client-go's QPS/Burst: a reconcile storm must
// not flood the apiserver (which would throttle every client of the cluster, not just us).
import {
  createConfiguration,
  ServerConfiguration,
  setHeaderMiddleware,
  type ApiConstructor,
  type ApiType,
  type HttpLibrary,
  type KubeConfig,
  type Middleware,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { sleep, systemClock, type Clock } from './clock.ts';

export interface TokenBucketOptions {
  /** Sustained rate: tokens added per second. */
  qps: number;
  /** Bucket size: how many calls may go at once after a quiet spell. */
  burst: number;
  clock?: Clock;
}

/**
 * A token bucket that starts full. acquire() reserves a token even when none is left (the count goes
 * negative) and waits until it would have been refilled, so waiting callers are served in FIFO order
 * and tryAcquire() cannot jump the queue.
 */
export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #refilledAt: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.qps > 0) || !Number.isFinite(options.qps)) {
      throw new RangeError(`token bucket: qps must be a positive number, got ${options.qps}`);
    }
    if (!Number.isInteger(options.burst) || options.burst < 1) {
      throw new RangeError(`token bucket: burst must be a positive integer, got ${options.burst}`);
    }
    this.qps = options.qps;
    this.burst = options.burst;
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.burst;
    this.#refilledAt = this.#clock.now();
  }

  /** Takes a token if one is available now. */
  tryAcquire(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Waits for a token (in FIFO order with other waiters) and takes it. */
  async acquire(): Promise<void> {
    this.#refill();
    this.#tokens -= 1;
    if (this.#tokens >= 0) return;
    await sleep(this.#clock, (-this.#tokens * 1000) / this.qps);
  }

  /** Tokens available now; negative while callers are waiting. */
  available(): number {
    this.#refill();
    return this.#tokens;
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = Math.max(0, now - this.#refilledAt);
    this.#refilledAt = now;
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.qps) / 1000);
  }
}

/** Anything with acquire(); TokenBucket or a test double. */
export interface RateLimiter {
  acquire(): Promise<void>;
}

/** Wraps `fn` so that every call first waits for a token from `limiter`. */
export function rateLimited<T extends (...args: never[]) => Promise<unknown>>(
  fn: T,
  limiter: RateLimiter,
): T {
  const wrapped = async function (this: unknown, ...args: Parameters<T>): Promise<Awaited<ReturnType<T>>> {
    await limiter.acquire();
    return (await fn.apply(this, args)) as Awaited<ReturnType<T>>;
  };
  return wrapped as unknown as T;
}

/**
 * A @kubernetes/client-node promise middleware that waits for a token before each request is sent.
 * Goes in `promiseMiddleware` of `createConfiguration` (which `rateLimitedApiClient` does). Watches
 * opened by `Watch` use fetch directly and are not limited, which is what client-go does too.
 */
export function rateLimitMiddleware(limiter: RateLimiter): Middleware {
  return {
    async pre(context: RequestContext): Promise<RequestContext> {
      await limiter.acquire();
      return context;
    },
    async post(context: ResponseContext): Promise<ResponseContext> {
      return context;
    },
  };
}

export interface ApiClientOptions {
  /** More promise middleware, run after the rate limiter (e.g. metrics' `apiRequestMiddleware`). */
  middleware?: Middleware[];
  userAgent?: string;
  /** Replaces the HTTP transport; for tests. */
  httpApi?: HttpLibrary;
}

/**
 * `kc.makeApiClient(apiClass)`, but every request waits for a token from `limiter` first. makeApiClient
 * takes no middleware, so this builds the same configuration itself: the kubeconfig's current cluster
 * and its credentials, and a User-Agent header.
 */
export function rateLimitedApiClient<T extends ApiType>(
  kc: KubeConfig,
  apiClass: ApiConstructor<T>,
  limiter: RateLimiter,
  options: ApiClientOptions = {},
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('rateLimitedApiClient: the kubeconfig has no current cluster');
  return new apiClass(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      middleware: [setHeaderMiddleware('User-Agent', options.userAgent ?? 'scalableapp-operator')],
      promiseMiddleware: [rateLimitMiddleware(limiter), ...(options.middleware ?? [])],
      ...(options.httpApi ? { httpApi: options.httpApi } : {}),
    }),
  );
}
