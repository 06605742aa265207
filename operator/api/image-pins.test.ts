// Which images an app runs by tag alone (issue 17, item 5): every one its pods run is found, with
// the field that sets it, and a digest is what pins one.
import type { V1PodTemplateSpec } from '@kubernetes/client-node';
import { desiredState } from '../controller/desired-state.ts';
import { ALL_FACTS } from '../tiers/testdata/facts.ts';
import { imageUses, isPinned, unpinnedImages } from './image-pins.ts';
import { everyTier, parseApp } from './testdata/apps.ts';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** Every image in every pod template the app renders. */
function renderedImages(app: ReturnType<typeof parseApp>): string[] {
  const facts = {
    ...ALL_FACTS,
    cacheLogins: { ...ALL_FACTS.cacheLogins!, monitor: 'm' },
    dbCredentials: { ...ALL_FACTS.dbCredentials!, monitor: 'm' },
    shardCredentials: { ...ALL_FACTS.shardCredentials!, monitor: 'm' },
  };
  return desiredState(app, facts).flatMap((c) => {
    const template = (c as { spec?: { template?: V1PodTemplateSpec } }).spec?.template;
    const pod = template?.spec;
    return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].map((x) => x.image!);
  });
}

describe('isPinned', () => {
  it.each([
    ['valkey/valkey:8.1', false],
    ['postgres', false],
    ['registry.example:5000/team/app:1.2', false],
    ['registry.example:5000/team/app', false],
    [`postgres@${DIGEST}`, true],
    [`postgres:17@${DIGEST}`, true],
    [`registry.example:5000/team/app:1.2@${DIGEST}`, true],
  ])('%s: %s', (image, pinned) => {
    expect(isPinned(image)).toBe(pinned);
  });
});

describe('imageUses', () => {
  it("names every tier's image by its field, the defaults included, and the exporters only with monitoring", () => {
    expect(imageUses(everyTier())).toEqual([
      { field: 'spec.web.image', image: 'shop:1' },
      { field: 'spec.cache.image', image: 'valkey/valkey:8.1' },
      { field: 'spec.database.image', image: 'postgres:17' },
      { field: 'spec.shards.image', image: 'postgres:17' },
      { field: 'spec.queue.image', image: 'rabbitmq:4.1-management' },
      { field: 'spec.consumers[0].image', image: 'worker:1' },
      { field: 'spec.edgeCache.image', image: 'nginxinc/nginx-unprivileged:1.29-alpine' },
    ]);
    expect(imageUses(everyTier({ monitoring: { enabled: true } })).map((u) => u.field)).toEqual(
      expect.arrayContaining([
        'spec.monitoring.exporterImages.postgres',
        'spec.monitoring.exporterImages.cache',
        'spec.monitoring.exporterImages.edgeCache',
      ]),
    );
    expect(imageUses(parseApp({ web: { image: 'shop:1' }, monitoring: { enabled: true } }))).toEqual([
      { field: 'spec.web.image', image: 'shop:1' },
    ]);
  });

  it('covers every image the rendered pods run: an image no field lists would escape the warning', () => {
    for (const app of [everyTier(), everyTier({ monitoring: { enabled: true } })]) {
      const listed = new Set(imageUses(app).map((u) => u.image));
      const rendered = renderedImages(app);
      expect(rendered.length).toBeGreaterThan(0);
      expect(rendered.filter((i) => !listed.has(i))).toEqual([]);
    }
  });

  it('leaves out of unpinnedImages exactly the images named by digest', () => {
    const app = everyTier({
      web: { image: `shop:1@${DIGEST}` },
      database: { image: `postgres:17@${DIGEST}` },
    });
    const fields = unpinnedImages(app).map((u) => u.field);
    expect(fields).not.toContain('spec.web.image');
    expect(fields).not.toContain('spec.database.image');
    expect(fields).toContain('spec.shards.image');
    expect(fields).toContain('spec.cache.image');
  });
});
