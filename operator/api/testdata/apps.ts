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
