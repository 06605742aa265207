// A ScalableApp with every default applied, as builders receive it: what unit tests start from.
import { scalableApp, type ScalableApp, type ScalableAppInput } from '../scalable-app.ts';

export function parseApp(spec: ScalableAppInput['spec'], name = 'shop', namespace = 'prod'): ScalableApp {
  return scalableApp.parse({
    apiVersion: 'scalableapp.io/v1alpha1',
    kind: 'ScalableApp',
    metadata: { name, namespace, uid: 'u1' },
    spec,
  });
}

/** Every tier, with the settings `over` replaces (top-level fields of the spec). */
export const everyTier = (over: Partial<ScalableAppInput['spec']> = {}): ScalableApp =>
  parseApp({
    web: { image: 'shop:1' },
    cache: {},
    database: {},
    shards: { count: 2, key: 'customer_id' },
    queue: { queues: [{ name: 'orders' }] },
    consumers: [{ name: 'worker', image: 'worker:1', queue: 'orders' }],
    edgeCache: {},
    ...over,
  });
