import { contentHash } from './content-hash.ts';
import type { V1Secret } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { childName, tierLabels } from './labels.ts';
import { webEndpoint } from './web.ts';
import type { Child, ObservedFacts } from './objects.ts';
import { cacheEntries } from './cache.ts';
import { edgeEntries } from './edge-cache.ts';
import { databaseEntries } from './database.ts';
import { shardEntries } from './shards.ts';
import { queueEntries } from './queue.ts';
import { CA_FILE, usesTls } from './tls.ts';
import { secretWith } from './secrets.ts';

export const connectionSecretName = (app: ScalableApp) => childName(app, 'connection');

/**
 * Everything the app needs to talk to its tiers, as environment variables (the web tier and the
 * consumers mount it with envFrom). Entries are added as tiers are deployed. Values are plain
 * strings here; the Secret carries them base64-encoded in `data` (never `stringData`, which the
 * apiserver folds into `data` and would make every comparison differ).
 */
export function connectionEntries(app: ScalableApp, facts: ObservedFacts): Record<string, string> {
  const entries: Record<string, string> = { SCALABLEAPP_NAME: app.metadata.name };
  if (app.spec.web) entries.WEB_URL = webEndpoint(app);
  Object.assign(
    entries,
    cacheEntries(app, facts),
    edgeEntries(app),
    databaseEntries(app, facts),
    shardEntries(app, facts),
    queueEntries(app, facts),
  );
  return entries;
}

export function connectionSecret(app: ScalableApp, facts: ObservedFacts): V1Secret & Child {
  const entries = Object.entries(connectionEntries(app, facts)).sort(([a], [b]) => a.localeCompare(b));
  return secretWith(
    {
      name: connectionSecretName(app),
      namespace: app.metadata.namespace,
      labels: tierLabels(app, 'connection'),
    },
    'Opaque',
    Object.fromEntries(entries),
  );
}

/**
 * A digest of the Secret's data, and of the CA certificate the URLs name, for the pod template: a
 * change of any entry rolls the pods, and so does a new CA (clients read its file when they start).
 */
export function connectionHash(secret: V1Secret, caCert?: string): string {
  return contentHash(caCert === undefined ? (secret.data ?? {}) : { ...secret.data, [CA_FILE]: caCert });
}

/** The app's connection Secret's name and the hash its pods roll on (the app's CA included). */
export function appConnection(app: ScalableApp, facts: ObservedFacts): { name: string; hash: string } {
  const secret = connectionSecret(app, facts);
  const ca = usesTls(app) ? facts.tls?.ca.cert : undefined;
  return { name: secret.metadata.name, hash: connectionHash(secret, ca) };
}
