import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../../api/testdata/apps.ts';
import { ROLE_LABEL, selectorLabels } from '../../tiers/labels.ts';

/** A container's status as the kubelet reports a running one: ready unless told, never restarted. */
export const runningContainer = (
  name: string,
  o: { ready?: boolean; restarts?: number } = {},
): V1ContainerStatus => ({
  name,
  restartCount: o.restarts ?? 0,
  ready: o.ready ?? true,
  image: 'x',
  imageID: '',
  state: { running: {} },
});

/**
 * The database primary shop-db-0 of app shop in prod, its server running (ready unless told),
 * labelled primary already: the fake cache does not take the operator's label patches.
 */
export const dbPrimaryPod = (o: { ready?: boolean } = {}): V1Pod => ({
  metadata: {
    name: 'shop-db-0',
    namespace: 'prod',
    uid: 'db0',
    labels: { ...selectorLabels(parseApp({}, 'shop', 'prod'), 'database'), [ROLE_LABEL]: 'primary' },
  },
  status: { podIP: '10.0.0.5', containerStatuses: [runningContainer('postgres', o)] },
});
