// The ImagesPinned condition and its one Warning: advice on every image named by a tag alone, which
// leaves Ready alone and writes nothing more while it stands.
import { parseApp } from '../api/testdata/apps.ts';
import type { Condition } from './conditions.ts';
import { IMAGES_PINNED, imagesPinnedCondition, imagesPinnedWarning } from './image-pinning.ts';
import { fakeWorld, pinned } from './testdata/fake-world.ts';

const asStored = (c: ReturnType<typeof imagesPinnedCondition>): Condition => ({
  ...c,
  lastTransitionTime: '2026-01-01T00:00:00Z',
  observedGeneration: 1,
});

describe('imagesPinnedCondition', () => {
  it('is False with each unpinned field and its image, and how to pin it', () => {
    const c = imagesPinnedCondition(parseApp({ web: { image: 'shop:1' }, cache: {} }));
    expect(c).toMatchObject({ type: IMAGES_PINNED, status: 'False', reason: 'MutableImageTags' });
    expect(c.message).toContain('spec.web.image shop:1, spec.cache.image valkey/valkey:8.1');
    expect(c.message).toContain('name:tag@sha256:<digest>');
  });

  it('is True when every image carries a digest', () => {
    const c = imagesPinnedCondition(
      parseApp({ web: { image: pinned('shop:1') }, cache: { image: pinned('valkey/valkey:8.1') } }),
    );
    expect(c).toMatchObject({ status: 'True', reason: 'AllImagesPinned' });
  });
});

describe('imagesPinnedWarning', () => {
  const unpinnedWeb = imagesPinnedCondition(parseApp({ web: { image: 'shop:1' } }));
  const unpinnedBoth = imagesPinnedCondition(parseApp({ web: { image: 'shop:1' }, cache: {} }));
  const allPinned = imagesPinnedCondition(parseApp({ web: { image: pinned('shop:1') } }));

  it('warns when images become unpinned, and when the unpinned ones change', () => {
    expect(imagesPinnedWarning(undefined, unpinnedWeb)?.reason).toBe('MutableImageTags');
    expect(imagesPinnedWarning([asStored(allPinned)], unpinnedWeb)).toBeDefined();
    expect(imagesPinnedWarning([asStored(unpinnedWeb)], unpinnedBoth)?.message).toContain('spec.cache.image');
  });

  it('says nothing while the same images stay unpinned, or once all are pinned', () => {
    expect(imagesPinnedWarning([asStored(unpinnedWeb)], unpinnedWeb)).toBeUndefined();
    expect(imagesPinnedWarning([asStored(unpinnedWeb)], allPinned)).toBeUndefined();
  });
});

describe('Reconciler: images named by tag', () => {
  it('reports them in ImagesPinned with one Warning, stays Ready, and writes nothing more on the next passes', async () => {
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1', replicas: 2 } },
      deploymentStatus: { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2 },
    });
    await w.reconcile();
    await w.reconcile();
    const images = w.condition(IMAGES_PINNED);
    expect(images).toMatchObject({ status: 'False', reason: 'MutableImageTags' });
    expect(images?.message).toContain('spec.web.image registry.example/shop:1');
    expect(w.condition('Ready')?.status).toBe('True');
    expect(w.warnings()).toEqual([
      expect.stringMatching(/^MutableImageTags: not pinned by digest: spec\.web\.image/),
    ]);
    const writes = w.statusWrites();
    await w.reconcile();
    await w.reconcile();
    expect(w.statusWrites()).toBe(writes);
    expect(w.warnings()).toHaveLength(1);
  });
});
