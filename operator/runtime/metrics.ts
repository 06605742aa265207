// Prometheus metrics under controller-runtime's names and labels, so the dashboards and alerts written
// for Go operators work unchanged. A registry of our own (not prom-client's global one) keeps tests
// independent and lets /metrics serve exactly this set.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Middleware, RequestContext, ResponseContext } from '@kubernetes/client-node';
import type { ReconcileResult, WorkerObserver, WorkQueue } from './work-queue.ts';

// controller-runtime's buckets for reconcile time.
const RECONCILE_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
  1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];
// client-go's workqueue buckets: 10 ns to 1000 s, ×10 each.
const WORKQUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000];

// The queues connected to each Metrics, kept out of the public handle type.
const connectedQueues = new WeakMap<Metrics, Set<WorkQueue>>();

const RESULTS: readonly ReconcileResult[] = ['success', 'error', 'requeue', 'requeue_after'];

export interface Metrics {
  registry: Registry;
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileErrors: Counter<'controller'>;
  reconcileTime: Histogram<'controller'>;
  maxConcurrentReconciles: Gauge<'controller'>;
  activeWorkers: Gauge<'controller'>;
  workqueueDepth: Gauge<'name'>;
  workqueueAdds: Counter<'name'>;
  workqueueQueueDuration: Histogram<'name'>;
  workqueueWorkDuration: Histogram<'name'>;
  workqueueRetries: Counter<'name'>;
  workqueueUnfinishedWork: Gauge<'name'>;
  workqueueLongestRunningProcessor: Gauge<'name'>;
  leaderElectionMasterStatus: Gauge<'name'>;
  /** Requests this operator sent to the apiserver; see `apiRequestMiddleware`. */
  apiRequests: Counter<'verb' | 'resource'>;
}

export interface MetricsOptions {
  /** Adds prom-client's process_* and nodejs_* metrics. Default true. */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // Queues whose in-flight work is read at scrape time, as client-go's periodic update would.
  const queues = new Set<WorkQueue>();
  const metrics: Metrics = {
    registry,
    reconcileTotal: new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    }),
    reconcileErrors: new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    }),
    reconcileTime: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: RECONCILE_BUCKETS,
      registers,
    }),
    maxConcurrentReconciles: new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames: ['controller'],
      registers,
    }),
    activeWorkers: new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
    }),
    workqueueAdds: new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    }),
    workqueueQueueDuration: new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name'],
      buckets: WORKQUEUE_BUCKETS,
      registers,
    }),
    workqueueWorkDuration: new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames: ['name'],
      buckets: WORKQUEUE_BUCKETS,
      registers,
    }),
    workqueueRetries: new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    }),
    workqueueUnfinishedWork: new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help:
        "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
        'Large values indicate stuck threads.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const q of queues) this.set({ name: q.name }, q.unfinishedWorkSeconds());
      },
    }),
    workqueueLongestRunningProcessor: new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const q of queues) this.set({ name: q.name }, q.longestRunningProcessorSeconds());
      },
    }),
    leaderElectionMasterStatus: new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.',
      labelNames: ['name'],
      registers,
    }),
    apiRequests: new Counter({
      name: 'scalableapp_api_requests_total',
      help: 'Requests sent to the Kubernetes apiserver by verb and resource',
      labelNames: ['verb', 'resource'],
      registers,
    }),
  };
  connectedQueues.set(metrics, queues);
  return metrics;
}

/** Feeds `queue`'s hooks into the workqueue_* metrics, labelled name=queue.name. Returns a disconnect. */
export function connectWorkQueueMetrics(metrics: Metrics, queue: WorkQueue): () => void {
  const labels = { name: queue.name };
  // Zero values make the series exist before the first event, so rate() and alerts see them.
  metrics.workqueueDepth.set(labels, queue.len());
  metrics.workqueueAdds.inc(labels, 0);
  metrics.workqueueRetries.inc(labels, 0);
  queue.setHooks({
    depth: (depth) => metrics.workqueueDepth.set(labels, depth),
    add: () => metrics.workqueueAdds.inc(labels),
    queueLatency: (seconds) => metrics.workqueueQueueDuration.observe(labels, seconds),
    workDuration: (seconds) => metrics.workqueueWorkDuration.observe(labels, seconds),
    retry: () => metrics.workqueueRetries.inc(labels),
  });
  const queues = connectedQueues.get(metrics);
  queues?.add(queue);
  return () => {
    queue.setHooks({});
    queues?.delete(queue);
  };
}

/**
 * A `runWorkers` observer that records the controller_runtime_* metrics of `controller`, which runs
 * `maxConcurrentReconciles` workers.
 */
export function reconcileMetricsObserver(
  metrics: Metrics,
  controller: string,
  maxConcurrentReconciles: number,
): WorkerObserver {
  const labels = { controller };
  metrics.maxConcurrentReconciles.set(labels, maxConcurrentReconciles);
  metrics.activeWorkers.set(labels, 0);
  metrics.reconcileErrors.inc(labels, 0);
  for (const result of RESULTS) metrics.reconcileTotal.inc({ controller, result }, 0);
  return {
    started: () => metrics.activeWorkers.inc(labels),
    finished: (_key, result, seconds) => {
      metrics.activeWorkers.dec(labels);
      metrics.reconcileTotal.inc({ controller, result });
      if (result === 'error') metrics.reconcileErrors.inc(labels);
      metrics.reconcileTime.observe(labels, seconds);
    },
  };
}

const VERBS: Record<string, string> = {
  GET: 'get',
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/**
 * The resource (with subresource, e.g. "scalableapps/status") a Kubernetes API path names:
 * /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]].
 */
export function resourceOfPath(pathname: string): string {
  const parts = pathname.split('/').filter(Boolean);
  let rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : [];
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource, , subresource] = rest;
  if (!resource) return 'unknown';
  return subresource ? `${resource}/${subresource}` : resource;
}

/**
 * A client-node promise middleware counting requests in scalableapp_api_requests_total. By default only
 * mutating verbs (create, update, patch, delete) are counted; pass `verbs` to change that.
 */
export function apiRequestMiddleware(
  metrics: Metrics,
  verbs: readonly string[] = ['create', 'update', 'patch', 'delete'],
): Middleware {
  return {
    async pre(context: RequestContext): Promise<RequestContext> {
      const verb = VERBS[context.getHttpMethod()] ?? context.getHttpMethod().toLowerCase();
      if (verbs.includes(verb)) {
        metrics.apiRequests.inc({ verb, resource: resourceOfPath(new URL(context.getUrl()).pathname) });
      }
      return context;
    },
    async post(context: ResponseContext): Promise<ResponseContext> {
      return context;
    },
  };
}
