import type { KubernetesObject } from '@kubernetes/client-node';
import type { ScalableApp, ScalableAppStatus } from '../api/scalable-app.ts';
import type { Tier } from '../api/spec.ts';
import type { Kube } from '../kube/client.ts';
import type { Child, ObservedFacts } from '../tiers/objects.ts';
import type { CachePasswordRotation } from './cache-password-rotation.ts';
import type { QueueLoginRotation } from './queue-login-rotation.ts';
import type { AppLoginRotation } from './app-login-rotation.ts';
import type { ServerPasswordRotation } from './server-password-rotation.ts';
import type { CachePrimary } from './cache-primary.ts';
import type { EventReason } from './conditions.ts';
import type { DatabasePrimary, Restart } from './database-primary.ts';
import type { ChildLookup, Readiness } from './tier-status.ts';

/**
 * One tier of a ScalableApp, everything the reconciler does for it in one place: the facts only the
 * cluster knows, the decisions about its primaries, its objects, its role labels, its readiness, its
 * status and its endpoints. The reconciler runs its phases over TIER_MODULES (tier-modules/index.ts)
 * and names no tier; adding a tier is one module, its line in that list, and its schema.
 */
export interface TierModule {
  readonly tier: Tier;
  /** Whether the app runs this tier. */
  present(app: ScalableApp): boolean;
  /** Facts only the cluster knows (generated credentials, recorded primaries, pods), merged in order. */
  gather?(ctx: TierContext, app: ScalableApp, facts: ObservedFacts): Promise<Gathered>;
  /** Who is primary now: may move a primary, and says what to announce and when to look again. */
  decide?(ctx: TierContext, app: ScalableApp, facts: ObservedFacts): Promise<Decisions>;
  /** The tier's objects, a pure function of the spec and the facts. */
  objects(app: ScalableApp, facts: ObservedFacts, shared: SharedObjects): Child[];
  /** Secrets that outlive the app with its volumes (credentials set only when the data was created). */
  retainedSecrets?(app: ScalableApp): string[];
  /** Pod groups whose `role` label the operator keeps (Services select primary and replicas by it). */
  roles?(app: ScalableApp, facts: ObservedFacts): RoleGroup[];
  /** Whether the tier is ready, and if not, which object holds it back. */
  readiness(app: ScalableApp, children: ChildLookup, facts: ObservedFacts, now: number): Readiness;
  /** Where clients reach the tier (status.endpoints). */
  endpoints?(app: ScalableApp): NonNullable<ScalableAppStatus['endpoints']>;
  /** The tier's own block of the status (replicas, primary, ring, decisions). */
  status?(app: ScalableApp, facts: ObservedFacts, children: ChildLookup): Partial<ScalableAppStatus>;
  /** The app is gone: drop what is remembered about it. */
  forget?(ctx: TierContext, appKey: string): void;
}

/** Objects every tier may point at: the app's connection Secret and the hash its pods roll on. */
export interface SharedObjects {
  readonly connection: { readonly name: string; readonly hash: string };
}

export interface Gathered {
  readonly facts: Partial<ObservedFacts>;
  /** Why the app must be held back, nothing applied (a lost shard map). */
  readonly lost?: string;
}

export interface RoleGroup {
  readonly selector: Record<string, string>;
  readonly primary: string;
}

/** What a tier decided about its primaries in one pass. */
export interface Decisions {
  /** The facts with any moved primary recorded in them. */
  readonly facts: ObservedFacts;
  /** Primaries moved this pass, announced as one Event each. */
  readonly moved: readonly Move[];
  /** Per cluster whose failover is needed but refused: why (status Degraded, ADR 0006). */
  readonly refused: readonly { readonly cluster: string; readonly reason: string }[];
  /** Clusters decided without a refusal: a refusal announced for them is over. */
  readonly settled: readonly string[];
  /** Clusters whose servers could not be asked; the others go on. */
  readonly failedChecks: readonly { readonly cluster: string; readonly error: unknown }[];
  /** Pods to restart after the record is applied, and why (one Event each). */
  readonly restart: readonly Restart[];
  /** Look again after this long (a failover delay running, a refused failover). */
  readonly recheckMs?: number;
  /** The pod a switchover was asked for is now the ready primary: the request is removed. */
  readonly switchoverDone?: string;
  /**
   * Other things done or refused this pass, one Event each. One with `once` is announced when it
   * starts or changes, not on every pass while it stands; `once` in `settled` ends it.
   */
  readonly notices?: readonly Notice[];
}

export interface Notice {
  readonly type: 'Normal' | 'Warning';
  readonly reason: EventReason;
  readonly message: string;
  readonly once?: string;
  /** A log line only, no Event: progress a user need not be told of in the app's events. */
  readonly logOnly?: true;
}

export interface Move {
  readonly cluster: string;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly event: { readonly type: 'Normal' | 'Warning'; readonly reason: EventReason };
  /** The log line's words: what kind of move it was. */
  readonly what: string;
}

export const noDecisions = (facts: ObservedFacts): Decisions => ({
  facts,
  moved: [],
  refused: [],
  settled: [],
  failedChecks: [],
  restart: [],
});

/** The informers' caches of the app's children (children.ts). */
export interface LiveChildren extends ChildLookup {
  get(kind: string, namespace: string, name: string): KubernetesObject | undefined;
  select(kind: string, namespace: string, labels: Record<string, string>): KubernetesObject[];
}

/** What of the reconciler's dependencies a tier may use. */
export interface TierContext {
  readonly kube: Kube;
  readonly children: LiveChildren;
  /** Moves the cache primary when it is lost; absent when the operator runs without cache failover. */
  readonly cachePrimary?: CachePrimary;
  /** Moves the database primary on failure or on request; absent when the operator runs without it. */
  readonly databasePrimary?: DatabasePrimary;
  /** Rotates the app's Postgres login when its password changes; absent, a change waits (ADR 0025). */
  readonly appLogins?: AppLoginRotation;
  /** Changes the Postgres servers' own passwords when they change; absent, a change waits (ADR 0028). */
  readonly serverPasswords?: ServerPasswordRotation;
  /** Rotates the app's cache password when it changes; absent, a change waits (ADR 0026). */
  readonly cachePasswords?: CachePasswordRotation;
  /** Rotates the app's queue login when its password changes (ADR 0027); absent, a change waits. */
  readonly queueLogins?: QueueLoginRotation;
  /** The queue-depth autoscaler of the consumers; absent, autoscaled consumers stay at their minimum. */
  readonly consumerScaling?: ConsumerScalingPort;
  readonly now: () => Date;
}

/** What the reconciler needs of the consumers' autoscaler (operator/controller/consumer-scaling.ts). */
export interface ConsumerScalingPort {
  /** Starts or updates the app's pollers and says, per autoscaled consumer, what to run now. */
  sync(
    app: ScalableApp,
    facts: ObservedFacts,
    currentReplicas: (deployment: string) => number | undefined,
  ): NonNullable<ObservedFacts['consumerScale']>;
  /** The app is gone: stop polling its queues. */
  forget(appKey: string): void;
}
