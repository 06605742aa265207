import { z } from 'zod';
import { spec } from './spec.ts';
import { status } from './status.ts';

export const GROUP = 'scalableapp.io';
export const VERSION = 'v1alpha1';
export const KIND = 'ScalableApp';
export const PLURAL = 'scalableapps';
export const API_VERSION = `${GROUP}/${VERSION}`;

/**
 * How long the app's name may be: children are named <app>-<suffix> and the longest must stay a
 * DNS-1035 label (Services) and a StatefulSet name of at most 52 characters (its pods carry
 * controller-revision-hash = <name>-<10 characters>, a label value of at most 63). The longest
 * suffixes are -shard-hot-<digest> (19, plus 11) and -shard-<n>-headless (18).
 */
export const APP_NAME_MAX = 43;
export const APP_NAME_MAX_WITH_HOT_KEYS = 33;
export const APP_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const appNameMessage = `metadata.name must be a DNS-1035 label (lowercase letters, digits and -, starting with a letter) of at most ${APP_NAME_MAX} characters, ${APP_NAME_MAX_WITH_HOT_KEYS} with spec.shards.dedicated: the children's names add their suffixes to it`;

/**
 * The hot-key bound as CEL, on the root of the CRD's schema (the only place that sees both the name
 * and the spec); the pattern and the general bound sit on metadata.name itself.
 */
export const appNameRule = {
  rule: `!has(self.spec.shards) || !has(self.spec.shards.dedicated) || size(self.spec.shards.dedicated) == 0 || size(self.metadata.name) <= ${APP_NAME_MAX_WITH_HOT_KEYS}`,
  message: appNameMessage,
  fieldPath: '.metadata.name',
};

export const scalableApp = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata: z
      .object({
        name: z.string(),
        namespace: z.string().optional(),
        uid: z.string().optional(),
        generation: z.number().int().optional(),
        resourceVersion: z.string().optional(),
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
        deletionTimestamp: z.unknown().optional(),
      })
      .loose(),
    spec,
    status: status.optional(),
  })
  .superRefine((app, ctx) => {
    const name = app.metadata.name;
    const max = app.spec.shards?.dedicated.length ? APP_NAME_MAX_WITH_HOT_KEYS : APP_NAME_MAX;
    if (!APP_NAME.test(name) || name.length > max)
      ctx.addIssue({ code: 'custom', path: ['metadata', 'name'], message: appNameMessage });
  });

/** What the user wrote (defaults not yet applied). */
export type ScalableAppInput = z.input<typeof scalableApp>;
/** A ScalableApp with every default applied: what builders receive. */
export type ScalableApp = z.output<typeof scalableApp>;
export type ScalableAppSpec = z.output<typeof spec>;
export type ScalableAppStatus = z.output<typeof status>;
