// Every chart under charts/: `helm lint --strict` passes, and every chart with values rejects a bad
// value through its schema with a message naming the field. Charts are found, not listed: a new
// chart is covered as soon as its directory exists.
//
// Lint values: a chart whose values have a required key without a default (web's `image`) keeps
// complete values sets in `charts/<chart>/ci/*-values.yaml` (the chart-testing convention). Lint
// runs once per file, or once with the chart's own values when it has none.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  CHART_SCHEMAS,
  chartValues,
  renderChartSchema,
  schemaPath,
} from '../../tools/generate-chart-schemas.ts';
import { buildDependencies, chartDirectories, chartMeta, chartPath, runHelm, templateChart } from './helm.ts';

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  /** A list's item schema: searched as the list's first element (path segment `0`). */
  items?: Schema;
  minimum?: number;
  enum?: unknown[];
};
type Values = Record<string, unknown>;

const charts = chartDirectories();
const withValues = charts.filter((c) => chartMeta(c).type !== 'library');

function ciFiles(chart: string): string[] {
  const dir = join(chartPath(chart), 'ci');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('-values.yaml'))
    .sort()
    .map((f) => join(dir, f));
}

/** A complete values set of the chart: its first ci file, or nothing over its defaults. */
function baseValues(chart: string): Values {
  const [first] = ciFiles(chart);
  return first ? ((parse(readFileSync(first, 'utf8')) ?? {}) as Values) : {};
}

/** The first field (depth first) for which `breaker` has a bad value, with its path. */
function findField(
  schema: Schema,
  breaker: (s: Schema) => unknown,
  path: string[] = [],
): [string[], unknown] | undefined {
  const fields = { ...schema.properties, ...(schema.items ? { 0: schema.items } : {}) };
  for (const [key, sub] of Object.entries(fields)) {
    const bad = breaker(sub);
    if (bad !== undefined) return [[...path, key], bad];
    const deeper = findField(sub, breaker, [...path, key]);
    if (deeper) return deeper;
  }
  return undefined;
}

function setPath(values: Values, path: string[], value: unknown): Values {
  const out = structuredClone(values);
  let node = out;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Values;
  }
  node[path[path.length - 1]!] = value;
  return out;
}

const schemaOf = (chart: string) =>
  JSON.parse(readFileSync(join(chartPath(chart), 'values.schema.json'), 'utf8')) as Schema;

/** Renders with a bad value; the error helm prints. */
function rejection(chart: string, values: Values): string {
  const r = templateChart(chart, { release: 'lint', namespace: 'lint', values });
  expect(r.ok).toBe(false);
  return r.stderr;
}

it('finds the charts', () => {
  expect(charts).toEqual(expect.arrayContaining(['scalableapp-lib', 'web', 'cache']));
});

describe.each(charts)('charts/%s', (chart) => {
  const files = ciFiles(chart);
  it.each(files.length ? files.map((f) => [f.slice(chartPath(chart).length + 1)]) : [['(its own values)']])(
    'passes helm lint --strict with %s',
    (file) => {
      buildDependencies(chart);
      const values = file.startsWith('ci/') ? ['--values', join(chartPath(chart), file)] : [];
      const r = runHelm(['lint', '--strict', chartPath(chart), ...values]);
      expect([r.ok, r.stdout + r.stderr]).toEqual([true, expect.stringContaining('0 chart(s) failed')]);
    },
  );
});

describe.each(withValues)('charts/%s values', (chart) => {
  it('have a values.schema.json', () => {
    expect(existsSync(join(chartPath(chart), 'values.schema.json'))).toBe(true);
  });

  it('reject an unknown key, naming it', () => {
    expect(rejection(chart, { ...baseValues(chart), notAValue: 1 })).toContain(
      "additional properties 'notAValue' not allowed",
    );
  });

  it('reject a number below its minimum, naming the field', () => {
    const found = findField(schemaOf(chart), (s) =>
      s.type === 'integer' && s.minimum !== undefined ? s.minimum - 1 : undefined,
    );
    expect(found).toBeDefined();
    const [path, bad] = found!;
    expect(rejection(chart, setPath(baseValues(chart), path, bad))).toContain(`at '/${path.join('/')}'`);
  });

  it('reject a string of the wrong type or choice, naming the field', () => {
    const found = findField(schemaOf(chart), (s) =>
      s.enum ? 'not-a-choice' : s.type === 'string' ? 42 : undefined,
    );
    expect(found).toBeDefined();
    const [path, bad] = found!;
    expect(rejection(chart, setPath(baseValues(chart), path, bad))).toContain(`at '/${path.join('/')}'`);
  });
});

describe('values.schema.json files are generated from the zod schema', () => {
  it.each(CHART_SCHEMAS.map((s) => [s.chart, s]))('charts/%s is up to date', async (_chart, entry) => {
    expect(readFileSync(schemaPath(entry.chart), 'utf8')).toBe(await renderChartSchema(entry));
  });

  it.each(CHART_SCHEMAS.map((s) => [s.chart, s]))(
    "charts/%s/values.yaml holds zod's defaults for every key it sets",
    (chart, entry) => {
      const values = (parse(readFileSync(join(chartPath(chart), 'values.yaml'), 'utf8')) ?? {}) as Values;
      const shape = chartValues(entry).shape as Record<string, { parse: (v: unknown) => unknown }>;
      for (const [key, value] of Object.entries(values)) {
        expect([key, key in shape ? shape[key]!.parse(undefined) : '(not a field of the schema)']).toEqual([
          key,
          value,
        ]);
      }
    },
  );
});
