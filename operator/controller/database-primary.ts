import type { V1Pod } from '@kubernetes/client-node';
import { incarnation as podIncarnation, isContainerReady, isContainerRunning } from '../kube/pods.ts';
import { AppMemory, appKey } from './app-memory.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { PgNode, PostgresAdmin } from '../dataplane/postgres/admin.ts';
import type { HeartbeatTarget } from '../dataplane/postgres/heartbeat.ts';
import { decidePostgresFailover, switchover } from '../dataplane/postgres/failover.ts';
import { databaseCluster } from '../tiers/database.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import {
  PG_CONTAINER,
  PG_PORT,
  pgPrimary,
  selfFencing,
  superuserPasswords,
  type DatabaseCredentials,
  type PgCluster,
} from '../tiers/postgres-cluster.ts';
import { pgInstanceHost, pgInstanceNames } from '../tiers/postgres-instances.ts';
import { shardCluster } from '../tiers/shards.ts';
import { SERVER_TLS_FILES, podServesTls } from '../tiers/tls.ts';

/**
 * Annotation on a ScalableApp asking for a planned switchover to the named database or shard pod.
 * A one-time request: removed by the operator once that pod is the ready primary (docs/adr/0020).
 */
export const SWITCHOVER_ANNOTATION = 'scalableapp.io/switchover-to';

/**
 * A database instance the operator restarts (deletes its pod) so its start script makes it a
 * standby of the recorded primary: a primary that is not the recorded one, or a standby that has not
 * streamed for long (rewound at start when its history forked from the primary's).
 */
export interface Restart {
  readonly pod: string;
  /** For the Event: what was wrong, and what the restart does about it. */
  readonly why: string;
}

/** Where the operator's heartbeat goes (operator/dataplane/postgres/heartbeat.ts); none in simulation. */
export interface Heartbeats {
  keep(key: string, target: HeartbeatTarget | undefined): void;
  forget(prefix: string): void;
}

export interface DatabasePrimaryDeps {
  readonly adminFor: (cluster: PgCluster, credentials: DatabaseCredentials | undefined) => PostgresAdmin;
  readonly pods: (namespace: string, labels: Record<string, string>) => V1Pod[];
  readonly now: () => number;
  readonly heartbeats?: Heartbeats;
}

export type DatabaseDecision =
  /**
   * `restart`: pods still running as a primary that is not the recorded one, and standbys that have
   * not streamed for long (restarted, they rewind). `recheckMs`: a running pod could not be asked yet
   * (unready, perhaps cut off), or a standby not streaming is given time: look again then, as
   * nothing in Kubernetes may change meanwhile.
   */
  | {
      kind: 'keep';
      primary: string;
      restart: Restart[];
      recheckMs?: number;
      /** The switchover annotation names this ready primary: the request is done, and is removed. */
      switchoverDone?: string;
    }
  | { kind: 'wait'; primary: string; recheckMs: number }
  /** Failover is needed but would risk acknowledged writes (or is disabled): stay, and say why. */
  | { kind: 'refused'; primary: string; reason: string; recheckMs: number }
  | {
      kind: 'moved';
      primary: string;
      previous: string;
      reason: string;
      planned: boolean;
      restart: Restart[];
      /** A switchover: its request is done once the record is applied, and is removed then. */
      switchoverDone?: string;
    };

/**
 * After a promotion: an incarnation checked as a standby may now be a primary without having
 * restarted (promoted in place), and be replaced later while it runs. Every pod is asked again.
 */
const forgetStandbys = (verified: Set<string>) => verified.clear();

/** How soon to ask again a running instance that did not answer whether it still is a primary. */
const STRAY_RECHECK_MS = 10_000;
/**
 * How long a standby may neither stream nor replay before it is restarted. Far longer than a
 * standby takes to follow a new timeline or reconnect (seconds); doubled after each restart of the
 * same pod that did not help (a broken network, a wrong password), up to 16 times.
 */
export const STALLED_STANDBY_MS = 20_000;

/** A new pod or a restarted server container is an instance that started from the record. */
const incarnation = (p: V1Pod) => podIncarnation(p, PG_CONTAINER);
/** The server's readiness, not the pod's: a broken exporter beside it is no reason to fail over. */
const ready = (p: V1Pod) => isContainerReady(p, PG_CONTAINER);
export { ready as pgServerReady, running as pgServerRunning };
const running = (p: V1Pod) => isContainerRunning(p, PG_CONTAINER) && Boolean(p.status?.podIP);
/**
 * An instance as the admin calls see it: reached at its pod's address, streamed from by its DNS name,
 * over TLS when its pod serves it.
 */
export const nodeIn =
  (cluster: PgCluster) =>
  (p: V1Pod): PgNode => {
    const ca = cluster.tls?.ca.cert;
    return {
      name: p.metadata!.name!,
      host: p.status?.podIP ?? '',
      port: PG_PORT,
      streamHost: pgInstanceHost(cluster, p.metadata!.name!),
      ...(ca && podServesTls(p) ? { tls: { ca, caFile: SERVER_TLS_FILES.ca } } : {}),
    };
  };
/** An instance without a pod: no address to reach it at, so every admin call to it fails. */
const absentNode = (cluster: PgCluster, name: string): PgNode => ({
  name,
  host: '',
  port: PG_PORT,
  streamHost: pgInstanceHost(cluster, name),
});

/** One Postgres cluster to keep a primary for: the database tier, or one shard. */
interface Scope {
  readonly cluster: PgCluster;
  /** Where a user asks for this cluster's switchover, and turns failover off (for messages). */
  readonly field: string;
  readonly credentials: DatabaseCredentials | undefined;
}

/**
 * Keeps the database's primary where it can serve writes. The ConfigMap's `primary` record is what
 * pods start from (the others start as standbys, rewinding if they were primary); this decides when
 * the record moves: after `failover.delaySeconds` of an unready primary (never losing an acknowledged
 * write in synchronous mode: the decision refuses instead), or on request (switchover annotation).
 */
export class DatabasePrimary {
  private readonly d: DatabasePrimaryDeps;
  /** Per app: when each Postgres cluster's primary was first seen unready; pod incarnations checked. */
  private readonly memory = new AppMemory(() => ({
    unreadySince: new Map<string, number>(),
    verified: new Set<string>(),
    /** Incarnations whose last stray check got no answer, and when: not asked again before the recheck. */
    unanswered: new Map<string, number>(),
    /** Standby incarnations seen neither streaming nor replaying: since when, at which position. */
    stalled: new Map<string, { since: number; lsn: bigint }>(),
    /** Per pod: restarts for a stall since it last streamed (the next grace doubles). */
    stallRestarts: new Map<string, number>(),
  }));
  constructor(deps: DatabasePrimaryDeps) {
    this.d = deps;
  }

  /** Drops what was remembered about an app that went away. */
  forget(key: string): void {
    this.memory.forget(key);
    this.d.heartbeats?.forget(`${key}/`);
  }

  /** The database tier's primary. */
  decide(app: ScalableApp, facts: ObservedFacts): Promise<DatabaseDecision> {
    return this.decideFor({
      cluster: databaseCluster(app, facts),
      field: 'spec.database',
      credentials: facts.dbCredentials,
    });
  }

  /** One shard's primary: the same rules over the shard's own pods and record. */
  decideShard(app: ScalableApp, facts: ObservedFacts, shard: string): Promise<DatabaseDecision> {
    return this.decideFor({
      cluster: shardCluster(app, shard, facts),
      field: 'spec.shards',
      credentials: facts.shardCredentials,
    });
  }

  /**
   * Decides, then points the operator's heartbeat at the primary decided on: the recorded one, or the
   * one just promoted, never a replaced one (whose self-fence the heartbeat would lift).
   */
  private async decideFor(scope: Scope): Promise<DatabaseDecision> {
    const { cluster, credentials } = scope;
    const pods = this.d.pods(cluster.app.metadata.namespace ?? '', cluster.selector);
    const decision = await this.decideOnce(scope, pods);
    const pod = pods.find((p) => p.metadata?.name === decision.primary);
    const node = pod ? nodeIn(cluster)(pod) : undefined;
    this.d.heartbeats?.keep(
      `${appKey(cluster.app)}/${cluster.name}`,
      node?.host && credentials && selfFencing(cluster)
        ? {
            host: node.host,
            port: PG_PORT,
            // The heartbeat keeps one session: it logs in with what the servers were given.
            password: superuserPasswords(credentials)[0],
            ...(node.tls ? { tls: { ca: node.tls.ca, servername: node.streamHost! } } : {}),
          }
        : undefined,
    );
    return decision;
  }

  private async decideOnce(scope: Scope, pods: V1Pod[]): Promise<DatabaseDecision> {
    const { cluster } = scope;
    const failover = cluster.spec.failover;
    const app = cluster.app;
    const memory = this.memory.of(appKey(app));
    const { unreadySince, verified } = memory;
    const key = cluster.name;
    const primary = pgPrimary(cluster);
    const primaryPod = pods.find((p) => p.metadata?.name === primary);
    const admin = this.d.adminFor(cluster, scope.credentials);
    const node = nodeIn(cluster);

    if (primaryPod && ready(primaryPod)) {
      unreadySince.delete(key);
      const target = (app.metadata.annotations ?? {})[SWITCHOVER_ANNOTATION];
      // The annotation names a pod: it moves the primary of whichever cluster that pod belongs to.
      const targetPod =
        target && target !== primary ? pods.find((p) => p.metadata?.name === target) : undefined;
      if (targetPod && ready(targetPod)) {
        const result = await switchover(
          pods.filter(ready).map(node),
          node(primaryPod),
          node(targetPod),
          admin,
        );
        forgetStandbys(verified);
        return {
          kind: 'moved',
          primary: target!,
          previous: primary,
          planned: true,
          reason: `switchover to ${target} requested`,
          // A primary becomes a standby only by a restart: its start script rewinds it.
          restart: [
            {
              pod: result.restartAsStandby.name,
              why: `${result.restartAsStandby.name} was the primary before the switchover to ${target}: restarted to rewind it into a standby`,
            },
          ],
          // Removed with the record applied, not a pass later: were the target to fail before it
          // is seen ready, a failover elsewhere must not be undone by this request.
          switchoverDone: target!,
        };
      }
      const { restart, recheckMs } = await this.strayPrimaries(pods, node, node(primaryPod), admin, memory);
      return {
        kind: 'keep',
        primary,
        restart,
        ...(recheckMs !== undefined ? { recheckMs } : {}),
        ...(target === primary ? { switchoverDone: target } : {}),
      };
    }
    if (cluster.spec.replicas === 0) return { kind: 'keep', primary, restart: [] }; // nowhere to go
    const delayMs = failover.delaySeconds * 1000;
    const since = unreadySince.get(key) ?? this.d.now();
    unreadySince.set(key, since);
    const waited = this.d.now() - since;
    if (!failover.enabled) {
      return {
        kind: 'refused',
        primary,
        recheckMs: 30_000,
        reason: `${primary} is not ready and failover is disabled (${scope.field}.failover.enabled)`,
      };
    }
    if (waited < delayMs) return { kind: 'wait', primary, recheckMs: delayMs - waited };
    // Every instance counts for the synchronous safety rule, a missing pod as one that cannot answer.
    const everyInstance = pgInstanceNames(cluster).map((name) => {
      const p = pods.find((x) => x.metadata?.name === name);
      return p ? node(p) : absentNode(cluster, name);
    });
    const outcome = await decidePostgresFailover(
      everyInstance,
      primaryPod ? node(primaryPod) : absentNode(cluster, primary),
      admin,
      { synchronousReplicas: cluster.spec.synchronousReplicas },
    );
    if (outcome.kind === 'none') return { kind: 'wait', primary, recheckMs: delayMs || 1000 };
    if (outcome.kind === 'refused')
      return { kind: 'refused', primary, reason: outcome.reason, recheckMs: delayMs || 1000 };
    unreadySince.delete(key);
    forgetStandbys(verified);
    return {
      kind: 'moved',
      primary: outcome.newPrimary.name,
      previous: primary,
      planned: false,
      reason: `${primary} was not ready for ${Math.round(waited / 1000)}s; promoted ${outcome.newPrimary.name} (most advanced standby)`,
      restart: [],
    };
  }

  /**
   * Instances that started (or restarted) since we last looked and still run as a primary although
   * another is recorded: an old primary that never went down, e.g. behind a healed partition. Each
   * incarnation is checked once it answers; a stray primary is restarted, and its start script
   * rewinds it. Unready pods are asked too: a primary that fenced itself when it was cut off stays
   * unready (ready.sh) until it is restarted, and nobody else would. An unready pod that did not
   * answer (still cut off, cloning, rewinding) is asked again only after STRAY_RECHECK_MS, so the
   * app's other reconciles do not wait for its connection timeout each time.
   *
   * A standby whose primary_conninfo names another host than the primary's, or none, is pointed at
   * it: a failover's repoint that failed (promotion leaves such a standby out of its followers), or
   * a failover that detached it and then refused, would otherwise stream from nowhere until the pod
   * restarts, and with synchronous replication the primary's commits could wait on it all that
   * time. Each incarnation is asked after every move.
   */
  private async strayPrimaries(
    pods: V1Pod[],
    node: (p: V1Pod) => PgNode,
    primaryNode: PgNode,
    admin: PostgresAdmin,
    memory: {
      verified: Set<string>;
      unanswered: Map<string, number>;
      stalled: Map<string, { since: number; lsn: bigint }>;
      stallRestarts: Map<string, number>;
    },
  ): Promise<{ restart: Restart[]; recheckMs?: number }> {
    const { verified, unanswered, stalled, stallRestarts } = memory;
    const restart: Restart[] = [];
    let recheckMs: number | undefined;
    const soonest = (ms: number) => (recheckMs = Math.min(ms, recheckMs ?? ms));
    const primary = primaryNode.name;
    const now = this.d.now();
    for (const p of pods) {
      const id = incarnation(p);
      const name = p.metadata!.name!;
      if (name === primary || !running(p) || verified.has(id)) continue;
      const silentSince = unanswered.get(id);
      if (!ready(p) && silentSince !== undefined && now - silentSince < STRAY_RECHECK_MS) {
        soonest(STRAY_RECHECK_MS - (now - silentSince));
        continue;
      }
      let state;
      try {
        state = await admin.state(node(p));
        unanswered.delete(id);
      } catch (err) {
        // A ready pod answers; an unready one may still be cloning or rewinding: ask again later.
        if (ready(p)) throw err;
        unanswered.set(id, now);
        soonest(STRAY_RECHECK_MS);
        continue;
      }
      if (state.role === 'primary') {
        await admin.fence(node(p));
        restart.push({
          pod: name,
          why: `${name} still ran as a primary while ${primary} is the recorded one: restarted to rewind it into a standby`,
        });
        continue;
      }
      // A failure here fails the check (an Event); the incarnation stays unverified and is asked again.
      // No upstream and not streaming: a failover detached it and then did not promote (the old
      // primary came back, or too few standbys answered to be safe).
      const detached = state.upstream === undefined && state.streaming === false;
      if ((state.upstream !== undefined && state.upstream !== primaryNode.streamHost) || detached)
        await admin.follow(node(p), primaryNode);
      if (state.streaming === false) {
        const stall = this.stalledStandby(name, id, state.lsn, primary, memory, now);
        if ('restart' in stall) restart.push(stall.restart);
        else soonest(stall.recheckMs);
        continue;
      }
      stalled.delete(id);
      stallRestarts.delete(name);
      verified.add(id);
    }
    // Incarnations that are gone (a new pod, a restart) are not asked about again.
    const current = new Set(pods.map(incarnation));
    for (const id of unanswered.keys()) if (!current.has(id)) unanswered.delete(id);
    for (const id of stalled.keys()) if (!current.has(id)) stalled.delete(id);
    return { restart, ...(recheckMs !== undefined ? { recheckMs } : {}) };
  }

  /**
   * A standby whose WAL receiver does not stream. Most often for seconds: it is switching to a new
   * timeline, or reconnecting. But one that replayed past the point where the promoted standby's
   * timeline forked waits for ever, and with synchronous replication the primary's commits may wait
   * on it. A restart repairs that (its start script rewinds it), and the primary is ready, so one
   * that neither streamed nor replayed anything for the grace is restarted; each further restart
   * of the same pod without streaming in between waits twice as long.
   */
  private stalledStandby(
    name: string,
    id: string,
    lsn: bigint,
    primary: string,
    memory: { stalled: Map<string, { since: number; lsn: bigint }>; stallRestarts: Map<string, number> },
    now: number,
  ): { restart: Restart } | { recheckMs: number } {
    const seen = memory.stalled.get(id);
    // First seen stalled, or it replayed something since: the grace starts (again).
    if (!seen || lsn > seen.lsn) {
      memory.stalled.set(id, { since: now, lsn });
      return { recheckMs: this.stallGrace(name, memory.stallRestarts) };
    }
    const grace = this.stallGrace(name, memory.stallRestarts);
    const waited = now - seen.since;
    if (waited < grace) return { recheckMs: grace - waited };
    memory.stalled.delete(id);
    memory.stallRestarts.set(name, (memory.stallRestarts.get(name) ?? 0) + 1);
    return {
      restart: {
        pod: name,
        why:
          `${name} has neither streamed from ${primary} nor replayed for ${Math.round(waited / 1000)}s: ` +
          "restarted, so that its start script rewinds it if its history forked from the primary's",
      },
    };
  }

  private stallGrace(name: string, stallRestarts: Map<string, number>): number {
    return STALLED_STANDBY_MS * 2 ** Math.min(stallRestarts.get(name) ?? 0, 4);
  }
}
