// Removing a tier whose volumes would be deleted with it: held back until confirmed by name.
import { CONFIRM_VOLUME_DELETION } from './volume-deletion.ts';
import { ChildRefusedError } from './reconciler.ts';
import { fakeWorld, pinned } from './testdata/fake-world.ts';

const web = { image: pinned('registry.example/shop:1'), replicas: 1 };
const STS_PATH = '/apis/apps/v1/namespaces/prod/statefulsets/shop-db';

async function removedWorld(deletionPolicy: 'Retain' | 'Delete') {
  const w = fakeWorld({
    spec: { web, database: { replicas: 1, deletionPolicy, image: pinned('postgres:17') } },
  });
  await w.reconcile().catch(() => undefined);
  expect(w.live('StatefulSet', 'shop-db')).toBeDefined();
  w.raw.spec = { web };
  w.raw.metadata = { ...w.raw.metadata, generation: 2 };
  w.writes.length = 0;
  return w;
}

describe('removing the database tier', () => {
  it('with deletionPolicy Delete: nothing is deleted until the app is annotated with the StatefulSet', async () => {
    const w = await removedWorld('Delete');
    await expect(w.reconcile()).rejects.toBeInstanceOf(ChildRefusedError);
    expect(w.childWrites().filter((x) => x.verb === 'delete')).toEqual([]);
    expect(w.condition('Ready')).toMatchObject({
      status: 'False',
      message: expect.stringContaining(
        `StatefulSet prod/shop-db is held back: its tier is gone from the spec and its deletionPolicy is Delete, so deleting it deletes its volumes and their data. Annotate the ScalableApp ${CONFIRM_VOLUME_DELETION}=shop-db to confirm`,
      ),
    });
    expect(w.raw.status?.observedGeneration).toBe(2);
    expect(w.warnings()).toHaveLength(1);

    // Each backoff step deletes nothing and writes nothing.
    const before = w.childWrites().length;
    await expect(w.reconcile()).rejects.toBeInstanceOf(ChildRefusedError);
    expect(w.childWrites().length).toBe(before);

    // Confirmed by name: the tier's objects are pruned, the StatefulSet with them.
    w.raw.metadata = { ...w.raw.metadata, annotations: { [CONFIRM_VOLUME_DELETION]: 'shop-db' } };
    expect(await w.reconcile()).not.toBeInstanceOf(Error);
    expect(
      w
        .childWrites()
        .filter((x) => x.verb === 'delete')
        .map((x) => x.path),
    ).toContain(STS_PATH);
  });

  it('with deletionPolicy Retain: pruned at once, the volumes stay (the StatefulSet does not own them)', async () => {
    const w = await removedWorld('Retain');
    await w.reconcile();
    expect(
      w
        .childWrites()
        .filter((x) => x.verb === 'delete')
        .map((x) => x.path),
    ).toContain(STS_PATH);
  });
});
