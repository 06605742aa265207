// ScalableApps in cluster tests: apply one, read it, wait until it is Ready at its current generation.
import { stringify } from 'yaml';
import { eventually, json, kubectl } from './kube.ts';

export function applyApp(ns: string, name: string, spec: unknown): void {
  kubectl(
    ['apply', '-n', ns, '-f', '-'],
    stringify({ apiVersion: 'scalableapp.io/v1alpha1', kind: 'ScalableApp', metadata: { name }, spec }),
  );
}

export const getApp = (ns: string, name: string) => json<any>(['get', 'sapp', name, '-n', ns]);

/** Ready, and about the spec as it is now (not an older generation's Ready). */
export function isReadyAtGeneration(a: any): boolean {
  const ready = a?.status?.conditions?.find((c: any) => c.type === 'Ready');
  return !!a && a.status?.observedGeneration === a.metadata.generation && ready?.status === 'True';
}

export const readyAt = (ns: string, name: string) =>
  eventually(`${name} Ready at its current generation`, () => {
    const a = getApp(ns, name);
    return isReadyAtGeneration(a) && a;
  });

/** A Secret's data, decoded. */
export const decodeSecret = (s: { data?: Record<string, string> }) =>
  Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
