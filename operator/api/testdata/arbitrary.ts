// Specs drawn from the CRD's own schema, for property tests: every field the schema has, each value
// within the bounds and patterns the schema states (so the draws probe the rules the schema cannot
// state: CEL, and what children and servers accept). A few hints bias the draws toward specs the CRD
// admits, or the property would only ever see rejections.
import fc from 'fast-check';
import { scalableAppCrd } from '../crd.ts';

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
};

/** Queue names a consumer can refer to: random names would almost never match a declared queue. */
const QUEUE_NAMES = fc.oneof(
  { arbitrary: fc.constantFrom('jobs', 'mail'), weight: 8 },
  { arbitrary: fc.constant('amq.reserved'), weight: 1 },
);

/** Quantities people write (mostly valid), beside random ones of the schema's pattern (mostly not). */
const QUANTITIES: Record<string, fc.Arbitrary<string | number>> = {
  cpu: fc.oneof(
    { arbitrary: fc.constantFrom('50m', '100m', '250m', 1, '1500m'), weight: 6 },
    { arbitrary: fc.constantFrom('0', '4'), weight: 1 },
  ),
  memory: fc.oneof(
    { arbitrary: fc.constantFrom('512Mi', '1Gi', '2Gi', 1073741824), weight: 6 },
    { arbitrary: fc.constantFrom('4Mi', '64Mi', '2Pi'), weight: 1 },
  ),
  size: fc.oneof(
    { arbitrary: fc.constantFrom('1Gi', '5Gi', '20Gi'), weight: 6 },
    { arbitrary: fc.constantFrom('0', '512Ki', '2Pi'), weight: 1 },
  ),
};

const envEntry = fc.oneof(
  fc.record({ name: fc.constantFrom('MODE', 'LOG_LEVEL', 'FEATURE_X'), value: fc.string({ maxLength: 12 }) }),
  fc.record({
    name: fc.constantFrom('API_KEY', 'TOKEN'),
    secretKeyRef: fc.record({
      name: fc.constantFrom('keys', 'app-secrets'),
      key: fc.constantFrom('k', 'api.key'),
    }),
  }),
);

/** Hints by path (list items as []) or by key: values that make admitted specs likely, and edge cases. */
const HINTS: Record<string, fc.Arbitrary<unknown>> = {
  'queue.queues[].name': QUEUE_NAMES,
  'consumers[].queue': QUEUE_NAMES,
  'consumers[].name': fc.oneof(
    { arbitrary: fc.constantFrom('worker', 'mailer', 'photo-processor'), weight: 8 },
    { arbitrary: fc.constant('edge'), weight: 1 },
  ),
  'queue.replicas': fc.constantFrom(1, 3, 5),
  'web.env[]': envEntry,
  'consumers[].env[]': envEntry,
  'web.expose': fc.oneof(
    fc.constant({ type: 'ClusterIP' }),
    fc.constant({ type: 'LoadBalancer' }),
    fc.record(
      {
        type: fc.constant('Ingress'),
        host: fc.constantFrom('shop.example.com', '*.example.com', '10.0.0.1'),
        tlsSecretName: fc.constantFrom('shop-tls'),
        ingressClassName: fc.constantFrom('nginx'),
      },
      { requiredKeys: ['type', 'host'] },
    ),
    fc.record(
      {
        type: fc.constant('Gateway'),
        host: fc.constantFrom('shop.example.com'),
        gateway: fc.record(
          { name: fc.constant('public'), namespace: fc.constant('infra') },
          { requiredKeys: ['name'] },
        ),
      },
      { requiredKeys: ['type', 'host', 'gateway'] },
    ),
  ),
  // At most replicasPerShard (a CEL rule), mostly: a draw of 0..5 against 0..5 is refused too often.
  'shards.synchronousReplicas': fc.constantFrom(0, 1),
  'shards.dedicated[].key': fc.constantFrom(
    'celebrity-1',
    'celebrity-2',
    'celebrity-46110',
    'celebrity-86322',
  ),
  // Selector labels (allowedClients): maps the schema has no key pattern for, so drawn here.
  matchLabels: fc.oneof(
    {
      arbitrary: fc.constantFrom(
        { app: 'reporting' },
        { 'app.kubernetes.io/name': 'etl', team: 'data' },
        { 'kubernetes.io/metadata.name': 'analytics' },
      ),
      weight: 8,
    },
    { arbitrary: fc.constantFrom({}, { 'not a key': 'x' }, { app: 'two words' }), weight: 1 },
  ),
  'topology.zoneKey': fc.constantFrom('topology.kubernetes.io/zone', 'kubernetes.io/hostname', 'rack'),
  image: fc.oneof(
    {
      arbitrary: fc.constantFrom(
        'nginx',
        'registry.example.com:5000/team/shop:1.2',
        `app@sha256:${'ab'.repeat(32)}`,
      ),
      weight: 8,
    },
    { arbitrary: fc.constant('Shop:1'), weight: 1 },
  ),
};

/** An optional field: present in a third of the draws, so most fields keep their defaults. */
const optional = (a: fc.Arbitrary<unknown>) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: a, weight: 1 });

const withoutUndefined = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function stringArbitrary(node: Schema): fc.Arbitrary<string> {
  const min = node.minLength ?? 0;
  const max = node.maxLength ?? 64;
  if (node.pattern) {
    return fc.stringMatching(new RegExp(node.pattern)).filter((s) => s.length >= min && s.length <= max);
  }
  return fc.string({ minLength: min, maxLength: Math.min(max, 24) });
}

function arbitraryOf(node: Schema, path: string, key: string): fc.Arbitrary<unknown> {
  const hint = HINTS[path] ?? HINTS[key];
  if (hint) return fc.oneof({ arbitrary: hint, weight: 4 }, { arbitrary: plain(node, path, key), weight: 1 });
  return plain(node, path, key);
}

function plain(node: Schema, path: string, key: string): fc.Arbitrary<unknown> {
  if (node.enum) return fc.constantFrom(...node.enum);
  if (node['x-kubernetes-int-or-string']) {
    return fc.oneof(
      { arbitrary: QUANTITIES[key] ?? QUANTITIES.memory!, weight: 6 },
      { arbitrary: stringArbitrary({ ...node, maxLength: 12 }), weight: 1 },
      { arbitrary: fc.integer({ min: 0, max: 2 ** 40 }), weight: 1 },
    );
  }
  switch (node.type) {
    case 'object': {
      const props = node.properties ?? {};
      const required = new Set(node.required ?? []);
      const model = Object.fromEntries(
        Object.entries(props).map(([k, v]) => {
          const a = arbitraryOf(v, path ? `${path}.${k}` : k, k);
          return [k, required.has(k) ? a : optional(a)];
        }),
      );
      return fc.record(model).map(withoutUndefined);
    }
    case 'array': {
      const item = arbitraryOf(node.items!, `${path}[]`, key);
      const constraints = { minLength: node.minItems ?? 0, maxLength: Math.min(node.maxItems ?? 3, 3) };
      const keys = node['x-kubernetes-list-map-keys'];
      return keys
        ? fc.uniqueArray(item, {
            ...constraints,
            selector: (v) => keys.map((k) => String((v as Record<string, unknown>)[k])).join('/'),
          })
        : fc.array(item, constraints);
    }
    case 'integer':
      return fc.integer({ min: node.minimum ?? -(2 ** 31), max: node.maximum ?? 2 ** 31 - 1 });
    case 'number':
      return fc.double({ min: node.minimum ?? -1e9, max: node.maximum ?? 1e9, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'string':
      return stringArbitrary(node);
    default:
      throw new Error(`${path}: no arbitrary for schema type ${String(node.type)}`);
  }
}

/**
 * ScalableApp specs as the CRD describes them. Each tier (and topology, monitoring) is present in
 * half the draws, and each optional field in a third of those.
 */
export function specArbitrary(): fc.Arbitrary<Record<string, unknown>> {
  const spec = scalableAppCrd().spec.versions[0]!.schema.openAPIV3Schema.properties.spec as Schema;
  const model = Object.fromEntries(
    Object.entries(spec.properties ?? {}).map(([k, v]) => [
      k,
      // Consumers need a queue and the edge cache a web tier: drawn less often, fewer draws refused.
      fc.oneof(
        { arbitrary: fc.constant(undefined), weight: k === 'consumers' || k === 'edgeCache' ? 3 : 1 },
        { arbitrary: arbitraryOf(v, k, k), weight: 1 },
      ),
    ]),
  );
  return fc.record(model).map(withoutUndefined);
}
