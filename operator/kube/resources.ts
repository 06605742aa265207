/** The kinds the operator owns, with the REST path to list and watch them across namespaces. */
export interface OwnedKind {
  readonly apiVersion: string;
  readonly kind: string;
  readonly plural: string;
  /**
   * Needs an API the cluster may not serve: the fact (ObservedFacts) that says whether it does,
   * looked up when the operator starts.
   */
  readonly needs?: 'gatewayApi' | 'podMonitors';
  /** Watched for status and role labels but never applied or pruned (pods belong to their workload). */
  readonly watchOnly?: boolean;
  /**
   * Created once and never changed: the record of one run (a backup Job), whose template is
   * immutable anyway. A different desired object comes under another name.
   */
  readonly createOnly?: boolean;
}

export const OWNED_KINDS: readonly OwnedKind[] = [
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets' },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps' },
  { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods', watchOnly: true },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', plural: 'statefulsets' },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', plural: 'endpointslices' },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', plural: 'ingresses' },
  // Base backups (postgres-base-backup.ts).
  { apiVersion: 'batch/v1', kind: 'Job', plural: 'jobs', createOnly: true },
  {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    plural: 'httproutes',
    needs: 'gatewayApi',
  },
  { apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor', plural: 'podmonitors', needs: 'podMonitors' },
];

export function collectionPath(apiVersion: string, plural: string, namespace?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
}

export const kindKey = (apiVersion: string, kind: string) => `${kind}.${apiVersion}`;
