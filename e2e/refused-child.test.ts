// A child the apiserver refuses, on the local control plane: an admission policy (a
// ValidatingAdmissionPolicy, as Kyverno or Gatekeeper users have) denies the web tier's
// PodDisruptionBudget. The user sees which child and the apiserver's words in Ready and in one Event;
// the operator then backs off and writes nothing but the retried apply; removing the policy and
// touching the app makes it Ready.
import { stringify } from 'yaml';
import { applyApp, getApp, readyAt } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

const WINDOW_MS = 60_000;
const POLICY_MESSAGE = 'PodDisruptionBudgets are not allowed in this namespace (e2e admission policy)';

let ns: string;
let policy: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('refused', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  policy = `e2e-deny-pdb-${ns}`;
  kubectl(
    ['apply', '-f', '-'],
    [
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: policy },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: ['policy'],
                apiVersions: ['v1'],
                operations: ['CREATE', 'UPDATE'],
                resources: ['poddisruptionbudgets'],
              },
            ],
          },
          validations: [{ expression: 'false', message: POLICY_MESSAGE }],
        },
      },
      {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: policy },
        spec: {
          policyName: policy,
          validationActions: ['Deny'],
          matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
        },
      },
    ]
      .map((o) => stringify(o))
      .join('---\n'),
  );
  // A policy takes effect a moment after it is created: wait until it denies a PDB of our own.
  const probe = stringify({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'probe', namespace: ns },
    spec: { maxUnavailable: 1, selector: { matchLabels: { probe: 'x' } } },
  });
  await eventually('the policy in force', () => {
    const r = tryKubectl(['create', '--dry-run=server', '-f', '-'], probe);
    return !r.ok && r.stderr.includes(POLICY_MESSAGE);
  });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  tryKubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', policy]);
  deleteNamespace(ns);
});

const condition = (type: string) => getApp(ns, 'shop').status?.conditions?.find((c: any) => c.type === type);
const refusedEvents = () =>
  json<{ items: any[] }>(['get', 'events', '-n', ns, '--field-selector', 'reason=ChildRefused']).items;

describe('a child an admission policy refuses', () => {
  it('names the child and the policy in Ready and in one Event, with observedGeneration', async () => {
    applyApp(ns, 'shop', { web: { image: 'registry.example/shop:1', replicas: 2 } });
    const ready = await eventually('ChildRefused in Ready', () => {
      const c = condition('Ready');
      return c?.reason === 'ChildRefused' && c;
    });
    expect(ready.status).toBe('False');
    expect(ready.message).toContain(`PodDisruptionBudget ${ns}/shop-web was refused`);
    expect(ready.message).toContain(POLICY_MESSAGE);
    const a = getApp(ns, 'shop');
    expect(a.status.observedGeneration).toBe(a.metadata.generation);
    expect(a.status.phase).toBe('Degraded');
    // The rest of the app is applied: the web tier runs.
    await eventually('the web tier ready', () => condition('WebReady')?.status === 'True');
    expect(refusedEvents()).toHaveLength(1);
    expect(refusedEvents()[0].message).toContain(POLICY_MESSAGE);
  });

  it('then backs off: over 60 s, no more mutating calls than retries, no status write, still one Event', async () => {
    const rv = getApp(ns, 'shop').metadata.resourceVersion;
    const writes0 = await op.counter('scalableapp_api_requests_total');
    const retries0 = await op.counter('controller_runtime_reconcile_total', { result: 'error' });
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const writes = (await op.counter('scalableapp_api_requests_total')) - writes0;
    const retries = (await op.counter('controller_runtime_reconcile_total', { result: 'error' })) - retries0;
    // Each backoff step is one apply of the refused PDB; the steps double up to a 60 s cap.
    console.log(`over ${WINDOW_MS / 1000} s: ${retries} backoff steps, ${writes} mutating calls`);
    expect(retries).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(retries);
    expect(getApp(ns, 'shop').metadata.resourceVersion).toBe(rv);
    const events = refusedEvents();
    expect(events).toHaveLength(1);
    expect(events[0].count ?? 1).toBe(1);
  });

  it('becomes Ready once the policy is gone and the app is touched', async () => {
    kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', policy]);
    // A spec change is retried at once; without one the next backoff step (at most 60 s) finds it.
    applyApp(ns, 'shop', { web: { image: 'registry.example/shop:1', replicas: 3 } });
    await readyAt(ns, 'shop');
    kubectl(['get', 'pdb', 'shop-web', '-n', ns]);
  });
});
