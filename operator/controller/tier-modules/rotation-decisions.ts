// How a step of a password rotation (rotation.ts) becomes the pass's decisions: its record into the
// facts (applied with the tier's Secret), its Event into the notices, a failed step into the failed
// checks. Here, not in rotation.ts: the rotations are part of the tier context this depends on.
import type { V1Pod } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import { appConnection } from '../../tiers/connection.ts';
import { ANNOTATION, LABEL } from '../../tiers/labels.ts';
import type { ObservedFacts } from '../../tiers/objects.ts';
import { ROTATION_RECHECK_MS, type AppPodsView, type RotationStep } from '../rotation.ts';
import type { Decisions, TierContext } from '../tier-module.ts';
import { appKey } from '../app-memory.ts';

/** What a rotation of one app's Secret knows of the app: its key, the Secret, and the app's pods. */
export const appRotationScope = (
  ctx: Pick<TierContext, 'children'>,
  app: ScalableApp,
  facts: ObservedFacts,
  secret: string,
) => ({ app: appKey(app), secret, ...appPodsView(ctx, app, facts) });

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
