// The operator in the cluster when another holder takes its Lease (a partition, a stuck apiserver
// write, a second install): the leader stops its workers and exits once, as controller-runtime does;
// the Deployment's other replica, or the restarted container, takes the Lease over when it expires,
// and reconciling resumes. Nothing crash-loops: one restart in all, every replica ready again.
import { stringify } from 'yaml';
import { getApp } from './support/apps.ts';
import { eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import {
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  installInClusterOperator,
  localImages,
  podStates,
} from './support/real-node.ts';

const NS = 'scalableapp-system';
const LEASE = 'scalableapp-operator';
const SELECTOR = 'app.kubernetes.io/name=scalableapp-operator';
/** The intruder holds the Lease this long: longer than the leader's renew deadline (10 s). */
const INTRUDER_SECONDS = 20;

const holder = () =>
  json<{ spec: { holderIdentity?: string } }>(['get', 'lease', LEASE, '-n', NS]).spec.holderIdentity ?? '';
const operatorPods = () => podStates(NS, SELECTOR);
const restarts = () =>
  Object.fromEntries(operatorPods().map((p) => [p.name, p.containers.reduce((n, c) => n + c.restarts, 0)]));

let ns: string | undefined;
afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

describeReal('the operator in the cluster loses its Lease', () => {
  beforeAll(() => installInClusterOperator());

  it('the leader exits once, a replica takes over, reconciling resumes, and nothing crash-loops', async () => {
    const leader = await eventually('an operator pod holds the Lease', () => {
      const pod = holder().split('_')[0];
      return operatorPods().some((p) => p.name === pod && p.ready) ? pod : undefined;
    });
    const before = restarts();

    // Another holder takes the Lease, as a partitioned or duplicate operator would.
    const now = new Date().toISOString().replace('Z', '000Z');
    kubectl([
      'patch',
      'lease',
      LEASE,
      '-n',
      NS,
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: {
          holderIdentity: 'e2e-intruder',
          acquireTime: now,
          renewTime: now,
          leaseDurationSeconds: INTRUDER_SECONDS,
        },
      }),
    ]);

    await eventually('the former leader exited and was restarted once', () =>
      restarts()[leader!] === (before[leader!] ?? 0) + 1 ? true : undefined,
    );
    // The last lines only: the whole log of a long-running container outgrows the pipe's buffer.
    const log = tryKubectl(['logs', '-n', NS, leader!, '--previous', '--tail=20']).stdout;
    expect(log).toContain('lost the lease: e2e-intruder holds it now');
    expect(log).toMatch(/"exitCode":1/);

    const next = await eventually('an operator pod holds the Lease again', () => {
      const pod = holder().split('_')[0];
      return operatorPods().some((p) => p.name === pod) ? pod : undefined;
    });

    // Reconciling resumed: a new app gets its status, observedGeneration included.
    ns = createRealNamespace('real-lease');
    kubectl(
      ['apply', '-n', ns, '-f', '-'],
      stringify({
        apiVersion: 'scalableapp.io/v1alpha1',
        kind: 'ScalableApp',
        metadata: { name: 'after' },
        spec: { web: { image: localImages().IMAGE_DEMO_APP, replicas: 1 } },
      }),
    );
    await eventually(`the new leader ${next} reconciles a new app`, () => {
      const a = getApp(ns!, 'after');
      return a?.status?.observedGeneration === a?.metadata?.generation ? true : undefined;
    });

    // No crash loop: every replica ready, one restart in all, none waiting in a back-off.
    await eventually('every operator replica ready again', () =>
      operatorPods().every((p) => p.ready) ? true : undefined,
    );
    const after = restarts();
    const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
    expect(total(after) - total(before)).toBe(1);
    expect(operatorPods().flatMap((p) => p.containers.map((c) => c.waiting ?? 'running'))).not.toContain(
      'CrashLoopBackOff',
    );
    expect(json<{ items: unknown[] }>(['get', 'pods', '-n', NS, '-l', SELECTOR]).items).toHaveLength(2);
  });
});
