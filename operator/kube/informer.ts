import { Watch } from '@kubernetes/client-node';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Kube } from './client.ts';

export type InformerEvent = 'added' | 'modified' | 'deleted' | 'relisted';

export interface InformerOptions {
  readonly kube: Kube;
  /** Cluster-wide collection path, e.g. /apis/apps/v1/deployments. */
  readonly path: string;
  readonly labelSelector?: string;
  /** Relist this often even when the watch looks healthy: catches a watch that went silent. */
  readonly relistPeriodMs?: number;
  /** Restart a watch that delivered nothing, not even a bookmark, for this long. */
  readonly watchdogMs?: number;
  readonly backoff?: { initialMs: number; maxMs: number };
  readonly onEvent: (event: InformerEvent, obj: KubernetesObject) => void;
  readonly onError?: (err: unknown, attempt: number) => void;
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** managedFields are large and never read by the operator: drop them before caching. */
function strip<T extends KubernetesObject>(o: T): T {
  if (o.metadata?.managedFields) {
    const { managedFields: _drop, ...metadata } = o.metadata;
    return { ...o, metadata };
  }
  return o;
}

/**
 * A list-and-watch cache of one kind. Unlike client-node's informer it never stops on an error: it
 * re-lists after a 410 and otherwise retries with exponential backoff; it relists periodically and
 * restarts a silent watch. Handlers receive frozen cached objects and must only enqueue keys.
 */
export class Informer<T extends KubernetesObject = KubernetesObject> {
  private readonly opts: InformerOptions;
  private readonly store = new Map<string, T>();
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private stopped = false;
  private synced = false;
  private readonly syncWaiters: (() => void)[] = [];
  private relistTimer: NodeJS.Timeout | undefined;
  private relistDue = false;
  private failures = 0;

  constructor(opts: InformerOptions) {
    this.opts = opts;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(`${namespace ?? ''}/${name}`);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    this.stopped = false;
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.relistTimer);
    this.abort?.abort();
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.relist();
          this.scheduleRelist();
        }
        // A watch that closed normally (server timeout, watchdog) resumes from the last
        // resourceVersion; a 410 or the periodic relist lists again.
        needList = (await this.watch()) === 'list-again';
        this.failures = 0;
      } catch (err) {
        if (this.stopped) return;
        needList = true;
        this.failures++;
        this.opts.onError?.(err, this.failures);
        const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
        await sleep(Math.min(maxMs, initialMs * 2 ** (this.failures - 1)));
      }
    }
  }

  private scheduleRelist(): void {
    clearTimeout(this.relistTimer);
    const period = this.opts.relistPeriodMs ?? 10 * 60_000;
    this.relistTimer = setTimeout(() => {
      this.relistDue = true;
      this.abort?.abort();
    }, period);
    this.relistTimer.unref();
  }

  /** Replaces the cache with a fresh list, emitting the differences, then `relisted`. */
  private async relist(): Promise<void> {
    const res = await this.opts.kube.list<T>(this.opts.path, this.opts.labelSelector);
    const fresh = new Map<string, T>();
    // List items carry no apiVersion/kind (watch events do); the collection names them.
    const kind = res.kind?.replace(/List$/, '');
    for (const item of res.items) {
      const o = Object.freeze(
        strip({ ...item, apiVersion: item.apiVersion ?? res.apiVersion, kind: item.kind ?? kind }),
      );
      fresh.set(keyOf(o), o);
    }
    for (const [k, old] of this.store) if (!fresh.has(k)) this.opts.onEvent('deleted', old);
    for (const [k, o] of fresh) {
      const old = this.store.get(k);
      if (!old) this.opts.onEvent('added', o);
      else if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion)
        this.opts.onEvent('modified', o);
    }
    this.store.clear();
    for (const [k, o] of fresh) this.store.set(k, o);
    this.resourceVersion = res.metadata.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      this.syncWaiters.splice(0).forEach((r) => r());
    }
    for (const o of fresh.values()) this.opts.onEvent('relisted', o);
  }

  private watch(): Promise<'resume' | 'list-again'> {
    this.relistDue = false;
    return new Promise((resolve, reject) => {
      const w = new Watch(this.opts.kube.kc);
      // client-node aborts a watch that is silent this long: that is the stale-watch watchdog
      // (the apiserver sends a bookmark about once a minute on a healthy watch).
      (w as unknown as { requestTimeoutMs: number }).requestTimeoutMs = this.opts.watchdogMs ?? 90_000;
      let gone = false;
      w.watch(
        this.opts.path,
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          labelSelector: this.opts.labelSelector,
          timeoutSeconds: 300 + Math.floor(Math.random() * 300),
        },
        (type, obj: T & { code?: number }) => {
          if (type === 'ERROR') {
            gone = obj.code === 410;
            return;
          }
          if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
          if (type === 'BOOKMARK') return;
          const o = Object.freeze(strip(obj));
          const k = keyOf(o);
          if (type === 'DELETED') {
            this.store.delete(k);
            this.opts.onEvent('deleted', o);
          } else {
            this.store.set(k, o);
            this.opts.onEvent(type === 'ADDED' ? 'added' : 'modified', o);
          }
        },
        (err: unknown) => {
          if (this.stopped || gone || this.relistDue) return resolve('list-again');
          const name = (err as { name?: string } | null)?.name;
          if (!err || name === 'AbortError' || name === 'TimeoutError') return resolve('resume');
          reject(err);
        },
      )
        .then((ctrl) => {
          this.abort = ctrl;
        })
        .catch(reject);
    });
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
