import type { KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, KIND, scalableApp, type ScalableAppStatus } from '../api/scalable-app.ts';
import type { Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import type { Informer } from '../kube/informer.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { AppMemory, appKey } from './app-memory.ts';
import type { AppMetrics } from './app-metrics.ts';
import { writeHeldBack, writeStatus, type HeldBackReason } from './app-status.ts';
import { applyAll, prune } from './apply.ts';
import type { CachePrimary } from './cache-primary.ts';
import type { ChildCaches } from './children.ts';
import type { DatabasePrimary } from './database-primary.ts';
import { desiredState } from './desired-state.ts';
import { recordSecretReads, stamped, withReadVersion } from './drift.ts';
import type { EventRecorder } from './events.ts';
import { gatherFacts } from './facts.ts';
import { decidePrimaries, removeDoneSwitchover } from './primaries.ts';
import type { AppLoginRotation } from './app-login-rotation.ts';
import type { ServerPasswordRotation } from './server-password-rotation.ts';
import type { CachePasswordRotation } from './cache-password-rotation.ts';
import type { QueueLoginRotation } from './queue-login-rotation.ts';
import { missingSecrets } from './references.ts';
import { observeArchiving, type ArchivingDeps } from './archiving.ts';
import { observeBackups } from './backups.ts';
import { ChildRefusedError, type Refusal } from './refusal.ts';
import { labelRoles } from './roles.ts';
import type { ConsumerScalingPort, TierContext } from './tier-module.ts';
import { TIER_MODULES } from './tier-modules/index.ts';
import { unconfirmedVolumeDeletions } from './volume-deletion.ts';
import { growVolumes } from './volume-growth.ts';

export { ChildRefusedError, type Refusal };
export { appPath } from './app-status.ts';
export type { ConsumerScalingPort } from './tier-module.ts';

export type ReconcileResult = 'ok' | { requeueAfterMs: number };
type Log = ReconcilerDeps['log'];

export interface ReconcilerDeps {
  readonly kube: Kube;
  readonly apps: Informer;
  readonly children: ChildCaches;
  readonly events: EventRecorder;
  readonly facts: () => ObservedFacts;
  /** Moves the cache primary when it is lost; absent when the operator runs without cache failover. */
  readonly cachePrimary?: CachePrimary;
  /** Moves the database primary on failure or on request; absent when the operator runs without it. */
  readonly databasePrimary?: DatabasePrimary;
  /** Rotates the app's Postgres login when its password changes (ADR 0025); absent, a change waits. */
  readonly appLogins?: AppLoginRotation;
  /** Changes the Postgres servers' own passwords when they change (ADR 0028); absent, a change waits. */
  readonly serverPasswords?: ServerPasswordRotation;
  /** Rotates the app's cache password when it changes (ADR 0026); absent, a change waits. */
  readonly cachePasswords?: CachePasswordRotation;
  /** Rotates the app's queue login when its password changes (ADR 0027); absent, a change waits. */
  readonly queueLogins?: QueueLoginRotation;
  /** The queue-depth autoscaler of the consumers; absent, autoscaled consumers stay at their minimum. */
  readonly consumerScaling?: ConsumerScalingPort;
  /** The per-app series (app-metrics.ts); absent, none are kept. */
  readonly appMetrics?: AppMetrics;
  /** Asks the primaries of archiving tiers how archiving goes (archiving.ts); absent, not told. */
  readonly archiving?: ArchivingDeps;
  readonly log: {
    info(msg: string, f?: Record<string, unknown>): void;
    warn(msg: string, f?: Record<string, unknown>): void;
  };
  readonly now?: () => Date;
}

/** A missing referenced Secret is the user's to create; look again at this pace (it carries no label we watch). */
const MISSING_REFERENCE_RETRY_MS = 15_000;

const soonest = (result: ReconcileResult, ms: number | undefined): ReconcileResult =>
  ms === undefined ? result : { requeueAfterMs: result === 'ok' ? ms : Math.min(ms, result.requeueAfterMs) };

/**
 * Level-triggered reconcile of one ScalableApp: read it from the cache, compute the desired
 * children, apply only what differs, delete children it no longer wants (never volumes), and write
 * status only when it changed. Safe to run any number of times. It runs its phases over every tier
 * (tier-modules/) and names none: facts (facts.ts), primaries (primaries.ts), apply and prune
 * (apply.ts), role labels (roles.ts), status (app-status.ts).
 */
export class Reconciler {
  private readonly d: ReconcilerDeps;
  private readonly ctx: TierContext & { readonly events: EventRecorder };
  /**
   * Per app: refusedReplace (apply.ts), and refusedFailover: per Postgres cluster, the failover
   * refusal last announced, so there is one Event per refusal, not per look.
   */
  private readonly memory = new AppMemory(() => ({
    refusedReplace: new Map<string, string>(),
    refusedFailover: new Map<string, string>(),
  }));
  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.ctx = { ...deps, now: () => deps.now?.() ?? new Date() };
  }

  async reconcile(key: string, log: Log = this.d.log): Promise<ReconcileResult> {
    const [ns, name] = key.split('/') as [string, string];
    const raw = this.d.apps.get(ns, name) as
      (KubernetesObject & { spec?: unknown; status?: ScalableAppStatus }) | undefined;
    if (!raw || raw.metadata?.deletionTimestamp) {
      // Not in the cache: deleted, or it left this operator's selection (handed to another instance,
      // docs/adr/0012), or it never was ours and a child's event named it. Nothing is written either
      // way: garbage collection removes the children of a deleted app, by their owner references.
      for (const m of TIER_MODULES) m.forget?.(this.ctx, key);
      this.memory.forget(key);
      this.d.appMetrics?.forget(key);
      return 'ok';
    }
    const generation = raw.metadata?.generation ?? 0;
    const holdBack = (reason: HeldBackReason, message: string) =>
      writeHeldBack(this.ctx, raw, generation, reason, message, log);

    const parsed = scalableApp.safeParse({ ...raw, apiVersion: API_VERSION, kind: KIND });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      await holdBack('InvalidSpec', `${issue.path.join('.')}: ${issue.message}`);
      return 'ok';
    }
    const app = parsed.data;

    const missing = await missingSecrets(this.d.kube, app);
    if (missing.length) {
      await holdBack('MissingReference', missing.join('; '));
      return { requeueAfterMs: MISSING_REFERENCE_RETRY_MS };
    }

    // The Secrets read while gathering, at the version read: each is written back only if unchanged.
    const read = new Map<string, string>();
    const gathered = await gatherFacts(
      { ...this.ctx, children: recordSecretReads(this.ctx.children, read) },
      app,
      this.d.facts(),
    );
    if (gathered.lost) {
      await holdBack('ShardMapLost', gathered.lost);
      return { requeueAfterMs: MISSING_REFERENCE_RETRY_MS };
    }
    const memory = this.memory.of(appKey(app));
    const primaries = await decidePrimaries(this.ctx, app, gathered.facts, memory.refusedFailover, log);
    const facts = primaries.facts;
    for (const mv of primaries.moved) this.d.appMetrics?.moved(app, mv);
    const observe = (status: ScalableAppStatus) =>
      this.d.appMetrics?.observe(
        app,
        status,
        facts,
        this.d.children.ownedBy(app.metadata.uid ?? '').map((c) => c.obj),
      );
    let result = soonest('ok', primaries.recheckMs);
    const archiving = this.d.archiving
      ? await observeArchiving(this.d.archiving, app, facts, raw.status?.conditions)
      : { conditions: [] };
    result = soonest(result, archiving.recheckMs);
    const backups = observeBackups(app, facts, this.d.children, raw.status, this.ctx.now());
    result = soonest(result, backups.recheckMs);

    const desired = desiredState(app, facts).map((o) => stamped(withReadVersion(o, read)));
    // A larger volume first grows its claims and recreates its StatefulSet (volume-growth.ts).
    const growth = await growVolumes({ kube: this.d.kube, children: this.d.children, log }, desired);
    for (const sts of growth.recreating)
      await this.d.events.record(
        app,
        'Normal',
        'VolumesGrowing',
        `Grew the volumes of StatefulSet ${sts}; recreating it with its pods kept`,
      );
    const applied = await applyAll(this.d, app, growth.desired, memory.refusedReplace, log);
    const changed = applied.applied + growth.recreating.length;
    const refusals = [
      ...growth.refusals,
      ...applied.refusals,
      ...unconfirmedVolumeDeletions(app, this.d.children.ownedBy(app.metadata.uid ?? ''), desired),
    ];
    if (refusals.length) {
      // Nothing is deleted and no pod restarted while the app is half applied: a restart may wait on
      // a record that was refused. The status says which child and why, once.
      const refused = new ChildRefusedError(refusals);
      const outcome = {
        changed: changed > 0,
        refusals,
        failoverRefused: [],
        archiving: archiving.conditions,
        backups,
      };
      // Announced when the refusal appears or changes, not each time the status is rewritten while it
      // stands (a tier becoming ready meanwhile): one Event, counted once.
      const before = raw.status?.conditions?.find((c) => c.type === 'Degraded');
      const announced = before?.reason === 'ChildRefused' && before.message === refused.message;
      const { wrote, status } = await writeStatus(this.ctx, app, facts, raw.status, generation, outcome);
      observe(status);
      if (wrote && !announced) {
        log.warn('a child was refused; retrying with backoff', { refused: refused.message });
        await this.d.events.record(app, 'Warning', 'ChildRefused', refused.message);
      }
      throw refused;
    }
    const pruned = await prune(this.d, app, desired, log);
    // After the record moved (applied above), so a restarted instance starts from the new one.
    for (const { pod, why } of primaries.restart) {
      log.warn('restarting a server pod', { pod, why });
      await this.d.kube.delete(`${collectionPath('v1', 'pods', app.metadata.namespace)}/${pod}`);
      await this.d.events.record(app, 'Warning', 'InstanceRestarted', why);
    }
    if (primaries.switchoverDone) await removeDoneSwitchover(this.d.kube, app, primaries.switchoverDone, log);
    const relabelled = await labelRoles(this.d, app, facts, log);
    const { recheck, status } = await writeStatus(this.ctx, app, facts, raw.status, generation, {
      changed: changed + pruned + relabelled > 0,
      refusals: [],
      failoverRefused: primaries.failoverRefused,
      archiving: archiving.conditions,
      backups,
    });
    observe(status);
    // A container still within its probes' budget is called not ready only when it runs out: look then.
    result = soonest(result, recheck);
    return result;
  }
}
