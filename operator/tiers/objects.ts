import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { DatabaseCredentials } from './database.ts';

/** A desired child object: what a builder returns and what the operator applies. */
export interface Child extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }[];
  };
  [field: string]: unknown;
}

/** Facts the builders need that only the cluster knows. Gathered by the controller; builders stay pure. */
export interface ObservedFacts {
  /** gateway.networking.k8s.io/v1 HTTPRoute is served (the Gateway API CRDs are installed). */
  readonly gatewayApi: boolean;
  /** The cache password: read back from its Secret, or freshly generated once by the controller. */
  readonly cachePassword?: string;
  /** The cache pod the operator last made primary (its ConfigMap record); the first pod when unset. */
  readonly cachePrimary?: string;
  /** The database's generated passwords (read back from their Secret, or generated once). */
  readonly dbCredentials?: DatabaseCredentials;
  /** The database pod the operator last made primary (its ConfigMap record); the first pod when unset. */
  readonly dbPrimary?: string;
  /** The last failover or switchover, as recorded on the database ConfigMap. */
  readonly dbLastFailover?: { readonly time: string; readonly reason: string };
  /** The database pods as observed (for the read-only endpoints). */
  readonly dbPods?: readonly V1Pod[];
}

export const NO_FACTS: ObservedFacts = { gatewayApi: false };
