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

/** Decimal and binary suffixes as (power of ten, power of two). */
const SUFFIX: Record<string, [number, number]> = {
  '': [0, 0],
  n: [-9, 0],
  u: [-6, 0],
  m: [-3, 0],
  k: [3, 0],
  M: [6, 0],
  G: [9, 0],
  T: [12, 0],
  P: [15, 0],
  E: [18, 0],
  Ki: [0, 10],
  Mi: [0, 20],
  Gi: [0, 30],
  Ti: [0, 40],
  Pi: [0, 50],
  Ei: [0, 60],
};

/** A quantity as an exact fraction, so "0.7" equals "700m" (floating point would say 0.7000000000000001). */
export function quantityFraction(q: string | number): { num: bigint; den: bigint } | undefined {
  const text = typeof q === 'number' ? String(q) : q.trim();
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/.exec(text);
  if (!m || (m[2] === '' && !m[3])) return undefined;
  const [, sign, int = '', frac = '', exp, suffix = ''] = m;
  const ten = (exp ? Number(exp) : SUFFIX[suffix]![0]) - frac.length;
  const two = SUFFIX[suffix]![1];
  let num = BigInt(`${sign}${int}${frac}` || '0') * 2n ** BigInt(two);
  let den = 1n;
  if (ten >= 0) num *= 10n ** BigInt(ten);
  else den = 10n ** BigInt(-ten);
  return { num, den };
}

/**
 * Whether two Kubernetes quantities are equal in value: "1000m" equals "1", "1024Mi" equals "1Gi".
 * The apiserver stores quantities canonically, which need not be the form we sent.
 */
export function sameQuantity(a: string | number, b: string | number): boolean {
  const x = quantityFraction(a);
  const y = quantityFraction(b);
  return !!x && !!y && x.num * y.den === y.num * x.den;
}
