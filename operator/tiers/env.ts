import type { V1EnvVar } from '@kubernetes/client-node';

/** An env entry of the spec (web, consumers): a literal value or a key of a Secret the user owns. */
export interface SpecEnv {
  readonly name: string;
  readonly value?: string | undefined;
  readonly secretKeyRef?: { readonly name: string; readonly key: string } | undefined;
}

export function envVars(list: readonly SpecEnv[]): V1EnvVar[] {
  return list.map((e) =>
    e.secretKeyRef
      ? { name: e.name, valueFrom: { secretKeyRef: { name: e.secretKeyRef.name, key: e.secretKeyRef.key } } }
      : { name: e.name, value: e.value ?? '' },
  );
}
