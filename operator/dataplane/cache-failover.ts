// Cache failover as decisions over the CacheAdmin interface only: no Kubernetes, no sockets. The
// operator calls it with respCacheAdmin; the data-plane tests run it against real redis-server
// processes and the unit tests against an in-memory fake.
//
// What it guarantees:
// - At most one node is promoted per call, and it is the reachable replica that received the most
//   of the lost primary's stream (highest offset), so the fewest acknowledged writes are lost.
// - A node that comes back (typically the old primary: held by its start script, or, where its
//   mounted record is not yet updated and nothing holds it, an empty primary) accepts no writes once
//   `rejoin` returned: it is verified to be a read-only replica of the
//   current primary, and its dataset is replaced by the primary's. That is what keeps an old primary
//   from acting as a second primary.
//
// Its limits (Redis replication is asynchronous):
// - Writes the old primary acknowledged after its last replica received them are lost.
//   `min-replicas-to-write N` with `min-replicas-max-lag S` bounds that window: the primary refuses
//   writes (NOREPLICAS) unless N replicas acknowledged the stream within the last S seconds.
// - Between a node's return and `rejoin`, and during a partition where the old primary is alive but
//   unreachable from the operator, clients that still reach it can write to it; those writes are
//   discarded when it rejoins. With min-replicas-to-write >= 1 that window closes after S seconds,
//   because its replicas follow the new primary and leave it without acknowledgements.
// - A primary that restarts before a failover happened comes back empty (a cache persists nothing),
//   and replicas still following it would resynchronise to that empty dataset. Its start script
//   holds it as a replica of nothing instead (operator/tiers/cache.ts), and the operator calls this
//   with `lost`, then `rejoin`s it.
// - One failed ping is enough here: debouncing flaps (several failures in a row) is the caller's.
import { promoteAndRepoint } from './promotion.ts';
import type { CacheAdmin, CacheNode, CacheRole } from './redis-admin.ts';

export type FailoverResult = { newPrimary: CacheNode; followers: CacheNode[] };

/**
 * When `currentPrimary` does not answer (or is known to hold nothing, `lost`: a restarted primary
 * held as a replica answers, empty): promotes the reachable replica with the highest replication
 * offset (ties: the lowest name) and points every other reachable replica at it. Returns undefined
 * (and changes nothing) when the primary answers or no replica does.
 *
 * `followers` lists the replicas that now follow the new primary. A reachable replica that failed to
 * follow is left out rather than failing the call (the promotion already happened): `rejoin` it.
 */
export async function decideFailover(
  nodes: readonly CacheNode[],
  currentPrimary: CacheNode,
  admin: CacheAdmin,
  opts: { readonly lost?: boolean } = {},
): Promise<FailoverResult | undefined> {
  if (!opts.lost && (await admin.ping(currentPrimary))) return undefined;
  const replicas = nodes.filter((n) => n.name !== currentPrimary.name);
  const observed = await Promise.all(
    replicas.map(async (node) => {
      if (!(await admin.ping(node))) return undefined;
      // A node that answered PING but fails INFO is as good as unreachable for this decision.
      const role: CacheRole | undefined = await admin.role(node).catch(() => undefined);
      return role && { node, role };
    }),
  );
  const candidates = observed.filter((c) => c !== undefined);
  // Offsets from different replication histories are not strictly comparable; in practice every
  // replica followed the same primary, and a replica promoted by an interrupted earlier call has the
  // highest offset of all, so a retry picks it again.
  candidates.sort(
    (a, b) =>
      b.role.offset - a.role.offset || (a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : 0),
  );
  const chosen = candidates[0];
  if (!chosen) return undefined;
  const newPrimary = chosen.node;
  const others = candidates.slice(1).map((c) => c.node);
  const followers = await promoteAndRepoint(newPrimary, others, admin);
  return { newPrimary, followers: followers };
}

/**
 * Makes a node that came back follow the current primary, then checks that it really is a replica
 * of it: only then is it known not to accept writes. Throws when it is not; call again later.
 */
export async function rejoin(node: CacheNode, primary: CacheNode, admin: CacheAdmin): Promise<CacheRole> {
  if (node.name === primary.name) throw new Error(`rejoin: ${node.name} is the primary itself`);
  try {
    await admin.follow(node, primary);
  } catch (err) {
    throw new Error(`rejoin: ${node.name} could not be made a replica of ${primary.name}`, { cause: err });
  }
  const role = await admin.role(node);
  if (role.role !== 'slave' || role.primary?.host !== primary.host || role.primary.port !== primary.port) {
    throw new Error(
      `rejoin: ${node.name} reports ${role.role}` +
        (role.primary ? ` of ${role.primary.host}:${role.primary.port}` : '') +
        `, not a replica of ${primary.name} (${primary.host}:${primary.port})`,
    );
  }
  return role;
}
