// Benchmark (a script, never a test): APPS (default 100) full-stack ScalableApps applied at once on
// the simulated nodes, the operator a host process, as e2e/many-apps.test.ts does with 10. Measures:
//  1. time until every app is Ready at its generation, the operator's own mutating requests, and how
//     close that is to the floor its client-side rate limit sets (requests / 20 per s), as a ratio;
//     whether it kept its Lease all along (checked every 5 s and from the Lease's transitions), and
//     never exited; its peak resident memory;
//  2. the operator stopped, every app's spec changed meanwhile, the operator started again: how long
//     until each app's status is about its new generation (the staleness a restart causes), and how
//     many reconciles per app that took.
// It adds simulated nodes for the pods (BENCH_NODES_PER_ZONE per zone, removed at the end) and
// deletes everything it made. Run: npm run bench:many-apps   (starts a local cluster of simulated
// nodes if none runs). On a cluster with the real node the figures measure the host more than the
// operator: the node's NetworkPolicy agent (kube-router) rewrites its iptables for every policy in
// the cluster, and 100 full-stack apps bring a thousand of them; the script says so when it sees one.
import { execFileSync, spawnSync } from 'node:child_process';
import { stringify } from 'yaml';
import { forInstance, smallFullStackSpec } from '../e2e/support/apps.ts';
import { createNamespace, eventually, json, kubectl, tryKubectl } from '../e2e/support/kube.ts';
import { isLeader, startOperator, type OperatorProcess } from '../e2e/support/operator.ts';
import { seconds } from './stats.ts';

const APPS = Number(process.env.APPS ?? 100);
const NODES_PER_ZONE = Number(process.env.BENCH_NODES_PER_ZONE ?? 4);
/** The operator client's steady rate (operator/kube: 20 requests/s, burst 40). */
const CLIENT_QPS = 20;
const POLL_MS = 5_000;
/** Deadlines against hangs, not targets. */
const READY_DEADLINE_MS = 60 * 60_000;
const CATCH_UP_DEADLINE_MS = 20 * 60_000;
const ZONES = ['zone-a', 'zone-b', 'zone-c'];
const NODE_PREFIX = 'kwok-bench';

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const progress = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

/** Simulated nodes with room for thousands of small pods; the KWOK controller runs them. */
function benchNodes(): string {
  return ZONES.flatMap((zone) =>
    Array.from({ length: NODES_PER_ZONE }, (_, i) => {
      const name = `${NODE_PREFIX}-${zone}-${i + 1}`;
      const room = { cpu: '64', memory: '1Ti', pods: '300', 'ephemeral-storage': '1Ti' };
      return stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: {
            type: 'kwok',
            'scalableapp.io/node': 'simulated',
            'kubernetes.io/arch': 'amd64',
            'kubernetes.io/os': 'linux',
            'kubernetes.io/hostname': name,
            'topology.kubernetes.io/zone': zone,
            'topology.kubernetes.io/region': 'local',
          },
        },
        status: { allocatable: room, capacity: room, phase: 'Running' },
      });
    }),
  ).join('---\n');
}

const appManifests = (ns: string, names: string[], spec: unknown) =>
  names
    .map((name) =>
      stringify(
        forInstance({
          apiVersion: 'scalableapp.io/v1alpha1',
          kind: 'ScalableApp',
          metadata: { name, namespace: ns },
          spec,
        }),
      ),
    )
    .join('---\n');

/**
 * Every app's name and whether it is Ready at its generation (as isReadyAtGeneration judges), read
 * with a jsonpath: a few bytes per app instead of its whole status, on every poll.
 */
const readiness = (ns: string) =>
  kubectl([
    'get',
    'sapp',
    '-n',
    ns,
    '-o',
    'jsonpath={range .items[*]}{.metadata.name} {.metadata.generation} {.status.observedGeneration} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
  ])
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [name, generation, observed, ready] = l.split(' ');
      return { name: name!, ready: ready === 'True' && generation === observed };
    });

async function main() {
  // Simulated nodes unless told otherwise; a running cluster of either kind is used as it is.
  const env = { ...process.env, SCALABLEAPP_NODES: process.env.SCALABLEAPP_NODES ?? 'simulated' };
  if (spawnSync('bash', ['tools/cluster.sh', 'status'], { stdio: 'ignore', env }).status !== 0) {
    execFileSync('bash', ['tools/cluster.sh', 'up'], { stdio: 'inherit', env });
  }
  if (kubectl(['get', 'nodes', '-l', 'scalableapp.io/node=real', '-o', 'name']).trim()) {
    progress(
      'note: this cluster has the real node; its NetworkPolicy agent will load the host (see the header)',
    );
  }
  execFileSync('bash', ['tools/operator-local.sh', 'install'], { stdio: 'inherit' });
  progress(`adding ${ZONES.length * NODES_PER_ZONE} simulated nodes`);
  kubectl(['apply', '-f', '-'], benchNodes());
  const ns = createNamespace('bench-many', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  let op: OperatorProcess | undefined;
  try {
    // The Ingress names a TLS Secret, which is the user's to create.
    kubectl(
      ['apply', '-n', ns, '-f', '-'],
      stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'shop-tls' },
        type: 'Opaque',
        stringData: { 'tls.crt': 'x', 'tls.key': 'x' },
      }),
    );
    const leaseName = `bench-${ns}`;
    const lease = () =>
      json<{ spec: { holderIdentity?: string; leaseTransitions?: number } }>([
        'get',
        'lease',
        leaseName,
        '-n',
        'scalableapp-system',
      ]).spec;
    op = await startOperator({ namespace: ns, leaseName });
    const first = op;
    await eventually('the operator leading', () => isLeader(first), 60_000, 200);
    const held = lease();
    const names = Array.from({ length: APPS }, (_, i) => `stack-${i}`);
    const spec = smallFullStackSpec();

    // 1. Every app at once.
    progress(`applying ${APPS} full-stack apps`);
    const writes0 = await op.counter('scalableapp_api_requests_total');
    const t0 = performance.now();
    kubectl(['apply', '-f', '-'], appManifests(ns, names, spec));
    let notLeading = 0;
    let peakRss = 0;
    const readyAt = new Map<string, number>();
    await eventually(
      `${APPS} apps Ready`,
      async () => {
        if (!(await isLeader(first))) notLeading++;
        peakRss = Math.max(peakRss, await first.counter('process_resident_memory_bytes'));
        const now = performance.now() - t0;
        for (const a of readiness(ns)) if (a.ready && !readyAt.has(a.name)) readyAt.set(a.name, now);
        progress(`${readyAt.size}/${APPS} Ready after ${seconds(now)} s`);
        return readyAt.size === APPS;
      },
      READY_DEADLINE_MS,
      POLL_MS,
      () => (first.proc.exitCode !== null ? `the operator exited with ${first.proc.exitCode}` : undefined),
    );
    const allReadyMs = performance.now() - t0;
    const writes = (await op.counter('scalableapp_api_requests_total')) - writes0;
    const pods = kubectl(['get', 'pods', '-n', ns, '-o', 'name']).split('\n').filter(Boolean).length;
    const now = lease();
    const floorMs = (writes / CLIENT_QPS) * 1000;
    const times = [...readyAt.values()];

    // 2. A restart while every spec changes.
    const exitedEarly = first.proc.exitCode !== null;
    progress('stopping the operator, changing every spec, starting it again');
    const plannedExit = await op.stop('SIGTERM');
    const changed = {
      ...spec,
      web: {
        ...spec.web,
        autoscaling: { ...spec.web.autoscaling, maxReplicas: spec.web.autoscaling.maxReplicas + 1 },
      },
    };
    kubectl(['apply', '-f', '-'], appManifests(ns, names, changed));
    op = await startOperator({ namespace: ns, leaseName });
    const second = op;
    const t1 = performance.now();
    const caughtUp = new Map<string, number>();
    await eventually(
      `${APPS} apps Ready at their new generation`,
      async () => {
        const at = performance.now() - t1;
        for (const a of readiness(ns)) if (a.ready && !caughtUp.has(a.name)) caughtUp.set(a.name, at);
        return caughtUp.size === APPS;
      },
      CATCH_UP_DEADLINE_MS,
      500,
      () => (second.proc.exitCode !== null ? `the operator exited with ${second.proc.exitCode}` : undefined),
    );
    const catchUp = [...caughtUp.values()];
    const reconciles = await second.counter('controller_runtime_reconcile_total');

    console.log(`\n1. ${APPS} full-stack apps applied at once (${pods} pods on simulated nodes)`);
    console.log(
      `   all Ready after:                 ${seconds(allReadyMs)} s   (p50 app ${seconds(quantile(times, 0.5))} s, p90 ${seconds(quantile(times, 0.9))} s)`,
    );
    console.log(`   operator's mutating requests:    ${writes} (${(writes / APPS).toFixed(1)} per app)`);
    console.log(
      `   rate-limit floor (${CLIENT_QPS}/s):         ${seconds(floorMs)} s; time to all Ready / floor: ${(allReadyMs / floorMs).toFixed(2)}`,
    );
    console.log(
      `   Lease: holder kept ${now.holderIdentity === held.holderIdentity}, transitions ${(now.leaseTransitions ?? 0) - (held.leaseTransitions ?? 0)}, polls not leading ${notLeading}`,
    );
    console.log(
      `   operator exits:                  ${exitedEarly ? 1 : 0} before the planned stop; that SIGTERM stop exited ${plannedExit}`,
    );
    console.log(`   peak resident memory:            ${mib(peakRss)}`);
    console.log(`\n2. operator restarted after every spec changed`);
    console.log(
      `   status about the new generation: p50 ${seconds(quantile(catchUp, 0.5))} s, p99 ${seconds(quantile(catchUp, 0.99))} s, last ${seconds(Math.max(...catchUp))} s`,
    );
    console.log(`   reconciles per app until then:   ${(reconciles / APPS).toFixed(2)}`);
  } finally {
    await op?.stop('SIGTERM').catch(() => {});
    progress('cleaning up (namespace, then the added nodes)');
    tryKubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=600s']);
    const added = ZONES.flatMap((z) =>
      Array.from({ length: NODES_PER_ZONE }, (_, i) => `${NODE_PREFIX}-${z}-${i + 1}`),
    );
    tryKubectl(['delete', 'nodes', ...added, '--ignore-not-found']);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
