import type { V1Secret } from '@kubernetes/client-node';
import type { Child } from './objects.ts';

/**
 * A Secret holding `values` as the API stores them (base64), in the order given: the pod
 * templates hash this data, so an upgrade that reorders nothing rolls nothing. An undefined value
 * is left out (a login that exists only with a feature on).
 */
export function secretWith(
  metadata: Child['metadata'],
  type: 'Opaque' | 'kubernetes.io/tls',
  values: Record<string, string | undefined>,
): V1Secret & Child {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(values))
    if (value !== undefined) data[key] = Buffer.from(value).toString('base64');
  return { apiVersion: 'v1', kind: 'Secret', type, metadata, data };
}
