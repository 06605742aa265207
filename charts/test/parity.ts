/**
 * Chart ⇄ operator parity: for the same inputs, a tier's chart and the operator's builder for that
 * tier must produce the same objects (docs/adr/0008-helm-charts.md).
 *
 * How a tier's parity test uses it:
 *
 *   const report = parity({
 *     chart: 'web', release: 'shop', namespace: 'prod', values,       // helm template shop charts/web -n prod
 *     operator: [...webObjects(app, facts, conn), ...],              // the builder, app = parseApp(spec, 'shop', 'prod')
 *     exclusions: [{ object: 'Pod/shop-web-test', onlyIn: 'chart', reason: 'helm test hook' }],
 *   });
 *   expect(report.differences).toEqual([]);                        // Jest prints one readable line per difference
 *
 * The release name plays the ScalableApp's name, the release namespace its namespace, and the values
 * are the spec's tier object (plus chart-only keys for what the operator observes or generates).
 * Objects are matched by `Kind/name`. Before comparing, ONLY these are normalised away:
 *   - metadata.ownerReferences (the operator's children are owned by the ScalableApp);
 *   - the operator-only and chart-only labels `app.kubernetes.io/managed-by` and `helm.sh/chart`,
 *     wherever a label map appears (metadata, pod templates, label selectors: the app-wide
 *     NetworkPolicies select the app's pods by managed-by, which is the operator or Helm);
 *   - the operator-only annotation `scalableapp.io/applied-hash` (the controller's, not a builder's).
 * Everything else must be equal, except what a test lists as an exclusion, with its reason: an
 * object that exists on one side only by design (`onlyIn`), or one field of an object that differs
 * by design (`path`, e.g. `spec.selector`, `spec.template.spec.containers[0].env[name=X]`). An exclusion
 * that matches nothing is itself reported, so exclusions cannot outlive their reason.
 */
import {
  memoryLimitMessage,
  requestWithinLimitMessage,
  type ResourceDefaults,
  LABEL_KEYS_MESSAGE,
} from '../../operator/api/common.ts';
import { CHART_SCHEMAS, tierCelRules } from '../../tools/generate-chart-schemas.ts';
import { renderChart, templateChart, type RenderOptions } from './helm.ts';

export interface Exclusion {
  /** `Kind/name` of the object. */
  readonly object: string;
  /** The object exists only on this side, by design. */
  readonly onlyIn?: 'chart' | 'operator';
  /** A field inside the object that differs by design: dotted, with [i] or [name=n] for list items. */
  readonly path?: string;
  readonly reason: string;
}

export interface ParityInput extends RenderOptions {
  /** Directory under charts/. */
  readonly chart: string;
  /** The operator's objects for the same inputs (the tier builder's output). */
  readonly operator: readonly object[];
  readonly exclusions?: readonly Exclusion[];
}

export interface ParityReport {
  /** `Kind/name` of every object compared field by field. */
  readonly compared: string[];
  /** One readable line per difference; empty when the chart and the operator agree. */
  readonly differences: string[];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const NORMALISED_LABELS = ['app.kubernetes.io/managed-by', 'helm.sh/chart'];
const NORMALISED_ANNOTATIONS = ['scalableapp.io/applied-hash'];

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

const keyOf = (o: object) => {
  const x = o as { kind?: string; metadata?: { name?: string } };
  return `${x.kind}/${x.metadata?.name}`;
};

function stripLabels(node: Json): Json {
  if (Array.isArray(node)) return node.map(stripLabels);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) {
    if ((k === 'labels' || k === 'matchLabels') && isObject(v)) {
      out[k] = Object.fromEntries(Object.entries(v).filter(([l]) => !NORMALISED_LABELS.includes(l)));
    } else {
      out[k] = stripLabels(v);
    }
  }
  return out;
}

/** The object with only what parity ignores taken out (see the header). */
export function normalise(o: object): JsonObject {
  // A JSON round trip drops the builders' undefined fields, which the apiserver never sees either.
  const obj = stripLabels(JSON.parse(JSON.stringify(o)) as Json) as JsonObject;
  const meta = obj.metadata as JsonObject;
  delete meta.ownerReferences;
  if (isObject(meta.annotations)) {
    for (const a of NORMALISED_ANNOTATIONS) delete meta.annotations[a];
    if (!Object.keys(meta.annotations).length) delete meta.annotations;
  }
  return obj;
}

const PATH_STEP = /([^.[\]]+)|\[(\d+)\]|\[name=([^\]]+)\]/g;

/**
 * Removes one dotted path from an object; whether it was there. A list item is named by its index
 * ([8]) or by its `name` ([name=FENCE_AFTER_SECONDS]): by name when the two sides' lists differ in
 * length before the item, where one index would name different items on each side.
 */
function removePath(obj: JsonObject, path: string): boolean {
  const steps = [...path.matchAll(PATH_STEP)].map((m) => {
    if (m[2] !== undefined) return (_node: Json) => Number(m[2]);
    if (m[3] !== undefined) {
      const name = m[3];
      return (node: Json) =>
        Array.isArray(node) ? node.findIndex((item) => isObject(item) && item.name === name) : -1;
    }
    return (_node: Json) => m[1]!;
  });
  let node: Json = obj;
  for (const step of steps.slice(0, -1)) {
    node = (node as Record<string | number, Json>)?.[step(node)] ?? null;
    if (node === null || typeof node !== 'object') return false;
  }
  const container = node as Record<string | number, Json>;
  const last = steps[steps.length - 1]!(node);
  if (!(last in container)) return false;
  if (Array.isArray(container) && typeof last === 'number') container.splice(last, 1);
  else delete container[last];
  return true;
}

const show = (v: Json | undefined) => (v === undefined ? '(absent)' : JSON.stringify(v));

/** Every difference between two JSON values, one line each, named by path. */
export function differences(chart: Json | undefined, operator: Json | undefined, path = ''): string[] {
  if (Array.isArray(chart) && Array.isArray(operator)) {
    const out: string[] = [];
    for (let i = 0; i < Math.max(chart.length, operator.length); i++) {
      out.push(...differences(chart[i], operator[i], `${path}[${i}]`));
    }
    return out;
  }
  if (isObject(chart) && isObject(operator)) {
    const keys = [...new Set([...Object.keys(chart), ...Object.keys(operator)])].sort();
    return keys.flatMap((k) => differences(chart[k], operator[k], path ? `${path}.${k}` : k));
  }
  if (JSON.stringify(chart) === JSON.stringify(operator)) return [];
  return [`${path || '(root)'}: chart ${show(chart)} ≠ operator ${show(operator)}`];
}

/** Renders the chart with the real helm binary and compares it with the operator's objects. */
export function parity(input: ParityInput): ParityReport {
  const chart = new Map(renderChart(input.chart, input).map((o) => [keyOf(o), normalise(o)]));
  const operator = new Map(input.operator.map((o) => [keyOf(o), normalise(o)]));
  const exclusions = input.exclusions ?? [];
  const used = new Set<Exclusion>();
  const out: string[] = [];

  for (const key of [...new Set([...chart.keys(), ...operator.keys()])].sort()) {
    const c = chart.get(key);
    const o = operator.get(key);
    if (!c || !o) {
      const side = c ? 'chart' : 'operator';
      const ex = exclusions.find((e) => e.object === key && e.onlyIn === side);
      if (ex) used.add(ex);
      else out.push(`${key}: only the ${side} has it`);
    }
  }
  for (const ex of exclusions) {
    if (!ex.path) continue;
    const c = chart.get(ex.object);
    const o = operator.get(ex.object);
    const removed = [c, o].map((obj) => (obj ? removePath(obj, ex.path!) : false));
    if (removed.some(Boolean)) used.add(ex);
  }
  const compared = [...chart.keys()].filter((k) => operator.has(k)).sort();
  for (const key of compared) {
    out.push(...differences(chart.get(key), operator.get(key)).map((d) => `${key}: ${d}`));
  }
  for (const ex of exclusions) {
    if (!used.has(ex)) out.push(`exclusion matched nothing (stale?): ${JSON.stringify(ex)}`);
  }
  return { compared, differences: out };
}

/**
 * The objects of some tiers out of everything the operator builds for an app (desiredState), by
 * their component label: a tier chart renders its tier ('web'), the app-wide policies ('network')
 * and what it stands in for ('connection'), never another tier's objects.
 */
export function tierObjects<T extends object>(objects: readonly T[], components: readonly string[]): T[] {
  return objects.filter((o) =>
    components.includes(
      (o as { metadata?: { labels?: Record<string, string> } }).metadata?.labels?.[
        'app.kubernetes.io/component'
      ] ?? '',
    ),
  );
}

export type BrokenRules = Record<string, { values: Record<string, unknown>; field: string }>;

/**
 * The three rules every tier's `resources` carries, broken: a CPU request above the CPU limit, a
 * memory limit given alone below the default memory request (every tier's is 64Mi or more), and a
 * memory limit below the tier's floor (every floor is 16Mi or more). `at(resources)` places the
 * resources in the chart's values; `field` is their path in messages.
 */
export function brokenResourceRules(
  at: (resources: Record<string, unknown>) => Record<string, unknown>,
  floor: ResourceDefaults['memoryFloor'],
  field = 'resources',
): BrokenRules {
  return {
    [memoryLimitMessage(floor)]: {
      values: at({ requests: { memory: '1Mi' }, limits: { memory: '4Mi' } }),
      field: `${field}.limits.memory`,
    },
    [requestWithinLimitMessage('cpu')]: {
      values: at({ requests: { cpu: 2 }, limits: { cpu: '500m' } }),
      field: `${field}.requests.cpu`,
    },
    [requestWithinLimitMessage('memory')]: {
      values: at({ limits: { memory: '1Mi' } }),
      field: `${field}.requests.memory`,
    },
  };
}

/** The rule of a data tier's allowedClients: every matchLabels key a label key (the chart's own check). */
export const brokenAllowedClients = (): BrokenRules => ({
  [LABEL_KEYS_MESSAGE]: {
    values: {
      allowedClients: [
        { podSelector: { matchLabels: { app: 'ok' } } },
        {
          podSelector: { matchLabels: { app: 'ok' } },
          namespaceSelector: { matchLabels: { 'not a key!': 'x' } },
        },
      ],
    },
    field: 'allowedClients[1].namespaceSelector.matchLabels',
  },
});

/**
 * spec.monitoring.scrapers as a user with two Prometheus setups gives them: one by its pods' label in
 * the app's namespace, one by pod and namespace.
 */
export const TWO_SCRAPERS: {
  podSelector: { matchLabels: Record<string, string> };
  namespaceSelector?: { matchLabels: Record<string, string> };
}[] = [
  { podSelector: { matchLabels: { app: 'vmagent' } } },
  {
    podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus', shard: '1' } },
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } },
  },
];

/** A case of the monitoring rules: its title, the values that break the rule, the error they must give. */
type MonitoringCase = [title: string, values: Record<string, unknown>, error: string];

/** Every scraper selector's keys must be label keys: in a pod selector, a namespace selector, past the first. */
const brokenScrapers = (): MonitoringCase[] => {
  const ok = { podSelector: { matchLabels: { app: 'ok' } } };
  const bad = { matchLabels: { app: 'ok', 'not a key!': 'x' } };
  return (
    [
      ['the first pod selector', [{ podSelector: bad }], 'scrapers[0].podSelector'],
      [
        'a later namespace selector',
        [ok, { ...ok, namespaceSelector: bad }],
        'scrapers[1].namespaceSelector',
      ],
      ['a later pod selector', [ok, { podSelector: bad }], 'scrapers[1].podSelector'],
    ] as const
  ).map(([where, scrapers, field]) => [
    `${LABEL_KEYS_MESSAGE} (${where})`,
    { monitoring: { enabled: true, scrapers } },
    `monitoring.${field}.matchLabels: ${LABEL_KEYS_MESSAGE}`,
  ]);
};

/**
 * The operator's rules on spec.monitoring (not the tier's own CEL rules), which a chart checks only
 * with monitoring on: the exporter's resources (`exporterFloor`: its memory floor; the queue's chart
 * has no exporter and takes no resources) and the scrapers' selectors. Defines one test per broken
 * rule inside the caller's describe: rendering it over `base` fails naming the field and the rule.
 */
export function testMonitoringRules(
  chart: string,
  base: Record<string, unknown>,
  exporterFloor?: ResourceDefaults['memoryFloor'],
): void {
  const resources = Object.entries(
    exporterFloor
      ? brokenResourceRules(
          (r) => ({ monitoring: { enabled: true, resources: r } }),
          exporterFloor,
          'monitoring.resources',
        )
      : {},
  ).map(([message, c]): MonitoringCase => [message, c.values, `${c.field}: ${message}`]);
  it.each([...resources, ...brokenScrapers()])('monitoring: %s', (_title, values, error) => {
    const r = templateChart(chart, { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(error);
  });
}

/**
 * Tests that a chart enforces every CEL rule of its tier (JSON Schema cannot say them): `broken`
 * maps each rule's message to values that break it and the field the failure must name. Defines
 * two tests inside the caller's describe: the cases cover exactly the tier's rules, and rendering
 * each case (over `base`, a complete values set) fails with `<field>: <message>`.
 */
export function testCelRules(chart: string, base: Record<string, unknown>, broken: BrokenRules): void {
  it(`every CEL rule of the ${chart} tier has a case`, () => {
    const entry = CHART_SCHEMAS.find((s) => s.chart === chart)!;
    const messages = [...new Set(tierCelRules(entry).map((r) => r.rule.message))];
    expect(Object.keys(broken).sort()).toEqual(messages.sort());
  });

  it.each(Object.entries(broken))('%s', (message, { values, field }) => {
    const r = templateChart(chart, { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(`${field}: ${message}`);
  });
}
