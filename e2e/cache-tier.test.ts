import { podRoles, readyEndpoints, setPodReady } from './support/pods.ts';
import { applyApp, decodeSecret, getApp, readyAt as readyAtGeneration } from './support/apps.ts';
// The cache tier on the local control plane: objects, roles, wiring into the web tier, status.
import { createNamespace, deleteNamespace, eventually, json, kubectl, eventsWhere } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('cache', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  if (process.env.SCALABLEAPP_DUMP_LOGS) console.log(op?.logs.slice(-40).join('\n'));
  await op?.stop();
  deleteNamespace(ns);
});

const apply = (name: string, spec: unknown) => applyApp(ns, name, spec);
const app = (name: string) => getApp(ns, name);
const decode = decodeSecret;
const readyAt = (name: string) => readyAtGeneration(ns, name);

describe('a web tier with sessions in a cache tier', () => {
  it('runs a primary and two replicas, selected by role, and becomes Ready', async () => {
    apply('shop', {
      web: { image: 'registry.example/shop:1', replicas: 2, sessions: 'cache' },
      cache: {
        replicas: 2,
        evictionPolicy: 'allkeys-lfu',
        memoryHeadroomPercent: 25,
        resources: { limits: { memory: '512Mi' } },
      },
    });
    const a = await readyAt('shop');
    expect(a.status.conditions.find((c: any) => c.type === 'CacheReady')).toMatchObject({
      status: 'True',
      reason: 'Available',
    });
    expect(a.status.cache).toEqual({ primary: 'shop-cache-0', readyReplicas: 2 });
    expect(a.status.endpoints.cache).toBe(`shop-cache.${ns}.svc:6379`);

    const sts = json<any>(['get', 'statefulset', 'shop-cache', '-n', ns]);
    expect(sts.spec.replicas).toBe(3);
    expect(podRoles(ns, 'shop', 'cache')).toEqual({
      'shop-cache-0': 'primary',
      'shop-cache-1': 'replica',
      'shop-cache-2': 'replica',
    });
    // The primary Service reaches exactly the primary pod; the replicas Service the other two.
    const endpoints = (svc: string) => readyEndpoints(ns, svc);
    await eventually(
      'endpoints',
      () => endpoints('shop-cache').length === 1 && endpoints('shop-cache-replicas').length === 2,
    );
    expect(endpoints('shop-cache')).toEqual(['shop-cache-0']);
    expect(endpoints('shop-cache-replicas')).toEqual(['shop-cache-1', 'shop-cache-2']);
  });

  it('derives maxmemory from the memory limit minus the headroom, and sets the eviction policy', () => {
    const cm = json<any>(['get', 'configmap', 'shop-cache-config', '-n', ns]);
    // 512Mi × 75 % = 402653184 bytes
    expect(cm.data['cache.conf']).toMatch(/^maxmemory 402653184$/m);
    expect(cm.data['cache.conf']).toMatch(/^maxmemory-policy allkeys-lfu$/m);
    expect(cm.data.primary).toBe('shop-cache-0');
  });

  it('hands the web pods the cache and session-store settings through the connection Secret', async () => {
    const conn = decode(json<any>(['get', 'secret', 'shop-connection', '-n', ns]));
    const auth = decode(json<any>(['get', 'secret', 'shop-cache-auth', '-n', ns]));
    // monitor-password: the metrics exporter's login, generated whether or not monitoring is on, so
    // turning it on later rolls the pods and nothing else.
    // current-password: the operator's record of the password the URLs name (a rotation's, ADR 0026).
    expect(Object.keys(auth).sort()).toEqual([
      'auth.conf',
      'current-password',
      'monitor-password',
      'operator-password',
      'password',
      'replication-password',
    ]);
    const password = auth.password!;
    expect(password.length).toBeGreaterThanOrEqual(24);
    expect(auth['current-password']).toBe(password);
    // TLS by default: rediss://, the CA where CACHE_CA_FILE says.
    expect(conn.CACHE_URL).toBe(`rediss://:${encodeURIComponent(password)}@shop-cache.${ns}.svc:6379/0`);
    expect(conn.CACHE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    expect(conn.CACHE_REPLICAS_URL).toBe(
      `rediss://:${encodeURIComponent(password)}@shop-cache-replicas.${ns}.svc:6379/0`,
    );
    expect(conn.SESSION_STORE).toBe('redis');
    expect(conn.SESSION_STORE_URL).toBe(conn.CACHE_URL);
    expect(conn.CACHE_DEFAULT_TTL_SECONDS).toBe('300');
    const web = json<any>(['get', 'deployment', 'shop-web', '-n', ns]);
    expect(web.spec.template.spec.containers[0].envFrom).toEqual([
      { secretRef: { name: 'shop-connection' } },
    ]);
    // The generated password is in Secrets only: never in the spec, status, ConfigMap, events or logs.
    const elsewhere = [
      JSON.stringify(app('shop')),
      JSON.stringify(json<any>(['get', 'configmap', 'shop-cache-config', '-n', ns])),
      JSON.stringify(json<any>(['get', 'statefulset', 'shop-cache', '-n', ns])),
      kubectl(['get', 'events', '-n', ns, '-o', 'json']),
      await op.output(),
    ];
    for (const text of elsewhere)
      for (const secret of [password, auth['operator-password']!, auth['replication-password']!])
        expect(text).not.toContain(secret);
  });

  it('lets only the web tier and consumers (and the operator, for failover) reach the cache', () => {
    const ingress = json<any>(['get', 'networkpolicy', 'shop-allow-cache-ingress', '-n', ns]).spec;
    expect(ingress.podSelector.matchLabels).toEqual({
      'app.kubernetes.io/instance': 'shop',
      'app.kubernetes.io/component': 'cache',
    });
    expect(ingress.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'web' },
            },
          },
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/instance': 'shop',
                'app.kubernetes.io/component': 'consumer',
              },
            },
          },
          {
            podSelector: {
              matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'cache' },
            },
          },
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'scalableapp-system' } },
            podSelector: { matchLabels: { 'scalableapp.io/operator': 'true' } },
          },
        ],
        ports: [{ protocol: 'TCP', port: 6379 }],
      },
    ]);
  });

  it('keeps the generated password across operator restarts, and writes nothing when nothing changed', async () => {
    const before = json<any>(['get', 'secret', 'shop-cache-auth', '-n', ns]).metadata.resourceVersion;
    await op.stop();
    op = await startOperator({ namespace: ns });
    await eventually(
      'a reconcile',
      async () => (await op.counter('controller_runtime_reconcile_total', { result: 'success' })) > 0,
    );
    expect(await op.counter('scalableapp_api_requests_total')).toBe(0);
    expect(json<any>(['get', 'secret', 'shop-cache-auth', '-n', ns]).metadata.resourceVersion).toBe(before);
  });

  it('restarts the cache servers when their configuration changes', async () => {
    const hash = () =>
      json<any>(['get', 'statefulset', 'shop-cache', '-n', ns]).spec.template.metadata.annotations[
        'scalableapp.io/config-hash'
      ];
    const first = hash();
    apply('shop', {
      web: { image: 'registry.example/shop:1', replicas: 2, sessions: 'cache' },
      cache: {
        replicas: 2,
        evictionPolicy: 'volatile-lru',
        memoryHeadroomPercent: 25,
        resources: { limits: { memory: '512Mi' } },
      },
    });
    await readyAt('shop');
    expect(hash()).not.toBe(first);
  });

  it('promotes a replica when the primary is lost, repointing the Services, and never lets the old primary back as a second one', async () => {
    const setReady = (pod: string, status: 'True' | 'False') => setPodReady(ns, pod, status);
    const roles = () => podRoles(ns, 'shop', 'cache');
    const endpoints = (svc: string) => readyEndpoints(ns, svc);
    const urlBefore = decode(json<any>(['get', 'secret', 'shop-connection', '-n', ns])).CACHE_URL;

    setReady('shop-cache-0', 'False'); // the primary stops answering
    await eventually(
      'a new primary',
      () => json<any>(['get', 'configmap', 'shop-cache-config', '-n', ns]).data.primary === 'shop-cache-1',
    );
    await eventually(
      'roles moved',
      () => roles()['shop-cache-1'] === 'primary' && roles()['shop-cache-0'] === 'replica',
    );
    await eventually('the primary Service follows', () => endpoints('shop-cache').join() === 'shop-cache-1');
    const a = await eventually(
      'status names the new primary',
      () => app('shop').status?.cache?.primary === 'shop-cache-1' && app('shop'),
    );
    expect(a.status.endpoints.cache).toBe(`shop-cache.${ns}.svc:6379`);
    const events = eventsWhere(ns, 'reason=CacheFailover');
    expect(events.map((e) => e.message).join()).toContain('promoted shop-cache-1');
    // The app's URL names the Service, not a pod: nothing to reconfigure in the web tier.
    expect(decode(json<any>(['get', 'secret', 'shop-connection', '-n', ns])).CACHE_URL).toBe(urlBefore);

    setReady('shop-cache-0', 'True'); // the old primary comes back
    await readyAt('shop');
    expect(roles()).toEqual({
      'shop-cache-0': 'replica',
      'shop-cache-1': 'primary',
      'shop-cache-2': 'replica',
    });
    expect(endpoints('shop-cache')).toEqual(['shop-cache-1']);
    expect(endpoints('shop-cache-replicas')).toEqual(['shop-cache-0', 'shop-cache-2']);
    await eventually('the failover logged', () => op.logs.join('\n').includes('cache failover'), 10_000);
  });
});
