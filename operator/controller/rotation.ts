// What every password rotation the operator runs shares (docs/adr/0025): the steps one pass may
// take, and how a step becomes the pass's decisions — its record into the facts (applied with the
// tier's Secret), its Event into the notices, a failed step into the failed checks. The app's
// Postgres login (app-login-rotation.ts) and the cache's app password (cache-password-rotation.ts)
// both run this way.
import type { V1Pod } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { appConnection } from '../tiers/connection.ts';
import { ANNOTATION, LABEL } from '../tiers/labels.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import type { Decisions, TierContext } from './tier-module.ts';

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

export function appPodsView(
  ctx: Pick<TierContext, 'children'>,
  app: ScalableApp,
  facts: ObservedFacts,
): AppPodsView {
  const ns = app.metadata.namespace ?? '';
  return {
    appPods: () =>
      (ctx.children.select('Pod', ns, { [LABEL.instance]: app.metadata.name }) as V1Pod[]).filter(
        (p) => p.metadata?.annotations?.[ANNOTATION.connectionHash] !== undefined,
      ),
    connectionHash: () => appConnection(app, facts).hash,
  };
}

/** The app's pods that still hold URLs other than the ones they roll to, by name. */
export function podsOnOldUrls(view: AppPodsView): string[] {
  const hash = view.connectionHash();
  return view
    .appPods()
    .filter((p) => p.metadata?.annotations?.[ANNOTATION.connectionHash] !== hash)
    .map((p) => p.metadata?.name ?? '');
}

/**
 * Runs the next step of one Secret's rotation after the tier's primaries are decided, and folds it
 * into the pass's decisions. A pass that moved a primary asks nothing of the servers: its record is
 * applied first.
 */
export async function rotationDecisions<C>(
  d: Decisions,
  secret: string,
  step: () => Promise<RotationStep<C>>,
  withCredentials: (facts: ObservedFacts, credentials: C) => ObservedFacts,
): Promise<Decisions> {
  const soonest = (ms: number) => Math.min(ms, d.recheckMs ?? ms);
  if (d.moved.length > 0) return { ...d, recheckMs: soonest(ROTATION_RECHECK_MS) };
  const once = `${secret}/rotation`;
  // What a rotation waits on is logged when it changes; any other step ends that.
  const waiting = `${once}/waiting`;
  let s: RotationStep<C>;
  try {
    s = await step();
  } catch (error) {
    return { ...d, failedChecks: [...d.failedChecks, { cluster: secret, error }] };
  }
  const notices = [...(d.notices ?? [])];
  switch (s.kind) {
    case 'steady':
      return { ...d, settled: [...d.settled, once, waiting] };
    case 'recorded':
      return { ...d, facts: withCredentials(d.facts, s.credentials), settled: [...d.settled, once, waiting] };
    case 'wait':
      notices.push({
        type: 'Normal',
        reason: 'CredentialsRotating',
        message: s.waiting,
        once: waiting,
        logOnly: true,
      });
      return { ...d, notices, settled: [...d.settled, once], recheckMs: soonest(s.recheckMs) };
    case 'refused':
      notices.push({ type: 'Warning', reason: 'CredentialsRefused', message: s.reason, once });
      return { ...d, notices };
    case 'switched':
    case 'retired':
      notices.push({
        type: 'Normal',
        reason: s.kind === 'switched' ? 'CredentialsRotating' : 'CredentialsRotated',
        message: s.message,
      });
      return {
        ...d,
        facts: withCredentials(d.facts, s.credentials),
        notices,
        settled: [...d.settled, once, waiting],
        // The next step waits on the pods this one rolls: look again soon.
        recheckMs: soonest(ROTATION_RECHECK_MS),
      };
  }
}
