import type { V1Pod } from '@kubernetes/client-node';
import { isPodReady } from '../kube/pods.ts';
import { AppMemory, appKey } from './app-memory.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { decideFailover, rejoin } from '../dataplane/cache-failover.ts';
import type { CacheAdmin, CacheNode } from '../dataplane/redis-admin.ts';
import { CACHE, CACHE_PORT, cachePrimary } from '../tiers/cache.ts';
import { selectorLabels } from '../tiers/labels.ts';
import type { ObservedFacts } from '../tiers/objects.ts';

export interface CachePrimaryDeps {
  /** The admin for one app's servers (they share that app's password). */
  readonly adminFor: (app: ScalableApp, facts: ObservedFacts) => CacheAdmin;
  readonly pods: (namespace: string, labels: Record<string, string>) => V1Pod[];
  readonly now: () => number;
  /** How long the primary may be unready before a replica is promoted. */
  readonly delayMs: number;
}

export type PrimaryDecision =
  | { kind: 'keep'; primary: string }
  /** Not yet: look again after this long. */
  | { kind: 'wait'; primary: string; recheckMs: number }
  | { kind: 'failover'; primary: string; previous: string; reason: string };

const ready = isPodReady;
const node = (p: V1Pod): CacheNode => ({
  name: p.metadata!.name!,
  host: p.status?.podIP ?? '',
  port: CACHE_PORT,
});
/** A pod incarnation: a new pod or a restarted container is a server that booted from its config. */
const incarnation = (p: V1Pod) => `${p.metadata?.uid}/${p.status?.containerStatuses?.[0]?.restartCount ?? 0}`;

/**
 * Keeps the cache's primary where it can serve. The operator's record (the ConfigMap's `primary`) is
 * the truth the pods start from; this decides when the record must move:
 * - the recorded primary unready for `delayMs` → promote the most advanced ready replica;
 * - any other pod that (re)started → make sure it follows the primary (an old primary boots as a
 *   primary from its config until the mounted record catches up; it must never serve as a second one).
 * State kept here (when the primary went unready, which incarnations were checked) is only an
 * optimisation: after a restart the operator re-checks every pod once and restarts the delay.
 */
export class CachePrimary {
  private readonly d: CachePrimaryDeps;
  /** Per app: when its primary was first seen unready; the pod incarnations checked. */
  private readonly memory = new AppMemory(() => ({
    unreadySince: undefined as number | undefined,
    verified: new Set<string>(),
  }));
  constructor(deps: CachePrimaryDeps) {
    this.d = deps;
  }

  /** Drops what was remembered about an app that went away. */
  forget(key: string): void {
    this.memory.forget(key);
  }

  async decide(app: ScalableApp, facts: ObservedFacts): Promise<PrimaryDecision> {
    const admin = this.d.adminFor(app, facts);
    const memory = this.memory.of(appKey(app));
    const primary = cachePrimary(app, facts);
    const pods = this.d.pods(app.metadata.namespace ?? '', selectorLabels(app, CACHE));
    const primaryPod = pods.find((p) => p.metadata?.name === primary);
    if (primaryPod && ready(primaryPod)) {
      memory.unreadySince = undefined;
      await this.rejoinRestarted(pods, primaryPod, admin, memory.verified);
      return { kind: 'keep', primary };
    }
    if ((app.spec.cache?.replicas ?? 0) === 0) return { kind: 'keep', primary }; // nothing to promote
    const since = (memory.unreadySince ??= this.d.now());
    const waited = this.d.now() - since;
    if (waited < this.d.delayMs) return { kind: 'wait', primary, recheckMs: this.d.delayMs - waited };
    const result = await decideFailover(
      pods.filter(ready).map(node),
      primaryPod ? node(primaryPod) : { name: primary, host: '', port: CACHE_PORT },
      admin,
    );
    if (!result) return { kind: 'wait', primary, recheckMs: this.d.delayMs }; // primary answered, or no replica can take over
    memory.unreadySince = undefined;
    for (const p of pods)
      if (p.metadata?.name === result.newPrimary.name) memory.verified.add(incarnation(p));
    return {
      kind: 'failover',
      primary: result.newPrimary.name,
      previous: primary,
      reason: `${primary} was not ready for ${Math.round(waited / 1000)}s; promoted ${result.newPrimary.name} (most advanced ready replica)`,
    };
  }

  private async rejoinRestarted(
    pods: V1Pod[],
    primaryPod: V1Pod,
    admin: CacheAdmin,
    verified: Set<string>,
  ): Promise<void> {
    for (const p of pods) {
      if (p === primaryPod || !ready(p) || verified.has(incarnation(p))) continue;
      const role = await admin.role(node(p));
      if (role.role === 'master' || role.primary?.host !== primaryPod.status?.podIP) {
        await rejoin(node(p), node(primaryPod), admin);
      }
      verified.add(incarnation(p));
    }
  }
}
