// ScalableApps in cluster tests: apply one, read it, wait until it is Ready at its current generation.
// Every app a test creates goes through applyApp or applyManifest, which label it for the operator of
// the test (docs/adr/0012): the tests' own operators run with `--instance e2e`, so the default
// operator of `npm run up`, watching every namespace, never acts on a test's apps.
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { INSTANCE_LABEL } from '../../operator/controller/instance.ts';
import { eventually, json, kubectl } from './kube.ts';

/** The instance of the operators the tests start themselves (e2e/support/operator.ts). */
export const E2E_INSTANCE = 'e2e';

export interface AppOptions {
  /**
   * The operator instance the app is for: the tests' own operators' (the default), or null for an
   * operator without an instance (no label: the default operator's).
   */
  readonly instance?: string | null;
}

type Manifest = {
  metadata?: { labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

/** The manifest with the instance label `opts` asks for (the tests' own operators' by default). */
export function forInstance<T extends Manifest>(app: T, { instance = E2E_INSTANCE }: AppOptions = {}): T {
  if (instance === null) return app;
  const labels = { ...app.metadata?.labels, [INSTANCE_LABEL]: instance };
  return { ...app, metadata: { ...app.metadata, labels } };
}

/** Applies a ScalableApp, given as an object or the path of a YAML file (a sample), labelled. */
export function applyManifest(ns: string, app: Manifest | string, opts?: AppOptions): void {
  const object = typeof app === 'string' ? (parse(readFileSync(app, 'utf8')) as Manifest) : app;
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(forInstance(object, opts)));
}

export function applyApp(ns: string, name: string, spec: unknown, opts?: AppOptions): void {
  applyManifest(
    ns,
    { apiVersion: 'scalableapp.io/v1alpha1', kind: 'ScalableApp', metadata: { name }, spec },
    opts,
  );
}

export const getApp = (ns: string, name: string) => json<any>(['get', 'sapp', name, '-n', ns]);

/** Ready, and about the spec as it is now (not an older generation's Ready). */
export function isReadyAtGeneration(a: any): boolean {
  const ready = a?.status?.conditions?.find((c: any) => c.type === 'Ready');
  return !!a && a.status?.observedGeneration === a.metadata.generation && ready?.status === 'True';
}

export const readyAt = (ns: string, name: string) =>
  eventually(`${name} Ready at its current generation`, () => {
    const a = getApp(ns, name);
    return isReadyAtGeneration(a) && a;
  });

/** A Secret's data, decoded. */
export const decodeSecret = (s: { data?: Record<string, string> }) =>
  Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

/**
 * manifests/samples/12-full-stack.yaml with a CPU request of 20m per tier. The sample as it is asks
 * for about 5 CPUs: many copies would not fit on the simulated nodes, and what the operator has to
 * build is the same (for the many-apps test and benchmark).
 */
export function smallFullStackSpec(): Record<string, any> {
  const sample = parse(
    readFileSync(new URL('../../manifests/samples/12-full-stack.yaml', import.meta.url), 'utf8'),
  ) as { spec: Record<string, any> };
  const s = sample.spec;
  const small = { requests: { cpu: '20m' } };
  return {
    ...s,
    web: { ...s.web, resources: { ...s.web.resources, ...small } },
    cache: { ...s.cache, resources: small },
    database: { ...s.database, resources: small },
    shards: { ...s.shards, resources: small },
    queue: { ...s.queue, resources: small },
    consumers: s.consumers.map((c: object) => ({ ...c, resources: small })),
    edgeCache: { ...s.edgeCache, resources: small },
  };
}
