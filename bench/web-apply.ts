// Benchmark (a script, never a test): on the local cluster,
//  1. time from applying a web-only ScalableApp until every child exists, against
//     `kubectl apply --server-side` of the same objects rendered to YAML, side by side, as a ratio;
//  2. mutating API calls and time for a full resync of 100 unchanged apps (an operator restart).
// Run: npm run bench:web   (starts the local cluster if needed; prints medians and ratios)
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { scalableApp } from '../operator/api/scalable-app.ts';
import { desiredState } from '../operator/controller/desired-state.ts';
import {
  adminKube,
  createNamespace,
  deleteNamespace,
  eventually,
  kubectl,
  KUBECONFIG,
} from '../e2e/support/kube.ts';
import { startOperator } from '../e2e/support/operator.ts';
import { median } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 7);
const APPS = Number(process.env.APPS ?? 100);
const kube = adminKube();
const spec = (i: number) => ({
  web: {
    image: `registry.example/bench:${i}`,
    replicas: 2,
    expose: { type: 'Ingress', host: `b${i}.example.com` },
    autoscaling: { minReplicas: 2, maxReplicas: 4 },
  },
});

async function childrenExist(ns: string, names: { kind: string; path: string }[]): Promise<boolean> {
  for (const n of names) {
    try {
      await kube.get(n.path.replace('NS', ns));
    } catch {
      return false;
    }
  }
  return true;
}

async function main() {
  if (spawnSync('bash', ['tools/cluster.sh', 'status'], { stdio: 'ignore' }).status !== 0) {
    execFileSync('bash', ['tools/cluster.sh', 'up'], { stdio: 'inherit' });
  }
  execFileSync('bash', ['tools/operator-local.sh', 'install'], { stdio: 'inherit' });
  const opNs = createNamespace('bench-op');
  const kcNs = createNamespace('bench-kubectl');
  const op = await startOperator({ namespace: opNs, leaseName: `bench-${opNs}` });
  await eventually(
    'leadership',
    async () => (await op.counter('leader_election_master_status')) === 1,
    30_000,
    50,
  );

  // The children of one app, as paths to poll (NS replaced per namespace).
  const sample = scalableApp.parse({
    apiVersion: 'scalableapp.io/v1alpha1',
    kind: 'ScalableApp',
    metadata: { name: 'x', namespace: 'NS', uid: 'u' },
    spec: spec(0),
  });
  const plural: Record<string, string> = {
    Secret: 'secrets',
    NetworkPolicy: 'networkpolicies',
    Deployment: 'deployments',
    Service: 'services',
    HorizontalPodAutoscaler: 'horizontalpodautoscalers',
    PodDisruptionBudget: 'poddisruptionbudgets',
    Ingress: 'ingresses',
  };
  const pathsFor = (name: string) =>
    desiredState({ ...sample, metadata: { ...sample.metadata, name } }, { gatewayApi: false }).map((o) => ({
      kind: o.kind,
      path: `${o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`}/namespaces/NS/${plural[o.kind]}/${o.metadata.name}`,
    }));

  const viaOperator: number[] = [];
  const reaction: number[] = [];
  const viaKubectl: number[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const name = `run${i}`;
    // Operator: apply one ScalableApp, wait until all its children exist.
    const manifest = join(tmpdir(), `bench-app-${i}.yaml`);
    writeFileSync(
      manifest,
      stringify({
        apiVersion: 'scalableapp.io/v1alpha1',
        kind: 'ScalableApp',
        metadata: { name, namespace: opNs },
        spec: spec(i),
      }),
    );
    let t0 = performance.now();
    kubectl(['apply', '--server-side', '-f', manifest]);
    const tApplied = performance.now();
    await eventually('children', () => childrenExist(opNs, pathsFor(name)), 60_000, 5);
    viaOperator.push(performance.now() - t0);
    reaction.push(performance.now() - tApplied);

    // kubectl: the same objects, rendered, applied server-side in one command.
    const app = scalableApp.parse({
      apiVersion: 'scalableapp.io/v1alpha1',
      kind: 'ScalableApp',
      metadata: { name, namespace: kcNs, uid: 'u' },
      spec: spec(i),
    });
    const objects = desiredState(app, { gatewayApi: false }).map((o) => ({
      ...o,
      metadata: { ...o.metadata, ownerReferences: undefined },
    }));
    const rendered = join(tmpdir(), `bench-objects-${i}.yaml`);
    writeFileSync(rendered, objects.map((o) => stringify(JSON.parse(JSON.stringify(o)))).join('---\n'));
    t0 = performance.now();
    kubectl(['apply', '--server-side', '--field-manager=bench', '-f', rendered]);
    viaKubectl.push(performance.now() - t0);
  }
  const mo = median(viaOperator);
  const mk = median(viaKubectl);
  console.log(`\n1. apply -> all ${pathsFor('x').length} children of a web-only app (median of ${RUNS})`);
  console.log(
    `   operator (apply ScalableApp, reconcile):   ${mo.toFixed(0)} ms   runs: ${viaOperator.map((x) => x.toFixed(0)).join(' ')}`,
  );
  console.log(`     of which after kubectl returned (watch + reconcile): ${median(reaction).toFixed(0)} ms`);
  console.log(
    `   kubectl apply --server-side (rendered):    ${mk.toFixed(0)} ms   runs: ${viaKubectl.map((x) => x.toFixed(0)).join(' ')}`,
  );
  console.log(`   ratio operator / kubectl:                  ${(mo / mk).toFixed(2)}`);

  // 2. 100 unchanged apps: create, wait until all are Ready, restart the operator, count its writes.
  const resNs = createNamespace('bench-resync');
  const many = Array.from({ length: APPS }, (_, i) =>
    stringify({
      apiVersion: 'scalableapp.io/v1alpha1',
      kind: 'ScalableApp',
      metadata: { name: `app${i}`, namespace: resNs },
      spec: { web: { image: 'registry.example/r:1', replicas: 1 } },
    }),
  ).join('---\n');
  const manyFile = join(tmpdir(), 'bench-many.yaml');
  writeFileSync(manyFile, many);
  const resOp1 = await startOperator({ namespace: resNs, leaseName: `bench-${resNs}` });
  const tCreate = performance.now();
  kubectl(['apply', '--server-side', '-f', manyFile]);
  const readyCount = () => {
    const out = kubectl([
      'get',
      'sapp',
      '-n',
      resNs,
      '-o',
      'jsonpath={range .items[*]}{.status.phase}{"\\n"}{end}',
    ]);
    return out.split('\n').filter((p) => p === 'Ready').length;
  };
  await eventually(`${APPS} apps Ready`, () => readyCount() === APPS, 600_000, 500);
  const createMs = performance.now() - tCreate;
  // Ready is not settled: the reconcile after the last apply still flips Progressing to False.
  // Wait until the first operator has been idle (no write, empty queue) for 3 s before restarting.
  let last = -1;
  await eventually(
    'the operator to be idle',
    async () => {
      const writes = await resOp1.counter('scalableapp_api_requests_total');
      const idle = writes === last && (await resOp1.counter('workqueue_depth')) === 0;
      last = writes;
      return idle;
    },
    120_000,
    3_000,
  );
  const createWrites = await resOp1.counter('scalableapp_api_requests_total');
  await resOp1.stop('SIGTERM');

  const resOp2 = await startOperator({ namespace: resNs, leaseName: `bench-${resNs}` });
  const tResync = performance.now();
  await eventually(
    `${APPS} reconciles`,
    async () => (await resOp2.counter('controller_runtime_reconcile_total', { result: 'success' })) >= APPS,
    300_000,
    50,
  );
  const resyncMs = performance.now() - tResync;
  const resyncWrites = await resOp2.counter('scalableapp_api_requests_total');
  const breakdown = (await resOp2.metrics())
    .split('\n')
    .filter((l) => l.startsWith('scalableapp_api_requests_total{'))
    .map((l) => l.replace('scalableapp_api_requests_total', ''))
    .join(', ');
  console.log(`\n2. ${APPS} web-only apps`);
  console.log(
    `   create all and reach Ready: ${(createMs / 1000).toFixed(1)} s, ${createWrites} mutating calls (${(createWrites / APPS).toFixed(1)} per app)`,
  );
  console.log(
    `   full resync after a restart: ${(resyncMs / 1000).toFixed(1)} s from ready to ${APPS} reconciles, ${resyncWrites} mutating calls ${breakdown}`,
  );
  await resOp2.stop();
  await op.stop();
  for (const n of [opNs, kcNs, resNs]) deleteNamespace(n);
  console.log(`\n(kubeconfig ${KUBECONFIG})`);
  process.exit(0);
}

await main();
