import type { V1Pod } from '@kubernetes/client-node';

/** The pod's Ready condition is True: its containers pass their readiness probes. */
export const isPodReady = (pod: V1Pod | undefined): boolean =>
  pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
