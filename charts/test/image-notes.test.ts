// Each chart says after install which images run by a tag alone, as the operator's ImagesPinned
// condition does (operator/api/image-pins.ts): fields and images named, nothing when all are pinned.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { chartNotes, chartPath } from './helm.ts';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const ciValues = (chart: string) =>
  (parse(readFileSync(`${chartPath(chart)}/ci/default-values.yaml`, 'utf8')) as Record<string, unknown>) ??
  {};
const warning = (notes: string) => /WARNING: not pinned by digest: ([^\n]*)\. A tag/.exec(notes)?.[1];
const notes = (chart: string, values: Record<string, unknown>) =>
  chartNotes(chart, { release: 'shop', namespace: 'prod', values });

describe('the charts warn after install about images named by a tag alone', () => {
  it.each([
    ['web', {}, 'image registry.example/shop:1.4.2'],
    ['cache', {}, 'image valkey/valkey:8.1'],
    ['edge-cache', {}, 'image nginxinc/nginx-unprivileged:1.29-alpine'],
    ['database', {}, 'version postgres:17'],
    ['shards', {}, 'version postgres:17'],
    [
      'cache',
      { monitoring: { enabled: true } },
      'image valkey/valkey:8.1, monitoring.exporterImages.cache oliver006/redis_exporter:v1.45.0',
    ],
  ])('%s %j: names %s', (chart, extra, named) => {
    const values = { ...(chart === 'web' || chart === 'shards' ? ciValues(chart) : {}), ...extra };
    expect(warning(notes(chart, values))).toBe(named);
  });

  it.each([
    ['web', { image: `registry.example/shop:1.4.2@${DIGEST}` }],
    ['cache', { image: `valkey/valkey:8.1@${DIGEST}` }],
    ['database', { image: `postgres:17@${DIGEST}` }],
  ])('%s: says nothing once every image carries a digest', (chart, pinned) => {
    const n = notes(chart, { ...(chart === 'web' ? ciValues(chart) : {}), ...pinned });
    expect(n).not.toContain('WARNING: not pinned');
    expect(n.length).toBeGreaterThan(0);
  });
});
