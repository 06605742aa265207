import type { V1TopologySpreadConstraint } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';

export const HOSTNAME_KEY = 'kubernetes.io/hostname';

/**
 * Spread one tier's pods over zones (max skew 1) and, softly, over nodes. `matchLabelKeys` keeps a
 * rolling update from counting the old ReplicaSet's pods against the new one's spread. A zone key
 * of kubernetes.io/hostname already spreads over nodes: the soft node spread is left out, since a
 * second constraint on the same key and policy is refused by the apiserver.
 */
export function zoneSpread(
  app: ScalableApp,
  selector: Record<string, string>,
  opts: { rollingDeployment?: boolean } = {},
): V1TopologySpreadConstraint[] | undefined {
  const t = app.spec.topology;
  if (!t.spreadAcrossZones) return undefined;
  const matchLabelKeys = opts.rollingDeployment ? ['pod-template-hash'] : undefined;
  const spread = (topologyKey: string, whenUnsatisfiable: string): V1TopologySpreadConstraint => ({
    maxSkew: 1,
    topologyKey,
    whenUnsatisfiable,
    labelSelector: { matchLabels: selector },
    ...(matchLabelKeys ? { matchLabelKeys } : {}),
  });
  const zones = spread(t.zoneKey, t.whenUnsatisfiable);
  return t.zoneKey === HOSTNAME_KEY ? [zones] : [zones, spread(HOSTNAME_KEY, 'ScheduleAnyway')];
}
