import type { ScalableApp } from '../api/scalable-app.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import type { TierContext } from './tier-module.ts';
import { TIER_MODULES } from './tier-modules/index.ts';

/**
 * Facts only the cluster knows, gathered tier by tier in TIER_MODULES order (a tier may read what an
 * earlier one found). `lost` says why nothing of the app may be applied (a lost shard map).
 */
export async function gatherFacts(
  ctx: TierContext,
  app: ScalableApp,
  base: ObservedFacts,
): Promise<{ facts: ObservedFacts; lost?: string }> {
  let facts = base;
  const lost: string[] = [];
  for (const m of TIER_MODULES) {
    if (!m.present(app) || !m.gather) continue;
    const g = await m.gather(ctx, app, facts);
    facts = { ...facts, ...g.facts };
    if (g.lost) lost.push(g.lost);
  }
  return { facts, ...(lost.length ? { lost: lost.join('; ') } : {}) };
}
