import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { quantityFraction } from '../api/quantity.ts';

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

/**
 * Whether two Kubernetes quantities are equal in value: "1000m" equals "1", "1024Mi" equals "1Gi".
 * The apiserver stores quantities canonically, which need not be the form we sent.
 */
export function sameQuantity(a: string | number, b: string | number): boolean {
  const x = quantityFraction(a);
  const y = quantityFraction(b);
  return !!x && !!y && x.num * y.den === y.num * x.den;
}
