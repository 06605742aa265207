// The reconciler as a whole, against the in-memory apiserver of testdata/fake-world.ts. The refusals,
// volume growth and deletion have their own files; this one holds what belongs to no single phase.
import type { CachePrimary } from './cache-primary.ts';
import type { DatabasePrimary } from './database-primary.ts';
import { fakeWorld } from './testdata/fake-world.ts';

describe('an app that went away', () => {
  it('is forgotten by everything that remembers apps, and nothing is written for it', async () => {
    const forgotten: string[] = [];
    const primary = (who: string) => ({
      decide: async () => ({ kind: 'keep', primary: `${who}-0`, restart: [] }),
      decideShard: async () => ({ kind: 'keep', primary: `${who}-0`, restart: [] }),
      forget: (key: string) => forgotten.push(`${who} ${key}`),
    });
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' } },
      databasePrimary: primary('database') as unknown as DatabasePrimary,
      cachePrimary: primary('cache') as unknown as CachePrimary,
    });
    await w.reconcile();
    const before = w.writes.length;
    expect(forgotten).toEqual([]);

    w.deleteApp();
    expect(await w.reconcile()).toBe('ok');
    expect(forgotten).toEqual(['cache prod/shop', 'database prod/shop']);
    expect(w.writes.length).toBe(before);
  });
});
