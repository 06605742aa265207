// Growing the volumes of a StatefulSet in place. Kubernetes keeps a StatefulSet's claim templates
// immutable and resizes volumes claim by claim, so a larger `storage.size` takes three steps (the
// ones CloudNativePG does, and the Bitnami charts document by hand):
//   1. each existing claim is patched to the new size; the apiserver refuses (403) when its
//      StorageClass does not allow expansion, in its own words;
//   2. the StatefulSet is deleted with its pods orphaned: they keep running, and their claims stay;
//   3. the next reconcile (the deletion's watch event) applies it with the new templates, and it
//      adopts the running pods. Their template did not change, so none restarts.
// While a claim is refused, the StatefulSet keeps its live templates (its other changes still apply)
// and the refusal goes the way of every refused child: a condition, one Event, backoff.
import type {
  KubernetesObject,
  V1PersistentVolumeClaim,
  V1PersistentVolumeClaimTemplate,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { compareQuantities } from '../api/quantity.ts';
import { ApiError, type Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import type { Child } from '../tiers/objects.ts';
import { REFUSALS, apiserverWords, type Refusal } from './refusal.ts';

export interface VolumeGrowthDeps {
  readonly kube: Kube;
  readonly children: { get(kind: string, namespace: string, name: string): unknown };
  readonly log: { info(msg: string, f?: Record<string, unknown>): void };
}

export interface VolumeGrowth {
  /** What to apply this round: a growing StatefulSet held back (being recreated) or kept at its live templates. */
  readonly desired: Child[];
  readonly refusals: Refusal[];
  /** StatefulSets deleted (pods orphaned) to be created again with larger claim templates. */
  readonly recreating: string[];
}

const size = (t: V1PersistentVolumeClaimTemplate | V1PersistentVolumeClaim) =>
  t.spec?.resources?.requests?.storage as string | undefined;

/** The claim templates of `desired` that ask for more than the live ones, with the live size. */
function grown(desired: V1StatefulSet, live: V1StatefulSet) {
  return (desired.spec?.volumeClaimTemplates ?? []).flatMap((t) => {
    const was = live.spec?.volumeClaimTemplates?.find((l) => l.metadata?.name === t.metadata?.name);
    const [to, from] = [size(t), was && size(was)];
    return to && from && compareQuantities(to, from) === 1 ? [{ template: t.metadata!.name!, from, to }] : [];
  });
}

export async function growVolumes(deps: VolumeGrowthDeps, desired: Child[]): Promise<VolumeGrowth> {
  const out: Child[] = [];
  const refusals: Refusal[] = [];
  const recreating: string[] = [];
  for (const obj of desired) {
    if (obj.kind !== 'StatefulSet') {
      out.push(obj);
      continue;
    }
    const ns = obj.metadata.namespace ?? '';
    const live = deps.children.get('StatefulSet', ns, obj.metadata.name) as V1StatefulSet | undefined;
    // Being deleted (step 2 above, or by someone else): apply it again once it is gone.
    if (live?.metadata?.deletionTimestamp) continue;
    const growth = live ? grown(obj as V1StatefulSet, live) : [];
    if (!live || growth.length === 0) {
      out.push(obj);
      continue;
    }
    const refused = await resizeClaims(deps, obj as V1StatefulSet & Child, growth);
    if (refused.length) {
      refusals.push(...refused);
      // Everything else about the StatefulSet still applies; the templates stay as they are.
      out.push({
        ...obj,
        spec: { ...(obj as V1StatefulSet).spec!, volumeClaimTemplates: live.spec!.volumeClaimTemplates! },
      } as Child);
      continue;
    }
    const path = `${collectionPath('apps/v1', 'statefulsets', ns)}/${obj.metadata.name}`;
    await deps.kube.delete(path, 'Orphan');
    deps.log.info(`growing the volumes of StatefulSet ${obj.metadata.name}: recreating it, its pods kept`, {
      growth,
    });
    recreating.push(obj.metadata.name);
  }
  return { desired: out, refusals, recreating };
}

/** Patches each existing claim of the grown templates; returns the claims the apiserver refused. */
async function resizeClaims(
  deps: VolumeGrowthDeps,
  sts: V1StatefulSet & Child,
  growth: { template: string; to: string }[],
): Promise<Refusal[]> {
  const ns = sts.metadata.namespace ?? '';
  const claims = collectionPath('v1', 'persistentvolumeclaims', ns);
  const selector = Object.entries(sts.spec?.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const { items } = await deps.kube.list<V1PersistentVolumeClaim & KubernetesObject>(claims, selector);
  const refusals: Refusal[] = [];
  for (const { template, to } of growth) {
    // Claims of a StatefulSet are <template>-<statefulset>-<ordinal>.
    const prefix = `${template}-${sts.metadata.name}-`;
    for (const claim of items.filter((c) => c.metadata?.name?.startsWith(prefix))) {
      const now = size(claim);
      if (now && compareQuantities(now, to) !== -1) continue;
      const name = claim.metadata!.name!;
      try {
        await deps.kube.mergePatch(`${claims}/${name}`, {
          spec: { resources: { requests: { storage: to } } },
        });
        deps.log.info(`grew PersistentVolumeClaim ${name} to ${to}`);
      } catch (e) {
        if (!(e instanceof ApiError && REFUSALS.has(e.status))) throw e;
        refusals.push({
          child: `PersistentVolumeClaim ${ns}/${name}`,
          status: e.status,
          message: `cannot grow from ${now ?? '?'} to ${to}: ${apiserverWords(e)}`,
        });
      }
    }
  }
  return refusals;
}
