// The routing module an app uses to find the shard of a key (docs/sharding.md): it reads the shard
// map the operator publishes, from the mounted ConfigMap file or the ConfigMap's data, and answers
// with the shard's address. It depends on the ring and the map only (no Kubernetes client), so it can
// be copied into an app with those two files.
import { readFile } from 'node:fs/promises';
import { HashRing } from './ring.ts';
import {
  parseShardMap,
  ringSpec,
  SHARD_MAP_KEY,
  type ShardEndpoint,
  type ShardLayout,
  type ShardMap,
} from './shard-map.ts';

export type ShardRoute = {
  shard: string;
  /** The primary, for writes and for reads that must see them. */
  host: string;
  port: number;
  database: string;
  /** The read-only Service, when the map names one. */
  readHost?: string;
  /** The version of the ring this answer comes from. */
  version: number;
};

/**
 * The shards' login and TLS, as the connection Secret hands them out (SHARDS_USER, SHARDS_PASSWORD,
 * SHARDS_SSLMODE, SHARDS_SSLROOTCERT); libpq's names, which node-postgres reads from a URL too.
 */
export type Credentials = { user: string; password: string; sslmode?: string; sslrootcert?: string };

/** One ring with where its shards are. */
class RoutedRing {
  readonly #ring: HashRing;
  readonly #endpoints: ReadonlyMap<string, ShardEndpoint>;
  readonly #version: number;

  constructor(layout: ShardLayout, version: number) {
    this.#ring = new HashRing(ringSpec(layout));
    this.#endpoints = new Map(layout.shards.map((s) => [s.name, s]));
    this.#version = version;
  }

  route(key: string): ShardRoute {
    // The map's parser makes sure every ring and hot-key shard has an endpoint.
    const e = this.#endpoints.get(this.#ring.shardFor(key))!;
    return {
      shard: e.name,
      host: e.host,
      port: e.port,
      database: e.database,
      ...(e.readHost !== undefined ? { readHost: e.readHost } : {}),
      version: this.#version,
    };
  }
}

export class ShardRouter {
  /** The map this router routes by. */
  readonly map: ShardMap;
  readonly #active: RoutedRing;
  readonly #pending: RoutedRing | undefined;

  constructor(map: ShardMap) {
    this.map = map;
    this.#active = new RoutedRing(map, map.version);
    this.#pending = map.pending && new RoutedRing(map.pending, map.pending.version);
  }

  /** From the text of `shard-map.json`. Throws, naming the field, when it is not a valid map. */
  static fromJson(text: string): ShardRouter {
    return new ShardRouter(parseShardMap(text));
  }

  /** From a ConfigMap's `data` (e.g. as the Kubernetes API returns it). */
  static fromConfigMapData(data: Readonly<Record<string, string>>): ShardRouter {
    const text = data[SHARD_MAP_KEY];
    if (text === undefined) throw new Error(`the ConfigMap has no ${SHARD_MAP_KEY} key`);
    return ShardRouter.fromJson(text);
  }

  /** From the mounted ConfigMap: the file itself, or the directory it is mounted at. */
  static async fromFile(path: string): Promise<ShardRouter> {
    return ShardRouter.fromJson(await readMapFile(path));
  }

  /** The version of the ring keys are routed by. */
  get version(): number {
    return this.map.version;
  }

  /** Where `key` lives now. */
  route(key: string): ShardRoute {
    return this.#active.route(key);
  }

  /**
   * Where `key` will live once the pending ring is flipped to, while one is pending (for dual writes
   * and the data mover); undefined when no resharding is under way.
   */
  pendingRoute(key: string): ShardRoute | undefined {
    return this.#pending?.route(key);
  }

  /**
   * A `postgresql://` URL to the shard of `key`: its primary, or with `{ read: true }` its read-only
   * Service (the primary when the map names none). Credentials are percent-encoded; sslmode and
   * sslrootcert, when given, are the URL's parameters.
   */
  url(key: string, credentials: Credentials, options: { read?: boolean } = {}): string {
    const r = this.route(key);
    const host = options.read ? (r.readHost ?? r.host) : r.host;
    const user = encodeURIComponent(credentials.user);
    const password = encodeURIComponent(credentials.password);
    const params = new URLSearchParams();
    if (credentials.sslmode) params.set('sslmode', credentials.sslmode);
    if (credentials.sslrootcert) params.set('sslrootcert', credentials.sslrootcert);
    const query = params.size ? `?${params.toString()}` : '';
    return `postgresql://${user}:${password}@${host}:${r.port}/${encodeURIComponent(r.database)}${query}`;
  }
}

async function readMapFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
    return readFile(`${path}/${SHARD_MAP_KEY}`, 'utf8');
  }
}

export interface ShardMapWatch {
  /** The router for the map read last. */
  readonly router: ShardRouter;
  /**
   * Reads the file again; when its text changed and is a valid map, swaps the router and calls
   * `onChange`. Resolves to whether it did. Called by the timer; tests call it themselves.
   */
  check(): Promise<boolean>;
  close(): void;
}

export type WatchOptions = {
  /** How often to read the file; 0 for never (call check() yourself). Default 2000 ms. */
  intervalMs?: number;
  /** A read or parse that failed: the last good router stays in use. Default: ignored. */
  onError?: (err: Error) => void;
};

/**
 * Follows the mounted ConfigMap file. The kubelet replaces a ConfigMap volume's files at once (a
 * symlink swap) some time after the ConfigMap changed, so the file is read again every interval and
 * compared by content. A text that does not parse (never published by the operator, but a hand edit
 * could) is reported to `onError` and not routed by.
 */
export async function watchShardMap(
  path: string,
  onChange: (router: ShardRouter) => void,
  options: WatchOptions = {},
): Promise<ShardMapWatch> {
  let text = await readMapFile(path);
  let router = ShardRouter.fromJson(text);
  /** A text already reported as bad: reported once, not every interval. */
  let rejected: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const watch: ShardMapWatch = {
    get router() {
      return router;
    },
    async check() {
      let next: string | undefined;
      try {
        next = await readMapFile(path);
        if (next === text || next === rejected) return false;
        router = ShardRouter.fromJson(next);
        text = next;
      } catch (err) {
        rejected = next;
        options.onError?.(err as Error);
        return false;
      }
      onChange(router);
      return true;
    },
    close() {
      clearInterval(timer);
    },
  };
  const every = options.intervalMs ?? 2000;
  // unref: a watch alone does not keep the process alive.
  if (every > 0) timer = setInterval(() => void watch.check(), every).unref();
  return watch;
}
