// Whether continuous archiving keeps up (ADR 0029), told in the status: one condition per tier that
// archives (DatabaseArchiving, ShardsArchiving), from what each cluster's recorded primary counts
// (dataplane/postgres/archiver.ts). Archiving that fails silently is what users of the other
// operators complain of most; here a failing store, a queue filling towards its bound, or archiving
// behind the RPO turns the condition False, with one Warning Event per cause.
import type { V1Pod } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { mebibytes } from '../api/backup.ts';
import type { ArchiverState, PostgresArchiver } from '../dataplane/postgres/archiver.ts';
import { databaseCluster } from '../tiers/database.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { pgPrimary, type DatabaseCredentials, type PgCluster } from '../tiers/postgres-cluster.ts';
import { shardClusters } from '../tiers/shards.ts';
import { ARCHIVING_REASON, type ArchivingReason, type Condition, type ConditionInput } from './conditions.ts';
import { nodeIn, pgServerReady } from './database-primary.ts';

/** How often archiving is looked at while a tier archives: nothing in Kubernetes says it changed. */
export const ARCHIVE_RECHECK_MS = 30_000;
/** Postgres' WAL segment size (initdb's default, which the start script keeps). */
const SEGMENT_MIB = 16;

type Reason = Exclude<ArchivingReason, 'ArchivingRecovered'>;
/** The reasons that turn a tier's condition False, most severe first. */
const FAILING: readonly Reason[] = [
  ARCHIVING_REASON.ArchiveQueueFilling,
  ARCHIVING_REASON.ArchivingFailing,
  ARCHIVING_REASON.ArchivingBehind,
];
const BAD = new Set<Reason>(FAILING);
/** Most severe first: a tier's condition carries its worst cluster's reason. */
const SEVERITY: readonly Reason[] = [
  ...FAILING,
  ARCHIVING_REASON.PrimaryNotAsked,
  ARCHIVING_REASON.Archiving,
];

export interface Verdict {
  readonly reason: Reason;
  /** Stable while the cause stands (no counts or ages): an unchanged cause writes no status. */
  readonly message: string;
}

/** One cluster's archiving, from its primary's counts. */
export function archivingVerdict(
  cluster: string,
  s: ArchiverState,
  o: { rpoSeconds: number; walQueueLimit: string | number },
): Verdict {
  const limitMiB = mebibytes(o.walQueueLimit);
  // Two segments at least: with the smallest bounds one segment in flight is half of it already.
  if (s.waiting >= 2 && s.waiting * SEGMENT_MIB * 2 >= limitMiB)
    return {
      reason: ARCHIVING_REASON.ArchiveQueueFilling,
      message: `${cluster}: more than half of backup.walQueueLimit (${String(o.walQueueLimit)}) waits for the store; past it pgBackRest drops segments from the archive (no point-in-time recovery across them until the next full backup)`,
    };
  const lastFailed = s.lastFailedAt?.getTime() ?? -Infinity;
  const lastArchived = s.lastArchivedAt?.getTime() ?? -Infinity;
  // No segment name: on a flaky store each failing segment would be news, a Warning and a write.
  if (lastFailed > lastArchived)
    return {
      reason: ARCHIVING_REASON.ArchivingFailing,
      message: `${cluster}: archiving fails; pgBackRest's error is in the primary's log`,
    };
  // The oldest waiting segment's own age, not the time since the last success: a quiet primary
  // archives rarely, and a new or just promoted one never has.
  const oldest = s.oldestWaitingAt?.getTime();
  if (oldest !== undefined && s.now.getTime() - oldest > 2 * o.rpoSeconds * 1000)
    return {
      reason: ARCHIVING_REASON.ArchivingBehind,
      message: `${cluster}: a segment has waited more than twice backup.rpoSeconds (${o.rpoSeconds}s) to be archived`,
    };
  return { reason: ARCHIVING_REASON.Archiving, message: `${cluster}: archiving` };
}

/**
 * A tier's condition from its clusters' verdicts: False with the bad clusters' messages (never the
 * unknown ones', so a primary that blips elsewhere changes nothing). When nothing is known and the
 * previous condition was False, that one stands: a primary restarting during an outage neither
 * announces the outage again nor lets it end unannounced.
 */
export function archivingCondition(
  type: string,
  verdicts: readonly Verdict[],
  previous?: Pick<Condition, 'status' | 'reason' | 'message'>,
): ConditionInput {
  const worst = SEVERITY.find((r) => verdicts.some((v) => v.reason === r)) ?? ARCHIVING_REASON.Archiving;
  const messages = (keep: (r: Reason) => boolean) =>
    verdicts
      .filter((v) => keep(v.reason))
      .map((v) => v.message)
      .join('; ');
  if (worst === ARCHIVING_REASON.Archiving)
    return {
      type,
      status: 'True',
      reason: worst,
      message: 'every segment the primaries finished is archived or being archived',
    };
  if (BAD.has(worst)) return { type, status: 'False', reason: worst, message: messages((r) => BAD.has(r)) };
  if (previous?.status === 'False')
    return { type, status: 'False', reason: previous.reason, message: previous.message };
  return { type, status: 'Unknown', reason: worst, message: messages((r) => r === worst) };
}

export interface ArchivingDeps {
  readonly archiverFor: (
    cluster: PgCluster,
    credentials: DatabaseCredentials | undefined,
  ) => PostgresArchiver;
  readonly pods: (namespace: string, labels: Record<string, string>) => V1Pod[];
  /** A primary that could not be asked, and why (the status says only that it did not answer). */
  readonly onError?: (cluster: string, err: unknown) => void;
}

/** The tiers that archive, each with its condition type, clusters and credentials. */
function archivingTiers(app: ScalableApp, facts: ObservedFacts) {
  const tiers: { type: string; clusters: PgCluster[]; credentials: DatabaseCredentials | undefined }[] = [];
  if (app.spec.database?.backup)
    tiers.push({
      type: 'DatabaseArchiving',
      clusters: [databaseCluster(app, facts)],
      credentials: facts.dbCredentials,
    });
  if (app.spec.shards?.backup)
    tiers.push({
      type: 'ShardsArchiving',
      clusters: shardClusters(app, facts),
      credentials: facts.shardCredentials,
    });
  return tiers;
}

/** Asks each archiving cluster's recorded primary; the tiers' conditions, and when to look again. */
export async function observeArchiving(
  d: ArchivingDeps,
  app: ScalableApp,
  facts: ObservedFacts,
  previous?: readonly Condition[],
): Promise<{ conditions: ConditionInput[]; recheckMs?: number }> {
  const tiers = archivingTiers(app, facts);
  const conditions: ConditionInput[] = [];
  for (const tier of tiers) {
    // Side by side: a primary that does not answer delays the others by nothing.
    const verdicts = await Promise.all(tier.clusters.map((c) => clusterVerdict(d, c, tier.credentials)));
    conditions.push(
      archivingCondition(
        tier.type,
        verdicts,
        previous?.find((c) => c.type === tier.type),
      ),
    );
  }
  return { conditions, ...(tiers.length ? { recheckMs: ARCHIVE_RECHECK_MS } : {}) };
}

async function clusterVerdict(
  d: ArchivingDeps,
  cluster: PgCluster,
  credentials: DatabaseCredentials | undefined,
): Promise<Verdict> {
  const primary = pgPrimary(cluster);
  const pod = d
    .pods(cluster.app.metadata.namespace ?? '', cluster.selector)
    .find((p) => p.metadata?.name === primary);
  if (!pod || !pgServerReady(pod))
    return {
      reason: ARCHIVING_REASON.PrimaryNotAsked,
      message: `${cluster.name}: its primary ${primary} is not ready`,
    };
  try {
    const state = await d.archiverFor(cluster, credentials).archiver(nodeIn(cluster)(pod));
    return archivingVerdict(cluster.name, state, cluster.spec.backup!);
  } catch (err) {
    d.onError?.(cluster.name, err);
    return {
      reason: ARCHIVING_REASON.PrimaryNotAsked,
      message: `${cluster.name}: its primary ${primary} did not answer`,
    };
  }
}

/**
 * The Events of a change: a Warning when a tier's archiving turns bad or its cause changes, a Normal
 * one when it recovers; nothing while it stays as it was.
 */
export function archivingEvents(
  previous: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
): { type: 'Normal' | 'Warning'; reason: ArchivingReason; message: string }[] {
  const out: { type: 'Normal' | 'Warning'; reason: ArchivingReason; message: string }[] = [];
  for (const c of next) {
    const old = previous?.find((p) => p.type === c.type);
    if (c.status === 'False' && (old?.reason !== c.reason || old.message !== c.message))
      out.push({ type: 'Warning', reason: c.reason as ArchivingReason, message: c.message });
    else if (c.status === 'True' && old?.status === 'False')
      out.push({
        type: 'Normal',
        reason: ARCHIVING_REASON.ArchivingRecovered,
        message: `${c.type}: ${c.message}`,
      });
  }
  return out;
}
