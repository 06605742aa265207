import { createHash } from 'node:crypto';
import { HttpMethod, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { isPodReady } from '../kube/pods.ts';
import { GROUP, PLURAL, VERSION } from '../api/scalable-app.ts';
import type { Kube } from '../kube/client.ts';
import { ApiError, isConflict } from '../kube/client.ts';
import { Informer } from '../kube/informer.ts';
import { collectionPath } from '../kube/resources.ts';
import type { Logger } from '../runtime/log.ts';
import { newReconcileID } from '../runtime/log.ts';
import type { Metrics } from '../runtime/metrics.ts';
import { connectWorkQueueMetrics, reconcileMetricsObserver } from '../runtime/metrics.ts';
import { appMetricsOf } from './app-metrics.ts';
import { WorkQueue, combineObservers, runWorkers } from '../runtime/work-queue.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { ChildCaches, ownedKinds, ownerKey } from './children.ts';
import { EventRecorder } from './events.ts';
import { ChildRefusedError, Reconciler } from './reconciler.ts';
import { CachePrimary } from './cache-primary.ts';
import {
  SIMULATED_CACHE_USERS,
  SIMULATED_LOGINS,
  SIMULATED_QUEUE_USERS,
  simulatedCacheAdmin,
  simulatedPostgresAdmin,
  SIMULATED_ARCHIVER,
  simulatedQueueDepth,
} from '../dataplane/simulated-admin.ts';
import { pgRoles } from '../dataplane/postgres/roles.ts';
import { AppLoginRotation, type AppLoginRotationDeps } from './app-login-rotation.ts';
import { ServerPasswordRotation } from './server-password-rotation.ts';
import { DatabasePrimary } from './database-primary.ts';
import { pgAdmin } from '../dataplane/postgres/admin.ts';
import { pgArchiver } from '../dataplane/postgres/archiver.ts';
import { PrimaryHeartbeats } from '../dataplane/postgres/heartbeat.ts';
import { pgPrimary, superuserPasswords } from '../tiers/postgres-cluster.ts';
import { respCacheAdmin, respCacheUsers } from '../dataplane/redis-admin.ts';
import { CachePasswordRotation } from './cache-password-rotation.ts';
import { cachePrimary as cachePrimaryName } from '../tiers/cache.ts';
import { brokerAdmin } from '../dataplane/rabbitmq/admin.ts';
import { brokerUsers } from '../dataplane/rabbitmq/users.ts';
import { QUEUE_OPERATOR_USER } from '../server-config/rabbitmq.ts';
import { QueueLoginRotation } from './queue-login-rotation.ts';
import { CACHE_USERS } from '../server-config/cache.ts';
import { mqManagementUrl, mqName, queueTls } from '../tiers/queue.ts';
import { ConsumerScaling } from './consumer-scaling.ts';
import { appSelector } from './instance.ts';
import { queueDepthSource } from '../autoscaling/queue-poller.ts';

export const CONTROLLER = 'scalableapp';

export interface ManagerOptions {
  readonly kube: Kube;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly concurrency: number;
  /** Relist every informer this often (a resync of every app). */
  readonly relistPeriodMs?: number;
  /** Watch one namespace only (all when undefined). */
  readonly namespace?: string;
  /**
   * Act only on ScalableApps labelled `scalableapp.io/instance=<instance>`; when undefined, only on
   * apps without that label (operator/controller/instance.ts, docs/adr/0012).
   */
  readonly instance?: string;
  /** `real` talks to the cache and database servers; `simulated` judges them by pod readiness (no containers run). */
  readonly dataPlane?: 'real' | 'simulated';
  readonly cacheFailoverDelayMs?: number;
  /** Where this operator runs: the data tiers' NetworkPolicies let its pods in. */
  readonly operatorNamespace?: string;
}

/** Whether the cluster serves an API group version (e.g. the Gateway API). */
async function serves(kube: Kube, groupVersion: string, kind?: string): Promise<boolean> {
  try {
    const list = await kube.request<{ resources?: { kind?: string }[] }>(
      'get',
      HttpMethod.GET,
      `/apis/${groupVersion}`,
    );
    // A group may be served with only some of its kinds (a cluster with ServiceMonitors alone).
    return !kind || (list?.resources ?? []).some((r) => r.kind === kind);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return false;
    throw e;
  }
}

/**
 * Wires informers to the work queue and the queue to the reconciler. Informers run on every replica
 * (a warm cache makes a fail-over fast); workers run only while this replica leads.
 */
export class Manager {
  private readonly o: ManagerOptions;
  private readonly queue: WorkQueue;
  private apps!: Informer;
  private children!: ChildCaches;
  private facts: ObservedFacts = { gatewayApi: false };

  constructor(opts: ManagerOptions) {
    this.o = opts;
    this.queue = new WorkQueue({ name: CONTROLLER, maxDelayMs: 5 * 60_000 });
    connectWorkQueueMetrics(opts.metrics, this.queue);
  }

  /** Starts the caches and resolves once every one of them has listed. */
  async startCaches(): Promise<void> {
    const log = this.o.log.with({ controller: CONTROLLER });
    this.facts = {
      gatewayApi: await serves(this.o.kube, 'gateway.networking.k8s.io/v1'),
      podMonitors: await serves(this.o.kube, 'monitoring.coreos.com/v1', 'PodMonitor'),
      ...(this.o.operatorNamespace ? { operatorNamespace: this.o.operatorNamespace } : {}),
    };
    log.info('cluster capabilities', { ...this.facts });
    // On the list and the watch alike (the informer passes it to both): apps of another instance
    // never enter the cache, so no reconcile reads them; their children's events find no app.
    const selector = appSelector(this.o.instance);
    log.info('selecting ScalableApps', { instance: this.o.instance ?? '', labelSelector: selector });
    const enqueue = (o: KubernetesObject) => {
      const key = ownerKey(o);
      if (key) this.queue.add(key);
    };
    this.apps = new Informer({
      kube: this.o.kube,
      path: collectionPath(`${GROUP}/${VERSION}`, PLURAL, this.o.namespace),
      labelSelector: selector,
      relistPeriodMs: this.o.relistPeriodMs,
      onEvent: (_e, o) => this.queue.add(`${o.metadata?.namespace}/${o.metadata?.name}`),
      onError: (err, attempt) => log.warn('ScalableApp watch failed; retrying', { err, attempt }),
    });
    this.children = new ChildCaches(
      this.o.kube,
      ownedKinds(this.facts),
      this.o.namespace,
      // Children are only listed again on the apps' relist; their own relist needs no resync.
      (e, o) => (e === 'relisted' ? undefined : enqueue(o)),
      (kind, err) => log.warn(`${kind} watch failed; retrying`, { err }),
    );
    this.apps.start();
    this.children.start();
    await Promise.all([this.apps.waitForSync(), this.children.waitForSync()]);
    log.info('caches synced');
  }

  hasSynced(): boolean {
    return !!this.apps?.hasSynced() && !!this.children?.hasSynced();
  }

  /** Runs the workers until `signal` aborts, then drains in-flight reconciles. */
  async runWorkers(signal: AbortSignal): Promise<void> {
    const log = this.o.log.with({ controller: CONTROLLER });
    const queue = this.queue;
    const scaling = this.consumerScaling(log);
    signal.addEventListener('abort', () => void scaling.stopAll(), { once: true });
    const reconciler = new Reconciler({
      kube: this.o.kube,
      apps: this.apps,
      children: this.children,
      events: new EventRecorder(this.o.kube, (err) => log.warn('could not record an event', { err })),
      facts: () => this.facts,
      log,
      cachePrimary: this.cachePrimary(),
      databasePrimary: this.databasePrimary(log, signal),
      appLogins: this.appLogins(),
      serverPasswords: this.serverPasswords(),
      cachePasswords: new CachePasswordRotation({
        usersFor: (password) =>
          this.o.dataPlane === 'simulated'
            ? SIMULATED_CACHE_USERS
            : respCacheUsers({ username: CACHE_USERS.operator, password }),
      }),
      queueLogins: new QueueLoginRotation({
        usersFor: (broker, password) =>
          this.o.dataPlane === 'simulated'
            ? SIMULATED_QUEUE_USERS
            : brokerUsers({ ...broker, user: QUEUE_OPERATOR_USER, password }),
      }),
      consumerScaling: scaling,
      appMetrics: appMetricsOf(this.o.metrics.registry),
      archiving: {
        pods: (ns, labels) => this.children.select('Pod', ns, labels) as V1Pod[],
        onError: (cluster, err) => log.debug('reading the archiver failed', { cluster, err }),
        archiverFor: (_cluster, credentials) =>
          this.o.dataPlane === 'simulated'
            ? SIMULATED_ARCHIVER
            : pgArchiver({ superuserPassword: superuserPasswords(credentials!) }),
      },
    });
    // Everything cached so far is work: the queue of a replica that just became leader may be empty.
    for (const a of this.apps.list()) queue.add(`${a.metadata?.namespace}/${a.metadata?.name}`);
    signal.addEventListener('abort', () => void queue.shutDownWithDrain(), { once: true });
    const observer = combineObservers(
      reconcileMetricsObserver(this.o.metrics, CONTROLLER, this.o.concurrency),
      {
        finished: (key, result, seconds, error) => {
          // A conflict is the cache being one write behind: expected, retried at once with backoff.
          if (isConflict(error)) log.debug('reconcile conflicted; retrying', { key });
          // Said once already, in status, an Event and a warning; each backoff step is not news.
          else if (error instanceof ChildRefusedError) log.debug('child still refused', { key, seconds });
          else if (error) log.warn('reconcile failed', { key, err: error, seconds });
          else log.debug('reconciled', { key, result, seconds });
        },
      },
    );
    await runWorkers(
      queue,
      this.o.concurrency,
      (key) => {
        const [namespace, name] = key.split('/');
        return reconciler.reconcile(key, log.with({ namespace, name, reconcileID: newReconcileID() }));
      },
      observer,
    );
  }

  private cachePrimary(): CachePrimary {
    const pods = (ns: string, labels: Record<string, string>) =>
      this.children.select('Pod', ns, labels) as V1Pod[];
    return new CachePrimary({
      pods,
      now: () => Date.now(),
      delayMs: this.o.cacheFailoverDelayMs ?? 5_000,
      adminFor: (app, facts) =>
        this.o.dataPlane === 'simulated'
          ? simulatedCacheAdmin(
              (name) => this.podReady(app.metadata.namespace ?? '', name),
              (name) => name === cachePrimaryName(app, facts),
            )
          : respCacheAdmin({ username: CACHE_USERS.operator, password: facts.cacheLogins?.operator }),
    });
  }

  private podReady(ns: string, name: string): boolean {
    return isPodReady(this.children.get('Pod', ns, name) as V1Pod | undefined);
  }

  private appLogins(): AppLoginRotation {
    return new AppLoginRotation(this.pgRotationDeps());
  }

  private serverPasswords(): ServerPasswordRotation {
    return new ServerPasswordRotation(this.pgRotationDeps());
  }

  private pgRotationDeps(): AppLoginRotationDeps {
    return {
      pods: (ns, labels) => this.children.select('Pod', ns, labels) as V1Pod[],
      rolesFor: (credentials) =>
        this.o.dataPlane === 'simulated'
          ? SIMULATED_LOGINS
          : pgRoles({ superuserPassword: superuserPasswords(credentials) }),
    };
  }

  private databasePrimary(log: Logger, signal: AbortSignal): DatabasePrimary {
    // Only the leader beats: a replica that lost the lease must not keep a fence lifted.
    const heartbeats =
      this.o.dataPlane === 'simulated'
        ? undefined
        : new PrimaryHeartbeats({
            onLifted: (cluster, reason) =>
              log.warn('lifted the self-fence of the recorded primary, reachable again', { cluster, reason }),
          });
    if (heartbeats) signal.addEventListener('abort', () => heartbeats.stop(), { once: true });
    return new DatabasePrimary({
      ...(heartbeats ? { heartbeats } : {}),
      pods: (ns, labels) => this.children.select('Pod', ns, labels) as V1Pod[],
      now: () => Date.now(),
      adminFor: (cluster, credentials) =>
        this.o.dataPlane === 'simulated'
          ? simulatedPostgresAdmin(
              (name) => this.podReady(cluster.app.metadata.namespace ?? '', name),
              (name) => name === pgPrimary(cluster),
            )
          : pgAdmin({
              superuserPassword: superuserPasswords(credentials!),
              replicationPassword: credentials!.replication,
            }),
    });
  }

  private consumerScaling(log: Logger): ConsumerScaling {
    return new ConsumerScaling({
      enqueue: (key) => this.queue.add(key),
      // Once per run of like failures (QueueScalers says so), not on every poll.
      onError: (key, err) =>
        log.warn('reading a queue depth failed; replicas stay as they are', { key, err }),
      onRecovered: (key) => log.info('reading a queue depth works again', { key }),
      onDepth: (key, depth) => appMetricsOf(this.o.metrics.registry).queueDepth(key, depth),
      depthFor: (app, facts) => {
        const ns = app.metadata.namespace ?? '';
        if (this.o.dataPlane === 'simulated') {
          const annotations = () =>
            (this.children.get('Pod', ns, `${mqName(app)}-0`) as V1Pod | undefined)?.metadata?.annotations;
          return {
            key: 'simulated',
            open: () => ({ depth: simulatedQueueDepth(annotations), close: async () => {} }),
          };
        }
        const creds = facts.queueCredentials!;
        const admin = {
          baseUrl: mqManagementUrl(app),
          user: creds.monitoringUsername,
          password: creds.monitoringPassword,
          // The app's CA: the broker's certificate must chain to it and name the Service.
          ...(queueTls(app) ? { ca: facts.tls?.ca.cert } : {}),
        };
        return {
          // A digest, so the login is kept in no second place.
          key: createHash('sha256').update(JSON.stringify(admin)).digest('hex'),
          open: () => {
            const broker = brokerAdmin(admin);
            return { depth: queueDepthSource(broker), close: () => broker.close() };
          },
        };
      },
    });
  }

  stop(): void {
    this.apps?.stop();
    this.children?.stop();
    this.queue.shutDown();
  }
}
