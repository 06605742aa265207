// The names a Postgres cluster's instances go by. Apart from postgres-cluster.ts so that what that
// module builds on (its base backups, postgres-base-backup.ts) names the instances the same way
// without importing it back.
import type { ScalableApp } from '../api/scalable-app.ts';

export const pgHeadless = (c: { readonly name: string }) => `${c.name}-headless`;
/**
 * An instance's DNS name (the headless Service publishes every pod, ready or not): what standbys
 * stream from, so they follow the instance to a new pod's address.
 */
export const pgInstanceHost = (c: { readonly name: string; readonly app: ScalableApp }, instance: string) =>
  `${instance}.${pgHeadless(c)}.${c.app.metadata.namespace}.svc`;
/** Every instance's pod name, whether or not its pod exists right now. */
export const pgInstanceNames = (c: { readonly name: string; readonly spec: { readonly replicas: number } }) =>
  Array.from({ length: 1 + c.spec.replicas }, (_, i) => `${c.name}-${i}`);
