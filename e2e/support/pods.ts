// Pods and endpoints of the data tiers, as cluster tests look at them.
import { json, kubectl } from './kube.ts';

/**
 * Sets a pod's readiness, as a failing (or recovering) server would through its probe: its
 * containers' ready flags (which the failover logic reads: a server is judged by its own container,
 * not by an exporter beside it), and the pod's Ready and ContainersReady conditions that follow.
 */
export function setPodReady(ns: string, pod: string, status: 'True' | 'False'): void {
  // containerStatuses has no merge key: the patch carries the whole list, each entry as it is.
  const current = json<{ status: { containerStatuses?: Record<string, unknown>[] } }>([
    'get',
    'pod',
    pod,
    '-n',
    ns,
  ]);
  const containerStatuses = (current.status.containerStatuses ?? []).map((c) => ({
    ...c,
    ready: status === 'True',
  }));
  kubectl([
    'patch',
    'pod',
    pod,
    '-n',
    ns,
    '--subresource=status',
    '--type=strategic',
    '-p',
    JSON.stringify({
      status: {
        conditions: [
          { type: 'Ready', status, reason: 'Test' },
          { type: 'ContainersReady', status, reason: 'Test' },
        ],
        containerStatuses,
      },
    }),
  ]);
}

/** The role label of each pod of one tier of one app: pod name → primary | replica. */
export function podRoles(ns: string, app: string, component: string): Record<string, string> {
  const pods = json<{ items: any[] }>([
    'get',
    'pods',
    '-n',
    ns,
    '-l',
    `app.kubernetes.io/instance=${app},app.kubernetes.io/component=${component}`,
  ]).items;
  return Object.fromEntries(pods.map((p) => [p.metadata.name, p.metadata.labels['scalableapp.io/role']]));
}

/** The pods a Service reaches: the ready endpoints of its EndpointSlices, sorted. */
export function readyEndpoints(ns: string, service: string): string[] {
  return json<{ items: any[] }>([
    'get',
    'endpointslices',
    '-n',
    ns,
    '-l',
    `kubernetes.io/service-name=${service}`,
  ])
    .items.flatMap((s) =>
      (s.endpoints ?? []).filter((e: any) => e.conditions?.ready !== false).map((e: any) => e.targetRef.name),
    )
    .sort();
}
