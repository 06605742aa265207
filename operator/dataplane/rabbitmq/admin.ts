// What the operator (and the data-plane tests and benchmarks) ask a RabbitMQ cluster, through its
// management HTTP API with Node's own fetch and the monitoring login (read-only views): queue depths
// for the queue autoscaler and the running members. It never publishes: that login may not.
import { Agent, fetch, type Response } from 'undici';
import { VHOST } from '../../server-config/rabbitmq.ts';

export interface QueueDepth {
  ready: number;
  unacknowledged: number;
  consumers: number;
}

export interface BrokerAdmin {
  /**
   * messages_ready and messages_unacknowledged of a queue (default vhost `/`) and its consumers, as
   * the management API last aggregated them: up to about one statistics interval old
   * (STATS_INTERVAL_MS in config.ts). Fails, rather than answering 0, while the queue has no
   * statistics yet (just declared, or its leader's node just restarted).
   */
  queueDepth(queue: string, vhost?: string): Promise<QueueDepth>;
  /** Names of the cluster's running nodes, sorted. */
  clusterNodes(): Promise<string[]>;
  /** Closes its connections (see ManagementApi.close); keep one admin for as long as it is used. */
  close(): Promise<void>;
}

export type BrokerAdminOptions = {
  /** The management API's origin, e.g. https://shop-mq.prod.svc:15672 (http:// when TLS is off). */
  baseUrl: string;
  user: string;
  password: string;
  /**
   * With https: the PEM certificate(s) of the CA the server's certificate must chain to (the app's
   * CA). The host name is checked too, against `servername` when given (a test reaching 127.0.0.1).
   */
  ca?: string | undefined;
  servername?: string | undefined;
  /** Per request. Default 5000 ms. */
  timeoutMs?: number;
};

/** A request the management API refused or did not answer; never carries the password. */
export class BrokerApiError extends Error {
  /** The HTTP status, when there was a response. */
  readonly status: number | undefined;

  constructor(message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BrokerApiError';
    this.status = status;
  }
}

/** The management API's JSON over HTTP, authenticated; `path` starts with /api/. */
export interface ManagementApi {
  get<T>(path: string): Promise<T>;
  /**
   * Writes need a login that may make them (the monitoring one may not). `what` names the request
   * in errors instead of its path, when the path holds a login's name.
   */
  put(path: string, body: unknown, what?: string): Promise<void>;
  delete(path: string, what?: string): Promise<void>;
  /** Closes the connection pool of an https API (its own, for its CA); nothing to do for http. */
  close(): Promise<void>;
}

export function managementApi(o: BrokerAdminOptions): ManagementApi {
  const origin = new URL(o.baseUrl);
  if (origin.username || origin.password) throw new Error('baseUrl must not carry credentials');
  if (origin.protocol === 'https:' && !o.ca) throw new Error('an https baseUrl needs the CA to trust');
  if (origin.protocol !== 'https:' && o.ca) throw new Error('a CA is only for an https baseUrl');
  // Its own pool, for its CA: keep the API for as long as its broker is polled, so a poll reuses a
  // TLS session instead of making one (the caller closes it when the address, login or CA changes).
  const dispatcher = o.ca
    ? new Agent({ connect: { ca: o.ca, ...(o.servername ? { servername: o.servername } : {}) } })
    : undefined;
  const base = origin.origin;
  const authorization = `Basic ${Buffer.from(`${o.user}:${o.password}`).toString('base64')}`;
  const timeoutMs = o.timeoutMs ?? 5000;

  async function request<T>(method: string, path: string, body?: unknown, label?: string): Promise<T> {
    const what = label ? `${label} (${method} ${base})` : `${method} ${base}${path}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
        ...(dispatcher ? { dispatcher } : {}),
      });
      text = await res.text();
    } catch (err) {
      // By name: under a test runner the error may come from another realm than our Error.
      const e = err as { name?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } };
      // fetch's own message is only "fetch failed"; the reason is in its cause.
      const why = e?.cause?.code ?? e?.cause?.message;
      const code = why ? ` (${String(why)})` : '';
      const message =
        e?.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${String(e?.message)}${code}`;
      throw new BrokerApiError(`${what}: ${message}`, undefined, { cause: err });
    }
    if (!res.ok) {
      // RabbitMQ explains itself in {"error": ..., "reason": ...}; it never echoes the credentials.
      let reason = text.slice(0, 200);
      try {
        const parsed = JSON.parse(text) as { reason?: unknown; error?: unknown };
        reason = String(parsed.reason ?? parsed.error ?? reason);
      } catch {
        // Not JSON: keep the start of the text.
      }
      // The generated username is half of a credential: it stays out of logs and events too.
      const who = res.status === 401 ? ' (the login from the credentials was refused)' : '';
      throw new BrokerApiError(`${what}: HTTP ${res.status}${who}: ${reason}`, res.status);
    }
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch (err) {
      throw new BrokerApiError(`${what}: the answer is not JSON`, res.status, { cause: err });
    }
  }

  return {
    get: (path) => request('GET', path),
    put: (path, body, what) => request('PUT', path, body, what),
    delete: (path, what) => request('DELETE', path, undefined, what),
    close: async () => dispatcher?.close(),
  };
}

/** A queue as GET /api/queues/<vhost>/<name> describes it (the fields we read). */
export interface QueueInfo {
  name: string;
  vhost: string;
  type?: string;
  durable?: boolean;
  arguments?: Record<string, unknown>;
  /** Quorum queues: the nodes holding a replica, and those of them online. */
  members?: string[];
  online?: string[];
  leader?: string;
  messages_ready?: number;
  messages_unacknowledged?: number;
  consumers?: number;
}

export const queuePath = (queue: string, vhost = VHOST) =>
  `/api/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(queue)}`;

export function brokerAdmin(o: BrokerAdminOptions): BrokerAdmin {
  const api = managementApi(o);
  const describe = (queue: string, vhost: string) =>
    `queue ${JSON.stringify(queue)} in vhost ${JSON.stringify(vhost)}`;

  return {
    async queueDepth(queue, vhost = VHOST) {
      let q: QueueInfo;
      try {
        q = await api.get<QueueInfo>(queuePath(queue, vhost));
      } catch (err) {
        if (err instanceof BrokerApiError && err.status === 404) {
          throw new BrokerApiError(`${describe(queue, vhost)} does not exist`, 404, { cause: err });
        }
        throw err;
      }
      const { messages_ready: ready, messages_unacknowledged: unacknowledged, consumers } = q;
      if (typeof ready !== 'number' || typeof unacknowledged !== 'number') {
        throw new BrokerApiError(`${describe(queue, vhost)} has no statistics yet`);
      }
      return { ready, unacknowledged, consumers: consumers ?? 0 };
    },

    async clusterNodes() {
      const nodes = await api.get<{ name: string; running?: boolean }[]>('/api/nodes');
      return nodes
        .filter((n) => n.running)
        .map((n) => n.name)
        .sort();
    },

    close: () => api.close(),
  };
}
