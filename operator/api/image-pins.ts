import { postgresImage } from './database.ts';
import type { ScalableApp } from './scalable-app.ts';

/** One image an app runs, and the spec field that chooses it. */
export interface ImageUse {
  readonly field: string;
  readonly image: string;
}

/**
 * A digest names one image for good; a tag is a pointer its registry may move. Two pods of one
 * StatefulSet pulled a week apart may run different builds of `valkey/valkey:8.1`.
 */
const DIGEST = /@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
export const isPinned = (image: string) => DIGEST.test(image);

/**
 * Every image the app's pods run, with the field that sets it (defaults included): the tiers that
 * are present, and the exporters when monitoring is on.
 */
export function imageUses(app: ScalableApp): ImageUse[] {
  const s = app.spec;
  const exporters = s.monitoring?.enabled ? s.monitoring.exporterImages : undefined;
  const uses: (ImageUse | false | undefined)[] = [
    s.web && { field: 'spec.web.image', image: s.web.image },
    s.cache && { field: 'spec.cache.image', image: s.cache.image },
    s.database && { field: 'spec.database.image', image: postgresImage(s.database) },
    s.shards && { field: 'spec.shards.image', image: postgresImage(s.shards) },
    s.queue && { field: 'spec.queue.image', image: s.queue.image },
    ...(s.consumers ?? []).map((c, i) => ({ field: `spec.consumers[${i}].image`, image: c.image })),
    s.edgeCache && { field: 'spec.edgeCache.image', image: s.edgeCache.image },
    !!exporters &&
      !!(s.database || s.shards) && {
        field: 'spec.monitoring.exporterImages.postgres',
        image: exporters.postgres,
      },
    !!exporters && !!s.cache && { field: 'spec.monitoring.exporterImages.cache', image: exporters.cache },
    !!exporters &&
      !!s.edgeCache && { field: 'spec.monitoring.exporterImages.edgeCache', image: exporters.edgeCache },
  ];
  return uses.filter((u): u is ImageUse => !!u);
}

/** The images the app runs by tag alone. */
export const unpinnedImages = (app: ScalableApp) => imageUses(app).filter((u) => !isPinned(u.image));
