// A larger storage.size: the claims grow in place, the StatefulSet is recreated around its running
// pods, and a StorageClass that cannot expand is a refused child, not a silent no-op or a loop.
import type { V1PersistentVolumeClaim, V1StatefulSet } from '@kubernetes/client-node';
import { ApiError } from '../kube/client.ts';
import { ChildRefusedError } from './reconciler.ts';
import { fakeWorld } from './testdata/fake-world.ts';

const STS = 'shop-db';
const STS_PATH = `/apis/apps/v1/namespaces/prod/statefulsets/${STS}`;
const claim = (ordinal: number, storage: string): V1PersistentVolumeClaim => ({
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  metadata: { name: `data-${STS}-${ordinal}`, namespace: 'prod' },
  spec: { resources: { requests: { storage } } },
});
const database = (size: string, cpu = '250m') => ({
  database: { replicas: 1, storage: { size }, resources: { requests: { cpu } } },
});
const templateSize = (sts: unknown) =>
  (sts as V1StatefulSet).spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage;

/** A database at 10Gi, applied once; then the spec asks for `size`. */
async function grownWorld(size: string, refuse?: () => ApiError | undefined) {
  const w = fakeWorld({
    spec: database('10Gi'),
    claims: [claim(0, '10Gi'), claim(1, '10Gi')],
    refuse: (verb, body) => (verb === 'patch' && refuse && 'spec' in body ? refuse() : undefined),
  });
  await w.reconcile().catch(() => undefined);
  expect(templateSize(w.live('StatefulSet', STS))).toBe('10Gi');
  w.raw.spec = database(size, '500m');
  w.raw.metadata = { ...w.raw.metadata, generation: 2 };
  w.writes.length = 0;
  return w;
}

describe('growing a volume', () => {
  it('grows every claim, then recreates the StatefulSet with its pods orphaned, and applies it once it is gone', async () => {
    const w = await grownWorld('20Gi');
    await w.reconcile().catch(() => undefined);
    const writes = w.childWrites().map((x) => `${x.verb} ${x.path.replace(/^.*\/namespaces\/prod\//, '')}`);
    expect(writes).toContain(`patch persistentvolumeclaims/data-${STS}-0`);
    expect(writes).toContain(`patch persistentvolumeclaims/data-${STS}-1`);
    const deleted = w.childWrites().find((x) => x.verb === 'delete' && x.path === STS_PATH);
    expect(deleted?.body).toEqual({ propagationPolicy: 'Orphan' });
    // The claims are grown before the StatefulSet goes: a crash in between leaves them grown and it live.
    expect(writes.indexOf(`delete statefulsets/${STS}`)).toBeGreaterThan(
      writes.indexOf(`patch persistentvolumeclaims/data-${STS}-1`),
    );
    expect(writes).not.toContain(`apply statefulsets/${STS}`);
    expect(w.claims.map((c) => c.spec?.resources?.requests?.storage)).toEqual(['20Gi', '20Gi']);

    // The deletion's watch event: the StatefulSet is applied again with the larger template.
    w.removeLive('StatefulSet', STS);
    w.writes.length = 0;
    await w.reconcile().catch(() => undefined);
    expect(templateSize(w.live('StatefulSet', STS))).toBe('20Gi');
    expect(w.childWrites().filter((x) => x.path.includes('persistentvolumeclaims'))).toEqual([]);

    // Done: nothing more to grow, nothing deleted again.
    w.writes.length = 0;
    await w.reconcile().catch(() => undefined);
    expect(w.childWrites().filter((x) => x.verb === 'delete' || x.verb === 'patch')).toEqual([]);
  });

  it("while its StorageClass cannot expand: ChildRefused in the apiserver's words, the other changes applied, the templates kept", async () => {
    const forbidden = () =>
      new ApiError('PATCH', 'persistentvolumeclaims', 403, {
        kind: 'Status',
        reason: 'Forbidden',
        message:
          'persistentvolumeclaims is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize',
      });
    const w = await grownWorld('20Gi', forbidden);
    await expect(w.reconcile()).rejects.toBeInstanceOf(ChildRefusedError);
    expect(w.condition('Ready')).toMatchObject({
      status: 'False',
      reason: 'ChildRefused',
      message: expect.stringContaining(
        `PersistentVolumeClaim prod/data-${STS}-0 was refused (403): cannot grow from 10Gi to 20Gi: persistentvolumeclaims is forbidden: only dynamically provisioned pvc can be resized`,
      ),
    });
    const sts = w.live('StatefulSet', STS) as V1StatefulSet;
    expect(templateSize(sts)).toBe('10Gi');
    expect(sts.spec?.template.spec?.containers[0]?.resources?.requests?.cpu).toBe('500m');
    expect(w.childWrites().some((x) => x.verb === 'delete')).toBe(false);
    expect(w.warnings()).toHaveLength(1);
  });

  it('a size that only changes unit (10Gi to 10240Mi) is no growth', async () => {
    const w = await grownWorld('10240Mi');
    await w.reconcile().catch(() => undefined);
    expect(
      w.childWrites().filter((x) => x.path.includes('persistentvolumeclaims') || x.verb === 'delete'),
    ).toEqual([]);
  });
});
