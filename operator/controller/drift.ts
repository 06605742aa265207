import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { ANNOTATION } from '../tiers/labels.ts';
import { sameQuantity } from '../tiers/resources.ts';

/** A stable digest of a desired object (key order does not matter). */
export function desiredHash(obj: unknown): string {
  return createHash('sha256').update(stableJson(obj)).digest('hex').slice(0, 20);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The first path where `live` does not hold a field of `desired` with an equal value, or undefined
 * when it holds them all. Extra live fields (defaults, status, other managers' fields) are fine;
 * a list must match item for item, so an entry someone added by hand counts as drift.
 */
export function firstDifference(desired: unknown, live: unknown, path = ''): string | undefined {
  if (desired === live) return undefined;
  // The apiserver stores an empty list or object as nothing (an EndpointSlice with no endpoints reads
  // back `endpoints: null`): applying it again would change nothing. Counting it as drift rewrote the
  // read-only EndpointSlice of a database without ready pods on every reconcile.
  if ((live === undefined || live === null) && isEmpty(desired)) return undefined;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return path;
    for (let i = 0; i < desired.length; i++) {
      const d = firstDifference(desired[i], live[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (desired && typeof desired === 'object') {
    if (!live || typeof live !== 'object' || Array.isArray(live)) return path;
    for (const [k, d] of Object.entries(desired)) {
      const diff = firstDifference(d, (live as Record<string, unknown>)[k], `${path}.${k}`);
      if (diff !== undefined) return diff;
    }
    return undefined;
  }
  // The apiserver stores quantities canonically ("1000m" → "1"); compare their values.
  if (
    (typeof desired === 'string' || typeof desired === 'number') &&
    typeof live === 'string' &&
    /\.(requests|limits|sizeLimit)\b/.test(path)
  ) {
    return sameQuantity(desired, live) ? undefined : path;
  }
  return path;
}

const isEmpty = (v: unknown) =>
  Array.isArray(v) ? v.length === 0 : !!v && typeof v === 'object' && Object.keys(v).length === 0;

export const isSubset = (desired: unknown, live: unknown) => firstDifference(desired, live) === undefined;

/**
 * Why applying `desired` would change something, or undefined when it would not. Together with
 * the applied-hash annotation this lets a no-op reconcile make zero mutating calls: the hash
 * catches fields the operator stopped setting (which apply would remove), the comparison catches
 * hand edits of the fields it sets.
 */
export function drift(desired: KubernetesObject, live: KubernetesObject | undefined): string | undefined {
  if (!live) return 'missing';
  if (
    live.metadata?.annotations?.[ANNOTATION.appliedHash] !==
    desired.metadata?.annotations?.[ANNOTATION.appliedHash]
  )
    return 'spec changed';
  const { metadata: dm, ...dRest } = desired;
  const { metadata: lm, ...lRest } = live;
  return firstDifference(dRest, lRest) ?? firstDifference(dm, lm, '.metadata');
}

/**
 * The object to send with a replace when server-side apply cannot put a hand edit back (an entry
 * someone added to a keyed list stays theirs under apply): live, with every field of desired laid
 * over it and desired's lists replacing live's.
 */
export function overlay(live: unknown, desired: unknown): unknown {
  if (Array.isArray(desired) || !desired || typeof desired !== 'object') return desired;
  if (!live || typeof live !== 'object' || Array.isArray(live)) return desired;
  const out: Record<string, unknown> = { ...(live as Record<string, unknown>) };
  for (const [k, v] of Object.entries(desired)) out[k] = overlay((live as Record<string, unknown>)[k], v);
  return out;
}

/**
 * The object to send: desired plus the hash of itself. A resourceVersion in desired is a
 * precondition of the write (withReadVersion), not something desired: it stays out of the hash, or
 * every write would change the next pass's hash and write again.
 */
export function stamped<T extends KubernetesObject>(desired: T): T {
  const { resourceVersion: _precondition, ...metadata } = desired.metadata ?? {};
  const hash = desiredHash({ ...desired, metadata });
  return {
    ...desired,
    metadata: {
      ...desired.metadata,
      annotations: { ...desired.metadata?.annotations, [ANNOTATION.appliedHash]: hash },
    },
  };
}

/**
 * Records the resourceVersion of every Secret read through these children (the first read wins):
 * what a pass read its credentials at (reconciler.ts).
 */
export function recordSecretReads<
  C extends { get(kind: string, ns: string, name: string): KubernetesObject | undefined },
>(children: C, read: Map<string, string>): C {
  return new Proxy(children, {
    get(target, prop, receiver) {
      if (prop !== 'get') {
        // Bound to the caches themselves: their methods may use private fields.
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      }
      return (kind: string, ns: string, name: string) => {
        const obj = target.get(kind, ns, name);
        const key = `${ns}/${name}`;
        const version = obj?.metadata?.resourceVersion;
        if (kind === 'Secret' && version && !read.has(key)) read.set(key, version);
        return obj;
      };
    },
  });
}

/**
 * A Secret the pass read is written only if it is still the version read: otherwise a value written
 * after the read (a user's new password, which starts a rotation) would be overwritten with the one
 * read before it. A stale write is refused (409) and the pass runs again on what is there now.
 */
export function withReadVersion<T extends KubernetesObject>(
  desired: T,
  read: ReadonlyMap<string, string>,
): T {
  if (desired.kind !== 'Secret') return desired;
  const version = read.get(`${desired.metadata?.namespace ?? ''}/${desired.metadata?.name ?? ''}`);
  return version ? { ...desired, metadata: { ...desired.metadata, resourceVersion: version } } : desired;
}
