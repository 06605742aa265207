// Every query of every dashboard (operator/monitoring/dashboards.ts) is PromQL the real promtool
// parses, with Grafana's variables filled in as Grafana would ("All" is `.*`); every panel has a
// title and a query; every dashboard a unique uid. Whether each query finds series is shown against
// real servers in server-tests/monitoring.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DASHBOARDS, withAllSelected } from '../operator/monitoring/dashboards.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'scalableapp-dashboards-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('every dashboard has a unique uid, and every panel a title, a description and a query', () => {
  expect(new Set(DASHBOARDS.map((d) => d.uid)).size).toBe(DASHBOARDS.length);
  for (const d of DASHBOARDS)
    for (const p of d.panels) {
      expect([d.uid, p.title.length > 0, p.description.length > 0, p.queries.length > 0]).toEqual([
        d.uid,
        true,
        true,
        true,
      ]);
    }
});

it.each(DASHBOARDS.map((d) => [d.uid, d] as const))('every query of %s parses (promtool)', (_uid, d) => {
  // A recording rule per query: `promtool check rules` parses each expression.
  const rules = d.panels.flatMap((p, i) =>
    p.queries.map((q, j) => ({ record: `dashboard:panel_${i}_${j}`, expr: withAllSelected(q.expr) })),
  );
  const file = join(dir, `${d.uid}.yaml`);
  writeFileSync(file, stringify({ groups: [{ name: d.uid, rules }] }));
  let out: string;
  try {
    out = execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  } catch (err) {
    throw new Error(`promtool check rules:\n${(err as { stdout?: string }).stdout ?? err}`);
  }
  expect(out).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
});
