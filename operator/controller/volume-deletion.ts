// Removing a tier from the spec prunes its StatefulSet. With deletionPolicy: Delete its claims go with
// it (persistentVolumeClaimRetentionPolicy.whenDeleted), and so does the data: one deleted line of
// YAML, or a bad merge in a GitOps repository, would be enough. So that prune waits for an explicit
// confirmation naming the StatefulSet, an annotation on the app; until then it is held back like a
// refused child (a condition naming what to do, one Event, backoff) and nothing is deleted.
import type { KubernetesObject, V1StatefulSet } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { Child } from '../tiers/objects.ts';
import type { Refusal } from './refusal.ts';

/** `scalableapp.io/confirm-volume-deletion: <statefulset>[,<statefulset>...]` on the ScalableApp. */
export const CONFIRM_VOLUME_DELETION = 'scalableapp.io/confirm-volume-deletion';

/** StatefulSets the spec no longer wants whose deletion would delete their claims, unconfirmed. */
export function unconfirmedVolumeDeletions(
  app: ScalableApp,
  owned: readonly { obj: KubernetesObject }[],
  desired: readonly Child[],
): Refusal[] {
  const wanted = new Set(desired.filter((o) => o.kind === 'StatefulSet').map((o) => o.metadata.name));
  const confirmed = new Set(
    (app.metadata.annotations?.[CONFIRM_VOLUME_DELETION] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  return owned
    .map(({ obj }) => obj as V1StatefulSet)
    .filter(
      (s) =>
        s.kind === 'StatefulSet' &&
        !wanted.has(s.metadata?.name ?? '') &&
        !s.metadata?.deletionTimestamp &&
        s.spec?.persistentVolumeClaimRetentionPolicy?.whenDeleted === 'Delete' &&
        !confirmed.has(s.metadata?.name ?? ''),
    )
    .map((s) => ({
      child: `StatefulSet ${s.metadata!.namespace}/${s.metadata!.name}`,
      message: `its tier is gone from the spec and its deletionPolicy is Delete, so deleting it deletes its volumes and their data. Annotate the ScalableApp ${CONFIRM_VOLUME_DELETION}=${s.metadata!.name} to confirm, or put the tier back`,
    }));
}
