// The Manager against a fake apiserver: which ScalableApps enter its cache (the instance selector on
// the list and the watch), and that an app of another instance, or one that left the selection, gets
// no write at all: no apply, no prune, no status, no Event.
import { KubeConfig, Watch, type KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../api/scalable-app.ts';
import { ApiError, type Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import { discardLogger } from '../runtime/log.ts';
import { createMetrics, type Metrics } from '../runtime/metrics.ts';
import { LABEL, MANAGER } from '../tiers/labels.ts';
import { INSTANCE_LABEL } from './instance.ts';
import { Manager } from './manager.ts';

const NS = 'prod';
const APPS = collectionPath(`${GROUP}/${VERSION}`, PLURAL, NS);
const DEPLOYMENTS = collectionPath('apps/v1', 'deployments', NS);

type Obj = KubernetesObject & { spec?: unknown };

/** What the apiserver does with a label selector, for the forms the operator uses. */
function matches(o: KubernetesObject, selector: string | undefined): boolean {
  const labels = o.metadata?.labels ?? {};
  return (selector ?? '')
    .split(',')
    .filter(Boolean)
    .every((term) => {
      if (term.startsWith('!')) return !(term.slice(1) in labels);
      const [k, v] = term.split('=') as [string, string];
      return labels[k] === v;
    });
}

/** Lists what it holds (honouring the selector), records every mutating call, 404s every get. */
class FakeApiserver {
  readonly kc = new KubeConfig();
  readonly fieldManager = MANAGER;
  readonly lists: { path: string; labelSelector: string | undefined }[] = [];
  readonly writes: string[] = [];
  readonly objects = new Map<string, Obj[]>();

  async request(_verb: string, method: string, path: string): Promise<never> {
    throw new ApiError(method, path, 404, {}); // no Gateway API
  }
  async list(path: string, labelSelector?: string) {
    this.lists.push({ path, labelSelector });
    const items = (this.objects.get(path) ?? []).filter((o) => matches(o, labelSelector));
    return { metadata: { resourceVersion: '1' }, items };
  }
  async get(path: string): Promise<never> {
    throw new ApiError('GET', path, 404, {});
  }
  private write(verb: string, path: string, body?: unknown) {
    const about = (body as { involvedObject?: { name?: string } } | undefined)?.involvedObject?.name;
    this.writes.push(`${verb} ${path.split('?')[0]}${about ? ` (about ${about})` : ''}`);
    return Promise.resolve(body as KubernetesObject);
  }
  apply = (path: string, body: unknown) => this.write('apply', path, body);
  create = (path: string, body: unknown) => this.write('create', path, body);
  replace = (path: string, body: unknown) => this.write('replace', path, body);
  mergePatch = (path: string, body: unknown) => this.write('patch', path, body);
  delete = (path: string) => this.write('delete', path);
}

/** Every watch the informers open: instead of the apiserver, the test sends their events. */
const watches: { path: string; query: Record<string, unknown>; send: (type: string, o: unknown) => void }[] =
  [];
const realWatch = Watch.prototype.watch;
beforeAll(() => {
  Watch.prototype.watch = async function (path, query, callback) {
    watches.push({ path, query, send: callback });
    return new AbortController();
  };
});
afterAll(() => {
  Watch.prototype.watch = realWatch;
});
afterEach(() => {
  watches.length = 0;
});
const watchOf = (path: string) => watches.find((w) => w.path === path)!;

const app = (name: string, uid: string, instance?: string): Obj => ({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: {
    name,
    namespace: NS,
    uid,
    generation: 1,
    resourceVersion: '1',
    ...(instance ? { labels: { [INSTANCE_LABEL]: instance } } : {}),
  },
  spec: { web: { image: 'registry.example/shop:1', replicas: 1 } },
});
/** A child the operator made for an app: controlled by it, with the operator's labels. */
const deploymentOf = (a: Obj): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: `${a.metadata!.name}-web`,
    namespace: NS,
    uid: `${a.metadata!.uid}-web`,
    resourceVersion: '1',
    labels: { [LABEL.managedBy]: MANAGER, [LABEL.partOf]: a.metadata!.name! },
    ownerReferences: [
      {
        apiVersion: API_VERSION,
        kind: KIND,
        name: a.metadata!.name!,
        uid: a.metadata!.uid!,
        controller: true,
      },
    ],
  },
  spec: { replicas: 1 },
});

let running: { manager: Manager; stop: AbortController; done: Promise<void> }[] = [];
afterEach(async () => {
  for (const r of running) {
    r.stop.abort();
    await r.done;
    r.manager.stop();
  }
  running = [];
});

async function startManager(api: FakeApiserver, instance?: string) {
  const metrics = createMetrics({ defaultMetrics: false });
  const manager = new Manager({
    kube: api as unknown as Kube,
    log: discardLogger,
    metrics,
    concurrency: 2,
    namespace: NS,
    ...(instance ? { instance } : {}),
  });
  await manager.startCaches();
  return { manager, metrics };
}
function runWorkers(manager: Manager) {
  const stop = new AbortController();
  running.push({ manager, stop, done: manager.runWorkers(stop.signal) });
}
/** Reconciles finished so far (controller_runtime_reconcile_total, every result). */
const reconciles = async (metrics: Metrics) =>
  (await metrics.reconcileTotal.get()).values.reduce((sum, v) => sum + v.value, 0);
/** Waits until `n` reconciles in all have finished. */
async function reconciled(metrics: Metrics, n: number): Promise<void> {
  for (let waited = 0; (await reconciles(metrics)) < n; waited += 5) {
    if (waited > 10_000) throw new Error(`${await reconciles(metrics)} reconciles finished, not ${n}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the Manager selects the ScalableApps of its instance', () => {
  it.each([
    [undefined, '!scalableapp.io/instance'],
    ['e2e', 'scalableapp.io/instance=e2e'],
  ])('instance %s: %s on the list and on the watch', async (instance, selector) => {
    const api = new FakeApiserver();
    const { manager } = await startManager(api, instance);
    running.push({ manager, stop: new AbortController(), done: Promise.resolve() });
    expect(api.lists.filter((l) => l.path === APPS)).toEqual([{ path: APPS, labelSelector: selector }]);
    expect(watchOf(APPS).query.labelSelector).toBe(selector);
    // Children are selected by the operator's label alone: an app's children carry no instance.
    expect(api.lists.find((l) => l.path === DEPLOYMENTS)?.labelSelector).toBe(
      `${LABEL.managedBy}=${MANAGER}`,
    );
  });

  it("reconciles its own app and writes nothing for another instance's app, even on its child's event", async () => {
    const api = new FakeApiserver();
    const mine = app('mine', 'u-mine', 'e2e');
    const theirs = app('theirs', 'u-theirs'); // the default operator's
    const other = app('blue', 'u-blue', 'blue');
    api.objects.set(APPS, [mine, theirs, other]);
    api.objects.set(DEPLOYMENTS, [deploymentOf(theirs), deploymentOf(other)]);
    const { manager, metrics } = await startManager(api, 'e2e');
    runWorkers(manager);
    // One reconcile per key: its app's, and the two its children's events name.
    await reconciled(metrics, 3);
    // Its own app is reconciled (children applied, status written, Events recorded)...
    expect(api.writes).toContain(`apply ${APPS}/mine`); // the status
    expect(api.writes.some((w) => w.startsWith(`apply ${DEPLOYMENTS}/mine-web`))).toBe(true);
    // ...and nothing of the others, though their children are in the cache and change.
    const foreign = () => api.writes.filter((w) => /theirs|blue/.test(w));
    expect(foreign()).toEqual([]);
    for (const child of [deploymentOf(theirs), deploymentOf(other)]) {
      watchOf(DEPLOYMENTS).send('MODIFIED', {
        ...child,
        metadata: { ...child.metadata, resourceVersion: '2' },
        spec: { replicas: 5 },
      });
    }
    await reconciled(metrics, 5);
    expect(foreign()).toEqual([]);
  });

  it('makes no write when its app leaves the selection: no prune, no status, no Event', async () => {
    const api = new FakeApiserver();
    const mine = app('shop', 'u-shop', 'e2e');
    const stale = {
      ...deploymentOf(mine),
      // A child this spec no longer wants: a reconcile would prune it.
      kind: 'HorizontalPodAutoscaler',
      apiVersion: 'autoscaling/v2',
    } as Obj;
    api.objects.set(APPS, [mine]);
    api.objects.set(DEPLOYMENTS, [deploymentOf(mine)]);
    api.objects.set(collectionPath('autoscaling/v2', 'horizontalpodautoscalers', NS), [stale]);
    const { manager, metrics } = await startManager(api, 'e2e');
    runWorkers(manager);
    await reconciled(metrics, 1);
    expect(api.writes).toContain(`apply ${APPS}/shop`); // it was managing the app
    api.writes.length = 0;

    // Relabelled to another instance: the watch, filtered by our selector, reports it DELETED (the
    // object as it is now, with the new label). The app itself was not deleted.
    const handedOver = {
      ...mine,
      metadata: { ...mine.metadata, resourceVersion: '2', labels: { [INSTANCE_LABEL]: 'blue' } },
    };
    watchOf(APPS).send('DELETED', handedOver);
    await reconciled(metrics, 2);
    // The new operator's applies change the children: their events reach this operator too.
    const child = deploymentOf(mine);
    watchOf(DEPLOYMENTS).send('MODIFIED', {
      ...child,
      metadata: { ...child.metadata, resourceVersion: '3' },
    });
    await reconciled(metrics, 3);
    expect(api.writes).toEqual([]);
  });
});
