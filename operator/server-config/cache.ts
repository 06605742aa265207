// The cache server's configuration, as pure text. The same functions produce the ConfigMap the
// operator deploys and the files the data-plane tests start real redis-server processes with, so
// what the tests prove about eviction and replication is what the pods run.
import { createHash } from 'node:crypto';
import { EVICTION_POLICIES } from '../api/cache.ts';
import { quantityFraction } from '../api/quantity.ts';

/**
 * A memory quantity in bytes, rounded up as Kubernetes rounds `Quantity.Value()`; undefined when the
 * text is not a quantity. A bigint, because "8Ei" does not fit a double exactly.
 */
export function quantityBytes(q: string | number): bigint | undefined {
  const f = quantityFraction(q);
  if (!f) return undefined;
  const whole = f.num / f.den;
  return f.num % f.den > 0n ? whole + 1n : whole;
}

const LIMIT_FIELD = 'cache.resources.limits.memory';

/**
 * `maxmemory` for a container limit: floor(limit × (100 − headroom) / 100), computed exactly. The
 * headroom is what Redis does not count against maxmemory (replication and client buffers,
 * fragmentation, the allocator): without it the kernel's OOM killer, not eviction, would decide.
 */
export function maxMemoryBytes(memoryLimit: string | number | undefined, headroomPercent: number): number {
  if (!Number.isInteger(headroomPercent) || headroomPercent < 0 || headroomPercent >= 100) {
    throw new RangeError(
      `cache.memoryHeadroomPercent must be an integer in [0, 100), got ${String(headroomPercent)}`,
    );
  }
  if (memoryLimit === undefined || memoryLimit === '') {
    throw new Error(`${LIMIT_FIELD} is required: maxmemory is derived from it`);
  }
  const f = quantityFraction(memoryLimit);
  if (!f) throw new Error(`${LIMIT_FIELD} is not a quantity: ${JSON.stringify(memoryLimit)}`);
  const bytes = (f.num * BigInt(100 - headroomPercent)) / (f.den * 100n);
  // `maxmemory 0` means "no limit" to Redis: a tiny limit must fail loudly, not silently unbound it.
  if (bytes < 1n) {
    throw new Error(
      `${LIMIT_FIELD} ${JSON.stringify(memoryLimit)} leaves no memory after ${headroomPercent}% headroom`,
    );
  }
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${LIMIT_FIELD} is too large`);
  return Number(bytes);
}

export type CacheServerOptions = {
  port: number;
  maxMemoryBytes: number;
  evictionPolicy: string;
  minReplicasToWrite: number;
  maxReplicaLagSeconds: number;
  /** Working directory: replication may write a temporary RDB there. An emptyDir in the pod. */
  dir: string;
  /**
   * Path of the auth include (see cacheAuthInclude). Required, so no config without a password can
   * be generated; the file itself is mounted from a Secret and never part of this text.
   */
  authFile: string;
  /** Addresses to listen on; default every IPv4 address and, where the pod has one, IPv6. */
  bind?: string;
  /**
   * Serve TLS only, on `port` (no plaintext port), with this certificate, key and the CA that a
   * replica checks its primary's certificate against; replicas sync over TLS.
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /** The password is never a config option: it travels only in `authFile`. */
  password?: never;
};

/** Quotes a config argument; newlines would start a new directive, so they are refused outright. */
function quoted(what: string, value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error(`${what} must not contain line breaks or NUL`);
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function nonNegativeInt(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  return n;
}

/**
 * redis.conf for a cache node in a restricted pod. Every node, primary or replica, gets this same
 * text; a replica is started with `replicaOfArgs` appended to the command line.
 *
 * Authentication: the last line is `include <authFile>`, a file holding the users and `masterauth`
 * (see cacheAuthInclude) that the operator puts in a Secret and the pod mounts read-only. So no
 * password is in a ConfigMap, command line or environment variable, and a missing file stops
 * redis-server at boot instead of starting it open. `protected-mode yes` is kept as a second lock:
 * it only takes effect if the default user ended up with no password, and then refuses every client
 * that is not on loopback. NetworkPolicies restrict who can connect at all.
 */
export function cacheServerConfig(o: CacheServerOptions): string {
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RangeError(`bad port ${o.port}`);
  if (!(EVICTION_POLICIES as readonly string[]).includes(o.evictionPolicy)) {
    throw new Error(`unknown eviction policy ${JSON.stringify(o.evictionPolicy)}`);
  }
  if (!Number.isInteger(o.maxMemoryBytes) || o.maxMemoryBytes < 1) {
    // 0 would mean unlimited, see maxMemoryBytes.
    throw new RangeError(`maxmemory must be a positive integer, got ${o.maxMemoryBytes}`);
  }
  if (!o.dir) throw new Error('dir is required');
  if (!o.authFile) throw new Error('authFile is required: the cache never runs without a password');
  const bind = o.bind ?? '* -::*';
  if (!/^[\w.:*-]+( [\w.:*-]+)*$/.test(bind)) throw new Error(`bad bind ${JSON.stringify(bind)}`);
  const tls = o.tls
    ? [
        // TLS only: the plaintext port closed, the TLS one where clients look for the cache.
        'port 0',
        `tls-port ${o.port}`,
        `tls-cert-file ${quoted('tls.certFile', o.tls.certFile)}`,
        `tls-key-file ${quoted('tls.keyFile', o.tls.keyFile)}`,
        `tls-ca-cert-file ${quoted('tls.caFile', o.tls.caFile)}`,
        // Clients log in with passwords, not certificates; a replica checks its primary's chain.
        'tls-auth-clients no',
        'tls-replication yes',
        'tls-protocols "TLSv1.2 TLSv1.3"',
      ]
    : [`port ${o.port}`];
  return [
    '# Generated by the ScalableApp operator.',
    ...tls,
    `bind ${bind}`,
    'protected-mode yes',
    // In the foreground with logs on stdout: the kubelet supervises the process and collects its logs.
    'daemonize no',
    'supervised no',
    'logfile ""',
    `dir ${quoted('dir', o.dir)}`,
    `maxmemory ${o.maxMemoryBytes}`,
    `maxmemory-policy ${o.evictionPolicy}`,
    // A cache: nothing is persisted, a restarted node starts empty and refills from its primary.
    'appendonly no',
    'save ""',
    // Bounds the writes a failover can lose: with N > 0 the primary refuses writes unless N replicas
    // acknowledged the stream within the lag (NOREPLICAS otherwise).
    `min-replicas-to-write ${nonNegativeInt('minReplicasToWrite', o.minReplicasToWrite)}`,
    `min-replicas-max-lag ${nonNegativeInt('maxReplicaLagSeconds', o.maxReplicaLagSeconds)}`,
    // Full syncs stream straight to the replica (no RDB on disk) and start at once: Redis waits 5s by
    // default to batch replicas, but a cache has at most a handful, and a replica (or a rejoining old
    // primary) is useless until it is in sync.
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    // A replica never diverges from its primary by a write of its own, and keeps answering reads
    // while resynchronising (stale reads beat errors for a cache).
    'replica-read-only yes',
    'replica-serve-stale-data yes',
    // Last, so the file holds the final word on the users and masterauth.
    `include ${quoted('authFile', o.authFile)}`,
    '',
  ].join('\n');
}

/** The cache's logins: each one's password (the user names are fixed, CACHE_USERS). */
export interface CachePasswords {
  /** The application's: the `default` user, so CACHE_URL needs no user name. */
  readonly app: string;
  /**
   * The application's previous password, still accepted while a rotation rolls the app's pods onto
   * the new one (controller/cache-password-rotation.ts); absent otherwise.
   */
  readonly retiringApp?: string | undefined;
  /** The operator's, for failover: PING, INFO and REPLICAOF only. */
  readonly operator: string;
  /** What a replica authenticates to its primary with (masteruser/masterauth). */
  readonly replication: string;
  /** The metrics exporter's, with monitoring: the user exists only when this is given. */
  readonly monitor?: string | undefined;
}

export const CACHE_USERS = {
  /** The application's: `default`, so CACHE_URL needs no user name. */
  app: 'default',
  operator: 'scalableapp-operator',
  replication: 'replication',
  monitor: 'monitor',
} as const;

/**
 * What each login may run, as ACL rules. The application (the default user) may run every command
 * on every key and channel but the administrative and dangerous ones: no CONFIG, FLUSHALL, FLUSHDB,
 * REPLICAOF, DEBUG, SHUTDOWN, KEYS, MONITOR or ACL; so a compromised web pod can read and write the
 * cache, not empty it, reconfigure it or make it a replica of a server it runs. The operator asks
 * what it needs for failover, and CONFIG SET, with which each pod's readiness probe (the operator's
 * login is mounted there) makes the server read a renewed TLS certificate: Redis has no other way to
 * reload one. ACL SETUSER lets it give the app's user a second password, and take the first away,
 * when the app's password rotates (users defined in the config cannot be reloaded: docs/adr/0026);
 * it is no more than the operator holds already: every password is its own, and the only other
 * holder of this login is the server's own pod. Replication is what a replica sends its primary.
 */
export const CACHE_ACL = {
  app: '~* &* +@all -@admin -@dangerous',
  operator: '+ping +info +replicaof +config|set +acl|setuser',
  replication: '+psync +replconf +ping',
  // What redis_exporter 1.45 sends (its CONFIG command and client name turned off, no key checks;
  // server-tests/monitoring.test.ts sees no refusal): statistics, never a key or a value.
  monitor: '+ping +info +slowlog|get +slowlog|len +latency|latest',
} as const;

/** An ACL password rule by its SHA-256: the file needs no quoting, and holds no password but masterauth. */
export const passwordRule = (what: string, password: string) => {
  if (!password) throw new Error(`the cache ${what} password must not be empty`);
  return `#${createHash('sha256').update(password, 'utf8').digest('hex')}`;
};

/** The app's (default) user's password rules: the current one, and one retiring beside it. */
export const appPasswordRules = (p: Pick<CachePasswords, 'app' | 'retiringApp'>): string[] => [
  passwordRule('app', p.app),
  ...(p.retiringApp !== undefined && p.retiringApp !== p.app ? [passwordRule('app', p.retiringApp)] : []),
];

/**
 * The content of the auth include: the three users (every other user, and the default user's
 * password-less state, gone), and the login a node uses when it is a replica (every node may become
 * one after a failover). Stored by the operator in the cache Secret and mounted as the file
 * `cacheServerConfig` includes.
 */
export function cacheAuthInclude(p: CachePasswords): string {
  const masterauth = quoted('the cache replication password', p.replication);
  return [
    `user ${CACHE_USERS.app} on ${appPasswordRules(p).join(' ')} ${CACHE_ACL.app}`,
    `user ${CACHE_USERS.operator} on ${passwordRule('operator', p.operator)} ${CACHE_ACL.operator}`,
    `user ${CACHE_USERS.replication} on ${passwordRule('replication', p.replication)} ${CACHE_ACL.replication}`,
    ...(p.monitor === undefined
      ? []
      : [`user ${CACHE_USERS.monitor} on ${passwordRule('monitor', p.monitor)} ${CACHE_ACL.monitor}`]),
    `masteruser ${CACHE_USERS.replication}`,
    `masterauth ${masterauth}`,
    '',
  ].join('\n');
}

/** Command-line arguments (after the config path) that start a node as a replica of a primary. */
export function replicaOfArgs(primaryHost: string, port: number): string[] {
  if (!/^[\w.:-]+$/.test(primaryHost)) throw new Error(`bad primary host ${JSON.stringify(primaryHost)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad port ${port}`);
  return ['--replicaof', primaryHost, String(port)];
}
