import type { V1TopologySpreadConstraint } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';

/**
 * Spread one tier's pods over zones (max skew 1) and, softly, over nodes. `matchLabelKeys` keeps a
 * rolling update from counting the old ReplicaSet's pods against the new one's spread.
 */
export function zoneSpread(
  app: ScalableApp,
  selector: Record<string, string>,
  opts: { rollingDeployment?: boolean } = {},
): V1TopologySpreadConstraint[] | undefined {
  const t = app.spec.topology;
  if (!t.spreadAcrossZones) return undefined;
  const matchLabelKeys = opts.rollingDeployment ? ['pod-template-hash'] : undefined;
  return [
    {
      maxSkew: 1,
      topologyKey: t.zoneKey,
      whenUnsatisfiable: t.whenUnsatisfiable,
      labelSelector: { matchLabels: selector },
      ...(matchLabelKeys ? { matchLabelKeys } : {}),
    },
    {
      maxSkew: 1,
      topologyKey: 'kubernetes.io/hostname',
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: { matchLabels: selector },
      ...(matchLabelKeys ? { matchLabelKeys } : {}),
    },
  ];
}
