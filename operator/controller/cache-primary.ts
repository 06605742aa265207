import type { V1Pod } from '@kubernetes/client-node';
import { incarnation as podIncarnation, isContainerReady } from '../kube/pods.ts';
import { AppMemory, appKey } from './app-memory.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { decideFailover, rejoin } from '../dataplane/cache-failover.ts';
import type { CacheAdmin, CacheNode } from '../dataplane/redis-admin.ts';
import { CACHE, CACHE_PORT, cacheHeadlessName, cacheHost, cachePrimary } from '../tiers/cache.ts';
import { selectorLabels } from '../tiers/labels.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { podServesTls } from '../tiers/tls.ts';

export interface CachePrimaryDeps {
  /** The admin for one app's servers (they share that app's password). */
  readonly adminFor: (app: ScalableApp, facts: ObservedFacts) => CacheAdmin;
  readonly pods: (namespace: string, labels: Record<string, string>) => V1Pod[];
  readonly now: () => number;
  /** How long the primary may be unready before a replica is promoted. */
  readonly delayMs: number;
}

export type PrimaryDecision =
  /** `primaryUid`: the primary's pod, once seen serving as one (the record the start script reads). */
  | { kind: 'keep'; primary: string; primaryUid?: string }
  /** Not yet: look again after this long. */
  | { kind: 'wait'; primary: string; recheckMs: number }
  | { kind: 'failover'; primary: string; primaryUid?: string; previous: string; reason: string }
  /** The primary is held and no replica can take over: the cache takes no writes; say why. */
  | { kind: 'refused'; primary: string; reason: string; recheckMs: number };

/** The server's readiness, not the pod's: a broken exporter beside it is no reason to fail over. */
const ready = (p: V1Pod) => isContainerReady(p, CACHE);
/** Turns a pod into the node the admin calls reach. */
type ToNode = (p: V1Pod) => CacheNode;
/**
 * A pod as the admin calls see it: reached at its address, over TLS when the pod mounts its
 * certificate (what the server runs follows its pod while a change of the setting rolls through),
 * verified against the app's CA and the pod's DNS name.
 */
export const nodesOf =
  (app: ScalableApp, facts: ObservedFacts): ToNode =>
  (p) => {
    const ca = facts.tls?.ca.cert;
    const name = p.metadata!.name!;
    return {
      name,
      host: p.status?.podIP ?? '',
      port: CACHE_PORT,
      ...(ca && podServesTls(p)
        ? { tls: { ca, servername: `${name}.${cacheHost(app, cacheHeadlessName(app))}` } }
        : {}),
    };
  };
const incarnation = (p: V1Pod) => podIncarnation(p, CACHE);
const uidOf = (p: V1Pod) => (p.metadata?.uid ? { primaryUid: p.metadata.uid } : {});

/**
 * Keeps the cache's primary where it can serve. The operator's record (the ConfigMap's `primary`) is
 * the truth the pods start from; this decides when the record must move:
 * - the recorded primary unready for `delayMs` → promote the most advanced ready replica;
 * - any other pod that (re)started → make sure it follows the primary (an old primary whose mounted
 *   record has not caught up starts held, or as an empty primary where nothing holds it; it must
 *   never serve as a second one);
 * - the recorded primary started again and holds, empty, as a replica of nothing (tiers/cache.ts,
 *   docs/adr/0021) → promote the most advanced replica at once: there is nothing to wait for.
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
    const node = nodesOf(app, facts);
    const memory = this.memory.of(appKey(app));
    const primary = cachePrimary(app, facts);
    const pods = this.d.pods(app.metadata.namespace ?? '', selectorLabels(app, CACHE));
    const primaryPod = pods.find((p) => p.metadata?.name === primary);
    const held =
      primaryPod && ready(primaryPod) && (await this.holds(primaryPod, node, admin, memory.verified));
    if (primaryPod && ready(primaryPod) && !held) {
      memory.unreadySince = undefined;
      await this.rejoinRestarted(pods, primaryPod, node, admin, memory.verified);
      return { kind: 'keep', primary, ...uidOf(primaryPod) };
    }
    if ((app.spec.cache?.replicas ?? 0) === 0) return { kind: 'keep', primary }; // nothing to promote
    const since = (memory.unreadySince ??= this.d.now());
    const waited = this.d.now() - since;
    if (!held && waited < this.d.delayMs)
      return { kind: 'wait', primary, recheckMs: this.d.delayMs - waited };
    const result = await decideFailover(
      pods.filter(ready).map(node),
      primaryPod ? node(primaryPod) : { name: primary, host: '', port: CACHE_PORT },
      admin,
      // A held primary answers, but holds nothing to keep: as good as gone.
      { lost: Boolean(held) },
    );
    if (!result && held)
      return {
        kind: 'refused',
        primary,
        recheckMs: this.d.delayMs,
        reason: `${primary} started again without its data and is held (it takes no writes); no replica answers to be promoted in its place`,
      };
    if (!result) return { kind: 'wait', primary, recheckMs: this.d.delayMs }; // primary answered, or no replica can take over
    memory.unreadySince = undefined;
    const promoted = pods.find((p) => p.metadata?.name === result.newPrimary.name);
    if (promoted) memory.verified.add(incarnation(promoted));
    return {
      kind: 'failover',
      primary: result.newPrimary.name,
      ...(promoted ? uidOf(promoted) : {}),
      previous: primary,
      reason: held
        ? `${primary} started again without its data; promoted ${result.newPrimary.name} (most advanced ready replica)`
        : `${primary} was not ready for ${Math.round(waited / 1000)}s; promoted ${result.newPrimary.name} (most advanced ready replica)`,
    };
  }

  /**
   * Whether the recorded primary's pod runs as a replica: held after a restart (or left a replica
   * by an interrupted failover). Each incarnation is asked until it is seen serving as a primary.
   */
  private async holds(
    primaryPod: V1Pod,
    node: ToNode,
    admin: CacheAdmin,
    verified: Set<string>,
  ): Promise<boolean> {
    if (verified.has(incarnation(primaryPod))) return false;
    const role = await admin.role(node(primaryPod));
    if (role.role !== 'master') return true;
    verified.add(incarnation(primaryPod));
    return false;
  }

  private async rejoinRestarted(
    pods: V1Pod[],
    primaryPod: V1Pod,
    node: ToNode,
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
