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
/** Most severe first: a tier's condition carries its worst cluster's reason. */
const SEVERITY: readonly Reason[] = [
  ARCHIVING_REASON.ArchiveQueueFilling,
  ARCHIVING_REASON.ArchivingFailing,
  ARCHIVING_REASON.ArchivingBehind,
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
  if (s.waiting * SEGMENT_MIB * 2 >= limitMiB)
    return {
      reason: ARCHIVING_REASON.ArchiveQueueFilling,
      message: `${cluster}: more than half of backup.walQueueLimit (${String(o.walQueueLimit)}) waits for the store; past it pgBackRest drops segments from the archive (no point-in-time recovery across them until the next full backup)`,
    };
  const lastFailed = s.lastFailedAt?.getTime() ?? -Infinity;
  const lastArchived = s.lastArchivedAt?.getTime() ?? -Infinity;
  if (lastFailed > lastArchived)
    return {
      reason: ARCHIVING_REASON.ArchivingFailing,
      message: `${cluster}: archiving ${s.lastFailedWal ?? 'a segment'} fails; pgBackRest's error is in the primary's log`,
    };
  if (s.waiting > 0 && s.now.getTime() - lastArchived > 2 * o.rpoSeconds * 1000)
    return {
      reason: ARCHIVING_REASON.ArchivingBehind,
      message: `${cluster}: segments wait and none was archived for more than twice backup.rpoSeconds (${o.rpoSeconds}s)`,
    };
  return { reason: ARCHIVING_REASON.Archiving, message: `${cluster}: archiving` };
}

/** A tier's condition from its clusters' verdicts. */
export function archivingCondition(type: string, verdicts: readonly Verdict[]): ConditionInput {
  const worst = SEVERITY.find((r) => verdicts.some((v) => v.reason === r)) ?? ARCHIVING_REASON.Archiving;
  const ok = worst === ARCHIVING_REASON.Archiving;
  return {
    type,
    status: ok ? 'True' : worst === ARCHIVING_REASON.PrimaryNotAsked ? 'Unknown' : 'False',
    reason: worst,
    message: ok
      ? 'every segment the primaries finished is archived or being archived'
      : verdicts
          .filter((v) => v.reason !== ARCHIVING_REASON.Archiving)
          .map((v) => v.message)
          .join('; '),
  };
}

export interface ArchivingDeps {
  readonly archiverFor: (
    cluster: PgCluster,
    credentials: DatabaseCredentials | undefined,
  ) => PostgresArchiver;
  readonly pods: (namespace: string, labels: Record<string, string>) => V1Pod[];
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
): Promise<{ conditions: ConditionInput[]; recheckMs?: number }> {
  const tiers = archivingTiers(app, facts);
  const conditions: ConditionInput[] = [];
  for (const tier of tiers) {
    const verdicts: Verdict[] = [];
    for (const cluster of tier.clusters) {
      const backup = cluster.spec.backup!;
      const primary = pgPrimary(cluster);
      const pod = d
        .pods(app.metadata.namespace ?? '', cluster.selector)
        .find((p) => p.metadata?.name === primary);
      if (!pod || !pgServerReady(pod)) {
        verdicts.push({
          reason: ARCHIVING_REASON.PrimaryNotAsked,
          message: `${cluster.name}: its primary ${primary} is not ready`,
        });
        continue;
      }
      try {
        const state = await d.archiverFor(cluster, tier.credentials).archiver(nodeIn(cluster)(pod));
        verdicts.push(archivingVerdict(cluster.name, state, backup));
      } catch {
        verdicts.push({
          reason: ARCHIVING_REASON.PrimaryNotAsked,
          message: `${cluster.name}: its primary ${primary} did not answer`,
        });
      }
    }
    conditions.push(archivingCondition(tier.type, verdicts));
  }
  return { conditions, ...(tiers.length ? { recheckMs: ARCHIVE_RECHECK_MS } : {}) };
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
