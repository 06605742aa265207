import { podMonitors } from '../tiers/pod-monitors.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { API_VERSION, KIND } from '../api/scalable-app.ts';
import { appConnection, connectionSecret } from '../tiers/connection.ts';
import { networkPolicies } from '../tiers/network-policies.ts';
import { caObjects } from '../tiers/tls.ts';
import type { Child, ObservedFacts } from '../tiers/objects.ts';
import { TIER_MODULES } from './tier-modules/index.ts';

/**
 * Every object the app should have, as a pure function of the spec and observed facts. Each child
 * carries a controller owner reference, so deleting the ScalableApp garbage-collects it.
 */
export function desiredState(app: ScalableApp, facts: ObservedFacts): Child[] {
  const connection = appConnection(app, facts);
  const objects: Child[] = [
    connectionSecret(app, facts),
    ...caObjects(app, facts),
    ...networkPolicies(app, facts.operatorNamespace),
    ...podMonitors(app, facts),
    ...TIER_MODULES.flatMap((m) => (m.present(app) ? m.objects(app, facts, { connection }) : [])),
  ];
  const owner = {
    apiVersion: API_VERSION,
    kind: KIND,
    name: app.metadata.name,
    uid: app.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
  const kept = keptWithVolumes(app);
  return objects.map((o) =>
    o.kind === 'Secret' && kept.has(o.metadata.name)
      ? {
          ...o,
          metadata: {
            ...o.metadata,
            namespace: app.metadata.namespace,
            annotations: { ...o.metadata.annotations, [RETAINED_ANNOTATION]: RETAINED_REASON },
          },
        }
      : { ...o, metadata: { ...o.metadata, namespace: app.metadata.namespace, ownerReferences: [owner] } },
  );
}

export const RETAINED_ANNOTATION = 'scalableapp.io/retained';
const RETAINED_REASON = 'holds the credentials of volumes that outlive the ScalableApp';

/**
 * The credentials of data that outlives the app are not owned by it: retained volumes are useless
 * without their passwords (Postgres sets them only at initdb), and a ScalableApp created again under
 * the same name reads them back and opens the same data. Deleting them is the user's act, like
 * deleting the volumes.
 */
export function keptWithVolumes(app: ScalableApp): Set<string> {
  return new Set(TIER_MODULES.flatMap((m) => (m.present(app) ? (m.retainedSecrets?.(app) ?? []) : [])));
}
