// The reconciler as a whole, against the in-memory apiserver of testdata/fake-world.ts. The refusals,
// volume growth and deletion have their own files; this one holds what belongs to no single phase.
import type { V1Deployment, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { ANNOTATION, ROLE_LABEL, selectorLabels } from '../tiers/labels.ts';
import { BROKER_CONTAINER } from '../tiers/queue.ts';
import type { CachePrimary } from './cache-primary.ts';
import type { DatabasePrimary } from './database-primary.ts';
import { dbPrimaryPod, runningContainer } from './testdata/pods.ts';
import { fakeWorld, invalid } from './testdata/fake-world.ts';
import { ChildRefusedError } from './reconciler.ts';
import { ApiError } from '../kube/client.ts';
import { TIER_MODULES } from './tier-modules/index.ts';
import { TIERS } from '../api/spec.ts';

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

describe('a cache primary held with no replica to promote', () => {
  it('sets Degraded naming the cache, posts one Event while it lasts, and one again when it comes back', async () => {
    let held = true;
    const cachePrimary = {
      decide: async () =>
        held
          ? {
              kind: 'refused',
              primary: 'shop-cache-0',
              recheckMs: 5_000,
              reason: 'shop-cache-0 started again without its data and is held',
            }
          : { kind: 'keep', primary: 'shop-cache-0' },
      forget: () => {},
    } as unknown as CachePrimary;
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, cache: { replicas: 1 } },
      cachePrimary,
    });
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 5_000 });
    expect(w.condition('Degraded')).toMatchObject({
      status: 'True',
      reason: 'FailoverRefused',
      message: expect.stringContaining('shop-cache: shop-cache-0 started again without its data'),
    });
    await w.reconcile();
    const refusals = () => w.warnings().filter((e) => e.startsWith('FailoverRefused:'));
    expect(refusals()).toHaveLength(1);
    held = false;
    await w.reconcile();
    expect(w.condition('Degraded')?.status).not.toBe('True');
    // Announced again: the same Event, its count raised.
    const patches = w.eventPatches();
    held = true;
    await w.reconcile();
    expect(refusals()).toHaveLength(1);
    expect(w.eventPatches()).toBe(patches + 1);
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

const fullStack = {
  web: { image: 'registry.example/shop:1' },
  cache: { replicas: 1 },
  database: { replicas: 2 },
  shards: { count: 2, key: 'user_id' },
  queue: { queues: [{ name: 'orders' }] },
  consumers: [{ name: 'worker', image: 'registry.example/worker:1', queue: 'orders' }],
  edgeCache: {},
};

describe('an app in sync', () => {
  it('costs no write at all once its status has settled: no apply, no status, no Event', async () => {
    const w = fakeWorld({ spec: fullStack });
    await w.reconcile();
    expect(w.childWrites().length).toBeGreaterThan(20);
    await w.reconcile(); // settles Progressing: nothing was applied this time
    const settled = w.writes.length;
    await w.reconcile();
    await w.reconcile();
    expect(w.writes.slice(settled)).toEqual([]);
  });
});

describe('prune', () => {
  const owned = (kind: string, name: string) => ({
    apiVersion: 'v1',
    kind,
    metadata: {
      name,
      namespace: 'prod',
      ownerReferences: [
        { apiVersion: 'scalableapp.io/v1alpha1', uid: 'u1', kind: 'ScalableApp', name: 'shop' },
      ],
    },
  });

  it('deletes an owned child the spec no longer asks for, but never a Secret', async () => {
    const w = fakeWorld({ spec: { web: { image: 'registry.example/shop:1' } } });
    w.setLive(owned('ConfigMap', 'shop-left-over'));
    w.setLive(owned('Secret', 'shop-db-credentials'));
    await w.reconcile();
    const deleted = w.writes.filter((x) => x.verb === 'delete').map((x) => x.path);
    expect(deleted).toEqual(['/api/v1/namespaces/prod/configmaps/shop-left-over']);
  });

  it('removing a retained database tier deletes its workload and never a volume claim or its credentials', async () => {
    // The claims are live beside the StatefulSet, as its volumeClaimTemplates left them.
    const claims = ['data-shop-db-0', 'data-shop-db-1'].map((name) => ({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: 'prod', labels: { 'app.kubernetes.io/instance': 'shop' } },
    }));
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, database: { replicas: 2 } },
      claims,
    });
    await w.reconcile();
    // Kubernetes keeps the claims of a deleted StatefulSet only because it says Retain.
    const sts = w.writes.find((x) => x.verb === 'apply' && x.path.endsWith('/statefulsets/shop-db'));
    expect((sts?.body as V1StatefulSet | undefined)?.spec?.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: 'Retain',
      whenScaled: 'Retain',
    });
    expect(w.writes.some((x) => x.verb === 'apply' && x.path.endsWith('/secrets/shop-db-credentials'))).toBe(
      true,
    );

    w.raw.spec = { web: { image: 'registry.example/shop:1' } };
    w.raw.metadata!.generation = 2;
    await w.reconcile();
    const deleted = w.writes.filter((x) => x.verb === 'delete').map((x) => x.path);
    expect(deleted).toContain('/apis/apps/v1/namespaces/prod/statefulsets/shop-db');
    expect(deleted.filter((p) => /persistentvolumeclaims|secrets/.test(p))).toEqual([]);
  });
});

/** A DatabasePrimary that moves the database's primary from shop-db-0 to shop-db-1 on every pass. */
const movingPrimary = (restart: readonly { pod: string; why: string }[]) =>
  ({
    decide: async () => ({
      kind: 'moved',
      primary: 'shop-db-1',
      previous: 'shop-db-0',
      reason: 'shop-db-0 stopped answering; promoted shop-db-1',
      planned: false,
      restart,
    }),
    decideShard: async () => ({ kind: 'keep', primary: 'x', restart: [] }),
    forget: () => {},
  }) as unknown as DatabasePrimary;

describe('a database primary that moved', () => {
  const moving = movingPrimary([{ pod: 'shop-db-0', why: 'shop-db-0 still ran as a primary' }]);
  const spec = { web: { image: 'registry.example/shop:1' }, database: { replicas: 2 } };
  const configPath = '/api/v1/namespaces/prod/configmaps/shop-db-config';
  const podPath = '/api/v1/namespaces/prod/pods/shop-db-0';

  it('restarts the old primary only after the record naming the new one is applied', async () => {
    const w = fakeWorld({ spec, databasePrimary: moving });
    await w.reconcile();
    const record = w.writes.findIndex(
      (x) => x.verb === 'apply' && x.path === configPath && JSON.stringify(x.body).includes('shop-db-1'),
    );
    const restart = w.writes.findIndex((x) => x.verb === 'delete' && x.path === podPath);
    expect(record).toBeGreaterThanOrEqual(0);
    expect(restart).toBeGreaterThan(record);
    expect(w.warnings()).toContain('Failover: shop-db-0 stopped answering; promoted shop-db-1');
    // Each restart is said once, with its reason.
    expect(w.warnings().filter((e) => e.startsWith('InstanceRestarted'))).toEqual([
      'InstanceRestarted: shop-db-0 still ran as a primary',
    ]);
  });

  it('restarts nothing when that record is refused, and says which child', async () => {
    const w = fakeWorld({
      spec,
      databasePrimary: moving,
      refuse: (verb, body) =>
        verb === 'apply' && body.kind === 'ConfigMap' && body.metadata?.name === 'shop-db-config'
          ? invalid('ConfigMap', 'shop-db-config', 'refused for the test')
          : undefined,
    });
    await expect(w.reconcile()).rejects.toThrow(ChildRefusedError);
    expect(w.writes.filter((x) => x.verb === 'delete')).toEqual([]);
    expect(w.condition('Ready')).toMatchObject({ reason: 'ChildRefused' });
    expect(w.condition('Ready')?.message).toContain('ConfigMap prod/shop-db-config');
  });
});

describe('a switchover request that is done', () => {
  const done = {
    decide: async () => ({ kind: 'keep', primary: 'shop-db-1', restart: [], switchoverDone: 'shop-db-1' }),
    decideShard: async () => ({ kind: 'keep', primary: 'x', restart: [] }),
    forget: () => {},
  } as unknown as DatabasePrimary;
  const spec = { web: { image: 'registry.example/shop:1' }, database: { replicas: 2 } };
  const patches = (w: ReturnType<typeof fakeWorld>) =>
    w.writes.filter(
      (x) =>
        x.verb === 'patch' && x.path === '/apis/scalableapp.io/v1alpha1/namespaces/prod/scalableapps/shop',
    );

  it('is removed from the app, only while it still names that pod, so a later failover is not undone', async () => {
    const w = fakeWorld({ spec, databasePrimary: done });
    w.raw.metadata!.annotations = { 'scalableapp.io/switchover-to': 'shop-db-1', keep: 'me' };
    await w.reconcile();
    expect(patches(w)).toEqual([
      expect.objectContaining({
        body: {
          ops: [
            { op: 'test', path: '/metadata/annotations/scalableapp.io~1switchover-to', value: 'shop-db-1' },
            { op: 'remove', path: '/metadata/annotations/scalableapp.io~1switchover-to' },
          ],
        },
      }),
    ]);
    expect(w.raw.metadata!.annotations).toEqual({ keep: 'me' });
  });

  it('stays when it cannot be removed (the operator may not patch the app), and the rest of the pass goes on', async () => {
    const w = fakeWorld({
      spec,
      databasePrimary: done,
      refuse: (verb, body) =>
        verb === 'patch' && 'ops' in body
          ? new ApiError('PATCH', '/scalableapps/shop', 403, { reason: 'Forbidden', message: 'forbidden' })
          : undefined,
    });
    w.raw.metadata!.annotations = { 'scalableapp.io/switchover-to': 'shop-db-1' };
    expect(await w.reconcile()).toBe('ok');
    expect(w.raw.metadata!.annotations).toEqual({ 'scalableapp.io/switchover-to': 'shop-db-1' });
    expect(w.raw.status?.observedGeneration).toBe(1);
  });

  it('stays when the user changed it meanwhile: the apiserver refuses the test, the reconcile goes on', async () => {
    // Decided on the old request (shop-db-1); the apiserver already holds a new one.
    const w = fakeWorld({ spec, databasePrimary: done });
    w.raw.metadata!.annotations = { 'scalableapp.io/switchover-to': 'shop-db-2' };
    expect(await w.reconcile()).toBe('ok');
    expect(patches(w)).toHaveLength(1);
    expect(w.raw.metadata!.annotations).toEqual({ 'scalableapp.io/switchover-to': 'shop-db-2' });
  });
});

describe('a lost shard map', () => {
  it('holds the whole app back (Degraded, ShardMapLost) instead of publishing a ring from the spec', async () => {
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, shards: { count: 2, key: 'user_id' } },
    });
    w.raw.status = { observedGeneration: 1, shards: { ready: 2, ringVersion: 3 } };
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 15_000 });
    expect(w.childWrites()).toEqual([]);
    expect(w.raw.status?.phase).toBe('Degraded');
    expect(w.condition('Ready')).toMatchObject({
      reason: 'ShardMapLost',
      message: expect.stringContaining('ConfigMap prod/shop-shard-map is gone, but ring v3 was published'),
    });
    expect(w.warnings().filter((e) => e.startsWith('ShardMapLost:'))).toHaveLength(1);
  });
});

describe('the tier modules', () => {
  it('are one per tier, in the order of TIERS, so the reconciler can name none of them', () => {
    expect(TIER_MODULES.map((m) => m.tier)).toEqual([...TIERS]);
  });
});

describe('a Gateway exposure on a cluster without the Gateway API', () => {
  it('makes no route, says why in WebReady and Degraded, and posts one Warning however often it is looked at', async () => {
    const w = fakeWorld({
      spec: {
        web: {
          image: 'registry.example/shop:1',
          expose: { type: 'Gateway', host: 'shop.example.com', gateway: { name: 'gw' } },
        },
      },
      deploymentStatus: { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2 },
    });
    for (let i = 0; i < 4; i++) await w.reconcile();
    expect(w.childWrites().filter((x) => x.path.includes('httproutes'))).toEqual([]);
    expect(w.condition('WebReady')).toMatchObject({
      status: 'False',
      reason: 'GatewayAPIMissing',
      message: expect.stringContaining('does not serve gateway.networking.k8s.io/v1'),
    });
    expect(w.condition('Degraded')).toMatchObject({ status: 'True', reason: 'GatewayAPIMissing' });
    expect(w.raw.status?.phase).toBe('Degraded');
    expect(w.warnings().filter((e) => e.startsWith('GatewayAPIMissing:'))).toHaveLength(1);
  });
});

/** A Secret's data, decoded. */
const decoded = (obj: unknown) =>
  Object.fromEntries(
    Object.entries((obj as V1Secret).data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
/** An annotation of a child's pod template. */
const annotationOf = (w: ReturnType<typeof fakeWorld>, kind: string, name: string, key: string) =>
  (w.live(kind, name) as V1Deployment).spec!.template.metadata!.annotations![key]!;
/** A web pod of the app, started with the connection Secret of this hash. */
const webPod = (hash: string): V1Pod => ({
  metadata: {
    name: `shop-web-${hash.slice(0, 5)}`,
    namespace: 'prod',
    labels: { 'app.kubernetes.io/instance': 'shop' },
    annotations: { [ANNOTATION.connectionHash]: hash },
  },
});

describe("a rotation of the app's cache password", () => {
  const cachePod = (name: string, configHash: string): V1Pod => ({
    metadata: {
      name,
      namespace: 'prod',
      uid: name,
      // Labelled primary already: the fake cache does not take the operator's label patches.
      labels: { ...selectorLabels(parseApp({}, 'shop', 'prod'), 'cache'), [ROLE_LABEL]: 'primary' },
      annotations: { [ANNOTATION.configHash]: configHash },
    },
    status: {
      podIP: '10.0.0.7',
      containerStatuses: [
        { name: 'cache', restartCount: 0, ready: true, image: 'x', imageID: '', state: { running: {} } },
      ],
    },
  });

  it('lets both passwords in on every server before the URLs change, drops the old once every pod rolled, and then writes nothing', async () => {
    const calls: string[] = [];
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, cache: { replicas: 0 } },
      cacheUsers: {
        setPasswords: async (n, user, rules) => void calls.push(`${n.name} ${user} ${rules.length}`),
      },
    });
    await w.reconcile();
    const first = decoded(w.live('Secret', 'shop-cache-auth'));
    // Recorded at once: the password the servers were given is the one the URLs name.
    expect(first['current-password']).toBe(first.password);
    const configHash = annotationOf(w, 'StatefulSet', 'shop-cache', ANNOTATION.configHash);
    const hashBefore = annotationOf(w, 'Deployment', 'shop-web', ANNOTATION.connectionHash);
    w.setPods([cachePod('shop-cache-0', configHash), webPod(hashBefore)]);
    await w.reconcile();
    expect(calls).toEqual(['shop-cache-0 default 1']);

    const secret = w.live('Secret', 'shop-cache-auth') as V1Secret;
    w.setLive({
      ...secret,
      data: { ...secret.data, password: Buffer.from('n3w pass').toString('base64') },
    } as V1Secret as never);
    await w.reconcile();
    expect(calls.at(-1)).toBe('shop-cache-0 default 2');
    expect(decoded(w.live('Secret', 'shop-cache-auth'))).toMatchObject({
      password: 'n3w pass',
      'current-password': 'n3w pass',
      'retiring-password': first.password,
    });
    expect(decoded(w.live('Secret', 'shop-connection')).CACHE_URL).toMatch(/^rediss:\/\/:n3w%20pass@/);
    expect(w.normals().filter((e) => e.startsWith('Credentials'))).toEqual([
      expect.stringMatching(/^CredentialsRotating: Secret shop-cache-auth key password changed/),
    ]);
    // The servers were not restarted for it.
    expect(annotationOf(w, 'StatefulSet', 'shop-cache', ANNOTATION.configHash)).toBe(configHash);
    const hashAfter = annotationOf(w, 'Deployment', 'shop-web', ANNOTATION.connectionHash);
    expect(hashAfter).not.toBe(hashBefore);

    // A web pod still holds the old URLs: both passwords stay.
    await w.reconcile();
    expect(calls).toHaveLength(2);
    expect(w.logged().filter((l) => l.includes('previous cache password'))).toHaveLength(1);

    w.setPods([cachePod('shop-cache-0', configHash), webPod(hashAfter)]);
    await w.reconcile();
    expect(calls.at(-1)).toBe('shop-cache-0 default 1');
    expect(decoded(w.live('Secret', 'shop-cache-auth'))['retiring-password']).toBeUndefined();
    expect(w.normals().filter((e) => e.startsWith('CredentialsRotated'))).toHaveLength(1);

    const writes = w.childWrites().length;
    await w.reconcile();
    expect(w.childWrites().slice(writes)).toEqual([]);
    expect(calls).toHaveLength(3);
  });
});

describe("a rotation of the app's queue password", () => {
  const brokerPod = (restarts = 0): V1Pod => ({
    metadata: {
      name: 'shop-mq-0',
      namespace: 'prod',
      uid: 'mq0',
      labels: selectorLabels(parseApp({}, 'shop', 'prod'), 'queue'),
    },
    status: { podIP: '10.0.0.9', containerStatuses: [runningContainer(BROKER_CONTAINER, { restarts })] },
  });

  it('switches the URLs to the other login once the broker has it, deletes the old one when every pod rolled and no connection uses it, and then writes nothing', async () => {
    const calls: string[] = [];
    let open = 0;
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, queue: { replicas: 1, queues: [{ name: 'jobs' }] } },
      pods: [brokerPod()],
      queueUsers: {
        setLogin: async (name, password) => void calls.push(`set ${name} ${password}`),
        deleteLogin: async (name) => void calls.push(`delete ${name}`),
        connections: async () => open,
        close: async () => {},
      },
    });
    await w.reconcile();
    await w.reconcile();
    const first = decoded(w.live('Secret', 'shop-mq-credentials'));
    const user = first.username!;
    // Recorded: what the brokers booted with; put back once after the broker's boot.
    expect(first['app-login']).toBe(user);
    expect(first['app-login-password']).toBe(first.password);
    expect(first['operator-password']).toMatch(/^[\w-]{32}$/);
    expect(calls).toEqual([`set ${user} ${first.password}`, `delete ${user}-alt`]);
    const hashBefore = annotationOf(w, 'Deployment', 'shop-web', ANNOTATION.connectionHash);

    const secret = w.live('Secret', 'shop-mq-credentials') as V1Secret;
    w.setLive({
      ...secret,
      data: { ...secret.data, password: Buffer.from('n3w pass').toString('base64') },
    } as V1Secret as never);
    w.setPods([brokerPod(), webPod(hashBefore)]);
    await w.reconcile();
    expect(calls.at(-1)).toBe(`set ${user}-alt n3w pass`);
    expect(decoded(w.live('Secret', 'shop-mq-credentials'))).toMatchObject({
      password: 'n3w pass',
      'app-login': `${user}-alt`,
      'app-login-password': 'n3w pass',
      'app-retiring-login': user,
    });
    expect(decoded(w.live('Secret', 'shop-connection')).QUEUE_URL).toMatch(
      new RegExp(`^amqps://${user}-alt:n3w%20pass@`),
    );
    expect(w.normals().filter((e) => e.startsWith('Credentials'))).toEqual([
      expect.stringMatching(/^CredentialsRotating: Secret shop-mq-credentials key password changed/),
    ]);
    // The brokers are not restarted for it.
    const hashAfter = annotationOf(w, 'Deployment', 'shop-web', ANNOTATION.connectionHash);
    expect(hashAfter).not.toBe(hashBefore);

    // Every pod rolled, but a connection of the old login is open: it is waited for.
    w.setPods([brokerPod(), webPod(hashAfter)]);
    open = 1;
    await w.reconcile();
    expect(calls.filter((c) => c === `delete ${user}`)).toEqual([]);
    expect(w.logged().filter((l) => l.includes('still logged in'))).toHaveLength(1);
    open = 0;
    await w.reconcile();
    expect(calls.at(-1)).toBe(`delete ${user}`);
    expect(decoded(w.live('Secret', 'shop-mq-credentials'))['app-retiring-login']).toBeUndefined();
    expect(w.normals().filter((e) => e.startsWith('CredentialsRotated'))).toHaveLength(1);

    const writes = w.childWrites().length;
    const asked = calls.length;
    await w.reconcile();
    expect(w.childWrites().slice(writes)).toEqual([]);
    expect(calls).toHaveLength(asked);
    // The broker restarts: it booted from the Secret as mounted, so the record is put back.
    w.setPods([brokerPod(1), webPod(hashAfter)]);
    await w.reconcile();
    expect(calls.slice(asked)).toEqual([`set ${user}-alt n3w pass`, `delete ${user}`]);
  });
});

describe('a Secret someone writes while a pass runs', () => {
  it("is not overwritten with what the pass read before: the write is refused, and the next pass rotates to the user's password", async () => {
    let edit: (() => void) | undefined;
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, cache: { replicas: 0 } },
      cacheUsers: {
        setPasswords: async () => {
          // The user's new password lands after this pass read the Secret, before it writes.
          edit?.();
          edit = undefined;
        },
      },
    });
    await w.reconcile();
    const secret = w.live('Secret', 'shop-cache-auth') as V1Secret;
    const old = decoded(secret).password;
    const configHash = annotationOf(w, 'StatefulSet', 'shop-cache', ANNOTATION.configHash);
    w.setPods([
      {
        metadata: {
          name: 'shop-cache-0',
          namespace: 'prod',
          uid: 'c0',
          labels: { ...selectorLabels(parseApp({}, 'shop', 'prod'), 'cache'), [ROLE_LABEL]: 'primary' },
          annotations: { [ANNOTATION.configHash]: configHash },
        },
        status: { podIP: '10.0.0.7', containerStatuses: [runningContainer('cache')] },
      },
    ]);
    edit = () =>
      w.setLive({
        ...secret,
        metadata: { ...secret.metadata, resourceVersion: '99' },
        data: { ...secret.data, password: Buffer.from('typed by hand').toString('base64') },
      } as V1Secret as never);
    // The pass sees the Secret differ from what it read and would write it back: refused instead.
    await expect(w.reconcile()).rejects.toThrow(/409|modified/);
    expect(decoded(w.live('Secret', 'shop-cache-auth')).password).toBe('typed by hand');
    await w.reconcile();
    expect(decoded(w.live('Secret', 'shop-cache-auth'))).toMatchObject({
      password: 'typed by hand',
      'current-password': 'typed by hand',
      'retiring-password': old,
    });
  });
});

/** Two more passes write nothing and ask the servers nothing (`calls` records what they were asked). */
async function expectQuietPasses(w: ReturnType<typeof fakeWorld>, calls: readonly string[]): Promise<void> {
  const writes = w.childWrites().length;
  const asked = calls.length;
  await w.reconcile();
  await w.reconcile();
  expect(
    w
      .childWrites()
      .slice(writes)
      .map((x) => x.path),
  ).toEqual([]);
  expect(calls.length).toBe(asked);
}

describe("a rotation of the app's database password", () => {
  const dbPod = dbPrimaryPod();

  it('switches the URLs to the other login once it has the new password, retires the old one when every pod rolled, and then writes nothing', async () => {
    const calls: string[] = [];
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, database: { replicas: 0 } },
      pods: [dbPod],
      logins: {
        enable: async (n, login, _owner, password) =>
          void calls.push(`enable ${n.name} ${login} ${password}`),
        disable: async (n, login) => void calls.push(`disable ${n.name} ${login}`),
        sessions: async () => 0,
        setServerPasswords: async () => {},
      },
    });
    await w.reconcile();
    await w.reconcile();
    const first = decoded(w.live('Secret', 'shop-db-credentials'));
    // Recorded: the app role with the password initdb gave it; given once to the primary.
    expect(first['app-login']).toBe('app');
    expect(first['app-login-password']).toBe(first['app-password']);
    expect(calls).toEqual([`enable shop-db-0 app ${first['app-password']}`]);
    const hashBefore = annotationOf(w, 'Deployment', 'shop-web', ANNOTATION.connectionHash);

    // The user writes a new password into the Secret.
    const secret = w.live('Secret', 'shop-db-credentials') as V1Secret;
    w.setLive({
      ...secret,
      data: { ...secret.data, 'app-password': Buffer.from('n3w-pass').toString('base64') },
    } as V1Secret as never);
    w.setPods([dbPod, webPod(hashBefore)]);
    await w.reconcile();
    expect(calls.at(-1)).toBe('enable shop-db-0 app_alt n3w-pass');
    expect(decoded(w.live('Secret', 'shop-db-credentials'))).toMatchObject({
      'app-login': 'app_alt',
      'app-login-password': 'n3w-pass',
      'app-retiring-login': 'app',
    });
    expect(decoded(w.live('Secret', 'shop-connection')).DATABASE_URL).toMatch(
      /^postgresql:\/\/app_alt:n3w-pass@/,
    );
    expect(w.normals().filter((e) => e.startsWith('Credentials'))).toEqual([
      expect.stringMatching(/^CredentialsRotating: Secret shop-db-credentials key app-password changed/),
    ]);
    const hashAfter = annotationOf(w, 'Deployment', 'shop-web', ANNOTATION.connectionHash);
    expect(hashAfter).not.toBe(hashBefore);

    // A pod still holds the old URLs: the old login stays, and the log says why, once, with no Event.
    const events = w.normals().length;
    await w.reconcile();
    await w.reconcile();
    expect(calls.filter((c) => c.startsWith('disable'))).toEqual([]);
    expect(w.logged().filter((l) => l.includes('still hold the URLs'))).toEqual([
      expect.stringMatching(/^info: 1 pod\(s\) still hold the URLs of app: /),
    ]);
    expect(w.normals()).toHaveLength(events);

    w.setPods([dbPod, webPod(hashAfter)]);
    await w.reconcile();
    expect(calls.filter((c) => c.startsWith('disable'))).toEqual(['disable shop-db-0 app']);
    expect(decoded(w.live('Secret', 'shop-db-credentials'))['app-retiring-login']).toBeUndefined();
    expect(w.normals().filter((e) => e.startsWith('CredentialsRotated'))).toHaveLength(1);

    await expectQuietPasses(w, calls);
  });

  it('asks no server for a login in a pass that moved the primary: the record naming it is applied first', async () => {
    const calls: string[] = [];
    const w = fakeWorld({
      spec: { database: { replicas: 1 } },
      pods: [dbPod],
      databasePrimary: movingPrimary([]),
      logins: {
        enable: async (n, login) => void calls.push(`enable ${n.name} ${login}`),
        disable: async () => {},
        sessions: async () => 0,
        setServerPasswords: async (n) => void calls.push(`servers ${n.name}`),
      },
    });
    expect(await w.reconcile()).toEqual({ requeueAfterMs: 5_000 });
    expect(calls).toEqual([]);
    expect(decoded(w.live('Secret', 'shop-db-credentials'))['app-login']).toBeUndefined();
  });

  it('refuses a password it cannot use: one Warning naming the key, the URLs unchanged, however often it is looked at', async () => {
    const w = fakeWorld({
      spec: { database: { replicas: 0 } },
      pods: [dbPod],
      logins: {
        enable: async () => {},
        disable: async () => {},
        sessions: async () => 0,
        setServerPasswords: async () => {},
      },
    });
    await w.reconcile();
    const before = decoded(w.live('Secret', 'shop-db-credentials'));
    const secret = w.live('Secret', 'shop-db-credentials') as V1Secret;
    w.setLive({
      ...secret,
      data: { ...secret.data, 'app-password': Buffer.from('caf\u00e9').toString('base64') },
    } as V1Secret as never);
    await w.reconcile();
    await w.reconcile();
    expect(w.warnings().filter((e) => e.startsWith('CredentialsRefused'))).toEqual([
      expect.stringContaining(
        'Secret shop-db-credentials key app-password: the password must be printable ASCII',
      ),
    ]);
    expect(decoded(w.live('Secret', 'shop-db-credentials'))['app-login-password']).toBe(
      before['app-login-password'],
    );
  });

  it("a changed superuser-password (ADR 0028): the servers' roles get it, the record and one Event say so, the URLs stay, and then nothing is written", async () => {
    const calls: string[] = [];
    const failing = { on: false };
    const w = fakeWorld({
      spec: { web: { image: 'registry.example/shop:1' }, database: { replicas: 0 } },
      pods: [dbPod],
      logins: {
        enable: async () => {},
        disable: async () => {},
        sessions: async () => 0,
        setServerPasswords: async (n, passwords) => {
          if (failing.on) throw new Error('password authentication failed');
          calls.push(`${n.name} ${[...passwords].map(([r, p]) => `${r}=${p}`).join(' ')}`);
        },
      },
    });
    await w.reconcile();
    await w.reconcile();
    const first = decoded(w.live('Secret', 'shop-db-credentials'));
    // Recorded as initdb gave them, and given once to the primary.
    expect(first['applied-superuser-password']).toBe(first['superuser-password']);
    expect(first['applied-replication-password']).toBe(first['replication-password']);
    expect(calls).toEqual([
      `shop-db-0 postgres=${first['superuser-password']} replicator=${first['replication-password']}`,
    ]);
    const url = decoded(w.live('Secret', 'shop-connection')).DATABASE_URL;

    const secret = w.live('Secret', 'shop-db-credentials') as V1Secret;
    w.setLive({
      ...secret,
      data: { ...secret.data, 'superuser-password': Buffer.from('n3w-super').toString('base64') },
    } as V1Secret as never);
    // A server that refuses: a Warning naming the Secret, and the record as it was.
    failing.on = true;
    await w.reconcile();
    expect(w.warnings().filter((e) => e.startsWith('PrimaryCheckFailed'))).toEqual([
      expect.stringMatching(/^PrimaryCheckFailed: shop-db-credentials \(server passwords\): .*failed/),
    ]);
    expect(decoded(w.live('Secret', 'shop-db-credentials'))['applied-superuser-password']).toBe(
      first['superuser-password'],
    );
    failing.on = false;
    await w.reconcile();
    expect(calls.at(-1)).toBe(`shop-db-0 postgres=n3w-super replicator=${first['replication-password']}`);
    expect(decoded(w.live('Secret', 'shop-db-credentials'))).toMatchObject({
      'applied-superuser-password': 'n3w-super',
      'previous-superuser-password': first['superuser-password'],
    });
    expect(w.normals().filter((e) => e.startsWith('Credentials'))).toEqual([
      expect.stringMatching(/^CredentialsRotated: Secret shop-db-credentials key superuser-password changed/),
    ]);
    expect(JSON.stringify(w.normals())).not.toContain('n3w-super');
    expect(decoded(w.live('Secret', 'shop-connection')).DATABASE_URL).toBe(url);

    await expectQuietPasses(w, calls);
  });
});
