import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { fetch } from 'undici';
import type { KubernetesObject } from '@kubernetes/client-node';
import { resourceOfPath } from '../runtime/metrics.ts';

/** An error response from the apiserver, with its HTTP status and the Status object's reason. */
export class ApiError extends Error {
  readonly status: number;
  readonly reason: string | undefined;
  readonly body: unknown;
  constructor(method: string, path: string, status: number, body: unknown) {
    const b = body as { message?: string; reason?: string } | undefined;
    super(`${method} ${path}: ${status} ${b?.message ?? ''}`.trim());
    this.status = status;
    this.reason = b?.reason;
    this.body = body;
  }
}

export const isNotFound = (e: unknown) => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown) => e instanceof ApiError && e.status === 409;
/** What a JSON patch whose `test` operation failed is answered with. */
export const isUnprocessable = (e: unknown) => e instanceof ApiError && e.status === 422;

/** One RFC 6902 operation, of the kinds the operator sends. */
export type JsonPatchOp =
  | { readonly op: 'test'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

export type Verb = 'get' | 'list' | 'apply' | 'create' | 'replace' | 'delete' | 'patch';
const MUTATING: ReadonlySet<Verb> = new Set(['apply', 'create', 'replace', 'delete', 'patch']);

export interface KubeHooks {
  /** Waits for a client-side rate-limit token before each request. */
  beforeRequest?: () => Promise<void>;
  /** Called for every request, so mutating calls can be counted. */
  onRequest?: (verb: Verb, resource: string, mutating: boolean) => void;
}

/**
 * The operator's one door to the apiserver. Every request goes through `request`, so rate limiting
 * and the count of mutating calls cannot be bypassed. Uses client-node's authentication (tokens,
 * client certs, exec plugins) and its undici dispatcher.
 */
export class Kube {
  readonly kc: KubeConfig;
  readonly fieldManager: string;
  private readonly hooks: KubeHooks;
  /**
   * client-node makes a new undici Agent for every request it authenticates, so no connection is
   * ever reused (read from its source, not measured). One kept per client reuses kept-alive
   * connections, as client-go's transport does. (The TLS settings come from the kubeconfig, read
   * once; tokens are headers, set per request.)
   */
  private dispatcher: unknown;

  constructor(kc: KubeConfig, fieldManager: string, hooks: KubeHooks = {}) {
    this.kc = kc;
    this.fieldManager = fieldManager;
    this.hooks = hooks;
  }

  async request<T>(
    verb: Verb,
    method: HttpMethod,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    await this.hooks.beforeRequest?.();
    this.hooks.onRequest?.(verb, resourceOfPath(path.split('?')[0]!), MUTATING.has(verb));
    const ctx = new RequestContext(cluster.server + path, method);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = contentType;
    let res;
    try {
      res = await fetch(cluster.server + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // client-node and this module may resolve different copies of undici's Dispatcher type.
        dispatcher: (this.dispatcher ??= ctx.getDispatcher()) as never,
      });
    } catch (e) {
      throw new Error(`${method} ${path} failed`, { cause: e });
    }
    const text = await res.text();
    const parsed = parseBody(text);
    if (!res.ok) throw new ApiError(method, path, res.status, parsed);
    return parsed as T;
  }

  get<T extends KubernetesObject>(path: string): Promise<T> {
    return this.request<T>('get', HttpMethod.GET, path);
  }

  list<T extends KubernetesObject>(
    path: string,
    labelSelector?: string,
  ): Promise<{ apiVersion?: string; kind?: string; metadata: { resourceVersion: string }; items: T[] }> {
    const q = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return this.request('list', HttpMethod.GET, path + q);
  }

  /** Server-side apply with the operator's field manager. `force` takes over fields someone else set by hand. */
  apply<T extends KubernetesObject>(
    objectPath: string,
    obj: unknown,
    opts: { force?: boolean; subresource?: string } = {},
  ): Promise<T> {
    const sub = opts.subresource ? `/${opts.subresource}` : '';
    const q = `?fieldManager=${encodeURIComponent(this.fieldManager)}&force=${opts.force ?? true}`;
    return this.request<T>(
      'apply',
      HttpMethod.PATCH,
      objectPath + sub + q,
      obj,
      'application/apply-patch+yaml',
    );
  }

  create<T extends KubernetesObject>(collection: string, obj: unknown): Promise<T> {
    return this.request<T>('create', HttpMethod.POST, collection, obj);
  }

  /** JSON merge patch of a few fields (pod role labels), for objects the operator does not apply. */
  mergePatch<T extends KubernetesObject>(objectPath: string, patch: unknown): Promise<T> {
    return this.request<T>('patch', HttpMethod.PATCH, objectPath, patch, 'application/merge-patch+json');
  }

  /**
   * JSON patch: operations applied in order, all or none. A `test` operation makes the patch
   * conditional on a value still being there (the apiserver answers 422 when it is not).
   */
  jsonPatch<T extends KubernetesObject>(objectPath: string, ops: readonly JsonPatchOp[]): Promise<T> {
    return this.request<T>('patch', HttpMethod.PATCH, objectPath, ops, 'application/json-patch+json');
  }

  /** PUT: the whole object, guarded by its metadata.resourceVersion (a 409 when it changed meanwhile). */
  replace<T extends KubernetesObject>(objectPath: string, obj: unknown): Promise<T> {
    const q = `?fieldManager=${encodeURIComponent(this.fieldManager)}`;
    return this.request<T>('replace', HttpMethod.PUT, objectPath + q, obj);
  }

  delete(
    objectPath: string,
    propagation: 'Background' | 'Foreground' | 'Orphan' = 'Background',
  ): Promise<unknown> {
    return this.request('delete', HttpMethod.DELETE, objectPath, {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      propagationPolicy: propagation,
    });
  }
}

/** Error responses are usually a Status object, but some (a 404 for an unknown group) are plain text. */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { message: text.trim() };
  }
}
