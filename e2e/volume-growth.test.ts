// A larger storage.size on the local control plane: with the default StorageClass (which allows
// expansion) every claim grows in place and the StatefulSet is recreated around its pods, none of
// which restarts; with a class that does not allow it, the apiserver's refusal is the app's Ready
// condition, once, and the StatefulSet keeps its templates. Whether the storage driver then grows
// the disk is its own business: the local class's host-path provisioner resizes nothing.
import { applyApp, getApp, readyAt } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventsWhere, eventually, json, kubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

const FIXED_CLASS = 'scalableapp-e2e-fixed-size';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: FIXED_CLASS },
      provisioner: 'kubernetes.io/host-path',
      volumeBindingMode: 'Immediate',
      allowVolumeExpansion: false,
    }),
  );
  ns = createNamespace('grow', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
  kubectl(['delete', 'storageclass', FIXED_CLASS, '--ignore-not-found']);
});

const claims = (app: string) =>
  Object.fromEntries(
    json<{ items: any[] }>(['get', 'pvc', '-n', ns, '-l', `app.kubernetes.io/instance=${app}`]).items.map(
      (c) => [c.metadata.name, c.spec.resources.requests.storage],
    ),
  );
const stsTemplateSize = (name: string) =>
  json<any>(['get', 'statefulset', name, '-n', ns]).spec.volumeClaimTemplates[0].spec.resources.requests
    .storage;
const podUids = (app: string) =>
  json<{ items: any[] }>(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/instance=${app}`])
    .items.map((p) => `${p.metadata.name}=${p.metadata.uid}`)
    .sort();

describe('growing the database volumes', () => {
  it('grows every claim in place and recreates the StatefulSet around its running pods', async () => {
    const spec = { database: { replicas: 1, storage: { size: '1Gi' } } };
    applyApp(ns, 'grows', spec);
    await readyAt(ns, 'grows');
    const pods = podUids('grows');
    expect(claims('grows')).toEqual({ 'data-grows-db-0': '1Gi', 'data-grows-db-1': '1Gi' });

    applyApp(ns, 'grows', { database: { replicas: 1, storage: { size: '2Gi' } } });
    await eventually('the claims grown and the StatefulSet recreated with the new size', () =>
      stsTemplateSize('grows-db') === '2Gi' && Object.values(claims('grows')).every((s) => s === '2Gi')
        ? true
        : undefined,
    );
    const a = await readyAt(ns, 'grows');
    expect(a.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    // Same pods, same UIDs: none was restarted or recreated.
    expect(podUids('grows')).toEqual(pods);
    expect(await op.output()).toContain('growing the volumes of StatefulSet grows-db');
  });

  it('says so once when the StorageClass does not allow expansion, and keeps the templates', async () => {
    const spec = (size: string) => ({
      database: { replicas: 0, storage: { size, storageClassName: FIXED_CLASS } },
    });
    applyApp(ns, 'fixed', spec('1Gi'));
    await readyAt(ns, 'fixed');
    applyApp(ns, 'fixed', spec('2Gi'));
    const a = await eventually('Ready=False ChildRefused naming the claim', () => {
      const app = getApp(ns, 'fixed');
      const ready = app.status?.conditions?.find((c: any) => c.type === 'Ready');
      return ready?.reason === 'ChildRefused' ? app : undefined;
    });
    const message = a.status.conditions.find((c: any) => c.type === 'Ready').message;
    expect(message).toContain(`PersistentVolumeClaim ${ns}/data-fixed-db-0 was refused (403)`);
    expect(message).toContain('cannot grow from 1Gi to 2Gi');
    expect(message).toMatch(/storageclass that provisions the pvc must support resize/i);
    expect(a.status.observedGeneration).toBe(a.metadata.generation);
    expect(stsTemplateSize('fixed-db')).toBe('1Gi');
    expect(claims('fixed')).toEqual({ 'data-fixed-db-0': '1Gi' });
    const events = eventsWhere(ns, 'involvedObject.name=fixed,reason=ChildRefused');
    expect(events).toHaveLength(1);
  });
});
