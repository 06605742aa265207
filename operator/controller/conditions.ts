import type { ScalableAppStatus } from '../api/scalable-app.ts';

export type Condition = NonNullable<ScalableAppStatus['conditions']>[number];
export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/**
 * Builds the new condition list: a condition keeps its lastTransitionTime unless its status
 * changed, so an unchanged world produces an identical status and no write.
 */
export function mergeConditions(
  previous: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  generation: number,
  now: string,
): Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now;
    return { ...c, lastTransitionTime, observedGeneration: generation };
  });
}

/** An ISO time at the second precision of metav1.Time: a millisecond one would differ from what is read back. */
export const metaTime = (time: Date | string) =>
  (typeof time === 'string' ? time : time.toISOString()).replace(/\.\d{3}Z$/, 'Z');

export const cond = (type: string, ok: boolean, reason: string, message: string): ConditionInput => ({
  type,
  status: ok ? 'True' : 'False',
  reason,
  message,
});

/**
 * The reasons a tier condition (`WebReady`, `DatabaseReady`, ...) can carry: one closed, CamelCase
 * set, so a client or an alert may switch on them. The first six come from the workload (its
 * Deployment or StatefulSet, and the recorded primary); the rest from what the tier's pods say when
 * it is not ready (operator/controller/pod-diagnosis.ts), and are then the more telling reason.
 */
export const TIER_REASON = {
  /** The workload does not exist yet. */
  NotCreated: 'NotCreated',
  /** The workload controller has not observed the latest spec yet. */
  RolloutPending: 'RolloutPending',
  /** Fewer replicas than wanted run the current template. */
  RollingOut: 'RollingOut',
  /** Fewer replicas than wanted are available (ready). */
  ReplicasUnavailable: 'ReplicasUnavailable',
  /** The recorded primary is not a ready pod carrying the primary role label. */
  PrimaryUnavailable: 'PrimaryUnavailable',
  /** Everything the tier needs is ready. */
  Available: 'Available',
  /** spec.web.expose.type is Gateway, and the cluster does not serve the Gateway API: no route is made. */
  GatewayAPIMissing: 'GatewayAPIMissing',
  /** A container's image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName, ...). */
  ImagePullFailed: 'ImagePullFailed',
  /** A container cannot be configured (CreateContainerConfigError: a Secret, ConfigMap or key is missing). */
  ContainerConfigInvalid: 'ContainerConfigInvalid',
  /** The runtime cannot create or run a container (CreateContainerError, RunContainerError, hook errors). */
  ContainerCannotStart: 'ContainerCannotStart',
  /** A container keeps exiting (CrashLoopBackOff, or its last run ended with a non-zero exit code). */
  ContainerCrashLooping: 'ContainerCrashLooping',
  /** A pod cannot be placed on any node (PodScheduled=False, reason Unschedulable). */
  PodUnschedulable: 'PodUnschedulable',
  /** A container runs but has not passed its readiness probe within its probes' budget, or lost readiness. */
  ContainerNotReady: 'ContainerNotReady',
} as const;
export type TierReason = (typeof TIER_REASON)[keyof typeof TIER_REASON];

/** The tier reasons that come from the pods, most severe first (ties are equally severe). */
export const POD_PROBLEM_REASONS = [
  TIER_REASON.ImagePullFailed,
  TIER_REASON.ContainerConfigInvalid,
  TIER_REASON.ContainerCannotStart,
  TIER_REASON.ContainerCrashLooping,
  TIER_REASON.PodUnschedulable,
  TIER_REASON.ContainerNotReady,
] as const;
export type PodProblemReason = (typeof POD_PROBLEM_REASONS)[number];

export const isPodProblemReason = (reason: string | undefined): reason is PodProblemReason =>
  (POD_PROBLEM_REASONS as readonly string[]).includes(reason ?? '');

/**
 * The tier reasons worth one Warning Event when they appear (tier-reports.ts, tierWarnings): what the
 * pods say is wrong, and what the cluster lacks that the spec needs. The others are the ordinary
 * course of a rollout.
 */
export const ANNOUNCED_TIER_REASONS = [...POD_PROBLEM_REASONS, TIER_REASON.GatewayAPIMissing] as const;
export type AnnouncedTierReason = (typeof ANNOUNCED_TIER_REASONS)[number];

export const isAnnouncedTierReason = (reason: string | undefined): reason is AnnouncedTierReason =>
  (ANNOUNCED_TIER_REASONS as readonly string[]).includes(reason ?? '');

/**
 * The reasons of the app's own conditions (Ready, Progressing, Degraded) and of its Events: one
 * closed, CamelCase catalogue, so a client or an alert may switch on them. Tier conditions carry
 * TIER_REASON.
 */
export const APP_REASON = {
  /** The spec fails the operator's own validation (what the CRD could not judge); nothing is applied. */
  InvalidSpec: 'InvalidSpec',
  /** A Secret (or key) the spec references does not exist; nothing is applied until it does. */
  MissingReference: 'MissingReference',
  /** The shard map's ConfigMap is gone; nothing is applied until the user says which version to publish. */
  ShardMapLost: 'ShardMapLost',
  /** The apiserver refused a child (docs/adr/0013); retried with backoff. */
  ChildRefused: 'ChildRefused',
  /** Every deployed tier is ready. */
  AllTiersReady: 'AllTiersReady',
  /** Some tier is not ready; the message names it. */
  TiersNotReady: 'TiersNotReady',
  /** Children were created or updated by this reconcile. */
  Applied: 'Applied',
  /** Nothing to do. */
  Stable: 'Stable',
  /** Everything is applied; waiting for tiers to become ready. */
  WaitingForTiers: 'WaitingForTiers',
  /** A rollout will not finish by itself (past its deadline). */
  RolloutStalled: 'RolloutStalled',
  /** A Postgres primary is down and failing over could lose acknowledged commits, or is disabled. */
  FailoverRefused: 'FailoverRefused',
  /** Nothing is failing. */
  AsExpected: 'AsExpected',
  /** Every image the app runs is named by digest (condition ImagesPinned). */
  AllImagesPinned: 'AllImagesPinned',
  /** Some image is named by a tag alone, which its registry may move (condition ImagesPinned). */
  MutableImageTags: 'MutableImageTags',
} as const;
export type AppReason = (typeof APP_REASON)[keyof typeof APP_REASON];

/** Reasons only Events carry: what the operator did. */
export const EVENT_REASON = {
  Created: 'Created',
  Updated: 'Updated',
  Deleted: 'Deleted',
  /** A cache replica was promoted because its primary was down. */
  CacheFailover: 'CacheFailover',
  /** A Postgres standby was promoted because its primary was down. */
  Failover: 'Failover',
  /** The primary moved on request (annotation scalableapp.io/switchover-to). */
  Switchover: 'Switchover',
  /** A database instance's pod was deleted, to start again as a standby of the recorded primary. */
  InstanceRestarted: 'InstanceRestarted',
  /** A primary's state could not be read (the operator tries again). */
  PrimaryCheckFailed: 'PrimaryCheckFailed',
  /** Claims grew, and their StatefulSet is recreated around its running pods (docs/adr/0014). */
  VolumesGrowing: 'VolumesGrowing',
  /** The app's password changed: its URLs name the other login, with it (docs/adr/0025). */
  CredentialsRotating: 'CredentialsRotating',
  /** The login of the previous password is disabled: the rotation is done. */
  CredentialsRotated: 'CredentialsRotated',
  /** The new password cannot be used; the app keeps its login. */
  CredentialsRefused: 'CredentialsRefused',
} as const;
/**
 * The reasons of an archiving tier's condition (DatabaseArchiving, ShardsArchiving; archiving.ts),
 * the bad ones also of its Warning Events.
 */
export const ARCHIVING_REASON = {
  /** Every segment the primaries finished is archived, or being archived. */
  Archiving: 'Archiving',
  /** More than half the queue's bound waits: past it, segments are dropped from the archive. */
  ArchiveQueueFilling: 'ArchiveQueueFilling',
  /** The primary's last attempt to archive failed (the store unreachable, refusing, misconfigured). */
  ArchivingFailing: 'ArchivingFailing',
  /** Segments wait and none was archived for twice the RPO bound. */
  ArchivingBehind: 'ArchivingBehind',
  /** The primary is not ready or did not answer: archiving could not be asked about. */
  PrimaryNotAsked: 'PrimaryNotAsked',
  /** An Event's only: archiving that was failing or behind keeps up again. */
  ArchivingRecovered: 'ArchivingRecovered',
} as const;
export type ArchivingReason = (typeof ARCHIVING_REASON)[keyof typeof ARCHIVING_REASON];
/**
 * The reasons of a backed-up tier's condition (DatabaseBackup, ShardsBackup; backups.ts), and of
 * its Events.
 */
export const BACKUP_REASON = {
  /** Every cluster's repository holds a full backup, by its last backup Job's word. */
  BackupCompleted: 'BackupCompleted',
  /** A cluster has no full backup yet: its archive alone restores nothing. */
  NoBackup: 'NoBackup',
  /** A cluster's last backup Job failed. */
  BackupFailed: 'BackupFailed',
} as const;
export type BackupReason = (typeof BACKUP_REASON)[keyof typeof BACKUP_REASON];

/** Every reason an Event may carry: the app's, the operator's actions, and the pod problems a tier shows. */
export type EventReason =
  AppReason | (typeof EVENT_REASON)[keyof typeof EVENT_REASON] | TierReason | ArchivingReason | BackupReason;
