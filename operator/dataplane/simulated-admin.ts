// A CacheAdmin for clusters where no container runs (the local KWOK cluster): a node answers when its
// pod is Ready, and roles live in memory. It lets the cluster tests drive the Kubernetes side of a
// cache failover (labels, the ConfigMap record, Services, status, events) through the same code path
// the real admin takes; the data-plane tests cover the Redis side with real servers.
import type { CacheAdmin, CacheNode, CacheRole, CacheUsers } from './redis-admin.ts';
import type { PostgresAdmin } from './postgres/admin.ts';
import type { PostgresArchiver } from './postgres/archiver.ts';
import type { PostgresRoles } from './postgres/roles.ts';
import type { BrokerUsers } from './rabbitmq/users.ts';

export function simulatedCacheAdmin(
  podReady: (name: string) => boolean,
  recordedPrimary: (name: string) => boolean,
): CacheAdmin {
  const roles = new Map<string, CacheRole>();
  const roleOf = (n: CacheNode): CacheRole =>
    roles.get(n.name) ??
    (recordedPrimary(n.name) ? { role: 'master', offset: 0 } : { role: 'slave', offset: 0, linkUp: true });
  return {
    async ping(n) {
      return podReady(n.name);
    },
    async role(n) {
      if (!podReady(n.name)) throw new Error(`${n.name} does not answer`);
      return roleOf(n);
    },
    async promote(n) {
      roles.set(n.name, { role: 'master', offset: roleOf(n).offset });
    },
    async follow(n, primary) {
      roles.set(n.name, {
        role: 'slave',
        offset: 0,
        primary: { host: primary.host, port: primary.port },
        linkUp: true,
      });
    },
  };
}

/** The same for Postgres: reachable = pod Ready; every standby equally advanced; writes are not simulated. */
export function simulatedPostgresAdmin(
  podReady: (name: string) => boolean,
  recordedPrimary: (name: string) => boolean,
): PostgresAdmin {
  const promoted = new Set<string>();
  return {
    async ping(n) {
      return podReady(n.name);
    },
    async state(n) {
      if (!podReady(n.name)) throw new Error(`${n.name} does not answer`);
      return { role: recordedPrimary(n.name) || promoted.has(n.name) ? 'primary' : 'replica', lsn: 0n };
    },
    async promote(n) {
      promoted.add(n.name);
    },
    async follow(n) {
      promoted.delete(n.name);
    },
    async fence() {},
    async detach() {},
  };
}

/** Cache passwords where no server runs: nothing to give. */
export const SIMULATED_CACHE_USERS: CacheUsers = { setPasswords: async () => {} };

/** The app's queue logins where no broker runs: every step succeeds, and no connection is open. */
export const SIMULATED_QUEUE_USERS: BrokerUsers = {
  setLogin: async () => {},
  deleteLogin: async () => {},
  connections: async () => 0,
  close: async () => {},
};

/** Logins where no Postgres runs: every step succeeds, and no session is ever open. */
export const SIMULATED_LOGINS: PostgresRoles = {
  enable: async () => {},
  disable: async () => {},
  sessions: async () => 0,
  setServerPasswords: async () => {},
};

/**
 * Queue depths where no broker runs: the cluster tests write them, as JSON `{"<queue>": <depth>}`, in
 * this annotation of the broker's first pod. A missing pod or annotation reads like a broker that does
 * not answer, so the autoscaler's failure path is exercised too.
 */
export const SIMULATED_DEPTHS = 'scalableapp.io/simulated-queue-depths';

export function simulatedQueueDepth(annotations: () => Record<string, string> | undefined) {
  return async (queue: string): Promise<number> => {
    const raw = annotations()?.[SIMULATED_DEPTHS];
    if (raw === undefined) throw new Error(`no simulated depths published for queue ${queue}`);
    const depths = JSON.parse(raw) as Record<string, unknown>;
    const depth = depths[queue] ?? 0;
    if (typeof depth !== 'number') throw new Error(`simulated depth of ${queue} is not a number`);
    return depth;
  };
}

/** Archiving where no Postgres runs: nothing waits, nothing failed. */
export const SIMULATED_ARCHIVER: PostgresArchiver = {
  archiver: async () => ({ archived: 0, failed: 0, waiting: 0, now: new Date() }),
};
