// What the chart install tests read back to compare before and after an upgrade, an uninstall or a
// reinstall: a Secret's decoded values, and the namespace's volume claims.
import { json } from './kube.ts';

/** The decoded values of a Secret, by key. */
export function secretValues(ns: string, name: string): Record<string, string> {
  const data = json<{ data?: Record<string, string> }>(['get', 'secret', name, '-n', ns]).data ?? {};
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
}

/** Every claim of the namespace as [name, phase, uid], sorted by name: the same volumes keep their uid. */
export function claims(ns: string): string[][] {
  return json<{ items: { metadata: { name: string; uid: string }; status: { phase: string } }[] }>([
    'get',
    'pvc',
    '-n',
    ns,
  ])
    .items.map((c) => [c.metadata.name, c.status.phase, c.metadata.uid])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0));
}
