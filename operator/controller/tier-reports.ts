import type { ScalableApp } from '../api/scalable-app.ts';
import type { Tier } from '../api/spec.ts';
import { NO_FACTS, type ObservedFacts } from '../tiers/objects.ts';
import {
  cond,
  isAnnouncedTierReason,
  type AnnouncedTierReason,
  type Condition,
  type ConditionInput,
} from './conditions.ts';
import { diagnosisSubject } from './pod-diagnosis.ts';
import { TIER_MODULES } from './tier-modules/index.ts';
import type { ChildLookup, TierReport } from './tier-status.ts';

const conditionType = (t: Tier) => `${t[0]!.toUpperCase()}${t.slice(1)}Ready`;

/**
 * One condition per deployed tier, each naming the object that holds it back and, when the tier is
 * not ready and its pods say why, the pod and the reason (operator/controller/pod-diagnosis.ts).
 * `now` only decides whether a running container has had its probes' budget to become ready.
 */
export function tierReports(
  app: ScalableApp,
  children: ChildLookup,
  facts: ObservedFacts = NO_FACTS,
  now: number = Date.now(),
): Map<Tier, TierReport> {
  const reports = new Map<Tier, TierReport>();
  for (const m of TIER_MODULES) {
    if (!m.present(app)) continue;
    const r = m.readiness(app, children, facts, now);
    reports.set(m.tier, {
      condition: cond(conditionType(m.tier), r.ready, r.reason, r.message),
      ready: r.ready,
      ...(r.degraded ? { degraded: r.degraded } : {}),
      ...(r.recheckAfterMs !== undefined ? { recheckAfterMs: r.recheckAfterMs } : {}),
    });
  }
  return reports;
}

/** The soonest any tier asks to be looked at again, if one does. */
export function recheckAfterMs(reports: ReadonlyMap<Tier, TierReport>): number | undefined {
  const times = [...reports.values()].flatMap((r) =>
    r.recheckAfterMs === undefined ? [] : [r.recheckAfterMs],
  );
  return times.length ? Math.max(1_000, Math.ceil(Math.min(...times))) : undefined;
}

/**
 * The Warning Events a status change brings: one per tier condition whose announced reason
 * (ANNOUNCED_TIER_REASONS) appeared, or whose pod diagnosis now names another problem (another
 * reason, pod or container). Compared with the status as it was, so a reconcile that writes nothing
 * records nothing, and a restart of the operator repeats nothing.
 */
export function tierWarnings(
  previous: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
): { reason: AnnouncedTierReason; message: string }[] {
  return next.flatMap((c) => {
    if (c.status !== 'False' || !isAnnouncedTierReason(c.reason)) return [];
    const old = previous?.find((p) => p.type === c.type);
    // The restart count or exit code may change while the subject stays: the same problem still.
    const same =
      old?.status === 'False' &&
      old.reason === c.reason &&
      diagnosisSubject(old.message) === diagnosisSubject(c.message);
    return same ? [] : [{ reason: c.reason, message: `${c.type}: ${c.message}` }];
  });
}
