// Each chart says after install which images run by a tag alone, as the operator's ImagesPinned
// condition does (operator/api/image-pins.ts): fields and images named, nothing when all are pinned;
// the umbrella for every tier it installs, as the operator for the whole app.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { chartNotes, chartPath } from './helm.ts';
import { unpinnedImages } from '../../operator/api/image-pins.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { validCorpus } from '../../operator/api/testdata/corpus.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { TIERS } from '../../operator/api/spec.ts';

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

describe('the queue, consumers and stack charts warn likewise', () => {
  it.each([
    ['queue', 'image rabbitmq:4.1-management', { queues: [{ name: 'orders' }] }],
    [
      'consumers',
      'consumers[0].image registry.example/mailer:1, consumers[1].image registry.example/orders:1',
      ciValues('consumers'),
    ],
  ])('%s: names %s', (chart, named, values) => {
    expect(warning(notes(chart, values))).toBe(named);
  });

  it('queue: says nothing once its image carries a digest', () => {
    const n = notes('queue', { queues: [{ name: 'orders' }], image: `rabbitmq:4.1-management@${DIGEST}` });
    expect(n).not.toContain('WARNING: not pinned');
    expect(n.length).toBeGreaterThan(0);
  });

  it("stack: names every image the operator's ImagesPinned would, in its order, tiers and exporters", () => {
    const sample = validCorpus().find((c) => c.file === '12-full-stack.yaml')!.object as {
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    const spec = sample.spec as NonNullable<ScalableAppInput['spec']>;
    const tiers = Object.fromEntries(
      TIERS.map((t) => [t, t === 'consumers' ? (spec.consumers?.length ?? 0) > 0 : spec[t] !== undefined]),
    );
    const named = warning(notes('stack', { ...spec, tiers }))!.split(', ');
    const operator = unpinnedImages(parseApp(spec, 'shop', 'prod'));
    expect(named.map((n) => n.split(' ')[1])).toEqual(operator.map((u) => u.image));
    // The same fields, under the umbrella's keys (a Postgres tier's image is its `version` unless given).
    expect(named.map((n) => n.split(' ')[0])).toEqual(
      operator.map((u) => u.field.replace(/^spec\./, '').replace(/^(database|shards)\.image$/, '$1.version')),
    );
  });
});
