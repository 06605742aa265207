// The local control plane is real: a real apiserver, scheduler, controller-manager (garbage
// collector, PV binder, HPA) and metrics pipeline, with nodes simulated by KWOK.
import { createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';

let ns: string;
beforeAll(() => {
  ns = createNamespace('smoke');
});
afterAll(() => deleteNamespace(ns));

interface Pod {
  metadata: { name: string; ownerReferences?: { uid: string }[] };
  spec: { nodeName?: string };
  status: { conditions?: { type: string; status: string }[] };
}

const zoneOfNode = () => {
  const nodes = json<{ items: { metadata: { name: string; labels: Record<string, string> } }[] }>([
    'get',
    'nodes',
  ]);
  return new Map(nodes.items.map((n) => [n.metadata.name, n.metadata.labels['topology.kubernetes.io/zone']]));
};
const ready = (p: Pod) =>
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

it('serves Kubernetes v1.36 with at least 6 nodes over 3 zones', () => {
  const version = json<{ serverVersion: { gitVersion: string } }>(['version']);
  expect(version.serverVersion.gitVersion).toMatch(/^v1\.36\./);
  const zones = zoneOfNode();
  expect(zones.size).toBeGreaterThanOrEqual(6);
  expect(new Set(zones.values())).toEqual(new Set(['zone-a', 'zone-b', 'zone-c']));
});

it('spreads a 3-replica Deployment over 3 zones, and garbage-collects its pods on delete', async () => {
  kubectl(
    ['apply', '-n', ns, '-f', '-'],
    JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'spread' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'spread' } },
        template: {
          metadata: { labels: { app: 'spread' } },
          spec: {
            topologySpreadConstraints: [
              {
                maxSkew: 1,
                topologyKey: 'topology.kubernetes.io/zone',
                whenUnsatisfiable: 'DoNotSchedule',
                labelSelector: { matchLabels: { app: 'spread' } },
              },
            ],
            containers: [{ name: 'c', image: 'registry.example/never-pulled:1' }],
          },
        },
      },
    }),
  );
  const pods = await eventually('3 Ready pods', () => {
    const list = json<{ items: Pod[] }>(['get', 'pods', '-n', ns, '-l', 'app=spread']).items;
    return list.length === 3 && list.every(ready) && list;
  });
  const zones = zoneOfNode();
  expect(new Set(pods.map((p) => zones.get(p.spec.nodeName!))).size).toBe(3);

  kubectl(['delete', 'deployment', 'spread', '-n', ns, '--wait=false']);
  await eventually(
    'pods garbage-collected',
    () => json<{ items: Pod[] }>(['get', 'pods', '-n', ns, '-l', 'app=spread']).items.length === 0,
  );
});

it('binds the PersistentVolumeClaims of a StatefulSet through the real PV controller', async () => {
  kubectl(
    ['apply', '-n', ns, '-f', '-'],
    JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db' },
      spec: {
        replicas: 2,
        serviceName: 'db',
        selector: { matchLabels: { app: 'db' } },
        template: {
          metadata: { labels: { app: 'db' } },
          spec: { containers: [{ name: 'c', image: 'registry.example/never-pulled:1' }] },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data' },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
          },
        ],
      },
    }),
  );
  const claims = await eventually('2 Bound claims', () => {
    const list = json<{ items: { metadata: { name: string }; status: { phase?: string } }[] }>([
      'get',
      'pvc',
      '-n',
      ns,
    ]).items;
    return list.length === 2 && list.every((c) => c.status.phase === 'Bound') && list;
  });
  expect(claims.map((c) => c.metadata.name).sort()).toEqual(['data-db-0', 'data-db-1']);
  await eventually(
    'StatefulSet pods Ready',
    () => json<{ items: Pod[] }>(['get', 'pods', '-n', ns, '-l', 'app=db']).items.filter(ready).length === 2,
  );
});

it('feeds an HPA the current CPU utilisation of its pods', async () => {
  kubectl(
    ['apply', '-n', ns, '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'busy' },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: 'busy' } },
            template: {
              // The simulated usage: 150m against a 100m request, i.e. 150 %.
              metadata: { labels: { app: 'busy' }, annotations: { 'kwok.x-k8s.io/usage-cpu': '150m' } },
              spec: {
                containers: [
                  {
                    name: 'c',
                    image: 'registry.example/never-pulled:1',
                    resources: { requests: { cpu: '100m' } },
                  },
                ],
              },
            },
          },
        },
        {
          apiVersion: 'autoscaling/v2',
          kind: 'HorizontalPodAutoscaler',
          metadata: { name: 'busy' },
          spec: {
            scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'busy' },
            minReplicas: 2,
            maxReplicas: 2,
            metrics: [
              {
                type: 'Resource',
                resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } },
              },
            ],
          },
        },
      ],
    }),
  );
  type Hpa = { status: { currentMetrics?: { resource?: { current?: { averageUtilization?: number } } }[] } };
  const utilisation = await eventually(
    'the HPA to report current CPU',
    () =>
      json<Hpa>(['get', 'hpa', 'busy', '-n', ns]).status.currentMetrics?.[0]?.resource?.current
        ?.averageUtilization,
    180_000,
    2_000,
  );
  expect(utilisation).toBeGreaterThanOrEqual(140);
  expect(utilisation).toBeLessThanOrEqual(160);
});
