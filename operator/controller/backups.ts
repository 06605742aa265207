// What each archiving cluster's base backups are, told in the status (ADR 0029): status.backups (the
// newest backup and the first recoverability point, per cluster) and one condition per tier
// (DatabaseBackup, ShardsBackup). The source is the cluster's last backup Job: its result, and the
// repository it leaves as its pod's termination message (`pgbackrest info --output=json`). While a
// new Job runs, or once its Job is replaced, what the last one found stands: the status is where it
// is kept, so no exec into a pod and no key of the store is needed to tell it.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import type { ScalableApp, ScalableAppStatus } from '../api/scalable-app.ts';
import { databaseCluster } from '../tiers/database.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { shardClusters } from '../tiers/shards.ts';
import { backupJobsOf, jobEnded, type SelectChildren } from '../tiers/postgres-base-backup.ts';
import { scheduledRequest } from '../api/backup-schedule.ts';
import type { PgCluster } from '../tiers/postgres-cluster.ts';
import { BACKUP_REASON, type BackupReason, type Condition, type ConditionInput } from './conditions.ts';

export type BackupRecord = NonNullable<ScalableAppStatus['backups']>[number];

/** What the status needs of `pgbackrest info --output=json` (2.45); the rest is ignored. */
/** When a Job ended: its True Complete or Failed condition's time (RFC 3339, which sorts as text). */
const endedAt = (j: V1Job): string => {
  const t = (j.status?.conditions ?? []).find(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  )?.lastTransitionTime as Date | string | undefined;
  // The watch's JSON holds text; a typed client's object a Date.
  return t instanceof Date ? t.toISOString() : (t ?? '');
};

const repositoryInfo = z
  .array(
    z.object({
      backup: z.array(
        z.object({
          label: z.string(),
          type: z.string(),
          timestamp: z.object({ start: z.number(), stop: z.number() }),
        }),
      ),
    }),
  )
  .length(1);

/** pgBackRest's times (seconds since the epoch) as the status writes them: RFC 3339, whole seconds. */
export const isoOfEpoch = (epochSeconds: number) =>
  new Date(epochSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

/**
 * The record a successful Job's report gives, or undefined when it has none or it cannot be read
 * (kubelet cuts a termination message at 4 KiB; retention is bounded to stay below).
 */
export function recordOf(
  cluster: string,
  job: string,
  message: string | undefined,
): BackupRecord | undefined {
  if (!message) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  const info = repositoryInfo.safeParse(parsed);
  if (!info.success) return undefined;
  const backups = [...info.data[0]!.backup].sort((a, b) => a.timestamp.stop - b.timestamp.stop);
  const newest = backups.at(-1);
  if (!newest) return undefined;
  return {
    cluster,
    lastBackup: {
      label: newest.label,
      startTime: isoOfEpoch(newest.timestamp.start),
      stopTime: isoOfEpoch(newest.timestamp.stop),
      job,
    },
    firstRecoverabilityPoint: isoOfEpoch(backups[0]!.timestamp.stop),
    fullBackups: backups.filter((b) => b.type === 'full').length,
  };
}

interface Verdict {
  readonly reason: BackupReason;
  readonly message: string;
  readonly record?: BackupRecord;
}

/** One cluster: its last Job's result, or what the status last knew. */
export function clusterBackupVerdict(
  c: PgCluster,
  children: SelectChildren,
  previous: BackupRecord | undefined,
): Verdict {
  const ns = c.app.metadata.namespace ?? '';
  // The newest Job to end says how backups go (a schedule's and a request's Jobs may both be kept).
  const ended = backupJobsOf(c, children)
    .filter((j) => jobEnded(j, 'Complete', 'Failed'))
    .sort((a, b) => endedAt(a).localeCompare(endedAt(b)));
  const done = ended.filter((j) => jobEnded(j, 'Complete')).at(-1);
  const name = done?.metadata?.name;
  const pod = name
    ? (children.select('Pod', ns, { 'job-name': name }) as V1Pod[]).find(
        (p) => p.status?.phase === 'Succeeded',
      )
    : undefined;
  const read = name
    ? recordOf(c.name, name, pod?.status?.containerStatuses?.[0]?.state?.terminated?.message)
    : undefined;
  // The newer of the kept Job's report and the status's record: a newer Job's may be gone already.
  const record =
    read && previous
      ? read.lastBackup.stopTime >= previous.lastBackup.stopTime
        ? read
        : previous
      : (read ?? previous);
  const newest = ended.at(-1);
  if (newest && jobEnded(newest, 'Failed')) {
    const failed = newest.metadata?.name ?? '';
    return {
      reason: BACKUP_REASON.BackupFailed,
      message: `${c.name}: backup Job ${failed} failed (kubectl logs job/${failed} says why); annotate the app with a new scalableapp.io/backup-request to try again`,
      ...(record ? { record } : {}),
    };
  }
  if (record)
    return {
      reason: BACKUP_REASON.BackupCompleted,
      message: `${c.name}: last full backup ${record.lastBackup.label}`,
      record,
    };
  return {
    reason: BACKUP_REASON.NoBackup,
    message: `${c.name}: no full backup yet, and the archive alone restores nothing: annotate the app scalableapp.io/backup-request=<any value>, or set backup.schedule`,
  };
}

/** The tiers that archive, with their condition types and clusters. */
function backedUpTiers(app: ScalableApp, facts: ObservedFacts): { type: string; clusters: PgCluster[] }[] {
  return [
    ...(app.spec.database?.backup
      ? [{ type: 'DatabaseBackup', clusters: [databaseCluster(app, facts)] }]
      : []),
    ...(app.spec.shards?.backup ? [{ type: 'ShardsBackup', clusters: shardClusters(app, facts) }] : []),
  ];
}

/**
 * The longest the operator sleeps before a schedule's time (a timer holds at most ~24 days; a look
 * that finds nothing to do writes nothing).
 */
const SCHEDULE_RECHECK_MAX_MS = 3600_000;
/** Woken this long after a schedule's time, so that its time is the schedule's last one then. */
const SCHEDULE_WAKE_LATE_MS = 1000;

/**
 * The status's backups and the tiers' conditions (False with the clusters that fail or have none),
 * and when to look again for the next scheduled backup.
 */
export function observeBackups(
  app: ScalableApp,
  facts: ObservedFacts,
  children: SelectChildren,
  previous: ScalableAppStatus | undefined,
  now: Date,
): { conditions: ConditionInput[]; records: BackupRecord[]; recheckMs?: number } {
  const conditions: ConditionInput[] = [];
  const records: BackupRecord[] = [];
  let recheckMs: number | undefined;
  for (const tier of backedUpTiers(app, facts)) {
    const schedule = tier.clusters[0]?.spec.backup?.schedule;
    if (schedule !== undefined) {
      const until = scheduledRequest(schedule, now).next.getTime() - now.getTime() + SCHEDULE_WAKE_LATE_MS;
      recheckMs = Math.min(recheckMs ?? SCHEDULE_RECHECK_MAX_MS, until, SCHEDULE_RECHECK_MAX_MS);
    }
    const verdicts = tier.clusters.map((c) =>
      clusterBackupVerdict(
        c,
        children,
        previous?.backups?.find((b) => b.cluster === c.name),
      ),
    );
    for (const v of verdicts) if (v.record) records.push(v.record);
    const bad = verdicts.filter((v) => v.reason !== BACKUP_REASON.BackupCompleted);
    const worst = bad.find((v) => v.reason === BACKUP_REASON.BackupFailed) ?? bad[0];
    conditions.push(
      worst
        ? {
            type: tier.type,
            status: 'False',
            reason: worst.reason,
            message: bad.map((v) => v.message).join('; '),
          }
        : {
            type: tier.type,
            status: 'True',
            reason: BACKUP_REASON.BackupCompleted,
            message: verdicts.map((v) => v.message).join('; '),
          },
    );
  }
  return { conditions, records, ...(recheckMs === undefined ? {} : { recheckMs }) };
}

/**
 * The Events of a change: a Normal one per new backup, a Warning when a tier's condition turns to
 * BackupFailed or names another failed Job; nothing while it stays as it was (nor for NoBackup, which
 * every new app with backups starts with).
 */
export function backupEvents(
  previous: ScalableAppStatus | undefined,
  conditions: readonly ConditionInput[],
  records: readonly BackupRecord[],
): { type: 'Normal' | 'Warning'; reason: BackupReason; message: string }[] {
  const out: { type: 'Normal' | 'Warning'; reason: BackupReason; message: string }[] = [];
  for (const r of records) {
    const before = previous?.backups?.find((b) => b.cluster === r.cluster);
    if (before?.lastBackup.label !== r.lastBackup.label)
      out.push({
        type: 'Normal',
        reason: BACKUP_REASON.BackupCompleted,
        message: `${r.cluster}: full backup ${r.lastBackup.label} completed (Job ${r.lastBackup.job}); the repository keeps ${r.fullBackups}, the first recoverability point is ${r.firstRecoverabilityPoint}`,
      });
  }
  for (const c of conditions) {
    const old: Pick<Condition, 'reason' | 'message'> | undefined = previous?.conditions?.find(
      (p) => p.type === c.type,
    );
    if (c.reason === BACKUP_REASON.BackupFailed && (old?.reason !== c.reason || old.message !== c.message))
      out.push({ type: 'Warning', reason: BACKUP_REASON.BackupFailed, message: c.message });
  }
  return out;
}
