// Pods and endpoints of the data tiers, as cluster tests look at them.
import { json, kubectl } from './kube.ts';

/** Sets a pod's Ready condition, as a failing (or recovering) server would through its probe. */
export function setPodReady(ns: string, pod: string, status: 'True' | 'False'): void {
  kubectl([
    'patch',
    'pod',
    pod,
    '-n',
    ns,
    '--subresource=status',
    '--type=strategic',
    '-p',
    JSON.stringify({ status: { conditions: [{ type: 'Ready', status, reason: 'Test' }] } }),
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
