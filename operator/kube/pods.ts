import type { V1Pod } from '@kubernetes/client-node';

/** The pod's Ready condition is True: its containers pass their readiness probes. */
export const isPodReady = (pod: V1Pod | undefined): boolean =>
  pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/**
 * The named container passes its readiness probe, whatever the pod's other containers do: a data
 * tier's health is its server's, and a failing metrics exporter beside it must never move a primary.
 */
export const isContainerReady = (pod: V1Pod | undefined, name: string): boolean =>
  pod?.status?.containerStatuses?.find((c) => c.name === name)?.ready ?? false;
