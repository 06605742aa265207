import type { ScalableApp } from '../api/scalable-app.ts';
import type { Tier } from '../api/spec.ts';
import { NO_FACTS, type ObservedFacts } from '../tiers/objects.ts';
import { cond } from './conditions.ts';
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
