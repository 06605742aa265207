import { z } from 'zod';
import { spec } from './spec.ts';
import { status } from './status.ts';

export const GROUP = 'scalableapp.io';
export const VERSION = 'v1alpha1';
export const KIND = 'ScalableApp';
export const PLURAL = 'scalableapps';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const scalableApp = z.object({
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
});

/** What the user wrote (defaults not yet applied). */
export type ScalableAppInput = z.input<typeof scalableApp>;
/** A ScalableApp with every default applied: what builders receive. */
export type ScalableApp = z.output<typeof scalableApp>;
export type ScalableAppSpec = z.output<typeof spec>;
export type ScalableAppStatus = z.output<typeof status>;
