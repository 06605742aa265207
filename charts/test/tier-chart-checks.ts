// Checks the database and edge-cache chart tests share: the exclusions of a chart that leaves the
// app-wide policies to another chart, and the pod specs a chart renders (for Pod Security).
import type { V1PodSpec } from '@kubernetes/client-node';
import type { RenderedObject } from './helm.ts';
import type { Exclusion } from './parity.ts';

/** With networkPolicies.appWide=false the operator's default deny and DNS allow are not the chart's. */
export const appWideExclusions = (release: string): Exclusion[] =>
  (['default-deny', 'allow-dns'] as const).map((p) => ({
    object: `NetworkPolicy/${release}-${p}`,
    onlyIn: 'operator',
    reason: 'networkPolicies.appWide=false: another chart of the same release renders the app-wide policies',
  }));

/** `Kind/name` and pod spec of every pod and pod template among rendered objects. */
export function podSpecs(objects: readonly RenderedObject[]): [string, V1PodSpec][] {
  return objects.flatMap((o): [string, V1PodSpec][] => {
    if (o.kind === 'Pod') return [[`Pod/${o.metadata.name}`, o.spec as V1PodSpec]];
    const template = (o.spec as { template?: { spec: V1PodSpec } } | undefined)?.template;
    return template ? [[`${o.kind}/${o.metadata.name}`, template.spec]] : [];
  });
}
