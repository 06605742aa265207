// Postgres failover and switchover as decisions over the PostgresAdmin interface only: no
// Kubernetes, no sockets. The operator calls them with pgAdmin; the data-plane tests run them against
// real postgres processes, the unit tests against an in-memory fake.
//
// What failover guarantees:
// - At most one node is promoted per call: the reachable standby with the most WAL (highest LSN; ties
//   go to the lowest name, so retries and concurrent callers agree), and the other reachable standbys
//   are pointed at it.
// - Synchronous mode (synchronous_standby_names = ANY k over the N standbys): every acknowledged
//   commit was flushed by at least k standbys. Among any N − k + 1 standbys at least one of those k
//   is present, and the most advanced of them holds every acknowledged commit. So it promotes only
//   when at least N − k + 1 standbys answer, and refuses otherwise: waiting is better than losing an
//   acknowledged write. Those standbys stop receiving WAL before their positions are read (detach):
//   the old primary may only seem lost (cut off from us, not from them, or a force-deleted pod whose
//   container still runs), and with N − k + 1 detached at most k − 1 still flush for it, too few to
//   acknowledge a commit. So nothing it acknowledges is missing from the standby we pick, and no
//   standby receives WAL past the new primary's fork point (it could not follow it after). The fence
//   alone cannot do that when the old primary is out of our reach.
// - The old primary is fenced (best effort: it is usually unreachable). It comes back as a standby
//   when its pod restarts: the instance script sees it is not the recorded primary and rewinds it.
//
// Its limits:
// - Asynchronous mode (k = 0): commits the old primary acknowledged after the most advanced reachable
//   standby received them are lost, and a standby that was unreachable and further ahead than the
//   promoted one cannot follow it until it is rewound: the operator restarts such a standby and its
//   start script rewinds it (docs/adr/0024), dropping those commits there too.
// - One failed ping is enough here: waiting out flaps (failover.delaySeconds) is the caller's.
// - A fence only changes the default of new transactions; see PostgresAdmin.fence.
import { promoteAndRepoint } from '../promotion.ts';
import type { PgNode, PgState, PostgresAdmin } from './admin.ts';

export type PostgresFailoverOptions = {
  /** k of synchronous_standby_names = ANY k (...); 0 for asynchronous replication. */
  synchronousReplicas: number;
};

export type PostgresFailoverDecision =
  /** The primary answers: nothing to do. */
  | { kind: 'none' }
  /** Failover is needed but not safe (or not possible); nothing was promoted. */
  | { kind: 'refused'; reason: string }
  | {
      kind: 'promoted';
      newPrimary: PgNode;
      /** The reachable standbys that now follow the new primary; one that failed to is left out. */
      followers: PgNode[];
      /** Whether the old primary accepted the fence (it was reachable after all). */
      fenced: boolean;
    };

const byName = (a: PgNode, b: PgNode) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Most WAL first, then the lowest name. */
function mostAdvancedFirst(a: { node: PgNode; state: PgState }, b: { node: PgNode; state: PgState }) {
  return a.state.lsn > b.state.lsn ? -1 : a.state.lsn < b.state.lsn ? 1 : byName(a.node, b.node);
}

/**
 * How many of the `standbys` (all of them, reachable or not) must answer before one may be promoted:
 * N − k + 1 with ANY k, one when asynchronous.
 */
export function standbysRequired(standbys: number, synchronousReplicas: number): number {
  const k = synchronousReplicas;
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`synchronousReplicas must be >= 0, got ${k}`);
  if (k > standbys) {
    throw new RangeError(`synchronousReplicas ${k} exceeds the ${standbys} standbys: no commit could return`);
  }
  return k === 0 ? 1 : standbys - k + 1;
}

/**
 * When `currentPrimary` does not answer: checks that enough standbys answer (see the module
 * comment), fences the old primary, reads the standbys' WAL positions, promotes the most advanced
 * one and points the others at it. `nodes` must be every instance, the primary and unreachable ones
 * included (a node without an address never answers): the safety rule counts them.
 */
export async function decidePostgresFailover(
  nodes: readonly PgNode[],
  currentPrimary: PgNode,
  admin: PostgresAdmin,
  options: PostgresFailoverOptions,
): Promise<PostgresFailoverDecision> {
  if (await admin.ping(currentPrimary)) return { kind: 'none' };
  const standbys = nodes.filter((n) => n.name !== currentPrimary.name);
  if (options.synchronousReplicas > standbys.length) {
    // The count is the safety rule's N: fewer nodes than instances would make it too lenient.
    return {
      kind: 'refused',
      reason:
        `synchronousReplicas is ${options.synchronousReplicas} but only ${standbys.length} standbys were ` +
        'given: pass every instance, unreachable ones included',
    };
  }
  const required = standbysRequired(standbys.length, options.synchronousReplicas);
  const mode =
    options.synchronousReplicas === 0
      ? 'asynchronous replication'
      : `ANY ${options.synchronousReplicas} of ${standbys.length} standbys`;
  const refusal = (answering: number, fenced?: boolean): PostgresFailoverDecision => ({
    kind: 'refused',
    reason:
      `${currentPrimary.name} does not answer, and ${answering} of ${standbys.length} standbys ` +
      `answer where ${mode} needs ${required} to be sure no acknowledged commit is lost` +
      (fenced ? ` (${currentPrimary.name} was fenced)` : ''),
  });

  const answering = (
    await Promise.all(standbys.map(async (n) => ((await admin.ping(n)) ? n : undefined)))
  ).filter((n) => n !== undefined);
  // Checked before the fence: a refusal must leave a primary that only seemed lost writable.
  if (answering.length < required) return refusal(answering.length);

  const fenced = await admin.fence(currentPrimary).then(
    () => true,
    () => false,
  );
  const observed = await Promise.all(
    answering.map(async (node) => {
      // A standby that answered a ping but cannot be detached or report its state is as good as
      // unreachable: it may still receive (and acknowledge) WAL of the old primary.
      const state = await admin
        .detach(node)
        .then(() => admin.state(node))
        .catch(() => undefined);
      return state && { node, state };
    }),
  );
  const candidates = observed.filter((c) => c !== undefined).sort(mostAdvancedFirst);
  if (candidates.length < required) return refusal(candidates.length, fenced);

  // A standby promoted by an interrupted earlier call has the most WAL of all (it wrote since), so a
  // retry picks it again and its promotion is a no-op.
  const newPrimary = candidates[0]!.node;
  const others = candidates.slice(1).map((c) => c.node);
  const followers = await promoteAndRepoint(newPrimary, others, admin);
  return { kind: 'promoted', newPrimary, followers: followers, fenced };
}

export type SwitchoverOptions = {
  /** How long the target may take to receive the primary's last WAL. Default 30 s. */
  catchUpTimeoutMs?: number;
  /** Between two reads of the target's position. Default 100 ms. */
  pollMs?: number;
};

export type SwitchoverResult = {
  newPrimary: PgNode;
  /** The other standbys, now following the new primary; one that failed to is left out. */
  followers: PgNode[];
  /**
   * The old primary: fenced (read-only) but still a primary, because a primary becomes a standby only
   * by a restart. The caller records the new primary and then restarts it (its pod); the instance
   * script rewinds it and starts it as a standby of the new primary.
   */
  restartAsStandby: PgNode;
};

/**
 * A planned move of the primary to `target` without losing a commit: fence the primary (it must
 * answer), wait until the target received all the primary's WAL, promote it, point the other
 * standbys at it. When the target does not catch up in time, the fence is lifted (the primary is
 * writable again) and it throws.
 */
export async function switchover(
  nodes: readonly PgNode[],
  currentPrimary: PgNode,
  target: PgNode,
  admin: PostgresAdmin,
  options: SwitchoverOptions = {},
): Promise<SwitchoverResult> {
  const timeoutMs = options.catchUpTimeoutMs ?? 30_000;
  const pollMs = options.pollMs ?? 100;
  if (target.name === currentPrimary.name)
    throw new Error(`switchover: ${target.name} already is the primary`);
  if (!nodes.some((n) => n.name === target.name))
    throw new Error(`switchover: ${target.name} is not an instance`);
  let targetState: PgState;
  try {
    targetState = await admin.state(target);
  } catch (err) {
    throw new Error(`switchover: ${target.name} does not report its state`, { cause: err });
  }
  if (targetState.role !== 'replica') throw new Error(`switchover: ${target.name} is not a standby`);

  try {
    await admin.fence(currentPrimary);
  } catch (err) {
    throw new Error(`switchover: fencing ${currentPrimary.name} failed; nothing changed`, { cause: err });
  }
  let primaryLsn: bigint;
  try {
    // Read after the fence: no commit can follow this position, so a target that has it has them all.
    primaryLsn = (await admin.state(currentPrimary)).lsn;
    const deadline = Date.now() + timeoutMs;
    while (targetState.lsn < primaryLsn) {
      if (Date.now() > deadline) {
        throw new Error(`${target.name} did not receive the WAL up to ${primaryLsn} within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, pollMs));
      targetState = await admin.state(target);
    }
  } catch (err) {
    // Nothing was promoted: make the primary writable again rather than leave the database read-only.
    const lifted = await admin.promote(currentPrimary).then(
      () => 'the fence was lifted',
      () => 'lifting the fence failed too',
    );
    throw new Error(`switchover to ${target.name} aborted (${lifted})`, { cause: err });
  }

  try {
    await admin.promote(target);
  } catch (err) {
    throw new Error(`switchover: promoting ${target.name} failed; ${currentPrimary.name} is still fenced`, {
      cause: err,
    });
  }
  const others = nodes.filter((n) => n.name !== currentPrimary.name && n.name !== target.name);
  const followed = await Promise.all(
    others.map((n) =>
      admin.follow(n, target).then(
        () => true,
        () => false,
      ),
    ),
  );
  return {
    newPrimary: target,
    followers: others.filter((_, i) => followed[i]),
    restartAsStandby: currentPrimary,
  };
}
