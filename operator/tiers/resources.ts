import type { V1ResourceRequirements } from '@kubernetes/client-node';

type Quantities = { cpu?: string | number; memory?: string | number };

const asStrings = (q: Quantities | undefined) =>
  q
    ? Object.fromEntries(
        Object.entries(q)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => [k, String(v)]),
      )
    : undefined;

/** The spec allows quantities as numbers (`cpu: 2`); the Kubernetes API wants strings. */
export function resourceRequirements(r: {
  requests?: Quantities;
  limits?: Quantities;
}): V1ResourceRequirements {
  const requests = asStrings(r.requests);
  const limits = asStrings(r.limits);
  return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
}

const SUFFIX: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * The value of a Kubernetes quantity, so "1000m" equals "1" and "1024Mi" equals "1Gi": the apiserver
 * stores quantities in a canonical form that need not be the one we sent.
 */
export function quantityValue(q: string | number): number | undefined {
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(q.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  return base * SUFFIX[m[3] ?? '']!;
}
