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

describe('a refused database failover', () => {
  const refusing = {
    decide: async () => ({
      kind: 'refused',
      primary: 'shop-db-0',
      recheckMs: 10_000,
      reason: 'shop-db-0 is not ready and no standby is sure to hold every acknowledged commit',
    }),
    decideShard: async () => {
      throw new Error('no shards here');
    },
    forget: () => {},
  } as unknown as DatabasePrimary;

  it('sets Degraded (FailoverRefused, naming the cluster) and posts one Event, however often it is looked at', async () => {
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, database: { replicas: 2, synchronousReplicas: 1 } },
      databasePrimary: refusing,
    });
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 10_000 });
    expect(w.condition('Degraded')).toMatchObject({
      status: 'True',
      reason: 'FailoverRefused',
      message: expect.stringContaining('shop-db: shop-db-0 is not ready and no standby is sure'),
    });
    expect(w.raw.status?.phase).toBe('Degraded');
    expect(w.warnings().filter((e) => e.startsWith('FailoverRefused:'))).toHaveLength(1);

    // The second look only settles Progressing (nothing applied any more); after that, nothing.
    await w.reconcile();
    const writes = w.writes.length;
    await w.reconcile();
    await w.reconcile();
    expect(w.writes.slice(writes)).toEqual([]);
    expect(w.warnings().filter((e) => e.startsWith('FailoverRefused:'))).toHaveLength(1);
  });
});

describe('an app held back before anything is applied', () => {
  it('waiting for a Secret is Pending, not Invalid, and says what it waits for', async () => {
    const w = fakeWorld({
      spec: {
        web: {
          image: 'registry.example/shop:1',
          env: [{ name: 'API_KEY', secretKeyRef: { name: 'api', key: 'key' } }],
        },
      },
    });
    await w.reconcile();
    expect(w.raw.status?.phase).toBe('Pending');
    expect(w.condition('Ready')).toMatchObject({
      status: 'False',
      reason: 'MissingReference',
      message: 'spec.web.env[0].secretKeyRef: Secret prod/api not found',
    });
    expect(w.condition('Progressing')?.message).toBe('nothing is applied until the referenced Secrets exist');
    expect(w.childWrites()).toEqual([]);
  });

  it('an invalid spec is Invalid until the spec is fixed', async () => {
    const w = fakeWorld({ spec: { web: { image: 'registry.example/shop:1', replicas: -1 } } });
    await w.reconcile();
    expect(w.raw.status?.phase).toBe('Invalid');
    expect(w.condition('Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(w.condition('Progressing')?.message).toBe('nothing is applied until the spec is fixed');
  });
});
