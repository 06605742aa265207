// A child the apiserver refuses: the user sees which one and why in status and in one Event, the
// reconcile backs off, and nothing is rewritten while it waits.
import { ApiError } from '../kube/client.ts';
import type { DatabasePrimary } from './database-primary.ts';
import { ChildRefusedError } from './reconciler.ts';
import { fakeWorld, invalid, pinned, type Obj } from './testdata/fake-world.ts';

const web = { image: pinned('registry.example/shop:1'), replicas: 2 };
const rolledOut = {
  observedGeneration: 1,
  replicas: 2,
  updatedReplicas: 2,
  readyReplicas: 2,
  availableReplicas: 2,
};
/** A web app whose `kind` child the apiserver refuses while `on()` says so. */
const refusingWorld = (kind: string, message: string, on: () => boolean) =>
  fakeWorld({
    spec: { web },
    deploymentStatus: rolledOut,
    refuse: (_verb, body) => (on() && body.kind === kind ? invalid(kind, 'shop-web', message) : undefined),
  });
const MESSAGE = 'spec.minAvailable: Invalid value: 3: must not exceed the replicas (admission policy)';

describe('a child the apiserver refuses', () => {
  it('shows the child and the apiserver words in Ready, once, and backs off without rewriting anything', async () => {
    let refusing = true;
    const w = refusingWorld('PodDisruptionBudget', MESSAGE, () => refusing);
    await expect(w.reconcile()).rejects.toBeInstanceOf(ChildRefusedError);
    expect(w.raw.status).toMatchObject({ observedGeneration: 1, phase: 'Degraded' });
    const why = `PodDisruptionBudget prod/shop-web was refused (422): PodDisruptionBudget "shop-web" is invalid: ${MESSAGE}`;
    expect(w.condition('Ready')).toMatchObject({ status: 'False', reason: 'ChildRefused', message: why });
    expect(w.condition('Degraded')).toMatchObject({ status: 'True', reason: 'ChildRefused' });
    expect(w.condition('Progressing')).toMatchObject({ status: 'False', reason: 'ChildRefused' });
    expect(w.warnings()).toEqual([`ChildRefused: ${why}`]);
    // The other children were applied: the rest of the app is not held back by one refusal.
    const applied = w.childWrites().map((x) => `${x.verb} ${x.body.kind}`);
    expect(applied).toContain('apply Deployment');
    expect(applied).toContain('apply Service');

    // Each backoff step: the one refused apply again, and nothing else.
    const before = w.writes.length;
    for (let step = 0; step < 5; step++) await expect(w.reconcile()).rejects.toThrow(ChildRefusedError);
    const since = w.writes.slice(before);
    expect(since.map((x) => `${x.verb} ${x.body.kind}`)).toEqual(
      Array.from({ length: 5 }, () => 'apply PodDisruptionBudget'),
    );

    // Fixed (the policy removed): applied, Ready computed from the tiers again, no more error.
    refusing = false;
    expect(await w.reconcile()).toBe('ok');
    expect(w.condition('Ready')).toMatchObject({ status: 'True', reason: 'AllTiersReady' });
    expect(w.warnings()).toHaveLength(1);
  });

  it('announces a refusal once, also when the status is rewritten for another reason while it stands', async () => {
    const w = fakeWorld({
      spec: { web },
      refuse: (_verb, body) =>
        body.kind === 'PodDisruptionBudget' ? invalid('PodDisruptionBudget', 'shop-web', MESSAGE) : undefined,
    });
    await expect(w.reconcile()).rejects.toBeInstanceOf(ChildRefusedError);
    expect(w.condition('WebReady')?.status).toBe('False');
    // The web tier rolls out meanwhile: the status changes (WebReady), the refusal does not.
    const deployment = w.live('Deployment', 'shop-web')!;
    w.setLive({ ...deployment, status: rolledOut } as Obj);
    const statusWrites = w.statusWrites();
    await expect(w.reconcile()).rejects.toBeInstanceOf(ChildRefusedError);
    expect(w.statusWrites()).toBe(statusWrites + 1);
    expect(w.condition('WebReady')?.status).toBe('True');
    expect(w.warnings()).toHaveLength(1);
    expect(w.eventPatches()).toBe(0);
  });

  it('tries the replace fallback of a refused update once, not on every step', async () => {
    let refusing = false;
    const w = refusingWorld('Service', 'spec.ports: Forbidden', () => refusing);
    expect(await w.reconcile()).toBe('ok');
    refusing = true;
    // Someone else's edit of the live Service: the operator wants it back, and is refused.
    const live = w.writes.find((x) => x.verb === 'apply' && x.body.kind === 'Service')!.body as Obj;
    w.setLive({ ...live, metadata: { ...live.metadata!, annotations: { edited: 'by hand' } } });
    const before = w.childWrites().length;
    await expect(w.reconcile()).rejects.toThrow(/Service prod\/shop-web was refused \(422\)/);
    await expect(w.reconcile()).rejects.toThrow(ChildRefusedError);
    await expect(w.reconcile()).rejects.toThrow(ChildRefusedError);
    const services = w.childWrites().slice(before);
    expect(services.filter((x) => x.body.kind === 'Service').map((x) => x.verb)).toEqual([
      'apply',
      'replace',
      'apply',
      'apply',
    ]);
  });

  it('treats conflicts and server errors as the world failing, not the child: no ChildRefused', async () => {
    const w = fakeWorld({
      spec: { web },
      refuse: (_verb, body) =>
        body.kind === 'Service'
          ? new ApiError('PATCH', '/svc', 500, { message: 'etcdserver: leader changed' })
          : undefined,
    });
    await expect(w.reconcile()).rejects.toThrow(/500 etcdserver: leader changed/);
    expect(w.raw.status).toBeUndefined();
    expect(w.warnings()).toEqual([]);
  });

  it('reports every refused child, in the order of the desired state', async () => {
    const w = fakeWorld({
      spec: { web },
      refuse: (_verb, body) =>
        body.kind === 'Service' || body.kind === 'PodDisruptionBudget'
          ? new ApiError('PATCH', '/x', 403, { message: `${body.kind} forbidden by policy` })
          : undefined,
    });
    await expect(w.reconcile()).rejects.toThrow(ChildRefusedError);
    const message = w.condition('Ready')!.message;
    expect(message).toContain('Service prod/shop-web was refused (403): Service forbidden by policy');
    expect(message).toContain('PodDisruptionBudget prod/shop-web was refused (403)');
  });
});

describe('a database whose pods are not up yet', () => {
  it('writes its empty read-only EndpointSlice once, though the apiserver stores no endpoints as null', async () => {
    const w = fakeWorld({
      spec: { web, database: {} },
      stored: (body) =>
        body.kind === 'EndpointSlice' && (body as { endpoints?: unknown[] }).endpoints?.length === 0
          ? ({ ...body, endpoints: null } as Obj)
          : body,
    });
    await w.reconcile();
    const slices = () => w.childWrites().filter((x) => x.body.kind === 'EndpointSlice');
    expect(slices()).toHaveLength(1);
    await w.reconcile();
    await w.reconcile();
    expect(slices()).toHaveLength(1);
  });
});

describe('a database failover the operator refuses', () => {
  it('says so in one Event when it starts and when its reason changes, not on every look', async () => {
    let reason = 'no replica is in sync: promoting one could lose acknowledged writes';
    const decide = async () => ({ kind: 'refused' as const, primary: 'shop-db-0', reason, recheckMs: 1000 });
    const w = fakeWorld({
      spec: { web, database: {} },
      databasePrimary: { decide, decideShard: decide } as unknown as DatabasePrimary,
    });
    for (let look = 0; look < 4; look++) await w.reconcile();
    expect(w.warnings().filter((e) => e.startsWith('FailoverRefused'))).toEqual([
      `FailoverRefused: ${reason}`,
    ]);
    expect(w.eventPatches()).toBe(0);
    reason = 'the primary still answers';
    await w.reconcile();
    await w.reconcile();
    expect(w.warnings().filter((e) => e.startsWith('FailoverRefused'))).toHaveLength(2);
    expect(w.eventPatches()).toBe(0);
  });
});
