// What a user sees on the real node when a tier's pods cannot run: a missing image, a container that
// crashes, a probe that never passes. The tier's condition names the pod and the reason, one Warning
// Event says it once, and nothing else is touched: the healthy tiers keep their objects as they were.
import { stringify } from 'yaml';
import { getApp } from './support/apps.ts';
import { eventually, json, kubectl } from './support/kube.ts';
import {
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  installInClusterOperator,
  localImages,
  podStates,
  tierPods,
  localApp,
} from './support/real-node.ts';

let ns: string;
// Every broken app is applied at once, each test then waits on its own: the kubelet's back-offs and
// the probes' patience run side by side rather than one after another.
beforeAll(() => {
  installInClusterOperator();
  ns = createRealNamespace('real-failures');
  const images = localImages();
  // A registry on loopback that does not exist: the pull fails here, without leaving the machine.
  apply('missing', {}, 'localhost:1/scalableapp/does-not-exist:1');
  // The consumer image as a web server: without QUEUE_NAME it exits with an error at once.
  apply('crashing', {}, images.IMAGE_DEMO_CONSUMER);
  // The app serves its liveness path (/healthz) and not the readiness path: it runs, never ready.
  apply(
    'unready',
    { healthCheck: { path: '/no-such-path', livenessPath: '/healthz' } },
    images.IMAGE_DEMO_APP,
  );
  // Both probes on a path the app does not serve (the path it serves is set after localizing).
  apply(
    'unlive',
    { healthCheck: { path: '/no-such-path', livenessPath: '/no-such-path' } },
    images.IMAGE_DEMO_APP,
    [{ name: 'HEALTH_PATH', value: '/healthz' }],
  );
});
afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

/** A web tier (as given) beside a healthy cache, localized; the web image (and env) set after localizing. */
function apply(name: string, web: Record<string, unknown>, image: string, env?: unknown[]): void {
  const app = localApp(name, { web: { image: 'placeholder', replicas: 1, ...web }, cache: { replicas: 0 } });
  app.spec.web.image = image;
  if (env) app.spec.web.env = env;
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(app));
}

const condition = (a: any, type: string) => a?.status?.conditions?.find((c: any) => c.type === type);
const webPods = (name: string) => podStates(ns, tierPods(name, 'web')).map((p) => p.name);
const warnings = (name: string, reason: string) =>
  json<any>([
    'get',
    'events',
    '-n',
    ns,
    '--field-selector',
    `involvedObject.kind=ScalableApp,involvedObject.name=${name},reason=${reason}`,
  ]).items.reduce((n: number, e: any) => n + (e.count ?? 1), 0);

/** Waits for WebReady=False with `reason`, naming a pod of the tier, and returns the app. */
async function blocked(name: string, reason: string) {
  return eventually(
    `${name}: WebReady=False ${reason}, naming the pod`,
    () => {
      const a = getApp(ns, name);
      const web = condition(a, 'WebReady');
      const pods = webPods(name);
      return (
        web?.status === 'False' &&
        web.reason === reason &&
        pods.some((p: string) => web.message.includes(`pod ${p}`)) &&
        a
      );
    },
    240_000,
    1000,
  );
}

describeReal('a tier whose pods cannot run, on the real node', () => {
  it('a missing image: WebReady names the pod and the pull failure; the cache is left alone; one Event', async () => {
    await eventually(
      'the cache of the app Ready',
      () => condition(getApp(ns, 'missing'), 'CacheReady')?.status === 'True',
      300_000,
      1000,
    );
    const cacheSet = () =>
      json<any>(['get', 'statefulset', '-n', ns, 'missing-cache', '--show-managed-fields']);
    const before = cacheSet();
    const a = await blocked('missing', 'ImagePullFailed');
    expect(condition(a, 'Ready')).toMatchObject({ status: 'False' });
    expect(condition(a, 'Ready').message).toContain('missing-web');
    expect(a.status.observedGeneration).toBe(a.metadata.generation);
    // Kubelet's own back-off keeps the pod failing; the operator says it once and rewrites nothing.
    await new Promise((r) => setTimeout(r, 20_000));
    expect(warnings('missing', 'ImagePullFailed')).toBe(1);
    // No write by the operator: its own Apply entry is as it was (the StatefulSet controller's status
    // updates may come and go).
    const operatorApply = (s: any) =>
      s.metadata.managedFields.find(
        (f: any) => f.manager === 'scalableapp-operator' && f.operation === 'Apply',
      );
    const after = cacheSet();
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(operatorApply(after)).toEqual(operatorApply(before));
    expect(operatorApply(before)).toBeDefined();
  });

  it('a container that exits: WebReady names the pod as crash-looping', async () => {
    const a = await blocked('crashing', 'ContainerCrashLooping');
    expect(condition(a, 'WebReady').message).toMatch(/crash-looping \(\d+ restarts?; last exit [1-9]/);
  });

  it('a readiness probe that never passes: WebReady names the running pod as not ready, and it is never restarted', async () => {
    const a = await blocked('unready', 'ContainerNotReady');
    expect(condition(a, 'WebReady').message).toMatch(/container web running but not ready/);
    expect(condition(a, 'Ready').status).toBe('False');
    expect(warnings('unready', 'ContainerNotReady')).toBe(1);
    expect(
      podStates(ns, tierPods('unready', 'web')).flatMap((p) => p.containers.map((c) => c.restarts)),
    ).toEqual([0]);
  });

  it('a liveness probe that never passes either: the pod is named, as not ready or as restarted by it', async () => {
    const a = await eventually(
      'unlive: WebReady=False naming the pod, not ready or restarted by its probe',
      () => {
        const app = getApp(ns, 'unlive');
        const web = condition(app, 'WebReady');
        return (
          web?.status === 'False' &&
          ['ContainerNotReady', 'ContainerCrashLooping'].includes(web.reason) &&
          webPods('unlive').some((p: string) => web.message.includes(`pod ${p}`)) &&
          app
        );
      },
      240_000,
      1000,
    );
    expect(condition(a, 'Ready').status).toBe('False');
    // Liveness does restart it (twice readiness's patience: 60 s with the defaults).
    await eventually(
      'unlive: the web container restarted by its liveness probe',
      () => podStates(ns, tierPods('unlive', 'web')).some((p) => p.containers.some((c) => c.restarts > 0)),
      240_000,
      2000,
    );
  });
});
