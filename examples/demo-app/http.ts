// The little HTTP plumbing the demo needs, on node:http alone: a route table, JSON bodies both ways,
// and the one error type that turns into an answer naming the tier that failed.
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Tier = 'web' | 'database' | 'cache' | 'shards' | 'edgeCache' | 'queue';

/**
 * A failure the client should see as JSON `{ error, tier, message }`: a tier that is not configured
 * (501), down or timing out (503), or a request it cannot serve (400, 404).
 */
export class TierError extends Error {
  override name = 'TierError';
  readonly tier: Tier;
  readonly status: number;
  constructor(tier: Tier, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.tier = tier;
    this.status = status;
  }
}

/** The 501 of a tier whose Secret entry is absent. */
export const notConfigured = (tier: Tier, variable: string, what: string, spec: string) =>
  new TierError(
    tier,
    501,
    `${variable} is not set: this app has no ${what} (add ${spec} to the ScalableApp)`,
  );

export type Request = {
  method: string;
  path: string;
  query: URLSearchParams;
  params: Record<string, string>;
  headers: IncomingMessage['headers'];
  /** The body parsed as JSON: {} when empty, a 400 when it is not JSON, a 413 past the limit. */
  json(): Promise<Record<string, unknown>>;
};

export type Reply = {
  status: number;
  /** Sent as JSON, unless `text` is given. */
  body?: unknown;
  text?: string;
  headers?: Record<string, string | string[]>;
};

export type Handler = (req: Request) => Promise<Reply>;

type Route = { method: string; pattern: RegExp; keys: string[]; handler: Handler };

/** Routes like `/db/items/:id`; a parameter is one path segment, percent-decoded. */
export class Router {
  readonly #routes: Route[] = [];

  on(method: string, path: string, handler: Handler): this {
    const keys: string[] = [];
    const source = path
      .split('/')
      .map((seg) => {
        if (!seg.startsWith(':')) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        keys.push(seg.slice(1));
        return '([^/]+)';
      })
      .join('/');
    this.#routes.push({ method, pattern: new RegExp(`^${source}$`), keys, handler });
    return this;
  }

  /** The handler and parameters for a request, a 405 when only the method differs, else undefined. */
  match(
    method: string,
    path: string,
  ): { handler: Handler; params: Record<string, string> } | { allowed: string[] } | undefined {
    const allowed: string[] = [];
    for (const r of this.#routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) {
        allowed.push(r.method);
        continue;
      }
      const params: Record<string, string> = {};
      for (const [i, key] of r.keys.entries()) {
        try {
          params[key] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new TierError('web', 400, `path parameter ${key} is badly percent-encoded`);
        }
      }
      return { handler: r.handler, params };
    }
    return allowed.length ? { allowed } : undefined;
  }
}

export const MAX_BODY_BYTES = 64 * 1024;

/** Reads and parses a JSON object body, within MAX_BODY_BYTES. */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new TierError('web', 413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TierError('web', 400, 'the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TierError('web', 400, 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

export function send(res: ServerResponse, reply: Reply, head = false): void {
  const isText = reply.text !== undefined;
  const payload = isText ? reply.text! : `${JSON.stringify(reply.body ?? {})}\n`;
  const headers: Record<string, string | string[] | number> = {
    ...(isText ? {} : { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }),
    ...reply.headers,
  };
  if (reply.status !== 304) headers['content-length'] = Buffer.byteLength(payload);
  res.writeHead(reply.status, headers);
  res.end(head || reply.status === 304 ? undefined : payload);
}

/** Waits at most `ms` for `promise`; past it rejects with a TierError 503 naming the tier. */
export async function within<T>(tier: Tier, ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TierError(tier, 503, `${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
