import type { TierModule } from '../tier-module.ts';
import { cacheTier } from './cache.ts';
import { consumersTier } from './consumers.ts';
import { databaseTier } from './database.ts';
import { edgeCacheTier } from './edge-cache.ts';
import { queueTier } from './queue.ts';
import { shardsTier } from './shards.ts';
import { webTier } from './web.ts';

/**
 * Every tier, in the order of TIERS (api/spec.ts), which the reconciler follows: facts gather in this
 * order (the consumers' autoscaler reads the queue's credentials), and children, conditions and
 * Events follow it.
 */
export const TIER_MODULES: readonly TierModule[] = [
  webTier,
  cacheTier,
  databaseTier,
  shardsTier,
  queueTier,
  consumersTier,
  edgeCacheTier,
];
