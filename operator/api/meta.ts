import type { z } from 'zod';

/**
 * One `x-kubernetes-validations` entry. `fieldPath` (relative to the node that carries the rule)
 * makes the apiserver report the error against the field the user must change, not its parent.
 */
export interface CelRule {
  readonly rule: string;
  readonly message: string;
  readonly fieldPath?: string;
  readonly reason?:
    'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export interface FieldMeta {
  /** Rules the apiserver evaluates (CEL). They run only in the apiserver; unit tests run them with a CEL evaluator. */
  readonly cel?: readonly CelRule[];
  /** `x-kubernetes-list-type` and keys, so lists of named things merge by name under server-side apply. */
  readonly listType?: 'atomic' | 'set' | 'map';
  readonly listMapKeys?: readonly string[];
  /** Values that are a Kubernetes quantity ("256Mi", 2): `x-kubernetes-int-or-string`. */
  readonly intOrString?: boolean;
  /** Bounds on a map's entries (`minProperties`, `maxProperties`); zod checks them by a refinement. */
  readonly properties?: { readonly min?: number; readonly max?: number };
}

/**
 * Attaches the description every CRD field carries (shown by `kubectl explain`) and the
 * Kubernetes-only schema extensions. Applied last, so wrappers such as `.default()` keep it.
 */
export function doc<T extends z.ZodType>(schema: T, description: string, meta: FieldMeta = {}): T {
  const extra: Record<string, unknown> = { description };
  if (meta.cel) extra['x-kubernetes-validations'] = meta.cel;
  if (meta.listType) extra['x-kubernetes-list-type'] = meta.listType;
  if (meta.listMapKeys) extra['x-kubernetes-list-map-keys'] = meta.listMapKeys;
  if (meta.intOrString) extra['x-kubernetes-int-or-string'] = true;
  if (meta.properties?.min !== undefined) extra.minProperties = meta.properties.min;
  if (meta.properties?.max !== undefined) extra.maxProperties = meta.properties.max;
  return schema.meta(extra) as T;
}
