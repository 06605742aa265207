import { parseApp } from '../api/testdata/apps.ts';
import type { V1Deployment, V1DeploymentStatus } from '@kubernetes/client-node';
import { deploymentReadiness, tierReports, type ChildLookup } from './tier-status.ts';

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
    expect(r.degraded).toBe(`${REF}: ReplicaSet "shop-web-abc" has timed out progressing.`);
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
    expect(web?.degraded).toBe(`${REF}: stuck`);
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
