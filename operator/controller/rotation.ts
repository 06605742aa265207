// What every password rotation the operator runs shares (docs/adr/0025, 0026): the steps one pass
// may take, and the app's pods a step waits on. The app's Postgres login (app-login-rotation.ts) and
// the cache's app password (cache-password-rotation.ts) both run this way; how a step becomes a
// pass's decisions is tier-modules/rotation-decisions.ts.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION } from '../tiers/labels.ts';

/** How soon to look again while a step waits on pods or sessions. */
export const ROTATION_RECHECK_MS = 5_000;

export type RotationStep<C> =
  | { readonly kind: 'steady' }
  /** The record is written for the first time (what the servers have): apply it, nothing to say. */
  | { readonly kind: 'recorded'; readonly credentials: C }
  /** Nothing to do yet; look again then. `waiting` says on what (logged when it changes, no Event). */
  | { readonly kind: 'wait'; readonly waiting: string; readonly recheckMs: number }
  /** The record changed: apply these credentials, and announce it (one Event). */
  | {
      readonly kind: 'switched' | 'retired';
      readonly credentials: C;
      readonly message: string;
    }
  /** The new password cannot be used: why, naming the Secret's key (a Warning Event, once). */
  | { readonly kind: 'refused'; readonly reason: string };

/** The app's pods that carry its URLs, and the hash of the URLs they roll to (both asked lazily). */
export interface AppPodsView {
  /**
   * The app's pods that carry its URLs (the connection hash annotation): web, consumers. A function:
   * only the step that retires a password looks at them, and the reconciler asks every pass.
   */
  readonly appPods: () => readonly V1Pod[];
  /** The connection hash the app's pods roll to: the one naming the current password. */
  readonly connectionHash: () => string;
}

/** A step that waits, saying on what (every rotation looks again after ROTATION_RECHECK_MS). */
export const waitOn = (waiting: string): RotationStep<never> => ({
  kind: 'wait',
  waiting,
  recheckMs: ROTATION_RECHECK_MS,
});

/**
 * The wait while some of the app's pods still hold the URLs a retiring credential is in (`what`
 * says which, as in "with the previous cache password"), or undefined once none does.
 */
export function waitForOldUrls(view: AppPodsView, what: string): RotationStep<never> | undefined {
  const stale = podsOnOldUrls(view);
  if (stale.length === 0) return undefined;
  return waitOn(`${stale.length} pod(s) still hold the URLs ${what}: ${stale.join(', ')}`);
}

/** The app's pods that still hold URLs other than the ones they roll to, by name. */
export function podsOnOldUrls(view: AppPodsView): string[] {
  const hash = view.connectionHash();
  return view
    .appPods()
    .filter((p) => p.metadata?.annotations?.[ANNOTATION.connectionHash] !== hash)
    .map((p) => p.metadata?.name ?? '');
}
