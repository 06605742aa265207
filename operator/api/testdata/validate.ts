// A test-only model of what the apiserver does with the CRD schema after zod's checks: run every
// x-kubernetes-validations rule (with a real CEL evaluator) and the list-map key uniqueness, and
// report each failure at the path the apiserver would name. Cluster tests check the same corpora
// against a real apiserver; this lets the intent of each rule be tested in milliseconds.
import { Environment } from '@marcbachmann/cel-js';
import type { CelRule } from '../meta.ts';
import { scalableAppCrd } from '../crd.ts';
import { spec as specSchema } from '../spec.ts';
import { quantityFraction } from '../quantity.ts';

/** A value of the apiserver's CEL quantity library (`quantity("250m")`), held as an exact fraction. */
class Quantity {
  readonly num: bigint;
  readonly den: bigint;
  constructor(text: string) {
    const f = quantityFraction(text);
    if (!f) throw new Error(`quantity: ${JSON.stringify(text)} is not a quantity`);
    this.num = f.num;
    this.den = f.den;
  }
}

/** CEL as the apiserver evaluates the CRD's rules, with the part of its quantity library they use. */
const cel = new Environment()
  .registerVariable('self', 'dyn')
  .registerVariable('oldSelf', 'dyn')
  .registerType('Quantity', Quantity)
  .registerFunction('quantity(string): Quantity', (text: string) => new Quantity(text))
  .registerFunction({
    name: 'compareTo',
    receiverType: 'Quantity',
    returnType: 'int',
    params: [{ name: 'other', type: 'Quantity' }],
    handler: (a: Quantity, b: Quantity) => {
      const d = a.num * b.den - b.num * a.den;
      return d < 0n ? -1n : d > 0n ? 1n : 0n;
    },
  });

type Schema = {
  properties?: Record<string, Schema>;
  items?: Schema;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
};

export interface RuleFailure {
  readonly path: string;
  readonly message: string;
  readonly rule?: string;
}

/** CEL integers are int64; the evaluator wants BigInt for them. */
function toCel(value: unknown): unknown {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(toCel);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  }
  return value;
}

/**
 * `defaulted` says whether `value` has the schema defaults applied, as the apiserver's always has.
 * When it has not (zod already rejected the input), a rule that reads a missing defaulted field
 * cannot be judged and is skipped instead of failing the test.
 */
export function celFailures(
  schema: Schema,
  value: unknown,
  old: unknown,
  path: string,
  defaulted = true,
): RuleFailure[] {
  if (value === undefined || value === null) return [];
  const failures: RuleFailure[] = [];
  for (const r of schema['x-kubernetes-validations'] ?? []) {
    const transition = /\boldSelf\b/.test(r.rule);
    if (transition && (old === undefined || old === null)) continue; // the apiserver skips it on create
    let ok: unknown;
    try {
      ok = cel.evaluate(r.rule, { self: toCel(value), oldSelf: toCel(old) } as Record<string, unknown>);
    } catch (e) {
      if (!defaulted) continue;
      throw new Error(`CEL rule at ${path} failed to evaluate: ${r.rule}`, { cause: e });
    }
    if (ok !== true) failures.push({ path: path + (r.fieldPath ?? ''), message: r.message, rule: r.rule });
  }
  if (schema.properties && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const po = (old ?? {}) as Record<string, unknown>;
    for (const [k, s] of Object.entries(schema.properties)) {
      failures.push(
        ...celFailures(s, o[k], typeof old === 'object' ? po[k] : undefined, `${path}.${k}`, defaulted),
      );
    }
  }
  if (schema.items && Array.isArray(value)) {
    const keys = schema['x-kubernetes-list-map-keys'];
    const seenKeys = new Set<string>();
    value.forEach((item, i) => {
      if (keys) {
        const k = JSON.stringify(keys.map((key) => (item as Record<string, unknown>)[key]));
        if (seenKeys.has(k)) failures.push({ path: `${path}[${i}]`, message: `Duplicate value: ${k}` });
        seenKeys.add(k);
      }
      // Transition rules inside list items correlate by map key only; these lists carry none.
      failures.push(...celFailures(schema.items!, item, undefined, `${path}[${i}]`, defaulted));
    });
  }
  return failures;
}

const specJson = scalableAppCrd().spec.versions[0]!.schema.openAPIV3Schema.properties.spec as Schema;

/**
 * Paths the apiserver would name for this spec (`old` for an update): the schema's errors (zod, which
 * mirrors the structural schema), then the CEL and list-map errors on the defaulted spec.
 */
export function specErrors(spec: unknown, old?: unknown): string[] {
  const parsed = specSchema.safeParse(spec);
  const schemaErrors = parsed.success
    ? []
    : parsed.error.issues.map((i) =>
        ['spec', ...i.path].reduce<string>(
          (p, k) => (typeof k === 'number' ? `${p}[${k}]` : p ? `${p}.${String(k)}` : String(k)),
          '',
        ),
      );
  const defaultedOld = old === undefined ? undefined : specSchema.parse(old);
  const cel = celFailures(
    specJson,
    parsed.success ? parsed.data : spec,
    defaultedOld,
    'spec',
    parsed.success,
  ).map((f) => f.path);
  return [...schemaErrors, ...cel];
}
