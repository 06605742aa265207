import type { KubernetesObject } from '@kubernetes/client-node';
import { isNotFound, type Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import type { ScalableApp } from '../api/scalable-app.ts';

/** Secrets the spec points at that the user must provide. CEL cannot see other objects; the operator checks them. */
export function referencedSecrets(app: ScalableApp): { name: string; key?: string; field: string }[] {
  const refs: { name: string; key?: string; field: string }[] = [];
  const web = app.spec.web;
  if (web?.expose.tlsSecretName)
    refs.push({ name: web.expose.tlsSecretName, field: 'spec.web.expose.tlsSecretName' });
  web?.env.forEach((e, i) => {
    if (e.secretKeyRef)
      refs.push({
        name: e.secretKeyRef.name,
        key: e.secretKeyRef.key,
        field: `spec.web.env[${i}].secretKeyRef`,
      });
  });
  app.spec.consumers?.forEach((c, ci) =>
    c.env.forEach((e, i) => {
      if (e.secretKeyRef)
        refs.push({
          name: e.secretKeyRef.name,
          key: e.secretKeyRef.key,
          field: `spec.consumers[${ci}].env[${i}].secretKeyRef`,
        });
    }),
  );
  for (const tier of ['database', 'shards'] as const) {
    const s3 = app.spec[tier]?.backup?.s3;
    if (!s3) continue;
    for (const k of ['accessKeyId', 'secretAccessKey', 'ca'] as const) {
      const ref = s3[k];
      if (ref) refs.push({ name: ref.name, key: ref.key, field: `spec.${tier}.backup.s3.${k}` });
    }
  }
  return refs;
}

/** What of referencedSecrets is missing, one line each naming the field; empty when all exist. */
export async function missingSecrets(kube: Kube, app: ScalableApp): Promise<string[]> {
  const missing: string[] = [];
  for (const ref of referencedSecrets(app)) {
    try {
      const s = await kube.get<KubernetesObject & { data?: Record<string, string> }>(
        `${collectionPath('v1', 'secrets', app.metadata.namespace)}/${ref.name}`,
      );
      if (ref.key && !(ref.key in (s.data ?? {})))
        missing.push(`${ref.field}: Secret ${app.metadata.namespace}/${ref.name} has no key ${ref.key}`);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      missing.push(`${ref.field}: Secret ${app.metadata.namespace}/${ref.name} not found`);
    }
  }
  return missing;
}
