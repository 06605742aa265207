import type { V1Pod } from '@kubernetes/client-node';

/** The pod's Ready condition is True: its containers pass their readiness probes. */
export const isPodReady = (pod: V1Pod | undefined): boolean =>
  pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/**
 * The named container passes its readiness probe, whatever the pod's other containers do: a data
 * tier's health is its server's, and a failing metrics exporter beside it must never move a primary.
 */
export const isContainerReady = (pod: V1Pod | undefined, name: string): boolean =>
  containerStatus(pod, name)?.ready ?? false;

/** The named container runs (it may not be ready). */
export const isContainerRunning = (pod: V1Pod | undefined, name: string): boolean =>
  Boolean(containerStatus(pod, name)?.state?.running);

/**
 * A server incarnation: a new pod, or the named container restarted, is a server that started from
 * its configuration again. By name: the kubelet lists container statuses sorted by name, so the
 * first may be an exporter beside the server.
 */
export const incarnation = (pod: V1Pod, container: string): string =>
  `${pod.metadata?.uid}/${containerStatus(pod, container)?.restartCount ?? 0}`;

const containerStatus = (pod: V1Pod | undefined, name: string) =>
  pod?.status?.containerStatuses?.find((c) => c.name === name);
