// Tests on the real node (docs/adr/0011): namespaces whose pods really run, the operator in the
// cluster from its own image, samples with the images built here, and reading what the pods do.
import { execFileSync } from 'node:child_process';
import { parse, stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { localize, readLocalImages, type LocalImages } from '../../tools/local-sample.ts';
import { createNamespace, eventually, json, kubectl, kubectlAsync, tryKubectl } from './kube.ts';
import { getApp, isReadyAtGeneration } from './apps.ts';
import { CA_MOUNT } from '../../operator/tiers/tls.ts';

const tools = new URL('../../tools/', import.meta.url).pathname;

/** Whether this run has a real node (SCALABLEAPP_NODES=simulated runs without one). */
export const REAL_NODES = (process.env.SCALABLEAPP_NODES ?? 'real') === 'real';

/**
 * `describe` for suites that need the real node; with simulated nodes only they are skipped, and say
 * so. Jest's globals are read when it is called, so scripts (bench/) may import this module too.
 */
export function describeReal(name: string, fn: () => void): void {
  (REAL_NODES ? describe : describe.skip)(name, fn);
}

/** A test pod's securityContext under the restricted Pod Security Standard: a non-root uid of its own. */
export const RESTRICTED_POD = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  fsGroup: 65532,
  seccompProfile: { type: 'RuntimeDefault' },
};
/** A test container's securityContext under the restricted Pod Security Standard. */
export const RESTRICTED_CONTAINER = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

let images: LocalImages | undefined;
export const localImages = (): LocalImages => (images ??= readLocalImages());

/** A fresh namespace whose pods run on the real node, enforcing the restricted Pod Security Standard. */
export function createRealNamespace(prefix: string, labels: Record<string, string> = {}): string {
  const ns = createNamespace(prefix, { 'pod-security.kubernetes.io/enforce': 'restricted', ...labels });
  execFileSync('bash', [`${tools}node-system.sh`, 'namespace', ns], { stdio: 'inherit' });
  return ns;
}

let operatorInstalled = false;
/** The operator in the cluster, from the local image (tools/operator-incluster.sh), once per run. */
export function installInClusterOperator(): void {
  if (operatorInstalled) return;
  execFileSync('bash', [`${tools}operator-incluster.sh`, 'install'], { stdio: 'inherit' });
  operatorInstalled = true;
}

/**
 * Waits (10 minutes at most) until a ScalableApp is Ready at its generation; when it never is, the
 * error says which of its conditions were not True at the end, and why.
 */
export async function awaitReady(ns: string, name: string, what: string): Promise<any> {
  let last: any;
  return eventually(
    what,
    () => {
      last = getApp(ns, name);
      return isReadyAtGeneration(last) && last;
    },
    600_000,
    2000,
  ).catch((err: unknown) => {
    const notTrue = (
      (last?.status?.conditions ?? []) as {
        type: string;
        status: string;
        reason?: string;
        message?: string;
      }[]
    )
      .filter((c) => c.status !== 'True')
      .map((c) => `${c.type}=${c.status} ${c.reason ?? ''}: ${c.message ?? ''}`);
    throw new Error(
      `${(err as Error).message}\nat generation ${last?.metadata?.generation}, observed ${last?.status?.observedGeneration}; ` +
        `not True: ${notTrue.join(' | ') || 'none'}`,
    );
  });
}

/** Applies a ScalableApp in `ns` and waits (10 minutes at most) until it is Ready at its generation. */
export function applyAndAwaitReady(ns: string, app: Record<string, any>, what: string): Promise<any> {
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(app));
  return awaitReady(ns, app.metadata.name, what);
}

/** The label selector of one tier's pods of an app (`component` as the operator labels it). */
export const tierPods = (app: string, component: string): string =>
  `app.kubernetes.io/part-of=${app},app.kubernetes.io/component=${component}`;

/** A ScalableApp named `name` with this spec, with the local images, volumes and CPU requests. */
export function localApp(name: string, spec: Record<string, unknown>): Record<string, any> {
  return localize(
    { apiVersion: 'scalableapp.io/v1alpha1', kind: 'ScalableApp', metadata: { name }, spec },
    localImages(),
  );
}

/** A sample (or any ScalableApp YAML) with the local images, volumes and CPU requests. */
export function localSample(path: string): Record<string, any> {
  return localize(parse(readFileSync(path, 'utf8')) as Record<string, unknown>, localImages());
}

export interface PodState {
  name: string;
  node: string;
  phase: string;
  ready: boolean;
  containers: { name: string; ready: boolean; running: boolean; restarts: number; waiting?: string }[];
}

export function podStates(ns: string, selector?: string): PodState[] {
  const list = json<any>(['get', 'pods', '-n', ns, ...(selector ? ['-l', selector] : [])]);
  return list.items.map((p: any) => ({
    name: p.metadata.name,
    node: p.spec.nodeName ?? '',
    phase: p.status.phase,
    ready: p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ?? false,
    containers: (p.status.containerStatuses ?? []).map((c: any) => ({
      name: c.name,
      ready: c.ready,
      running: !!c.state?.running,
      restarts: c.restartCount,
      ...(c.state?.waiting ? { waiting: `${c.state.waiting.reason}: ${c.state.waiting.message ?? ''}` } : {}),
    })),
  }));
}

/** Runs a command in a pod's container and returns its outcome (never throws for a non-zero exit). */
export function execIn(
  ns: string,
  pod: string,
  command: string[],
  container?: string,
): { ok: boolean; stdout: string; stderr: string } {
  return tryKubectl(['exec', '-n', ns, pod, ...(container ? ['-c', container] : []), '--', ...command]);
}

/**
 * A TCP connect from inside a pod, with node (the demo and operator images have it), bounded to 3 s.
 * stdout says `open`, `timeout` or the error's code.
 */
export function connectFrom(ns: string, pod: string, target: { host: string; port: number }) {
  const script =
    `const s=require('net').connect({host:'${target.host}',port:${target.port},timeout:3000});` +
    `s.on('connect',()=>{console.log('open');process.exit(0)});` +
    `s.on('timeout',()=>{console.log('timeout');process.exit(1)});s.on('error',e=>{console.log(e.code);process.exit(1)})`;
  return execIn(ns, pod, ['node', '-e', script]);
}

/**
 * A restricted pod of the demo image that only waits, to connect from (and run clients in, with the
 * keys of `envFromSecret` as its environment); not waited for. Given an app's connection Secret, it
 * also mounts the app's CA certificate where the URLs' sslrootcert names it, as the app's pods do
 * (optional: an app whose tiers all serve plaintext has none).
 */
export function startProbe(
  ns: string,
  name: string,
  labels: Record<string, string>,
  envFromSecret?: string,
): void {
  const app = envFromSecret?.match(/^(.+)-connection$/)?.[1];
  const caConfigMap = app ? `${app}-ca-cert` : undefined;
  kubectl(
    ['apply', '-n', ns, '-f', '-'],
    stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels },
      spec: {
        // node as PID 1 ignores SIGTERM: without this, deleting its namespace waits the default 30 s.
        terminationGracePeriodSeconds: 1,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'probe',
            image: localImages().IMAGE_DEMO_APP,
            command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
            ...(envFromSecret ? { envFrom: [{ secretRef: { name: envFromSecret } }] } : {}),
            ...(caConfigMap ? { volumeMounts: [{ name: 'ca', mountPath: CA_MOUNT, readOnly: true }] } : {}),
            securityContext: RESTRICTED_CONTAINER,
          },
        ],
        ...(caConfigMap
          ? { volumes: [{ name: 'ca', configMap: { name: caConfigMap, optional: true } }] }
          : {}),
      },
    }),
  );
}

/**
 * One bounded HTTP request from this machine to a Service's ClusterIP (routed onto the real node's
 * bridge; never off the machine).
 */
export async function serviceRequest(
  ns: string,
  service: string,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const svc = json<any>(['get', 'svc', service, '-n', ns]);
  const url = `http://${svc.spec.clusterIP}:${svc.spec.ports[0].port}${path}`;
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, headers: res.headers };
}

/** Waits until every pod of the selector runs with every container ready. */
export const allPodsReady = (ns: string, selector: string, count?: number) =>
  eventually(
    `pods ${selector} in ${ns} running and ready`,
    () => {
      const pods = podStates(ns, selector);
      if (count !== undefined && pods.length !== count) return false;
      return pods.length > 0 && pods.every((p) => p.phase === 'Running' && p.ready) && pods;
    },
    300_000,
    1000,
  );

/** The events of an object, newest last, as `reason: message` lines (for failure messages). */
export function eventsOf(ns: string, name: string): string[] {
  const list = json<any>(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`]);
  return list.items.map((e: any) => `${e.reason}: ${e.message}`);
}

/** Whether a failed case's namespace stays, for reading what it left behind (pods, logs, Events). */
function keptNamespace(ns: string): boolean {
  if (process.env.SCALABLEAPP_KEEP_NAMESPACES !== '1') return false;
  console.log(`kept namespace ${ns} (SCALABLEAPP_KEEP_NAMESPACES=1)`);
  return true;
}

/** A deletion that waits until the namespace is gone, so the next test has the node's CPU. */
export function deleteNamespaceAndWait(ns: string): void {
  if (!keptNamespace(ns)) tryKubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=180s']);
}

/** deleteNamespaceAndWait for tests that run cases side by side: waits without holding the event loop. */
export async function deleteNamespace(ns: string): Promise<void> {
  if (!keptNamespace(ns)) await kubectlAsync(['delete', 'namespace', ns, '--wait=true', '--timeout=180s']);
}

export { kubectl };

/** The pod the failover suites run their writers in (startProbe), and its label: an allowed client. */
export const WRITER = 'writer';
export const WRITER_LABELS = { 'scalableapp.io/test-client': 'writer' };
/** The allowedClients entry that lets the writer pod in. */
export const WRITER_CLIENT = { podSelector: { matchLabels: WRITER_LABELS } };

/**
 * What each failover suite starts from: the operator in the cluster, a fresh namespace with `app`
 * Ready and `count` pods of `tierPods` ready, and the writer pod, with the app's connection Secret as
 * its environment, ready. Returns the namespace.
 */
export async function appWithWriter(
  prefix: string,
  app: Record<string, any>,
  tierPods: string,
  count: number,
): Promise<string> {
  installInClusterOperator();
  const ns = createRealNamespace(prefix);
  await applyAndAwaitReady(ns, app, `${app.metadata.name} Ready on the real node`);
  await allPodsReady(ns, tierPods, count);
  startProbe(ns, WRITER, WRITER_LABELS, `${app.metadata.name}-connection`);
  await allPodsReady(ns, `scalableapp.io/test-client=${WRITER_LABELS['scalableapp.io/test-client']}`, 1);
  return ns;
}
