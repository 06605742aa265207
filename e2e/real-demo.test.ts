// The demo application (examples/demo-app) on the real node, with every tier, under the operator
// running in the cluster: it answers through the web Service, a write through the primary is read
// back from a replica, a session outlives the web pod that created it, a published message is
// consumed, and the NetworkPolicies hold with real connections both ways.
import { decodeSecret, getApp } from './support/apps.ts';
import { eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { OPERATOR_NAMESPACE } from '../operator/tiers/network-policies.ts';
import {
  allPodsReady,
  applyAndAwaitReady,
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  connectFrom,
  execIn,
  installInClusterOperator,
  podStates,
  serviceRequest,
  startProbe,
  tierPods,
  localApp,
} from './support/real-node.ts';
import { CACHE_PASSWORD_KEYS } from '../operator/tiers/cache.ts';
import { CACHE_STATUS_HEADER } from '../operator/server-config/edge-cache.ts';
import { CACHE_USERS, maxMemoryBytes } from '../operator/server-config/cache.ts';
import { parseInfo } from '../operator/dataplane/redis-admin.ts';
import { parseApp } from '../operator/api/testdata/apps.ts';

const APP = 'demo';
const QUEUE = 'jobs';

/** Every tier, each as small as it can be while still showing what it does. */
const app = () =>
  localApp(APP, {
    web: {
      image: 'placeholder',
      port: 8080,
      replicas: 2,
      healthCheck: { path: '/healthz' },
      sessions: 'cache',
    },
    cache: { replicas: 1 },
    database: { replicas: 1, storage: { size: '1Gi' } },
    shards: { count: 2, key: 'user_id', replicasPerShard: 0, storage: { size: '1Gi' } },
    queue: { replicas: 1, queues: [{ name: QUEUE }], storage: { size: '1Gi' } },
    // Autoscaled (never below one), so the operator reads the queue's depth on the real broker.
    consumers: [
      {
        name: 'worker',
        image: 'placeholder',
        queue: QUEUE,
        autoscaling: { minReplicas: 1, maxReplicas: 2, messagesPerReplica: 1000, pollIntervalSeconds: 2 },
        // The demo consumer serves GET /healthz on HEALTH_PORT (set from this by localize).
        healthCheck: { port: 8081, periodSeconds: 5 },
      },
    ],
    edgeCache: { replicas: 1, pathPrefix: '/static' },
  });

let ns: string;
let other: string;
/** host:port of each data tier, from the connection Secret (never its passwords). */
let targets: Record<'database' | 'cache' | 'queue', { host: string; port: number }>;

const hostPort = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
};

beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-demo');
  other = createRealNamespace('real-outsider');
  await applyAndAwaitReady(ns, app(), 'the demo app Ready on the real node');
  const env = decodeSecret(json<any>(['get', 'secret', `${APP}-connection`, '-n', ns]));
  targets = {
    database: hostPort(env.DATABASE_URL!),
    cache: hostPort(env.CACHE_URL!),
    queue: hostPort(env.QUEUE_URL!),
  };
  await allPodsReady(ns, tierPods(APP, 'web'), 2);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
  if (other) deleteNamespaceAndWait(other);
});

const web = (path: string, init?: RequestInit) => serviceRequest(ns, `${APP}-web`, path, init);
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  web(path, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  });

describeReal('the demo app on the real node', () => {
  it('answers through the web Service and reaches every tier in one request', async () => {
    const res = await web(`/touch-all?queue=${QUEUE}`);
    expect(res.status).toBe(200);
    for (const tier of ['database', 'sessions', 'shards', 'edgeCache', 'queue'])
      expect({ tier, ...res.body.results?.[tier] }).toMatchObject({ tier, ok: true });
  });

  it('serves a static asset through the edge cache Service: a MISS, then a HIT, the bytes the web tier serves', async () => {
    const touched = await web(`/touch-all?queue=${QUEUE}`);
    const asset = touched.body.results.edgeCache.url as string;
    const edge = (path: string) => serviceRequest(ns, `${APP}-edge`, path);
    const origin = await web(asset);
    const first = await edge(asset);
    const second = await edge(asset);
    expect([first.status, first.headers.get(CACHE_STATUS_HEADER)]).toEqual([200, 'MISS']);
    expect([second.status, second.headers.get(CACHE_STATUS_HEADER)]).toEqual([200, 'HIT']);
    expect(second.body).toEqual(origin.body);
    expect(second.headers.get('etag')).toBe(origin.headers.get('etag'));
  });

  it('reads back from a replica what it wrote through the primary', async () => {
    const written = await post('/db/items', { value: 'replicated' });
    expect(written.status).toBe(201);
    expect(written.body.inRecovery).toBe(false);
    const read = await eventually('the row on the replica', async () => {
      const r = await web(`/db/items/${written.body.id}?from=replica`);
      return r.status === 200 && r;
    });
    expect(read.body).toMatchObject({ value: 'replicated', inRecovery: true });
    expect(read.body.serverAddr).not.toBe(written.body.serverAddr);
  });

  it('keeps a session when the web pod that created it is deleted', async () => {
    const created = await post('/session', { data: 'cart-42' });
    expect(created.status).toBe(201);
    const cookie = created.headers.get('set-cookie')!.split(';')[0]!;
    const creator = created.body.servedBy as string;
    kubectl(['delete', 'pod', '-n', ns, creator, '--wait=true']);
    const back = await eventually('the session from another pod', async () => {
      const r = await web('/session', { headers: { cookie } });
      return r.status === 200 && r.body.servedBy !== creator && r;
    });
    expect(back.body).toMatchObject({ data: 'cart-42', createdBy: creator });
  });

  it("is scaled by the operator on the queue's depth, read with the operator's own login", async () => {
    const worker = await eventually('a decision on the read depth', () => {
      const w = getApp(ns, APP).status?.consumers?.find((c: any) => c.name === 'worker');
      return typeof w?.lastDecision?.queueDepth === 'number' && w;
    });
    expect(worker.lastDecision).toMatchObject({ desiredReplicas: 1 });
  });

  it('has a published message consumed by the demo consumer', async () => {
    const published = await post(`/queue/${QUEUE}`, { payload: { resize: 'photo-1' } });
    expect(published.status).toBe(202);
    expect(published.body.confirmed).toBe(true);
    await eventually('the consumer to record the message', async () => {
      const r = await web(`/queue/${QUEUE}/consumed/${published.body.id}`);
      return r.status === 200 && r.body.consumed === true;
    });
  });

  it("runs the cache with maxmemory derived from its memory limit and the spec's eviction policy", () => {
    // The live spec as the operator reads it (with its defaults).
    const spec = parseApp(getApp(ns, APP).spec).spec.cache!;
    const primary: string = getApp(ns, APP).status.cache.primary;
    const auth = decodeSecret(json<any>(['get', 'secret', `${APP}-cache-auth`, '-n', ns]));
    // INFO is the operator's (the app's login may not run it). Its password is on the exec's command
    // line (a test's kubectl on this machine), not in redis-cli's arguments.
    const r = execIn(ns, primary, [
      'env',
      `REDISCLI_AUTH=${auth[CACHE_PASSWORD_KEYS.operator]}`,
      'redis-cli',
      // TLS only (spec.cache.tls, the default): the server's chain checked against the app's CA.
      '--tls',
      '--cacert',
      '/tls/ca.crt',
      '--user',
      CACHE_USERS.operator,
      'INFO',
      'memory',
    ]);
    expect(r.ok).toBe(true);
    const info = parseInfo(r.stdout);
    expect(Number(info.get('maxmemory'))).toBe(
      maxMemoryBytes(spec.resources.limits.memory, spec.memoryHeadroomPercent),
    );
    expect(Number(info.get('maxmemory'))).toBeGreaterThan(0);
    expect(info.get('maxmemory_policy')).toBe(spec.evictionPolicy);
  });

  it('probes the consumer on the health endpoint it names, and it answers 200 while it consumes', () => {
    const [pod] = json<any>(['get', 'pods', '-n', ns, '-l', tierPods(APP, 'consumer')]).items;
    const c = pod.spec.containers[0];
    expect(c.readinessProbe.httpGet).toEqual({ path: '/healthz', port: 'health', scheme: 'HTTP' });
    expect(c.livenessProbe.tcpSocket).toEqual({ port: 'health' });
    expect(pod.status.conditions.find((x: any) => x.type === 'Ready').status).toBe('True');
    const r = execIn(ns, pod.metadata.name, [
      'node',
      '-e',
      "fetch('http://127.0.0.1:8081/healthz').then(r=>console.log(r.status),e=>console.log(e.message))",
    ]);
    expect(r.stdout.trim()).toBe('200');
  });
});

describeReal('NetworkPolicies on the real node, probed with real connections', () => {
  // A pod in another namespace, as any other workload of the cluster would be; and one in the
  // operator's own namespace without the operator's label, which must be as foreign.
  const probe = 'probe';
  const insider = 'real-demo-probe';
  beforeAll(async () => {
    startProbe(other, probe, { app: probe });
    startProbe(OPERATOR_NAMESPACE, insider, { app: insider });
    await allPodsReady(other, 'app=probe', 1);
    await allPodsReady(OPERATOR_NAMESPACE, `app=${insider}`, 1);
  });
  afterAll(() => {
    tryKubectl(['delete', 'pod', '-n', OPERATOR_NAMESPACE, insider, '--ignore-not-found', '--wait=false']);
  });

  const fqdn = (host: string) => (host.includes('.') ? host : `${host}.${ns}.svc.cluster.local`);
  const connect = (namespace: string, pod: string, target: { host: string; port: number }) =>
    connectFrom(namespace, pod, { host: fqdn(target.host), port: target.port });
  const webPod = () => podStates(ns, tierPods(APP, 'web'))[0]!.name;
  const consumerPod = () => podStates(ns, tierPods(APP, 'consumer'))[0]!.name;

  it.each(['database', 'cache', 'queue'] as const)(
    'a pod in another namespace cannot reach the %s',
    (tier) => {
      const r = connect(other, probe, targets[tier]);
      expect({ tier, outcome: r.stdout.trim() }).not.toEqual({ tier, outcome: 'open' });
    },
  );

  it('a pod in another namespace reaches the entry point (the web Service)', () => {
    const r = connect(other, probe, { host: `${APP}-web`, port: 80 });
    expect(r.stdout.trim()).toBe('open');
  });

  it.each(['database', 'cache', 'queue'] as const)(
    "a pod in the operator's namespace without the operator's label cannot reach the %s",
    (tier) => {
      const r = connect(OPERATOR_NAMESPACE, insider, targets[tier]);
      expect({ tier, outcome: r.stdout.trim() }).not.toEqual({ tier, outcome: 'open' });
    },
  );

  it("that pod connects where it is let (the web Service), so its refusals above are the policies'", () => {
    const r = connect(OPERATOR_NAMESPACE, insider, { host: `${APP}-web`, port: 80 });
    expect(r.stdout.trim()).toBe('open');
  });

  it.each(['database', 'cache', 'queue'] as const)('the web pods reach the %s', (tier) => {
    const r = connect(ns, webPod(), targets[tier]);
    expect({ tier, outcome: r.stdout.trim() }).toEqual({ tier, outcome: 'open' });
  });

  it('the consumer pods reach the broker', () => {
    const r = connect(ns, consumerPod(), targets.queue);
    expect(r.stdout.trim()).toBe('open');
  });

  it("the web and consumer pods cannot reach the broker's management API: it is the operator's", () => {
    for (const [label, pod] of [
      ['web', webPod()],
      ['consumer', consumerPod()],
    ] as const) {
      const r = connect(ns, pod, { host: targets.queue.host, port: 15672 });
      expect({ label, outcome: r.stdout.trim() }).not.toEqual({ label, outcome: 'open' });
    }
  });

  it("from a web pod, the app's login cannot declare a queue of its own choosing, and it holds no management URL", () => {
    // Run in the web pod with its own environment (QUEUE_URL and QUEUE_CA_FILE from the connection Secret).
    const script =
      "const amqp=require('amqplib');const ca=[require('fs').readFileSync(process.env.QUEUE_CA_FILE,'utf8')];" +
      '(async()=>{const c=await amqp.connect(process.env.QUEUE_URL,{timeout:5000,ca});' +
      "c.on('error',()=>{});const ch=await c.createChannel();ch.on('error',()=>{});" +
      "try{await ch.assertQueue('stray',{durable:true});console.log('declared')}catch(e){console.log(e.message)}" +
      "await c.close().catch(()=>{});console.log('env '+Object.keys(process.env).filter(k=>/MANAGEMENT/.test(k)).join(','))})()" +
      ".catch(e=>{console.log('failed '+e.message);process.exit(1)})";
    const r = execIn(ns, webPod(), ['node', '-e', script]);
    expect(r.stdout).toMatch(/ACCESS_REFUSED - access to queue 'stray' in vhost '\/' refused/);
    expect(r.stdout).toContain('env \n');
  });

  it("from a web pod, the app's cache login cannot empty or reconfigure the cache", () => {
    // Run in the web pod with its own environment (CACHE_URL from the connection Secret).
    const script =
      "const {createClient}=require('redis');const ca=require('fs').readFileSync(process.env.CACHE_CA_FILE,'utf8');" +
      '(async()=>{const c=createClient({url:process.env.CACHE_URL,socket:{ca}});' +
      "c.on('error',()=>{});await c.connect();" +
      "for(const cmd of [['FLUSHALL'],['CONFIG','SET','maxmemory','1'],['REPLICAOF','127.0.0.1','1'],['SET','k','v']])" +
      "{try{console.log(cmd[0]+' '+(await c.sendCommand(cmd)))}catch(e){console.log(cmd[0]+' '+String(e.message).split(' ')[0])}}" +
      "await c.quit()})().catch(e=>{console.log('failed '+e.message);process.exit(1)})";
    const r = execIn(ns, webPod(), ['node', '-e', script]);
    expect(r.stdout.trim().split('\n')).toEqual([
      'FLUSHALL NOPERM',
      'CONFIG NOPERM',
      'REPLICAOF NOPERM',
      'SET OK',
    ]);
  });

  it.each(['database', 'cache', 'queue'] as const)('the operator reaches the %s', (tier) => {
    const pod = json<any>([
      'get',
      'pods',
      '-n',
      OPERATOR_NAMESPACE,
      '-l',
      'scalableapp.io/operator=true',
    ]).items.find((p: any) => p.status.phase === 'Running').metadata.name as string;
    const r = connect(OPERATOR_NAMESPACE, pod, targets[tier]);
    expect({ tier, outcome: r.stdout.trim() }).toEqual({ tier, outcome: 'open' });
  });
});
