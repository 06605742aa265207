// The edge cache on the real node, through its Service, in front of the demo app's web pods: a HIT
// within the TTL, the last copy served STALE while every web pod is gone (and nothing for what was
// never cached), and a MISS for the same URL once a new assetVersion is rolled out.
import { setTimeout as sleep } from 'node:timers/promises';
import { getApp, isReadyAtGeneration } from './support/apps.ts';
import { eventually, kubectl } from './support/kube.ts';
import {
  allPodsReady,
  applyAndAwaitReady,
  deleteNamespaceAndWait,
  describeReal,
  createRealNamespace,
  installInClusterOperator,
  localApp,
  podStates,
  serviceRequest,
  tierPods,
} from './support/real-node.ts';
import { CACHE_STATUS_HEADER, HEALTH_PATH } from '../operator/server-config/edge-cache.ts';
import { assetUrl } from '../examples/demo-app/assets.ts';
import { EDGE } from '../operator/tiers/edge-cache.ts';

const APP = 'site';
const PREFIX = '/static';
/** Short, so the test can outwait it; the stale window long, so it never runs out during the test. */
const TTL_SECONDS = 3;

const app = (assetVersion: string, webReplicas = 1) =>
  localApp(APP, {
    web: { image: 'placeholder', port: 8080, replicas: webReplicas, healthCheck: { path: '/healthz' } },
    edgeCache: {
      replicas: 1,
      pathPrefix: PREFIX,
      ttlSeconds: TTL_SECONDS,
      staleIfErrorSeconds: 600,
      assetVersion,
    },
  });

/** The demo's asset URLs for a version: versioned (immutable) and the unversioned alias. */
const versioned = (version: string, name = 'app.css') =>
  assetUrl({ basePath: PREFIX, version, edgeConfigured: true }, name);
const UNVERSIONED = `${PREFIX}/app.css`;

let ns: string;
beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-edge');
  await applyAndAwaitReady(ns, app('v1'), 'the site Ready on the real node');
  await allPodsReady(ns, tierPods(APP, 'web'), 1);
  await allPodsReady(ns, tierPods(APP, EDGE), 1);
  // A Ready pod is behind its Service only once the node's proxy has the endpoint: until then a
  // connect is refused. Not counted as the edge's first request: the health path is not cached.
  await eventually(
    'the web and edge Services answering',
    async () => (await origin('/healthz')).status === 200 && (await edge(HEALTH_PATH)).status === 200,
    120_000,
    500,
  );
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

const edge = (path: string) => serviceRequest(ns, `${APP}-edge`, path);
const origin = (path: string) => serviceRequest(ns, `${APP}-web`, path);
const seen = (r: { status: number; headers: Headers }) => [r.status, r.headers.get(CACHE_STATUS_HEADER)];

describeReal('the edge cache on the real node', () => {
  /** When each URL was last stored by the edge (a MISS), to outwait its TTL. */
  const storedAt = new Map<string, number>();

  it('answers a MISS and then a HIT within the TTL, with the bytes the web pods serve', async () => {
    for (const url of [versioned('v1'), UNVERSIONED]) {
      const fromOrigin = await origin(url);
      expect(fromOrigin.status).toBe(200);
      const first = await edge(url);
      storedAt.set(url, Date.now());
      const second = await edge(url);
      expect({ url, first: seen(first), second: seen(second) }).toEqual({
        url,
        first: [200, 'MISS'],
        second: [200, 'HIT'],
      });
      expect(second.body).toEqual(fromOrigin.body);
      // The edge's policy, not the origin's immutable one, is what clients are told.
      expect(second.headers.get('cache-control')).toBe(`public, max-age=${TTL_SECONDS}, stale-if-error=600`);
    }
  });

  it('serves its expired copies STALE while every web pod is gone, and fails what it never cached', async () => {
    kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(app('v1', 0)));
    await eventually('every web pod gone', () => podStates(ns, tierPods(APP, 'web')).length === 0, 180_000);
    // Past the TTL of every stored copy: only the stale rule can answer them now.
    const last = Math.max(...storedAt.values());
    await sleep(Math.max(0, last + (TTL_SECONDS + 1) * 1000 - Date.now()));
    for (const url of storedAt.keys()) {
      const r = await edge(url);
      expect({ url, seen: seen(r) }).toEqual({ url, seen: [200, 'STALE'] });
      expect(String(r.body)).toContain('asset version v1');
    }
    // Never fetched, so nothing to fall back on: the origin really is unreachable.
    const missing = await edge(versioned('v1', 'app.js'));
    expect(missing.status).toBeGreaterThanOrEqual(502);
  });

  it('misses the same URL after a new assetVersion rolls out, and caches the new bytes', async () => {
    kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(app('v2', 1)));
    await eventually(
      'the site Ready at its new generation',
      () => isReadyAtGeneration(getApp(ns, APP)),
      600_000,
      2000,
    );
    await allPodsReady(ns, tierPods(APP, 'web'), 1);
    // Ready counts the edge pods of the new config; wait until the old one has left entirely (a
    // terminating pod is still listed) and the node's proxy sends the Service to the new one: an
    // endpoint of a pod that is gone swallows the connect until the proxy drops it.
    await eventually(
      'one edge pod, of the new version',
      () => {
        const pods = podStates(ns, tierPods(APP, EDGE));
        return pods.length === 1 && pods[0]?.ready;
      },
      180_000,
    );
    await eventually(
      'the edge Service answering',
      async () => (await edge(HEALTH_PATH)).status === 200,
      120_000,
      500,
    );
    const first = await edge(UNVERSIONED);
    const second = await edge(UNVERSIONED);
    expect([seen(first), seen(second)]).toEqual([
      [200, 'MISS'],
      [200, 'HIT'],
    ]);
    expect(String(second.body)).toContain('asset version v2');
    const next = await edge(versioned('v2'));
    expect(seen(next)).toEqual([200, 'MISS']);
    // The old version's URL is not served by the new web pods, and a 404 is never cached.
    const old = await edge(versioned('v1'));
    expect(seen(old)).toEqual([404, 'MISS']);
  });
});
