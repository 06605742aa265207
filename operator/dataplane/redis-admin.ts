// The few administrative operations failover needs, behind an interface: the failover logic runs
// against real Redis (data-plane tests, the operator) and against an in-memory fake (unit tests).
import { withRedis, type RedisClient } from './redis-client.ts';

export type CacheNode = {
  name: string;
  host: string;
  port: number;
  /** The node serves TLS only: its certificate chains to `ca` and names `servername`. */
  tls?: { ca: string; servername: string };
};

export type CacheRole = {
  /** Redis's own words: a primary reports `master`, a replica `slave`. */
  role: 'master' | 'slave';
  /**
   * Replication offset: for a primary the offset of its stream, for a replica how much of its
   * primary's stream it has received, also while the link is down.
   */
  offset: number;
  /** A replica's configured primary. */
  primary?: { host: string; port: number };
  /** A replica's link to its primary is established and in sync. */
  linkUp?: boolean;
};

export interface CacheAdmin {
  role(n: CacheNode): Promise<CacheRole>;
  /** Makes the node a primary (`REPLICAOF NO ONE`); it keeps its data. */
  promote(n: CacheNode): Promise<void>;
  /** Makes the node a replica of `primary` (`REPLICAOF host port`); it drops its data for the primary's. */
  follow(n: CacheNode, primary: CacheNode): Promise<void>;
  /** Whether the node answers (authenticated) in time. Never throws. */
  ping(n: CacheNode): Promise<boolean>;
}

/** What a rotation of the app's cache password asks of a node (controller/cache-password-rotation.ts). */
export interface CacheUsers {
  /**
   * Gives `user` exactly these passwords, as ACL rules (`#<sha256>`: no password travels), in one
   * `ACL SETUSER user resetpass ...`, which the server applies whole or not at all. Connections
   * already logged in stay: a server checks a password only at AUTH.
   */
  setPasswords(n: CacheNode, user: string, rules: readonly string[]): Promise<void>;
}

/** `INFO` text as a field map; sections and comments are dropped. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/**
 * The role from `INFO replication`. Not from ROLE: ROLE reports a replica's offset as -1 while the
 * link to its primary is down, which is exactly when failover needs it; INFO keeps the offset of
 * the last stream received.
 */
export function roleFromInfo(text: string): CacheRole {
  const f = parseInfo(text);
  const num = (key: string): number => {
    const v = Number(f.get(key));
    if (!Number.isFinite(v)) throw new Error(`INFO replication has no numeric ${key}`);
    return v;
  };
  switch (f.get('role')) {
    case 'master':
      return { role: 'master', offset: num('master_repl_offset') };
    case 'slave':
      return {
        role: 'slave',
        offset: num('slave_repl_offset'),
        primary: { host: f.get('master_host') ?? '', port: num('master_port') },
        linkUp: f.get('master_link_status') === 'up',
      };
    default:
      throw new Error(`INFO replication reports an unknown role ${JSON.stringify(f.get('role'))}`);
  }
}

export type RespCacheAdminOptions = { timeoutMs?: number };

/** The operator's cache login (CACHE_USERS.operator): PING, INFO, REPLICAOF, CONFIG SET and ACL SETUSER are all it may run. */
export type CacheLogin = { readonly username?: string; readonly password?: string };

/** Runs one call on a fresh connection to a node, its failure named after the node and the call. */
function nodeCalls(login: CacheLogin, options: RespCacheAdminOptions) {
  const timeoutMs = options.timeoutMs ?? 2000;
  return <T>(n: CacheNode, what: string, fn: (c: RedisClient) => Promise<T>): Promise<T> =>
    withRedis(
      { host: n.host, port: n.port, ...login, timeoutMs, ...(n.tls ? { tls: n.tls } : {}) },
      fn,
    ).catch((err: unknown) => {
      throw new Error(`cache node ${n.name} (${n.host}:${n.port}): ${what} failed`, { cause: err });
    });
}

const expectOk = (reply: unknown, what: string) => {
  // "OK" or "OK Already connected to specified master".
  if (typeof reply !== 'string' || !reply.startsWith('OK')) {
    throw new Error(`${what} answered ${JSON.stringify(reply)}`);
  }
};

/**
 * CacheAdmin through node-redis. Each call opens its own connection: admin calls are rare, and a
 * fresh connection never carries a half-read reply from a node that stalled.
 */
export function respCacheAdmin(login: CacheLogin = {}, options: RespCacheAdminOptions = {}): CacheAdmin {
  const on = nodeCalls(login, options);
  return {
    role: (n) =>
      on(n, 'INFO replication', async (c) => {
        const text = await c.sendCommand<string>(['INFO', 'replication']);
        if (typeof text !== 'string') throw new Error(`INFO answered ${JSON.stringify(text)}`);
        return roleFromInfo(text);
      }),
    promote: (n) =>
      on(n, 'REPLICAOF NO ONE', async (c) =>
        expectOk(await c.sendCommand<string>(['REPLICAOF', 'NO', 'ONE']), 'REPLICAOF'),
      ),
    follow: (n, primary) =>
      on(n, `REPLICAOF ${primary.host} ${primary.port}`, async (c) =>
        expectOk(await c.sendCommand<string>(['REPLICAOF', primary.host, String(primary.port)]), 'REPLICAOF'),
      ),
    ping: (n) =>
      on(n, 'PING', (c) => c.sendCommand<string>(['PING'])).then(
        (reply) => reply === 'PONG',
        // Unreachable, timed out, or refusing our password: in every case not a usable node.
        () => false,
      ),
  };
}

/** CacheUsers through node-redis, with the operator's login (its ACL allows ACL SETUSER). */
export function respCacheUsers(login: CacheLogin = {}, options: RespCacheAdminOptions = {}): CacheUsers {
  const on = nodeCalls(login, options);
  return {
    setPasswords: (n, user, rules) => {
      if (rules.length === 0 || !rules.every((r) => /^#[0-9a-f]{64}$/.test(r)))
        return Promise.reject(new Error('setPasswords takes one or more #<sha256> rules, never a password'));
      return on(n, `ACL SETUSER ${user}`, async (c) =>
        expectOk(await c.sendCommand<string>(['ACL', 'SETUSER', user, 'resetpass', ...rules]), 'ACL SETUSER'),
      );
    },
  };
}
