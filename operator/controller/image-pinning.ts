import { unpinnedImages } from '../api/image-pins.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { APP_REASON, cond, type Condition, type ConditionInput } from './conditions.ts';

/** The condition that says whether every image of the app is named by digest. */
export const IMAGES_PINNED = 'ImagesPinned';

/**
 * ImagesPinned: False names each field whose image is a tag alone (defaults included). Advice, not
 * a fault: the app is Ready all the same, and a user who trusts a tag may leave it.
 */
export function imagesPinnedCondition(app: ScalableApp): ConditionInput {
  const unpinned = unpinnedImages(app);
  if (unpinned.length === 0)
    return cond(IMAGES_PINNED, true, APP_REASON.AllImagesPinned, 'every image is named by digest');
  const list = unpinned.map((u) => `${u.field} ${u.image}`).join(', ');
  return cond(
    IMAGES_PINNED,
    false,
    APP_REASON.MutableImageTags,
    `not pinned by digest: ${list}. A tag can move to another build, so pods of one tier started at ` +
      'different times may run different versions; name each image as name:tag@sha256:<digest>',
  );
}

/** One Warning when images become unpinned, or the unpinned ones change; none while they stay. */
export function imagesPinnedWarning(
  previous: readonly Condition[] | undefined,
  next: ConditionInput,
): { reason: typeof APP_REASON.MutableImageTags; message: string } | undefined {
  if (next.status !== 'False') return undefined;
  const old = previous?.find((c) => c.type === IMAGES_PINNED);
  if (old?.status === 'False' && old.message === next.message) return undefined;
  return { reason: APP_REASON.MutableImageTags, message: next.message };
}
