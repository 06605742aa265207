import type { ScalableApp } from '../api/scalable-app.ts';
import { isNotFound, isUnprocessable, type Kube } from '../kube/client.ts';
import { appPath } from './app-status.ts';
import { SWITCHOVER_ANNOTATION } from './database-primary.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import type { EventRecorder } from './events.ts';
import type { Restart } from './database-primary.ts';
import type { Move, TierContext } from './tier-module.ts';
import { TIER_MODULES } from './tier-modules/index.ts';

interface Log {
  info(msg: string, f?: Record<string, unknown>): void;
  warn(msg: string, f?: Record<string, unknown>): void;
}

export interface PrimariesOutcome {
  readonly facts: ObservedFacts;
  /** Pods to restart once the records naming the new primaries are applied. */
  readonly restart: readonly Restart[];
  /** Per cluster whose failover is refused: why (status Degraded, ADR 0006). */
  readonly failoverRefused: readonly string[];
  readonly recheckMs?: number;
  /** The pod a switchover was asked for is now the ready primary (database-primary.ts). */
  readonly switchoverDone?: string;
  /** Every primary moved this pass (each announced by an Event; the operator's metrics count them). */
  readonly moved: readonly Move[];
}

/** How long to wait before asking a cluster's servers again after they could not be asked. */
const CHECK_FAILED_RETRY_MS = 5_000;

/**
 * Every tier's decisions about its primaries, announced: one Event per move, one per failed check,
 * and one per refusal when it starts or changes (`announced` remembers them per cluster, for the app).
 */
export async function decidePrimaries(
  ctx: TierContext & { readonly events: EventRecorder },
  app: ScalableApp,
  facts: ObservedFacts,
  announced: Map<string, string>,
  log: Log,
): Promise<PrimariesOutcome> {
  let current = facts;
  const restart: Restart[] = [];
  const moved: Move[] = [];
  const failoverRefused: string[] = [];
  let recheckMs: number | undefined;
  let switchoverDone: string | undefined;
  const soonest = (ms: number) => (recheckMs = recheckMs === undefined ? ms : Math.min(ms, recheckMs));
  for (const m of TIER_MODULES) {
    if (!m.present(app) || !m.decide) continue;
    const d = await m.decide(ctx, app, current);
    current = d.facts;
    restart.push(...d.restart);
    switchoverDone ??= d.switchoverDone;
    if (d.recheckMs !== undefined) soonest(d.recheckMs);
    for (const f of d.failedChecks) {
      log.warn('could not decide on a primary; trying again', { cluster: f.cluster, err: f.error });
      await ctx.events.record(app, 'Warning', 'PrimaryCheckFailed', `${f.cluster}: ${errorMessage(f.error)}`);
      soonest(CHECK_FAILED_RETRY_MS);
    }
    for (const cluster of d.settled) announced.delete(cluster);
    for (const r of d.refused) {
      failoverRefused.push(`${r.cluster}: ${r.reason}`);
      if (announced.get(r.cluster) === r.reason) continue;
      // It is looked at again every few seconds while it lasts; say it when it starts or changes.
      announced.set(r.cluster, r.reason);
      log.warn('database failover refused', { cluster: r.cluster, reason: r.reason });
      await ctx.events.record(app, 'Warning', 'FailoverRefused', r.reason);
    }
    for (const n of d.notices ?? []) {
      if (n.once !== undefined) {
        if (announced.get(n.once) === n.message) continue;
        announced.set(n.once, n.message);
      }
      log[n.type === 'Warning' ? 'warn' : 'info'](n.message, { reason: n.reason });
      if (!n.logOnly) await ctx.events.record(app, n.type, n.reason, n.message);
    }
    for (const mv of d.moved) {
      moved.push(mv);
      log.warn(mv.what, { cluster: mv.cluster, from: mv.from, to: mv.to });
      await ctx.events.record(app, mv.event.type, mv.event.reason, mv.reason);
    }
  }
  return {
    facts: current,
    restart,
    moved,
    failoverRefused,
    ...(recheckMs !== undefined ? { recheckMs } : {}),
    ...(switchoverDone ? { switchoverDone } : {}),
  };
}

/** An error's message for an Event: the admin clients never put credentials in their messages. */
const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 512);

/** The switchover annotation as a JSON pointer (RFC 6901: `~` and `/` escaped). */
const SWITCHOVER_POINTER = `/metadata/annotations/${SWITCHOVER_ANNOTATION.replace(/~/g, '~0').replace(/\//g, '~1')}`;

/**
 * Removes a switchover request that is done (docs/adr/0020): left in place it would be asked for
 * again after any later failover, switching back to that pod as soon as it rejoined. Removed only
 * while it still names that pod: a request changed meanwhile stays, for the next pass to decide on.
 */
export async function removeDoneSwitchover(
  kube: Kube,
  app: ScalableApp,
  target: string,
  log: Log,
): Promise<void> {
  try {
    await kube.jsonPatch(appPath(app.metadata.namespace ?? '', app.metadata.name), [
      { op: 'test', path: SWITCHOVER_POINTER, value: target },
      { op: 'remove', path: SWITCHOVER_POINTER },
    ]);
    log.info('switchover done; removed its request', { pod: target });
  } catch (err) {
    if (isUnprocessable(err) || isNotFound(err)) return; // changed or gone meanwhile
    // The rest of the pass (role labels, status) goes on; the next pass tries again.
    log.warn('could not remove a done switchover request; trying again', { pod: target, err });
  }
}
