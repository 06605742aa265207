import type { KubernetesObject } from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  type ScalableApp,
  type ScalableAppStatus,
} from '../api/scalable-app.ts';
import type { Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import { connectionSecretName } from '../tiers/connection.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { APP_REASON, cond, mergeConditions, metaTime, type ConditionInput } from './conditions.ts';
import { desiredHash } from './drift.ts';
import type { EventRecorder } from './events.ts';
import { refusalMessage, type Refusal } from './refusal.ts';
import type { TierContext } from './tier-module.ts';
import { TIER_MODULES } from './tier-modules/index.ts';
import { recheckAfterMs, tierReports, tierWarnings } from './tier-reports.ts';
import { imagesPinnedCondition, imagesPinnedWarning } from './image-pinning.ts';
import { archivingEvents } from './archiving.ts';
import { backupEvents, type BackupRecord } from './backups.ts';

interface Log {
  warn(msg: string, f?: Record<string, unknown>): void;
}

export interface StatusDeps {
  readonly kube: Kube;
  readonly children: TierContext['children'];
  readonly events: EventRecorder;
  readonly now: () => Date;
}

export const appPath = (ns: string, name: string) =>
  `${collectionPath(`${GROUP}/${VERSION}`, PLURAL, ns)}/${name}`;

/** Why nothing of an app is applied, the phase that shows, and what it waits for. */
export const HELD_BACK = {
  [APP_REASON.InvalidSpec]: { phase: 'Invalid', until: 'the spec is fixed' },
  // The spec is fine; something it names does not exist yet (looked for again every few seconds).
  [APP_REASON.MissingReference]: { phase: 'Pending', until: 'the referenced Secrets exist' },
  // The data is fine; which version of the map to publish is the user's call (docs/sharding.md).
  [APP_REASON.ShardMapLost]: {
    phase: 'Degraded',
    until: 'the shard map is published again (see the Ready message)',
  },
} as const satisfies Record<string, { phase: ScalableAppStatus['phase']; until: string }>;
export type HeldBackReason = keyof typeof HELD_BACK;

type RawApp = KubernetesObject & { status?: ScalableAppStatus };

/** The status of an app held back before anything is applied: one write and one Event per cause. */
export async function writeHeldBack(
  d: StatusDeps,
  raw: RawApp,
  generation: number,
  reason: HeldBackReason,
  message: string,
  log: Log,
): Promise<void> {
  const { phase, until } = HELD_BACK[reason];
  const conditions: ConditionInput[] = [
    cond('Ready', false, reason, message),
    cond('Progressing', false, reason, `nothing is applied until ${until}`),
    cond('Degraded', true, reason, message),
  ];
  const status: ScalableAppStatus = {
    ...raw.status,
    observedGeneration: generation,
    phase,
    conditions: mergeConditions(raw.status?.conditions, conditions, generation, metaTime(d.now())),
  };
  if (await patchStatus(d.kube, raw, status)) {
    log.warn(`refusing to apply: ${message}`, { reason });
    await d.events.record(raw as ScalableApp, 'Warning', reason, message);
  }
}

export interface Outcome {
  /** Children were created, updated, deleted or relabelled this pass. */
  readonly changed: boolean;
  /** Children the apiserver refused (nothing else was done after them). */
  readonly refusals: readonly Refusal[];
  /** Per cluster whose failover is refused: why. */
  readonly failoverRefused: readonly string[];
  /** The archiving tiers' conditions (archiving.ts), none when no tier archives. */
  readonly archiving?: readonly ConditionInput[];
  /** The backed-up tiers' conditions and each cluster's backups (backups.ts). */
  readonly backups?: {
    readonly conditions: readonly ConditionInput[];
    readonly records: readonly BackupRecord[];
  };
}

/**
 * The app's status after a pass: the overall conditions, one condition per tier, and each tier's
 * endpoints and own block. Written only when it differs; returns whether it wrote and when a tier
 * asks to be looked at again.
 */
export async function writeStatus(
  d: StatusDeps,
  app: ScalableApp,
  facts: ObservedFacts,
  previous: ScalableAppStatus | undefined,
  generation: number,
  outcome: Outcome,
): Promise<{ wrote: boolean; recheck: number | undefined; status: ScalableAppStatus }> {
  const { refusals, failoverRefused } = outcome;
  const reports = tierReports(app, d.children, facts, d.now().getTime());
  const notReady = [...reports.values()].filter((r) => !r.ready);
  const degradations = [...reports.values()].flatMap((r) => (r.degraded ? [r.degraded] : []));
  const degraded = [...failoverRefused, ...degradations.map((x) => x.message)];
  const refused = refusals.length > 0;
  const ready = notReady.length === 0 && !refused;
  const blocking = notReady.map((r) => `${r.condition.type}: ${r.condition.message}`).join('; ');
  const why = refusalMessage(refusals);
  const conditions: ConditionInput[] = refused
    ? [
        cond('Ready', false, 'ChildRefused', why),
        cond('Progressing', false, 'ChildRefused', 'retrying the refused children with backoff'),
        cond('Degraded', true, 'ChildRefused', why),
      ]
    : [
        cond(
          'Ready',
          ready,
          ready ? 'AllTiersReady' : 'TiersNotReady',
          ready ? 'every deployed tier is ready' : blocking,
        ),
        cond(
          'Progressing',
          !ready || outcome.changed,
          outcome.changed ? 'Applied' : ready ? 'Stable' : 'WaitingForTiers',
          outcome.changed ? 'children were created or updated' : ready ? 'nothing to do' : blocking,
        ),
        cond(
          'Degraded',
          degraded.length > 0,
          failoverRefused.length
            ? APP_REASON.FailoverRefused
            : (degradations[0]?.reason ?? APP_REASON.AsExpected),
          degraded.join('; ') || 'no failures',
        ),
      ];
  conditions.push(...[...reports.values()].map((r) => r.condition));
  const images = imagesPinnedCondition(app);
  conditions.push(images);
  const archiving = outcome.archiving ?? [];
  conditions.push(...archiving);
  const backups = outcome.backups ?? { conditions: [], records: [] };
  conditions.push(...backups.conditions);
  const present = TIER_MODULES.filter((m) => m.present(app));
  const status: ScalableAppStatus = {
    observedGeneration: generation,
    phase: ready ? 'Ready' : refused || degraded.length ? 'Degraded' : 'Progressing',
    conditions: mergeConditions(previous?.conditions, conditions, generation, metaTime(d.now())),
    connectionSecret: connectionSecretName(app),
    endpoints: Object.assign({}, ...present.map((m) => m.endpoints?.(app) ?? {})) as NonNullable<
      ScalableAppStatus['endpoints']
    >,
    ...(Object.assign(
      {},
      ...present.map((m) => m.status?.(app, facts, d.children) ?? {}),
    ) as Partial<ScalableAppStatus>),
    ...(backups.records.length ? { backups: [...backups.records] } : {}),
  };
  const wrote = await patchStatus(d.kube, app as unknown as KubernetesObject, status, previous);
  // A Warning when a tier's problem appears or changes: only a status write can bring one.
  if (wrote) {
    for (const e of tierWarnings(previous?.conditions, conditions))
      await d.events.record(app, 'Warning', e.reason, e.message);
    const unpinned = imagesPinnedWarning(previous?.conditions, images);
    if (unpinned) await d.events.record(app, 'Warning', unpinned.reason, unpinned.message);
    for (const e of archivingEvents(previous?.conditions, archiving))
      await d.events.record(app, e.type, e.reason, e.message);
    for (const e of backupEvents(previous, backups.conditions, backups.records))
      await d.events.record(app, e.type, e.reason, e.message);
  }
  return { wrote, recheck: recheckAfterMs(reports), status };
}

/** Server-side applies the status subresource, only when it differs. Returns whether it wrote. */
async function patchStatus(
  kube: Kube,
  app: RawApp,
  status: ScalableAppStatus,
  previous = app.status,
): Promise<boolean> {
  if (previous && desiredHash(previous) === desiredHash(status)) return false;
  const ns = app.metadata!.namespace!;
  const name = app.metadata!.name!;
  // The resourceVersion we computed from: if the cache was behind (our own last status write not
  // seen yet), the apiserver answers 409 and the reconcile runs again on fresh data, instead of
  // overwriting history such as the last failover with a stale copy.
  const resourceVersion = app.metadata!.resourceVersion;
  await kube.apply(
    appPath(ns, name),
    {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace: ns, ...(resourceVersion ? { resourceVersion } : {}) },
      status,
    },
    { subresource: 'status' },
  );
  return true;
}
