// Connecting to a server that may be away for a moment: a primary restarting, a single-instance
// shard whose pod is briefly out of its Service (kube-proxy then refuses the connection), a Service
// whose rules are not in place yet. The resharding phases run as Jobs that a person reads when they
// fail; one refused connect should not be such a failure.
import pRetry from 'p-retry';

/** Errors of reaching the server, not of what it answered: worth trying again. */
const TRANSIENT = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  // Postgres: the database system is starting up / shutting down / in recovery.
  '57P03',
]);

export const isTransientConnectError = (err: unknown): boolean => {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'string' && TRANSIENT.has(e.code)) return true;
  // node-postgres' own connect timeout carries no code.
  return typeof e?.message === 'string' && /timeout expired/i.test(e.message);
};

export interface Connectable {
  connect(): Promise<unknown>;
  end(): Promise<unknown>;
}

/**
 * A connected client from `make` (a new one per try: a client that failed to connect cannot try
 * again), trying again every `pauseMs` while the failure is transient, for at most `withinMs`
 * (p-retry's `maxRetryTime`). Any other failure (a refused password, a missing database) and the last
 * one past the deadline are thrown.
 */
export function connectWithin<C extends Connectable>(
  make: () => C,
  o: { withinMs: number; pauseMs?: number; onRetry?: (err: unknown) => void },
): Promise<C> {
  return pRetry(
    async () => {
      const client = make();
      try {
        await client.connect();
        return client;
      } catch (err) {
        await client.end().catch(() => {});
        throw err;
      }
    },
    {
      retries: Infinity,
      maxRetryTime: o.withinMs,
      minTimeout: o.pauseMs ?? 1000,
      factor: 1,
      shouldRetry: ({ error }) => {
        if (!isTransientConnectError(error)) return false;
        o.onRetry?.(error);
        return true;
      },
    },
  );
}
