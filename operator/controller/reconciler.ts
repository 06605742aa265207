import { randomBytes } from 'node:crypto';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Pod, V1Secret } from '@kubernetes/client-node';
import {
  API_VERSION,
  KIND,
  PLURAL,
  GROUP,
  VERSION,
  scalableApp,
  type ScalableApp,
  type ScalableAppStatus,
} from '../api/scalable-app.ts';
import type { Kube } from '../kube/client.ts';
import { ApiError, isNotFound } from '../kube/client.ts';
import { ChildRefusedError, REFUSALS, apiserverWords, refusalMessage, type Refusal } from './refusal.ts';
import { growVolumes } from './volume-growth.ts';
import { unconfirmedVolumeDeletions } from './volume-deletion.ts';

export { ChildRefusedError, type Refusal };
import { OWNED_KINDS, collectionPath } from '../kube/resources.ts';
import { desiredState } from '../tiers/desired-state.ts';
import type { Child, ObservedFacts } from '../tiers/objects.ts';
import { connectionSecretName } from '../tiers/connection.ts';
import { webEndpoint, webName } from '../tiers/web.ts';
import {
  CACHE,
  CACHE_PORT,
  cacheAuthName,
  cacheConfigName,
  cacheHost,
  cacheName,
  cachePrimary,
  cacheReplicasName,
} from '../tiers/cache.ts';
import { ROLE_LABEL, selectorLabels } from '../tiers/labels.ts';
import {
  DATABASE,
  PG_PORT,
  databaseCluster,
  dbCredentialsName,
  dbName,
  dbPrimary,
  dbReadService,
  dbWriteService,
} from '../tiers/database.ts';
import { EDGE_SERVICE_PORT, edgeName } from '../tiers/edge-cache.ts';
import {
  LAST_FAILOVER_REASON,
  LAST_FAILOVER_TIME,
  pgConfigName,
  pgPrimary,
  type DatabaseCredentials,
  type PgCluster,
  type PgClusterFacts,
} from '../tiers/postgres-cluster.ts';
import {
  SHARD,
  SHARD_MAP_RESET,
  shardCluster,
  shardClusters,
  shardMapName,
  shardsCredentialsName,
} from '../tiers/shards.ts';
import { SHARD_MAP_KEY, safeParseShardMap } from '../sharding/shard-map.ts';
import { mqCredentialsName, mqName } from '../tiers/queue.ts';
import { AMQP_PORT } from '../dataplane/rabbitmq/config.ts';
import type { ChildCaches } from './children.ts';
import { APP_REASON, cond, mergeConditions, metaTime, type ConditionInput } from './conditions.ts';
import { desiredHash, drift, firstDifference, overlay, stamped } from './drift.ts';
import type { EventRecorder } from './events.ts';
import { referencedSecrets } from './references.ts';
import {
  cacheStatus,
  consumersStatus,
  readyReplicas,
  recheckAfterMs,
  shardsStatus,
  tierReports,
} from './tier-status.ts';
import { diagnosisEvents } from './pod-diagnosis.ts';
import type { DatabaseDecision, DatabasePrimary } from './database-primary.ts';
import { AppMemory, appKey } from './app-memory.ts';
import type { CachePrimary } from './cache-primary.ts';
import type { Informer } from '../kube/informer.ts';

export type ReconcileResult = 'ok' | { requeueAfterMs: number };

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
  /** The queue-depth autoscaler of the consumers; absent, autoscaled consumers stay at their minimum. */
  readonly consumerScaling?: ConsumerScalingPort;
  readonly log: {
    info(msg: string, f?: Record<string, unknown>): void;
    warn(msg: string, f?: Record<string, unknown>): void;
  };
  readonly now?: () => Date;
}

/** A missing referenced Secret is the user's to create; look again at this pace (it carries no label we watch). */
const MISSING_REFERENCE_RETRY_MS = 15_000;

export const appPath = (ns: string, name: string) =>
  `${collectionPath(`${GROUP}/${VERSION}`, PLURAL, ns)}/${name}`;
const objectPath = (o: KubernetesObject) =>
  `${collectionPath(o.apiVersion!, pluralOf(o.kind!), o.metadata!.namespace)}/${o.metadata!.name}`;

function pluralOf(kind: string): string {
  const p = OWNED_KINDS.find((k) => k.kind === kind)?.plural;
  if (!p) throw new Error(`no REST path known for kind ${kind}`);
  return p;
}

/**
 * Level-triggered reconcile of one ScalableApp: read it from the cache, compute the desired
 * children, apply only what differs, delete children it no longer wants (never volumes), and write
 * status only when it changed. Safe to run any number of times.
 */
/** Why nothing of an app is applied, the phase that shows, and what it waits for. */
const HELD_BACK = {
  [APP_REASON.InvalidSpec]: { phase: 'Invalid', until: 'the spec is fixed' },
  // The spec is fine; something it names does not exist yet (looked for again every few seconds).
  [APP_REASON.MissingReference]: { phase: 'Pending', until: 'the referenced Secrets exist' },
  // The data is fine; which version of the map to publish is the user's call (docs/sharding.md).
  [APP_REASON.ShardMapLost]: {
    phase: 'Degraded',
    until: 'the shard map is published again (see the Ready message)',
  },
} as const satisfies Record<string, { phase: ScalableAppStatus['phase']; until: string }>;
type HeldBackReason = keyof typeof HELD_BACK;

export class Reconciler {
  private readonly d: ReconcilerDeps;
  /**
   * Per app:
   * - refusedReplace: per child path, the desired hash whose replace (the fallback of a refused
   *   apply) was refused too: the same object is then not replaced again, so each backoff step
   *   costs one request, not two;
   * - refusedFailover: per Postgres cluster, the failover refusal last announced: one Event per
   *   refusal, not per look.
   */
  private readonly memory = new AppMemory(() => ({
    refusedReplace: new Map<string, string>(),
    refusedFailover: new Map<string, string>(),
  }));
  constructor(deps: ReconcilerDeps) {
    this.d = deps;
  }

  async reconcile(key: string, log: Log = this.d.log): Promise<ReconcileResult> {
    const [ns, name] = key.split('/') as [string, string];
    const raw = this.d.apps.get(ns, name) as
      (KubernetesObject & { spec?: unknown; status?: ScalableAppStatus }) | undefined;
    if (!raw || raw.metadata?.deletionTimestamp) {
      // Not in the cache: deleted, or it left this operator's selection (handed to another instance,
      // docs/adr/0012), or it never was ours and a child's event named it. Nothing is written either
      // way: garbage collection removes the children of a deleted app, by their owner references.
      this.d.consumerScaling?.forget(key);
      this.d.cachePrimary?.forget(key);
      this.d.databasePrimary?.forget(key);
      this.memory.forget(key);
      return 'ok';
    }
    const generation = raw.metadata?.generation ?? 0;

    const parsed = scalableApp.safeParse({ ...raw, apiVersion: API_VERSION, kind: KIND });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join('.');
      const message = `${field}: ${issue.message}`;
      await this.refuse(raw, generation, 'InvalidSpec', message, log);
      return 'ok';
    }
    const app = parsed.data;

    const missing = await this.missingSecrets(app);
    if (missing.length) {
      await this.refuse(raw, generation, 'MissingReference', missing.join('; '), log);
      return { requeueAfterMs: MISSING_REFERENCE_RETRY_MS };
    }

    const gathered = await this.factsFor(app);
    if (gathered.lost) {
      await this.refuse(raw, generation, 'ShardMapLost', gathered.lost, log);
      return { requeueAfterMs: MISSING_REFERENCE_RETRY_MS };
    }
    let facts = gathered.facts;
    let result: ReconcileResult = 'ok';
    if (app.spec.cache && this.d.cachePrimary) {
      const decision = await this.d.cachePrimary.decide(app, facts);
      if (decision.kind === 'wait') result = { requeueAfterMs: decision.recheckMs };
      if (decision.kind === 'failover') {
        facts = { ...facts, cachePrimary: decision.primary };
        log.warn('cache failover', { from: decision.previous, to: decision.primary });
        await this.d.events.record(app, 'Warning', 'CacheFailover', decision.reason);
      }
    }
    const restartPods: string[] = [];
    /** Per Postgres cluster whose failover is refused: why (status Degraded, ADR 0006). */
    const failoverRefused: string[] = [];
    const primaries = this.d.databasePrimary;
    if (primaries) {
      // The database tier and each shard are Postgres clusters kept by the same rules.
      const clusters: { name: string; decide: () => Promise<DatabaseDecision> }[] = [
        ...(app.spec.database ? [{ name: dbName(app), decide: () => primaries.decide(app, facts) }] : []),
        ...(app.spec.shards
          ? shardClusters(app, facts).map((c) => ({
              name: c.name,
              decide: () => primaries.decideShard(app, facts, c.name),
            }))
          : []),
      ];
      for (const c of clusters) {
        let decision: DatabaseDecision;
        try {
          decision = await c.decide();
        } catch (err) {
          // One cluster whose servers cannot be asked must not hold back the others' records (a
          // promotion done earlier in this pass is applied below) nor the rest of the app.
          log.warn('could not decide on a primary; trying again', { cluster: c.name, err });
          await this.d.events.record(app, 'Warning', 'PrimaryCheckFailed', `${c.name}: ${errorMessage(err)}`);
          result = { requeueAfterMs: Math.min(5_000, result === 'ok' ? 5_000 : result.requeueAfterMs) };
          continue;
        }
        if (decision.kind === 'wait' || decision.kind === 'refused') {
          const after = decision.recheckMs;
          result =
            result === 'ok'
              ? { requeueAfterMs: after }
              : { requeueAfterMs: Math.min(after, result.requeueAfterMs) };
        }
        const { refusedFailover } = this.memory.of(appKey(app));
        if (decision.kind === 'refused') failoverRefused.push(`${c.name}: ${decision.reason}`);
        if (decision.kind !== 'refused') refusedFailover.delete(c.name);
        else if (refusedFailover.get(c.name) !== decision.reason) {
          // It is looked at again every few seconds while it lasts; say it when it starts or changes.
          refusedFailover.set(c.name, decision.reason);
          log.warn('database failover refused', { cluster: c.name, reason: decision.reason });
          await this.d.events.record(app, 'Warning', 'FailoverRefused', decision.reason);
        }
        if (decision.kind === 'keep' || decision.kind === 'moved') restartPods.push(...decision.restart);
        if (decision.kind !== 'moved') continue;
        const lastFailover = { time: this.now(), reason: decision.reason };
        facts =
          c.name === dbName(app)
            ? { ...facts, dbPrimary: decision.primary, dbLastFailover: lastFailover }
            : {
                ...facts,
                shards: {
                  ...facts.shards,
                  [c.name]: { ...facts.shards?.[c.name], primary: decision.primary, lastFailover },
                },
              };
        log.warn(decision.planned ? 'database switchover' : 'database failover', {
          cluster: c.name,
          from: decision.previous,
          to: decision.primary,
        });
        await this.d.events.record(
          app,
          decision.planned ? 'Normal' : 'Warning',
          decision.planned ? 'Switchover' : 'Failover',
          decision.reason,
        );
      }
    }
    const desired = desiredState(app, facts).map((o) => stamped(o));
    // A larger volume first grows its claims and recreates its StatefulSet (volume-growth.ts).
    const growth = await growVolumes({ kube: this.d.kube, children: this.d.children, log }, desired);
    for (const sts of growth.recreating)
      await this.d.events.record(
        app,
        'Normal',
        'VolumesGrowing',
        `Grew the volumes of StatefulSet ${sts}; recreating it with its pods kept`,
      );
    const applyResult = await this.applyAll(app, growth.desired, log);
    const changed = applyResult.applied + growth.recreating.length;
    const refusals = [
      ...growth.refusals,
      ...applyResult.refusals,
      ...unconfirmedVolumeDeletions(app, this.d.children.ownedBy(app.metadata.uid ?? ''), desired),
    ];
    if (refusals.length) {
      // Nothing is deleted and no pod restarted while the app is half applied: a restart may wait on
      // a record that was refused. The status says which child and why, once.
      const refused = new ChildRefusedError(refusals);
      if ((await this.writeStatus(app, facts, raw.status, generation, changed > 0, refusals)).wrote) {
        log.warn('a child was refused; retrying with backoff', { refused: refused.message });
        await this.d.events.record(app, 'Warning', 'ChildRefused', refused.message);
      }
      throw refused;
    }
    const pruned = await this.prune(app, desired, log);
    // After the record moved (applied above), so a restarted instance starts from the new one.
    for (const pod of restartPods) {
      log.warn('restarting a database instance that still runs as primary', { pod });
      await this.d.kube.delete(`${collectionPath('v1', 'pods', app.metadata.namespace)}/${pod}`);
    }
    let relabelled =
      (app.spec.cache
        ? await this.labelRoles(app, selectorLabels(app, CACHE), cachePrimary(app, facts), log)
        : 0) +
      (app.spec.database
        ? await this.labelRoles(app, selectorLabels(app, DATABASE), dbPrimary(app, facts), log)
        : 0);
    for (const c of app.spec.shards ? shardClusters(app, facts) : []) {
      relabelled += await this.labelRoles(app, c.selector, pgPrimary(c), log);
    }
    const { recheck } = await this.writeStatus(
      app,
      facts,
      raw.status,
      generation,
      changed + pruned + relabelled > 0,
      [],
      failoverRefused,
    );
    // A container still within its probes' budget is called not ready only when it runs out: look then.
    if (recheck !== undefined)
      result = { requeueAfterMs: result === 'ok' ? recheck : Math.min(recheck, result.requeueAfterMs) };
    return result;
  }

  /**
   * Facts only the cluster knows: generated credentials (read back from their Secret), each data
   * tier's recorded primary (its ConfigMap), and the database pods (for the read endpoints).
   */
  private async factsFor(app: ScalableApp): Promise<{ facts: ObservedFacts; lost?: string }> {
    const ns = app.metadata.namespace ?? '';
    let facts: ObservedFacts = this.d.facts();
    let lost: string | undefined;
    const recordedPrimary = (configMap: string) =>
      (this.d.children.get('ConfigMap', ns, configMap) as V1ConfigMap | undefined)?.data?.primary;
    if (app.spec.cache) {
      const [password] = await this.generatedSecret(ns, cacheAuthName(app), ['password']);
      const primary = recordedPrimary(cacheConfigName(app));
      facts = { ...facts, cachePassword: password!, ...(primary ? { cachePrimary: primary } : {}) };
    }
    if (app.spec.database) {
      const credentials = await this.pgCredentials(ns, dbCredentialsName(app));
      const db = this.clusterFacts(ns, databaseCluster(app, facts));
      facts = {
        ...facts,
        ...(db.lastFailover ? { dbLastFailover: db.lastFailover } : {}),
        dbCredentials: credentials,
        dbPods: db.pods ?? [],
        ...(db.primary ? { dbPrimary: db.primary } : {}),
      };
    }
    if (app.spec.shards) {
      const shards = await this.shardFacts(app);
      facts = { ...facts, ...shards.facts };
      // The reset names the last version shown, so an annotation left behind never applies to a later loss.
      const floor = String(shards.facts.shardVersionFloor ?? 0);
      if (shards.lost && app.metadata.annotations?.[SHARD_MAP_RESET] !== floor) {
        lost = `${shards.lost}; nothing is applied, so no shard is dropped and no ring is guessed. Restore the map, or annotate the app ${SHARD_MAP_RESET}=${floor} to publish the spec's ring as version ${Number(floor) + 1}`;
      }
    }
    if (app.spec.queue) {
      const [username, password, erlangCookie] = await this.generatedSecret(ns, mqCredentialsName(app), [
        'username',
        'password',
        'erlang-cookie',
      ]);
      facts = {
        ...facts,
        queueCredentials: { username: username!, password: password!, erlangCookie: erlangCookie! },
      };
    }
    if (app.spec.consumers?.length && this.d.consumerScaling) {
      const current = (name: string) =>
        (this.d.children.get('Deployment', ns, name) as V1Deployment | undefined)?.spec?.replicas;
      facts = { ...facts, consumerScale: this.d.consumerScaling.sync(app, facts, current) };
    }
    return { facts, ...(lost ? { lost } : {}) };
  }

  /** Each shard's recorded primary and pods, the shared login, and the shard map as published. */
  /**
   * Each shard's recorded primary and pods, the shared login, the shard map as published, and the
   * shard StatefulSets that exist (in the map or not). `lost` says why the map cannot be trusted as
   * history: missing or broken while shards exist. The reconcile then refuses rather than publish a
   * ring from the spec that may not say where the data is.
   */
  private async shardFacts(app: ScalableApp): Promise<{ facts: Partial<ObservedFacts>; lost?: string }> {
    const ns = app.metadata.namespace ?? '';
    const credentials = await this.pgCredentials(ns, shardsCredentialsName(app));
    const mapName = shardMapName(app);
    const published = (this.d.children.get('ConfigMap', ns, mapName) as V1ConfigMap | undefined)?.data?.[
      SHARD_MAP_KEY
    ];
    const shardMap = published ? safeParseShardMap(published) : undefined;
    const existing = this.d.children
      .select('StatefulSet', ns, selectorLabels(app, SHARD))
      .map((o) => o.metadata!.name!)
      .sort();
    const shown = app.status?.shards;
    const floor = Math.max(shown?.ringVersion ?? 0, shown?.pendingRingVersion ?? 0);
    const lost =
      published !== undefined && !shardMap
        ? `ConfigMap ${ns}/${mapName} holds no valid shard map`
        : // A ring status has shown may be routed by apps. (Shards without any shown version only
          // follow a first reconcile that stopped before its status write: the spec's ring is the one.)
          !published && floor > 0
          ? `ConfigMap ${ns}/${mapName} is gone, but ring v${floor} was published`
          : undefined;
    const clusters: Record<string, PgClusterFacts> = {};
    const names = new Set([
      ...[...(shardMap?.shards ?? []), ...(shardMap?.pending?.shards ?? [])].map((x) => x.name),
      ...existing,
    ]);
    for (const name of names)
      clusters[name] = this.clusterFacts(ns, shardCluster(app, name, { gatewayApi: false }));
    return {
      facts: {
        shardCredentials: credentials,
        shards: clusters,
        shardStatefulSets: existing,
        ...(floor ? { shardVersionFloor: floor } : {}),
        ...(shardMap ? { shardMap } : {}),
      },
      ...(lost ? { lost } : {}),
    };
  }

  private async pgCredentials(ns: string, secret: string): Promise<DatabaseCredentials> {
    const [superuser, replication, app] = await this.generatedSecret(ns, secret, [
      'superuser-password',
      'replication-password',
      'app-password',
    ]);
    return { superuser: superuser!, replication: replication!, app: app! };
  }

  /** A Postgres cluster's recorded primary and last failover (its ConfigMap) and its pods. */
  private clusterFacts(ns: string, c: PgCluster): PgClusterFacts {
    const cm = this.d.children.get('ConfigMap', ns, pgConfigName(c)) as V1ConfigMap | undefined;
    const time = cm?.metadata?.annotations?.[LAST_FAILOVER_TIME];
    const reason = cm?.metadata?.annotations?.[LAST_FAILOVER_REASON];
    return {
      ...(cm?.data?.primary ? { primary: cm.data.primary } : {}),
      ...(time && reason ? { lastFailover: { time, reason } } : {}),
      pods: this.d.children.select('Pod', ns, c.selector) as V1Pod[],
    };
  }

  /**
   * Values of a Secret of generated passwords. A value is generated only when the apiserver itself
   * (not just the cache, which may lag our own create) has none, so a password never changes.
   */
  private async generatedSecret(ns: string, name: string, keys: string[]): Promise<string[]> {
    const read = (s: V1Secret | undefined) =>
      keys.map((k) => (s?.data?.[k] ? Buffer.from(s.data[k], 'base64').toString() : undefined));
    let values = read(this.d.children.get('Secret', ns, name) as V1Secret | undefined);
    if (values.some((v) => v === undefined)) {
      try {
        values = read(await this.d.kube.get<V1Secret>(`${collectionPath('v1', 'secrets', ns)}/${name}`));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return values.map((v) => v ?? randomBytes(24).toString('base64url'));
  }

  /** Primary and replica Services select a data tier's pods by a role label only the operator sets. */
  private async labelRoles(
    app: ScalableApp,
    selector: Record<string, string>,
    primary: string,
    log: Log,
  ): Promise<number> {
    const ns = app.metadata.namespace ?? '';
    let changed = 0;
    for (const pod of this.d.children.select('Pod', ns, selector)) {
      const role = pod.metadata?.name === primary ? 'primary' : 'replica';
      if (pod.metadata?.labels?.[ROLE_LABEL] === role) continue;
      try {
        await this.d.kube.mergePatch(`${collectionPath('v1', 'pods', ns)}/${pod.metadata!.name}`, {
          metadata: { labels: { [ROLE_LABEL]: role } },
        });
      } catch (e) {
        if (isNotFound(e)) continue; // restarted meanwhile: its successor is labelled on its own event
        throw e;
      }
      log.info(`labelled pod ${pod.metadata!.name} ${role}`);
      changed++;
    }
    return changed;
  }

  private async missingSecrets(app: ScalableApp): Promise<string[]> {
    const missing: string[] = [];
    for (const ref of referencedSecrets(app)) {
      try {
        const s = await this.d.kube.get<KubernetesObject & { data?: Record<string, string> }>(
          `${collectionPath('v1', 'secrets', app.metadata.namespace)}/${ref.name}`,
        );
        if (ref.key && !(ref.key in (s.data ?? {})))
          missing.push(`${ref.field}: Secret ${app.metadata.namespace}/${ref.name} has no key ${ref.key}`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        missing.push(`${ref.field}: Secret ${app.metadata.namespace}/${ref.name} not found`);
      }
    }
    return missing;
  }

  /**
   * Applies every drifted child concurrently: children do not depend on each other at apply time
   * (a pod waits for a missing Secret by itself), and one round trip is faster than nine. The
   * client's rate limiter still bounds the burst. Events are recorded after the applies.
   */
  private async applyAll(
    app: ScalableApp,
    desired: Child[],
    log: Log,
  ): Promise<{ applied: number; refusals: Refusal[] }> {
    const work = desired
      .map((obj) => {
        const live = this.d.children.get(obj.kind, obj.metadata.namespace ?? '', obj.metadata.name);
        return { obj, live, why: drift(obj, live) };
      })
      .filter((w) => w.why !== undefined);
    const { refusedReplace } = this.memory.of(appKey(app));
    const results = await Promise.allSettled(work.map((w) => this.applyOne(w.obj, w.live, refusedReplace)));
    const done = work.filter((_, i) => results[i]!.status === 'fulfilled');
    for (const { obj, live, why } of done) {
      const verb = live ? 'Updated' : 'Created';
      log.info(`${verb.toLowerCase()} ${obj.kind} ${obj.metadata.name}`, { drift: why });
    }
    await Promise.all(
      done.map(({ obj, live }) => {
        const verb = live ? 'Updated' : 'Created';
        return this.d.events.record(app, 'Normal', verb, `${verb} ${obj.kind} ${obj.metadata.name}`);
      }),
    );
    const refusals: Refusal[] = [];
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') continue;
      const e: unknown = r.reason;
      // Anything else (a conflict, throttling, a server error) is the world, not the object: retry.
      if (!(e instanceof ApiError && REFUSALS.has(e.status))) throw e;
      const { obj } = work[i]!;
      refusals.push({
        child: `${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}`,
        status: e.status,
        message: apiserverWords(e),
      });
    }
    return { applied: done.length, refusals };
  }

  /**
   * Server-side apply; when a hand edit cannot be undone by apply alone (someone else's entry in a
   * keyed list stays theirs, or makes our apply invalid), replace the object with the live one
   * overlaid by ours, guarded by its resourceVersion.
   */
  private async applyOne(
    obj: Child,
    live: KubernetesObject | undefined,
    refusedReplace: Map<string, string>,
  ): Promise<void> {
    const path = objectPath(obj);
    const hash = desiredHash(obj);
    let result: KubernetesObject | undefined;
    try {
      result = await this.d.kube.apply(path, obj);
    } catch (e) {
      // A replace that was refused for this very object will be refused again: don't send it.
      if (!(live && e instanceof ApiError && e.status === 422) || refusedReplace.get(path) === hash) throw e;
    }
    if (live && (!result || firstDifference(withoutMetadata(obj), withoutMetadata(result)) !== undefined)) {
      const base = (result ?? live) as KubernetesObject;
      try {
        await this.d.kube.replace(path, overlay(base, obj));
      } catch (e) {
        if (e instanceof ApiError && e.status === 422) refusedReplace.set(path, hash);
        throw e;
      }
    }
    refusedReplace.delete(path);
  }

  /** Children the spec no longer asks for (autoscaling turned off, exposure changed) are deleted; Secrets and volumes never. */
  private async prune(app: ScalableApp, desired: Child[], log: Log): Promise<number> {
    const want = new Set(desired.map((o) => `${o.kind}/${o.metadata.name}`));
    let pruned = 0;
    for (const { obj } of this.d.children.ownedBy(app.metadata.uid ?? '')) {
      const id = `${obj.kind ?? ''}/${obj.metadata?.name}`;
      const kind = obj.kind ?? '';
      // Secrets may hold generated credentials: losing them loses access to data. Never pruned.
      if (!kind || kind === 'Secret' || want.has(id)) continue;
      try {
        await this.d.kube.delete(objectPath(obj));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      pruned++;
      log.info(`deleted ${id}`);
      await this.d.events.record(app, 'Normal', 'Deleted', `Deleted ${id}: no longer in the spec`);
    }
    return pruned;
  }

  private async refuse(
    raw: KubernetesObject & { status?: ScalableAppStatus },
    generation: number,
    reason: HeldBackReason,
    message: string,
    log: Log,
  ): Promise<void> {
    const { phase, until } = HELD_BACK[reason];
    const conditions: ConditionInput[] = [
      cond('Ready', false, reason, message),
      cond('Progressing', false, reason, `nothing is applied until ${until}`),
      cond('Degraded', true, reason, message),
    ];
    const status: ScalableAppStatus = {
      ...raw.status,
      observedGeneration: generation,
      phase,
      conditions: mergeConditions(raw.status?.conditions, conditions, generation, this.now()),
    };
    if (await this.patchStatus(raw, status)) {
      log.warn(`refusing to apply: ${message}`, { reason });
      await this.d.events.record(raw as ScalableApp, 'Warning', reason, message);
    }
  }

  private async writeStatus(
    app: ScalableApp,
    facts: ObservedFacts,
    previous: ScalableAppStatus | undefined,
    generation: number,
    appliedSomething: boolean,
    refusals: readonly Refusal[] = [],
    failoverRefused: readonly string[] = [],
  ): Promise<{ wrote: boolean; recheck: number | undefined }> {
    const reports = tierReports(app, this.d.children, facts, this.d.now?.().getTime());
    const notReady = [...reports.values()].filter((r) => !r.ready);
    const stalled = [...reports.values()].map((r) => r.degraded).filter((m): m is string => !!m);
    const degraded = [...failoverRefused, ...stalled];
    const refused = refusals.length > 0;
    const ready = notReady.length === 0 && !refused;
    const blocking = notReady.map((r) => `${r.condition.type}: ${r.condition.message}`).join('; ');
    const why = refusalMessage(refusals);
    const conditions: ConditionInput[] = refused
      ? [
          cond('Ready', false, 'ChildRefused', why),
          cond('Progressing', false, 'ChildRefused', 'retrying the refused children with backoff'),
          cond('Degraded', true, 'ChildRefused', why),
        ]
      : [
          cond(
            'Ready',
            ready,
            ready ? 'AllTiersReady' : 'TiersNotReady',
            ready ? 'every deployed tier is ready' : blocking,
          ),
          cond(
            'Progressing',
            !ready || appliedSomething,
            appliedSomething ? 'Applied' : ready ? 'Stable' : 'WaitingForTiers',
            appliedSomething ? 'children were created or updated' : ready ? 'nothing to do' : blocking,
          ),
          cond(
            'Degraded',
            degraded.length > 0,
            failoverRefused.length
              ? APP_REASON.FailoverRefused
              : stalled.length
                ? APP_REASON.RolloutStalled
                : APP_REASON.AsExpected,
            degraded.join('; ') || 'no failures',
          ),
        ];
    conditions.push(...[...reports.values()].map((r) => r.condition));
    const web = app.spec.web
      ? (this.d.children.get('Deployment', app.metadata.namespace ?? '', webName(app)) as
          { spec?: { replicas?: number }; status?: { readyReplicas?: number } } | undefined)
      : undefined;
    const status: ScalableAppStatus = {
      observedGeneration: generation,
      phase: ready ? 'Ready' : refused || degraded.length ? 'Degraded' : 'Progressing',
      conditions: mergeConditions(previous?.conditions, conditions, generation, this.now()),
      connectionSecret: connectionSecretName(app),
      endpoints: {
        ...(app.spec.web ? { web: webEndpoint(app) } : {}),
        ...(app.spec.database
          ? {
              databaseWrite: `${dbWriteService(app)}.${app.metadata.namespace}.svc:${PG_PORT}`,
              databaseRead: `${dbReadService(app)}.${app.metadata.namespace}.svc:${PG_PORT}`,
            }
          : {}),
        ...(app.spec.edgeCache
          ? { edgeCache: `${edgeName(app)}.${app.metadata.namespace}.svc:${EDGE_SERVICE_PORT}` }
          : {}),
        ...(app.spec.queue ? { queue: `${mqName(app)}.${app.metadata.namespace}.svc:${AMQP_PORT}` } : {}),
        ...(app.spec.shards ? { shardMap: shardMapName(app) } : {}),
        ...(app.spec.cache
          ? {
              cache: `${cacheHost(app, cacheName(app))}:${CACHE_PORT}`,
              cacheReplicas: `${cacheHost(app, cacheReplicasName(app))}:${CACHE_PORT}`,
            }
          : {}),
      },
      ...(app.spec.web
        ? { web: { replicas: web?.spec?.replicas ?? 0, readyReplicas: web?.status?.readyReplicas ?? 0 } }
        : {}),
      ...(app.spec.shards ? { shards: shardsStatus(app, facts, this.d.children) } : {}),
      ...(app.spec.consumers?.length ? { consumers: consumersStatus(app, facts) } : {}),
      ...(app.spec.cache ? { cache: cacheStatus(app, facts, this.d.children) } : {}),
      ...(app.spec.database
        ? {
            database: {
              primary: dbPrimary(app, facts),
              readyReplicas: readyReplicas(
                this.d.children,
                app.metadata.namespace ?? '',
                dbName(app),
                dbPrimary(app, facts),
              ),
              ...(facts.dbLastFailover
                ? {
                    lastFailoverTime: facts.dbLastFailover.time,
                    lastFailoverReason: facts.dbLastFailover.reason,
                  }
                : {}),
            },
          }
        : {}),
    };
    const wrote = await this.patchStatus(app as unknown as KubernetesObject, status, previous);
    // A Warning when a tier's pod diagnosis appears or changes: only a status write can bring one.
    if (wrote) {
      for (const e of diagnosisEvents(previous?.conditions, conditions))
        await this.d.events.record(app, 'Warning', e.reason, e.message);
    }
    return { wrote, recheck: recheckAfterMs(reports) };
  }

  /** Server-side applies the status subresource, only when it differs. Returns whether it wrote. */
  private async patchStatus(
    app: KubernetesObject & { status?: ScalableAppStatus },
    status: ScalableAppStatus,
    previous = app.status,
  ): Promise<boolean> {
    if (previous && desiredHash(previous) === desiredHash(status)) return false;
    const ns = app.metadata!.namespace!;
    const name = app.metadata!.name!;
    // The resourceVersion we computed from: if the cache was behind (our own last status write not
    // seen yet), the apiserver answers 409 and the reconcile runs again on fresh data, instead of
    // overwriting history such as the last failover with a stale copy.
    const resourceVersion = app.metadata!.resourceVersion;
    await this.d.kube.apply(
      appPath(ns, name),
      {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name, namespace: ns, ...(resourceVersion ? { resourceVersion } : {}) },
        status,
      },
      { subresource: 'status' },
    );
    return true;
  }

  private now(): string {
    return metaTime(this.d.now?.() ?? new Date());
  }
}

const withoutMetadata = ({ metadata: _m, ...rest }: KubernetesObject) => rest;
/** An error's message for an Event: the admin clients never put credentials in their messages. */
const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 512);
