import { RequestContext } from '@kubernetes/client-node';
import { register as globalRegistry } from 'prom-client';
import { FakeClock, settle } from './fake-clock.ts';
import {
  apiRequestMiddleware,
  connectWorkQueueMetrics,
  createMetrics,
  reconcileMetricsObserver,
  resourceOfPath,
  type Metrics,
} from './metrics.ts';
import { runWorkers, WorkQueue } from './work-queue.ts';

/** The value of one series, read the way a scrape would (collect callbacks run). */
async function valueOf(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  // A histogram's _sum and _count series belong to the metric named without the suffix.
  const metric = metrics.registry.getSingleMetric(name.replace(/_(sum|count)$/, ''));
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return (values as Array<(typeof values)[number] & { metricName?: string }>).find(
    (v) => (v.metricName ?? name) === name && Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  )?.value;
}

describe('createMetrics', () => {
  it("registers controller-runtime's metric names in a registry of its own, with process metrics", async () => {
    const metrics = createMetrics();
    const text = await metrics.registry.metrics();
    for (const name of [
      'controller_runtime_reconcile_total',
      'controller_runtime_reconcile_errors_total',
      'controller_runtime_reconcile_time_seconds',
      'controller_runtime_max_concurrent_reconciles',
      'controller_runtime_active_workers',
      'workqueue_depth',
      'workqueue_adds_total',
      'workqueue_queue_duration_seconds',
      'workqueue_work_duration_seconds',
      'workqueue_retries_total',
      'workqueue_unfinished_work_seconds',
      'leader_election_master_status',
      'scalableapp_api_requests_total',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(globalRegistry.getSingleMetric('controller_runtime_reconcile_total')).toBeUndefined();
  });

  it('can be called twice (one registry each) and without process metrics', async () => {
    createMetrics({ defaultMetrics: false });
    const metrics = createMetrics({ defaultMetrics: false });
    expect(await metrics.registry.metrics()).not.toContain('process_cpu_user_seconds_total');
  });
});

describe('connectWorkQueueMetrics', () => {
  it('records depth, adds, retries and durations of the queue under its name', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const clock = new FakeClock();
    const queue = new WorkQueue({ name: 'scalableapp', clock });
    connectWorkQueueMetrics(metrics, queue);
    const name = { name: 'scalableapp' };
    expect(await valueOf(metrics, 'workqueue_adds_total', name)).toBe(0); // exists before any add

    queue.add('ns/a');
    queue.add('ns/b');
    expect(await valueOf(metrics, 'workqueue_depth', name)).toBe(2);
    await clock.advance(2000);
    const key = (await queue.get()) as string;
    await clock.advance(3000);
    expect(await valueOf(metrics, 'workqueue_unfinished_work_seconds', name)).toBe(3);
    expect(await valueOf(metrics, 'workqueue_longest_running_processor_seconds', name)).toBe(3);
    queue.done(key);
    queue.addRateLimited(key);

    expect(await valueOf(metrics, 'workqueue_depth', name)).toBe(1);
    expect(await valueOf(metrics, 'workqueue_adds_total', name)).toBe(2);
    expect(await valueOf(metrics, 'workqueue_retries_total', name)).toBe(1);
    expect(await valueOf(metrics, 'workqueue_unfinished_work_seconds', name)).toBe(0);
    expect(await valueOf(metrics, 'workqueue_queue_duration_seconds_sum', name)).toBe(2);
    expect(await valueOf(metrics, 'workqueue_work_duration_seconds_sum', name)).toBe(3);
  });

  it('stops recording once disconnected', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const queue = new WorkQueue({ name: 'q', clock: new FakeClock() });
    const disconnect = connectWorkQueueMetrics(metrics, queue);
    queue.add('ns/a');
    disconnect();
    queue.add('ns/b');
    expect(await valueOf(metrics, 'workqueue_adds_total', { name: 'q' })).toBe(1);
  });
});

describe('reconcileMetricsObserver', () => {
  it('counts reconciles by result, errors, time and busy workers', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock, baseDelayMs: 1000 });
    const observer = reconcileMetricsObserver(metrics, 'scalableapp', 4);
    const c = { controller: 'scalableapp' };
    expect(await valueOf(metrics, 'controller_runtime_max_concurrent_reconciles', c)).toBe(4);
    expect(await valueOf(metrics, 'controller_runtime_reconcile_total', { ...c, result: 'requeue' })).toBe(0);

    let release: () => void = () => {};
    const outcomes = ['throw', 'requeue_after', 'block'];
    const running = runWorkers(
      queue,
      4,
      async () => {
        const next = outcomes.shift();
        if (next === 'throw') throw new Error('boom');
        if (next === 'requeue_after') return { requeueAfterMs: 10 };
        if (next === 'block') await new Promise<void>((r) => (release = r));
        return 'ok';
      },
      observer,
    );
    queue.add('ns/a'); // throws
    queue.add('ns/b'); // requeue after 10 ms
    await settle();
    await clock.advance(10); // ns/b again: blocks
    expect(await valueOf(metrics, 'controller_runtime_active_workers', c)).toBe(1);
    release();
    await settle();
    expect(await valueOf(metrics, 'controller_runtime_active_workers', c)).toBe(0);
    expect(await valueOf(metrics, 'controller_runtime_reconcile_total', { ...c, result: 'error' })).toBe(1);
    expect(
      await valueOf(metrics, 'controller_runtime_reconcile_total', { ...c, result: 'requeue_after' }),
    ).toBe(1);
    expect(await valueOf(metrics, 'controller_runtime_reconcile_total', { ...c, result: 'success' })).toBe(1);
    expect(await valueOf(metrics, 'controller_runtime_reconcile_errors_total', c)).toBe(1);
    expect(await valueOf(metrics, 'controller_runtime_reconcile_time_seconds_count', c)).toBe(3);
    queue.shutDown();
    await running;
  });
});

describe('resourceOfPath', () => {
  it.each([
    ['/api/v1/namespaces/ns/configmaps/c', 'configmaps'],
    ['/api/v1/namespaces/ns/configmaps', 'configmaps'],
    ['/api/v1/namespaces/ns', 'namespaces'],
    ['/api/v1/namespaces', 'namespaces'],
    ['/api/v1/nodes/n1/status', 'nodes/status'],
    ['/apis/apps/v1/namespaces/ns/deployments/web/scale', 'deployments/scale'],
    ['/apis/scalableapp.example.com/v1alpha1/namespaces/ns/scalableapps/a/status', 'scalableapps/status'],
    ['/apis/rbac.authorization.k8s.io/v1/clusterroles/r', 'clusterroles'],
    ['/healthz', 'unknown'],
  ])('%s is %s', (path, resource) => {
    expect(resourceOfPath(path)).toBe(resource);
  });
});

describe('apiRequestMiddleware', () => {
  it('counts mutating requests by verb and resource, and only those by default', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const middleware = apiRequestMiddleware(metrics);
    const base = 'https://k8s.test/apis/apps/v1/namespaces/ns/deployments';
    const requests: Array<[string, 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE']> = [
      [base, 'POST'],
      [`${base}/web`, 'PATCH'],
      [`${base}/web`, 'PATCH'],
      [`${base}/web?dryRun=All`, 'DELETE'],
      [`${base}/web`, 'GET'],
    ];
    for (const [url, method] of requests) {
      const ctx = new RequestContext(url, method);
      expect(await middleware.pre(ctx)).toBe(ctx);
    }
    const d = { resource: 'deployments' };
    expect(await valueOf(metrics, 'scalableapp_api_requests_total', { ...d, verb: 'create' })).toBe(1);
    expect(await valueOf(metrics, 'scalableapp_api_requests_total', { ...d, verb: 'patch' })).toBe(2);
    expect(await valueOf(metrics, 'scalableapp_api_requests_total', { ...d, verb: 'delete' })).toBe(1);
    expect(await valueOf(metrics, 'scalableapp_api_requests_total', { ...d, verb: 'get' })).toBeUndefined();
  });
});
