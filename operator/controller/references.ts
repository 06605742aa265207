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
  return refs;
}
