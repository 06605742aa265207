import type { ScalableApp } from '../api/scalable-app.ts';
import { API_VERSION, KIND } from '../api/scalable-app.ts';
import { connectionHash, connectionSecret } from './connection.ts';
import { networkPolicies } from './network-policies.ts';
import type { Child, ObservedFacts } from './objects.ts';
import { webObjects } from './web.ts';
import { cacheConfigHash, cacheObjects } from './cache.ts';
import { edgeCacheObjects } from './edge-cache.ts';
import { databaseObjects } from './database.ts';

/**
 * Every object the app should have, as a pure function of the spec and observed facts. Each child
 * carries a controller owner reference, so deleting the ScalableApp garbage-collects it.
 */
export function desiredState(app: ScalableApp, facts: ObservedFacts): Child[] {
  const secret = connectionSecret(app, facts);
  const connection = { name: secret.metadata.name, hash: connectionHash(secret) };
  const objects: Child[] = [
    secret,
    ...networkPolicies(app),
    ...webObjects(app, facts, connection),
    ...cacheObjects(app, facts, cacheConfigHash(app, facts)),
    ...edgeCacheObjects(app),
    ...databaseObjects(app, facts),
  ];
  const owner = {
    apiVersion: API_VERSION,
    kind: KIND,
    name: app.metadata.name,
    uid: app.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
  return objects.map((o) => ({
    ...o,
    metadata: { ...o.metadata, namespace: app.metadata.namespace, ownerReferences: [owner] },
  }));
}
