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
} from './support/real-node.ts';
import { localize } from '../tools/local-sample.ts';

let ns: string;
beforeAll(() => {
  installInClusterOperator();
  ns = createRealNamespace('real-failures');
});
afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

/** A web tier (as given) beside a healthy cache, localized; the web image is set after localizing. */
function apply(name: string, web: Record<string, unknown>, image: string): void {
  const app = localize(
    {
      apiVersion: 'scalableapp.io/v1alpha1',
      kind: 'ScalableApp',
      metadata: { name },
      spec: { web: { image: 'placeholder', replicas: 1, ...web }, cache: { replicas: 0 } },
    },
    localImages(),
  ) as any;
  app.spec.web.image = image;
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(app));
}

const condition = (a: any, type: string) => a?.status?.conditions?.find((c: any) => c.type === type);
const webPods = (name: string) =>
  json<any>([
    'get',
    'pods',
    '-n',
    ns,
    '-l',
    `app.kubernetes.io/part-of=${name},app.kubernetes.io/component=web`,
  ]).items.map((p: any) => p.metadata.name as string);
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
    // A registry on loopback that does not exist: the pull fails here, without leaving the machine.
    apply('missing', {}, 'localhost:1/scalableapp/does-not-exist:1');
    await eventually(
      'the cache of the app Ready',
      () => condition(getApp(ns, 'missing'), 'CacheReady')?.status === 'True',
      300_000,
      1000,
    );
    const cacheSet = () => json<any>(['get', 'statefulset', '-n', ns, 'missing-cache']);
    const before = cacheSet();
    const a = await blocked('missing', 'ImagePullFailed');
    expect(condition(a, 'Ready')).toMatchObject({ status: 'False' });
    expect(condition(a, 'Ready').message).toContain('missing-web');
    expect(a.status.observedGeneration).toBe(a.metadata.generation);
    // Kubelet's own back-off keeps the pod failing; the operator says it once and rewrites nothing.
    await new Promise((r) => setTimeout(r, 20_000));
    expect(warnings('missing', 'ImagePullFailed')).toBe(1);
    const after = cacheSet();
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(
      after.metadata.resourceVersion === before.metadata.resourceVersion ||
        after.status.readyReplicas === before.status.readyReplicas,
    ).toBe(true);
  });

  it('a container that exits: WebReady names the pod as crash-looping', async () => {
    // The consumer image as a web server: without QUEUE_NAME it exits with an error at once.
    apply('crashing', {}, localImages().IMAGE_DEMO_CONSUMER);
    const a = await blocked('crashing', 'ContainerCrashLooping');
    expect(condition(a, 'WebReady').message).toMatch(/crash-looping \(\d+ restarts?; last exit [1-9]/);
  });

  it('a readiness probe that never passes: WebReady names the pod as not ready', async () => {
    apply('unready', { healthCheck: { path: '/no-such-path' } }, localImages().IMAGE_DEMO_APP);
    const a = await eventually(
      'unready: WebReady=False naming the pod, not ready or restarted by its probe',
      () => {
        const app = getApp(ns, 'unready');
        const web = condition(app, 'WebReady');
        return (
          web?.status === 'False' &&
          ['ContainerNotReady', 'ContainerCrashLooping'].includes(web.reason) &&
          webPods('unready').some((p: string) => web.message.includes(`pod ${p}`)) &&
          app
        );
      },
      240_000,
      1000,
    );
    expect(condition(a, 'Ready').status).toBe('False');
  });
});
