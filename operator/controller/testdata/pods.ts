import type { V1ContainerStatus } from '@kubernetes/client-node';

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
