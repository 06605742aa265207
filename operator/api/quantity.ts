// Kubernetes quantities ("250m", "1.5Gi", 2) as exact fractions: the API validates with them (request
// within limit, volume bounds) and the builders and the drift check compare with them.

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

/** a − b in sign: −1, 0 or 1; undefined when either is not a quantity. */
export function compareQuantities(a: string | number, b: string | number): -1 | 0 | 1 | undefined {
  const [x, y] = [quantityFraction(a), quantityFraction(b)];
  if (!x || !y) return undefined;
  const d = x.num * y.den - y.num * x.den;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}
