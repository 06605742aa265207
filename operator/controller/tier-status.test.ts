import { parseApp } from '../api/testdata/apps.ts';
import type {
  KubernetesObject,
  V1Deployment,
  V1DeploymentStatus,
  V1Pod,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { deploymentReadiness, readyReplicas, type ChildLookup } from './tier-status.ts';
import { recheckAfterMs, tierReports } from './tier-reports.ts';
import { consumersStatus } from './tier-modules/consumers.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { Tier } from '../api/spec.ts';
import { NO_FACTS } from '../tiers/objects.ts';
import { LABEL, MANAGER, selectorLabels } from '../tiers/labels.ts';
import { WEB } from '../tiers/web.ts';
import { EDGE, edgeName } from '../tiers/edge-cache.ts';
import { CACHE, cacheName } from '../tiers/cache.ts';
import { DATABASE, dbName } from '../tiers/database.ts';
import { QUEUE, mqName } from '../tiers/queue.ts';
import { consumerName, consumerSelector } from '../tiers/consumers.ts';
import { shardClusters } from '../tiers/shards.ts';
import { TIER_REASON } from './conditions.ts';
import { fakeWorld, pinned } from './testdata/fake-world.ts';

const REF = 'Deployment prod/shop-web';

function deployment(
  opts: { replicas?: number; generation?: number; status?: V1DeploymentStatus } = {},
): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'shop-web', namespace: 'prod', generation: opts.generation ?? 1 },
    spec: {
      ...(opts.replicas === undefined ? {} : { replicas: opts.replicas }),
      selector: {},
      template: {},
    },
    ...(opts.status ? { status: opts.status } : {}),
  };
}

/** A Deployment the controller has fully rolled out at `n` replicas. */
const settled = (n: number, extra: Partial<V1DeploymentStatus> = {}): V1DeploymentStatus => ({
  observedGeneration: 1,
  replicas: n,
  updatedReplicas: n,
  readyReplicas: n,
  availableReplicas: n,
  ...extra,
});

describe('deploymentReadiness', () => {
  it('is NotCreated, naming the object, when the Deployment does not exist', () => {
    const r = deploymentReadiness(undefined, REF);
    expect(r).toMatchObject({ ready: false, reason: 'NotCreated' });
    expect(r.message).toContain(REF);
  });

  it('is RolloutPending while the controller has not observed the latest generation', () => {
    const r = deploymentReadiness(deployment({ replicas: 2, generation: 2, status: settled(2) }), REF);
    expect(r).toMatchObject({ ready: false, reason: 'RolloutPending' });
  });

  it('is RolloutPending for a new Deployment with no status yet', () => {
    expect(deploymentReadiness(deployment({ replicas: 2 }), REF).reason).toBe('RolloutPending');
  });

  it('is RollingOut while fewer replicas than wanted run the new template', () => {
    const r = deploymentReadiness(
      deployment({ replicas: 3, status: settled(3, { updatedReplicas: 1 }) }),
      REF,
    );
    expect(r).toMatchObject({ ready: false, reason: 'RollingOut' });
    expect(r.message).toBe(`${REF}: 1/3 replicas updated`);
  });

  it('is ReplicasUnavailable while fewer replicas than wanted are available', () => {
    const r = deploymentReadiness(
      deployment({ replicas: 3, status: settled(3, { availableReplicas: 2, readyReplicas: 2 }) }),
      REF,
    );
    expect(r).toMatchObject({ ready: false, reason: 'ReplicasUnavailable' });
    expect(r.message).toBe(`${REF}: 2/3 replicas available`);
  });

  it('is not ready while old replicas are still terminating after a rollout', () => {
    const r = deploymentReadiness(deployment({ replicas: 3, status: settled(3, { replicas: 4 }) }), REF);
    expect(r).toMatchObject({ ready: false, reason: 'ReplicasUnavailable' });
  });

  it('with an HPA, is not ready until the Deployment reaches minReplicas (the HPA has not raised it from 1)', () => {
    const r = deploymentReadiness(deployment({ status: settled(1) }), REF, 3);
    expect(r.ready).toBe(false);
    expect(r.message).toContain('1/3');
  });

  // Nothing is rolling out: the HPA has not raised the Deployment to its minimum yet.
  it('with an HPA not yet at its minimum, says ReplicasUnavailable rather than RollingOut', () => {
    const r = deploymentReadiness(deployment({ status: settled(1) }), REF, 3);
    expect(r.reason).toBe('ReplicasUnavailable');
    expect(r.message).toBe(`${REF}: 1/3 replicas available`);
  });

  it('with an HPA above its minimum, is ready at the replicas the HPA chose', () => {
    const r = deploymentReadiness(deployment({ replicas: 5, status: settled(5) }), REF, 2);
    expect(r).toMatchObject({ ready: true, reason: 'Available' });
    expect(r.message).toBe(`${REF}: 5/5 replicas available`);
  });

  it('reports a rollout past its progress deadline as degraded, with the controller message', () => {
    const r = deploymentReadiness(
      deployment({
        replicas: 3,
        status: settled(3, {
          updatedReplicas: 1,
          conditions: [
            {
              type: 'Progressing',
              status: 'False',
              reason: 'ProgressDeadlineExceeded',
              message: 'ReplicaSet "shop-web-abc" has timed out progressing.',
            },
          ],
        }),
      }),
      REF,
    );
    expect(r.ready).toBe(false);
    expect(r.degraded).toEqual({
      reason: 'RolloutStalled',
      message: `${REF}: ReplicaSet "shop-web-abc" has timed out progressing.`,
    });
  });

  it('is not degraded while a rollout is merely progressing', () => {
    const r = deploymentReadiness(
      deployment({
        replicas: 3,
        status: settled(3, {
          updatedReplicas: 1,
          conditions: [
            { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: 'progressing' },
          ],
        }),
      }),
      REF,
    );
    expect(r.degraded).toBeUndefined();
  });

  it('is ready when every wanted replica is updated and available', () => {
    const r = deploymentReadiness(deployment({ replicas: 2, status: settled(2) }), REF);
    expect(r).toEqual({ ready: true, reason: 'Available', message: `${REF}: 2/2 replicas available` });
  });

  it('takes a Deployment without spec.replicas as 1 (the apiserver default)', () => {
    expect(deploymentReadiness(deployment({ status: settled(1) }), REF).ready).toBe(true);
  });
});

describe('tierReports', () => {
  const lookup = (objects: Record<string, unknown>): ChildLookup => ({
    get: (kind, namespace, name) => objects[`${kind}/${namespace}/${name}`],
  });

  it('reports WebReady from the web Deployment, looked up by kind, namespace and name', () => {
    const app = parseApp({ web: { image: 'x', replicas: 2 } });
    const reports = tierReports(
      app,
      lookup({ 'Deployment/prod/shop-web': deployment({ replicas: 2, status: settled(2) }) }),
    );
    expect(reports.get('web')).toEqual({
      ready: true,
      condition: {
        type: 'WebReady',
        status: 'True',
        reason: 'Available',
        message: `${REF}: 2/2 replicas available`,
      },
    });
  });

  it('reports WebReady False, naming the Deployment, when it is missing', () => {
    const web = tierReports(parseApp({ web: { image: 'x' } }), lookup({})).get('web');
    expect(web?.ready).toBe(false);
    expect(web?.condition).toMatchObject({ type: 'WebReady', status: 'False', reason: 'NotCreated' });
    expect(web?.condition.message).toContain('shop-web');
  });

  it("holds WebReady False until the HPA's minimum is available", () => {
    const app = parseApp({ web: { image: 'x', autoscaling: { minReplicas: 3, maxReplicas: 9 } } });
    const web = tierReports(
      app,
      lookup({ 'Deployment/prod/shop-web': deployment({ status: settled(1) }) }),
    ).get('web');
    expect(web?.ready).toBe(false);
    expect(web?.condition.status).toBe('False');
  });

  it('passes a stalled rollout on as degraded', () => {
    const stalled = deployment({
      replicas: 2,
      status: settled(2, {
        updatedReplicas: 0,
        conditions: [
          { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'stuck' },
        ],
      }),
    });
    const web = tierReports(
      parseApp({ web: { image: 'x' } }),
      lookup({ 'Deployment/prod/shop-web': stalled }),
    ).get('web');
    expect(web?.degraded).toEqual({ reason: 'RolloutStalled', message: `${REF}: stuck` });
  });

  it('names the first shard that holds the shards tier back', () => {
    const shards = tierReports(
      parseApp({ web: { image: 'x' }, shards: { count: 2, key: 'user_id' } }),
      lookup({}),
    ).get('shards');
    expect(shards?.ready).toBe(false);
    expect(shards?.condition).toMatchObject({ type: 'ShardsReady', status: 'False', reason: 'NotCreated' });
    expect(shards?.condition.message).toContain('StatefulSet prod/shop-shard-0');
  });

  it('reports only the tiers the spec declares', () => {
    const reports = tierReports(parseApp({ web: { image: 'x' }, database: {} }), lookup({}));
    expect([...reports.keys()].sort()).toEqual(['database', 'web']);
  });

  it('counts consumers as a tier only when the list is not empty', () => {
    const queue = { queues: [{ name: 'orders' }] };
    expect(tierReports(parseApp({ queue, consumers: [] }), lookup({})).has('consumers')).toBe(false);
    const withConsumer = tierReports(
      parseApp({
        queue,
        consumers: [{ name: 'worker', image: 'w', queue: 'orders', autoscaling: { maxReplicas: 2 } }],
      }),
      lookup({}),
    );
    expect(withConsumer.get('consumers')?.condition).toMatchObject({
      type: 'ConsumersReady',
      reason: 'NotCreated',
      message: 'Deployment prod/shop-worker does not exist yet',
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// What a tier's pods say when it is not ready (operator/controller/pod-diagnosis.ts).

const NOW = Date.parse('2025-06-01T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The cache as the status reads it: children by kind and name, pods by label selector. */
function cached(objects: KubernetesObject[]): ChildLookup {
  return {
    get: (kind, namespace, name) =>
      objects.find(
        (o) => o.kind === kind && o.metadata?.namespace === namespace && o.metadata?.name === name,
      ),
    select: (kind, namespace, labels) =>
      objects.filter(
        (o) =>
          o.kind === kind &&
          o.metadata?.namespace === namespace &&
          Object.entries(labels).every(([k, v]) => o.metadata?.labels?.[k] === v),
      ),
  };
}

const dep = (name: string, replicas: number, available: number): V1Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'prod', generation: 1 },
  spec: { replicas, selector: {}, template: {} },
  status: settled(replicas, { availableReplicas: available, readyReplicas: available }),
});
const sts = (name: string, replicas: number, ready: number): V1StatefulSet => ({
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  metadata: { name, namespace: 'prod', generation: 1 },
  spec: { replicas, selector: {}, template: {}, serviceName: name },
  status: { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: ready },
});

type PodState = 'ready' | 'pull' | 'crash' | 'unschedulable' | 'starting';
/** A pod of a tier (by its selector labels) in one of a few states, as the cache holds it (JSON). */
function tierPod(name: string, labels: Record<string, string>, state: PodState, restarts = 3): V1Pod {
  const container = (s: Record<string, unknown>) => ({
    containerStatuses: [
      { name: 'main', image: 'registry.example/x:1', imageID: '', ready: false, restartCount: 0, ...s },
    ],
  });
  const status: Record<string, unknown> =
    state === 'ready'
      ? {
          phase: 'Running',
          conditions: [{ type: 'Ready', status: 'True' }],
          ...container({ ready: true, state: { running: { startedAt: ago(900) } } }),
        }
      : state === 'pull'
        ? {
            phase: 'Pending',
            ...container({
              state: {
                waiting: {
                  reason: 'ImagePullBackOff',
                  message: 'Back-off pulling image "registry.example/x:nope"',
                },
              },
            }),
          }
        : state === 'crash'
          ? {
              phase: 'Running',
              ...container({
                restartCount: restarts,
                state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed' } },
                lastState: { terminated: { exitCode: 1, reason: 'Error' } },
              }),
            }
          : state === 'starting'
            ? { phase: 'Running', ...container({ state: { running: { startedAt: ago(10) } } }) }
            : {
                phase: 'Pending',
                conditions: [
                  {
                    type: 'PodScheduled',
                    status: 'False',
                    reason: 'Unschedulable',
                    message: '0/6 nodes are available: 6 Insufficient memory.',
                  },
                ],
              };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'prod', labels: { ...labels, [LABEL.managedBy]: MANAGER } },
    status,
  } as unknown as V1Pod;
}

describe('tierReports: a tier that is not ready names the pod and the reason', () => {
  const app = parseApp({ web: { image: 'x', replicas: 3 } });
  const web = selectorLabels(app, WEB);

  it('gives the pod problem as the reason, and names the pod after what the workload says', () => {
    const report = tierReports(
      app,
      cached([
        dep('shop-web', 3, 2),
        tierPod('shop-web-7d9f-a', web, 'ready'),
        tierPod('shop-web-7d9f-b', web, 'ready'),
        tierPod('shop-web-7d9f-c', web, 'pull'),
      ]),
      NO_FACTS,
      NOW,
    ).get('web');
    expect(report).toEqual({
      ready: false,
      condition: {
        type: 'WebReady',
        status: 'False',
        reason: TIER_REASON.ImagePullFailed,
        message:
          'Deployment prod/shop-web: 2/3 replicas available; pod shop-web-7d9f-c: container main cannot start: ImagePullBackOff: Back-off pulling image "registry.example/x:nope"',
      },
    });
  });

  it('leaves a ready tier alone, whatever one of its pods says', () => {
    const report = tierReports(
      app,
      cached([dep('shop-web', 3, 3), tierPod('shop-web-surge', web, 'crash')]),
      NO_FACTS,
      NOW,
    ).get('web');
    expect(report?.condition).toMatchObject({ status: 'True', reason: 'Available' });
  });

  it('keeps the workload reason when the pods show no problem', () => {
    const report = tierReports(
      app,
      cached([dep('shop-web', 3, 2), tierPod('shop-web-a', web, 'ready')]),
      NO_FACTS,
      NOW,
    ).get('web');
    expect(report?.condition).toMatchObject({
      reason: 'ReplicasUnavailable',
      message: 'Deployment prod/shop-web: 2/3 replicas available',
    });
  });

  it('gives the same condition for the same pods in any order (no flapping between pods)', () => {
    const pods = [
      tierPod('shop-web-b', web, 'crash'),
      tierPod('shop-web-a', web, 'crash', 7),
      tierPod('shop-web-c', web, 'unschedulable'),
    ];
    const messages = new Set(
      [pods, [...pods].reverse(), [pods[2]!, pods[0]!, pods[1]!]].map(
        (ps) =>
          tierReports(app, cached([dep('shop-web', 3, 0), ...ps]), NO_FACTS, NOW).get('web')?.condition
            .message,
      ),
    );
    expect([...messages]).toEqual([
      'Deployment prod/shop-web: 0/3 replicas available; pod shop-web-a: container main is crash-looping (7 restarts; last exit 1 Error)',
    ]);
  });

  it('asks to be looked at again when a starting container may be called not ready', () => {
    const reports = tierReports(
      app,
      cached([dep('shop-web', 3, 2), tierPod('shop-web-a', web, 'starting')]),
      NO_FACTS,
      NOW,
    );
    expect(reports.get('web')?.recheckAfterMs).toBe(20_000);
    expect(recheckAfterMs(reports)).toBe(20_000);
    // Later, with no change to the pod, the budget has run out.
    const later = tierReports(
      app,
      cached([dep('shop-web', 3, 2), tierPod('shop-web-a', web, 'starting')]),
      NO_FACTS,
      NOW + 20_000,
    ).get('web');
    expect(later?.condition).toMatchObject({
      reason: TIER_REASON.ContainerNotReady,
      message:
        'Deployment prod/shop-web: 2/3 replicas available; pod shop-web-a: container main running but not ready',
    });
    expect(later?.recheckAfterMs).toBeUndefined();
  });

  const queue = { replicas: 1, queues: [{ name: 'q' }] };
  const every: [
    Tier,
    ScalableApp,
    (a: ScalableApp) => { workloads: KubernetesObject[]; labels: Record<string, string> },
  ][] = [
    [
      'web',
      parseApp({ web: { image: 'x' } }),
      (a) => ({ workloads: [dep('shop-web', 1, 0)], labels: selectorLabels(a, WEB) }),
    ],
    [
      'edgeCache',
      parseApp({
        web: { image: 'x', expose: { type: 'Ingress', host: 'a.example.com' } },
        edgeCache: { assetVersion: '1', cacheSize: '256m' },
      }),
      (a) => ({
        workloads: [dep('shop-web', 1, 1), dep(edgeName(a), 1, 0)],
        labels: selectorLabels(a, EDGE),
      }),
    ],
    [
      'cache',
      parseApp({ cache: { replicas: 2, resources: { limits: { memory: '256Mi' } } } }),
      (a) => ({ workloads: [sts(cacheName(a), 3, 2)], labels: selectorLabels(a, CACHE) }),
    ],
    [
      'database',
      parseApp({ database: {} }),
      (a) => ({ workloads: [sts(dbName(a), 2, 1)], labels: selectorLabels(a, DATABASE) }),
    ],
    [
      'queue',
      parseApp({ queue }),
      (a) => ({ workloads: [sts(mqName(a), 1, 0)], labels: selectorLabels(a, QUEUE) }),
    ],
    [
      'consumers',
      parseApp({ queue, consumers: [{ name: 'worker', image: 'w', queue: 'q', replicas: 1 }] }),
      (a) => ({
        workloads: [sts(mqName(a), 1, 1), dep(consumerName(a, { name: 'worker' }), 1, 0)],
        labels: consumerSelector(a, { name: 'worker' }),
      }),
    ],
    [
      'shards',
      parseApp({ shards: { count: 2, key: 'user_id' } }),
      (a) => {
        const [first, second] = shardClusters(a, NO_FACTS);
        return { workloads: [sts(first!.name, 2, 2), sts(second!.name, 2, 1)], labels: second!.selector };
      },
    ],
  ];

  it.each(every)('%s: the condition names the pod and the reason', (tier, a, setup) => {
    const { workloads, labels } = setup(a);
    const report = tierReports(
      a,
      cached([...workloads, tierPod('shop-x-1', labels, 'unschedulable')]),
      NO_FACTS,
      NOW,
    ).get(tier);
    expect(report?.ready).toBe(false);
    expect(report?.condition.reason).toBe(TIER_REASON.PodUnschedulable);
    expect(report?.condition.message).toMatch(
      /; pod shop-x-1: unschedulable: 0\/6 nodes are available: 6 Insufficient memory\.$/,
    );
  });

  it('shards: names the shard whose pods show the most severe problem, not merely the first', () => {
    const a = parseApp({ shards: { count: 3, key: 'user_id' } });
    const [s0, s1, s2] = shardClusters(a, NO_FACTS);
    const report = tierReports(
      a,
      cached([
        sts(s0!.name, 2, 1),
        sts(s1!.name, 2, 1),
        sts(s2!.name, 2, 2),
        tierPod(`${s0!.name}-1`, s0!.selector, 'unschedulable'),
        tierPod(`${s1!.name}-1`, s1!.selector, 'pull'),
      ]),
      NO_FACTS,
      NOW,
    ).get('shards');
    expect(report?.condition.reason).toBe(TIER_REASON.ImagePullFailed);
    expect(report?.condition.message).toBe(
      `StatefulSet prod/${s1!.name}: 1/2 instances ready; pod ${s1!.name}-1: container main cannot start: ImagePullBackOff: Back-off pulling image "registry.example/x:nope"`,
    );
  });

  it("consumers: names the consumer whose pods show a problem, and never another tier's pods", () => {
    const a = parseApp({
      queue,
      consumers: [
        { name: 'mail', image: 'm', queue: 'q', replicas: 1 },
        { name: 'photos', image: 'p', queue: 'q', replicas: 1 },
      ],
    });
    const report = tierReports(
      a,
      cached([
        sts(mqName(a), 1, 0),
        dep('shop-mail', 1, 0),
        dep('shop-photos', 1, 0),
        tierPod('shop-mq-0', selectorLabels(a, QUEUE), 'pull'),
        tierPod('shop-photos-abc', consumerSelector(a, { name: 'photos' }), 'crash'),
      ]),
      NO_FACTS,
      NOW,
    );
    expect(report.get('consumers')?.condition).toMatchObject({
      reason: TIER_REASON.ContainerCrashLooping,
      message:
        'Deployment prod/shop-photos: 0/1 replicas available; pod shop-photos-abc: container main is crash-looping (3 restarts; last exit 1 Error)',
    });
    expect(report.get('queue')?.condition.reason).toBe(TIER_REASON.ImagePullFailed);
  });
});

// ---------------------------------------------------------------------------------------------------
// The reconciler writes the diagnosis once, and records one Warning per new diagnosis.

describe('Reconciler: a pod diagnosis in status', () => {
  // The web Deployment has 1 of 2 replicas available.
  const world = (pods: V1Pod[]) => {
    const w = fakeWorld({
      spec: { web: { image: pinned('registry.example/shop:1'), replicas: 2 } },
      pods,
      deploymentStatus: settled(2, { availableReplicas: 1 }),
      now: NOW,
    });
    return { ...w, webCondition: () => w.condition('WebReady') };
  };

  const app = parseApp({ web: { image: 'x' } });
  const web = selectorLabels(app, WEB);
  const healthy = tierPod('shop-web-a', web, 'ready');

  it('writes a diagnosis once, records one Warning, and writes nothing while it stays the same', async () => {
    const w = world([healthy, tierPod('shop-web-b', web, 'crash', 3)]);
    await w.reconcile(); // creates the children and writes the first status
    await w.reconcile(); // nothing applied any more: Progressing changes once
    expect(w.webCondition()).toMatchObject({
      status: 'False',
      reason: TIER_REASON.ContainerCrashLooping,
      message:
        'Deployment prod/shop-web: 1/2 replicas available; pod shop-web-b: container main is crash-looping (3 restarts; last exit 1 Error)',
    });
    expect(w.warnings()).toEqual([
      'ContainerCrashLooping: WebReady: Deployment prod/shop-web: 1/2 replicas available; pod shop-web-b: container main is crash-looping (3 restarts; last exit 1 Error)',
    ]);
    const writes = w.statusWrites();
    expect(writes).toBe(2); // the first status, then Progressing once nothing is applied any more

    // The same pods, in the same or another order: no status write, no Event.
    expect(await w.reconcile()).toBe('ok');
    w.setPods([tierPod('shop-web-b', web, 'crash', 3), healthy]);
    await w.reconcile();
    expect(w.statusWrites()).toBe(writes);
    expect(w.warnings()).toHaveLength(1);

    // The same problem, one more restart: status follows, but it is no new Warning.
    w.setPods([healthy, tierPod('shop-web-b', web, 'crash', 4)]);
    await w.reconcile();
    await w.reconcile();
    expect(w.statusWrites()).toBe(writes + 1);
    expect(w.warnings()).toHaveLength(1);

    // Another problem: one status write, one Warning.
    w.setPods([healthy, tierPod('shop-web-b', web, 'crash', 4), tierPod('shop-web-c', web, 'pull')]);
    await w.reconcile();
    await w.reconcile();
    expect(w.statusWrites()).toBe(writes + 2);
    expect(w.warnings()).toHaveLength(2);
    expect(w.warnings()[1]).toMatch(
      /^ImagePullFailed: WebReady: .*; pod shop-web-c: container main cannot start: ImagePullBackOff/,
    );
  });

  it('looks again when a starting container would run out of its probes budget', async () => {
    const w = world([healthy, tierPod('shop-web-b', web, 'starting')]);
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 20_000 });
    expect(w.webCondition()?.reason).toBe('ReplicasUnavailable');
    expect(w.warnings()).toEqual([]);
  });
});

describe('consumersStatus', () => {
  const spec = {
    queue: { queues: [{ name: 'jobs' }] },
    consumers: [
      {
        name: 'worker',
        image: 'r/w:1',
        queue: 'jobs',
        autoscaling: { minReplicas: 0, maxReplicas: 5, pollIntervalSeconds: 2, cooldownSeconds: 30 },
      },
    ],
  };
  const decision = (over: object) => ({
    time: '2026-12-03T10:00:00.123Z',
    queueDepth: 250,
    currentReplicas: 0,
    desiredReplicas: 3,
    reason: 'WakeFromZero' as const,
    message: '',
    ...over,
  });
  const recorded = {
    time: '2026-12-03T09:00:00Z',
    fromReplicas: 1,
    toReplicas: 4,
    queueDepth: 380,
    reason: 'ScaleUp',
  };

  it('shows the latest decision and the last one that changed the replicas, to the second', () => {
    const a = parseApp(spec as never, 'shop', 'prod');
    const steady = decision({ reason: 'Steady', currentReplicas: 3, time: '2026-12-03T10:00:02.000Z' });
    const [worker] = consumersStatus(a, {
      ...NO_FACTS,
      consumerScale: { worker: { replicas: 3, decision: steady, lastScale: decision({}) } },
    });
    expect(worker).toEqual({
      name: 'worker',
      replicas: 3,
      lastDecision: { time: '2026-12-03T10:00:02Z', queueDepth: 250, desiredReplicas: 3, reason: 'Steady' },
      lastScale: {
        time: '2026-12-03T10:00:00Z',
        fromReplicas: 0,
        toReplicas: 3,
        queueDepth: 250,
        reason: 'WakeFromZero',
      },
    });
  });

  it('keeps the change on record after an operator restart, until the autoscaler makes a new one', () => {
    const a = {
      ...parseApp(spec as never, 'shop', 'prod'),
      status: { consumers: [{ name: 'worker', replicas: 4, lastScale: recorded }] },
    } as ScalableApp;
    const [worker] = consumersStatus(a, { ...NO_FACTS, consumerScale: { worker: { replicas: 4 } } });
    expect(worker!.lastScale).toEqual(recorded);
    const [next] = consumersStatus(a, {
      ...NO_FACTS,
      consumerScale: {
        worker: { replicas: 2, lastScale: decision({ currentReplicas: 4, desiredReplicas: 2 }) },
      },
    });
    expect(next!.lastScale).toMatchObject({ fromReplicas: 4, toReplicas: 2 });
  });

  it('drops the record when the consumer is no longer autoscaled', () => {
    const fixed = { ...spec, consumers: [{ name: 'worker', image: 'r/w:1', queue: 'jobs', replicas: 2 }] };
    const a = {
      ...parseApp(fixed as never, 'shop', 'prod'),
      status: { consumers: [{ name: 'worker', replicas: 4, lastScale: recorded }] },
    } as ScalableApp;
    expect(consumersStatus(a, NO_FACTS)).toEqual([{ name: 'worker', replicas: 2 }]);
  });
});

describe('readyReplicas', () => {
  const children = (ready: number, primaryState: PodState): ChildLookup => {
    const objects: Record<string, unknown> = {
      'StatefulSet/prod/shop-db': sts('shop-db', 3, ready),
      'Pod/prod/shop-db-0': tierPod('shop-db-0', {}, primaryState),
    };
    return { get: (kind, namespace, name) => objects[`${kind}/${namespace}/${name}`] };
  };

  it('counts the ready instances other than the primary', () => {
    expect(readyReplicas(children(3, 'ready'), 'prod', 'shop-db', 'shop-db-0')).toBe(2);
  });

  it('does not take the primary off when it is the one that is down', () => {
    expect(readyReplicas(children(2, 'crash'), 'prod', 'shop-db', 'shop-db-0')).toBe(2);
  });

  it('is 0 without the StatefulSet', () => {
    expect(readyReplicas({ get: () => undefined }, 'prod', 'shop-db', 'shop-db-0')).toBe(0);
  });
});
