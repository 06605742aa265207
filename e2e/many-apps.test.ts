// Ten full-stack apps applied at once, on the local control plane: the operator keeps its Lease the
// whole time (its renewals never wait behind the thousand child writes), never restarts, and every
// app reaches Ready. Before the lease got its own request budget, this killed the operator within
// 12 s. The figures it prints (time to all Ready, the operator's own mutating requests) are the
// measurement; nothing here asserts a time.
import { applyApp, isReadyAtGeneration, smallFullStackSpec } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';
import { isLeader, startOperator, type OperatorProcess } from './support/operator.ts';

const APPS = 10;
const spec = smallFullStackSpec();
const names = Array.from({ length: APPS }, (_, i) => `stack-${i}`);

let ns: string;
let op: OperatorProcess;
const leaseName = () => `scalableapp-${ns}`;
const lease = () => json<any>(['get', 'lease', leaseName(), '-n', 'scalableapp-system']).spec;
beforeAll(async () => {
  ns = createNamespace('many', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  // The Ingress names a TLS Secret, which is the user's to create.
  kubectl([
    'create',
    'secret',
    'generic',
    'shop-tls',
    '-n',
    ns,
    '--from-literal=tls.crt=x',
    '--from-literal=tls.key=x',
  ]);
  op = await startOperator({ namespace: ns, leaseName: `scalableapp-${ns}` });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

describe(`${APPS} full-stack apps applied at once`, () => {
  it('all reach Ready while the operator keeps its Lease and never restarts', async () => {
    await eventually('the operator leading', () => isLeader(op));
    const held = lease();
    const started = Date.now();
    const writes0 = await op.counter('scalableapp_api_requests_total');
    for (const name of names) applyApp(ns, name, spec);

    let lost = 0;
    await eventually(
      'every app Ready',
      async () => {
        // Checked on every look, not only at the end: a lost and re-won lease would hide at the end.
        if (!(await isLeader(op))) lost++;
        const apps = json<{ items: any[] }>(['get', 'sapp', '-n', ns]).items;
        return names.every((n) => isReadyAtGeneration(apps.find((a) => a.metadata.name === n)));
      },
      900_000,
      2_000,
      () =>
        op.proc.exitCode !== null
          ? `the operator exited with ${op.proc.exitCode}; its last lines:\n${op.logs.slice(-25).join('\n')}`
          : undefined,
    );
    const seconds = Math.round((Date.now() - started) / 1000);
    const writes = (await op.counter('scalableapp_api_requests_total')) - writes0;
    console.log(
      `${APPS} full-stack apps Ready in ${seconds} s; the operator sent ${writes} mutating requests`,
    );
    expect(lost).toBe(0);
    expect(op.proc.exitCode).toBeNull();
    const now = lease();
    expect(now.holderIdentity).toBe(held.holderIdentity);
    expect(now.leaseTransitions ?? 0).toBe(held.leaseTransitions ?? 0);
    expect(await op.output()).not.toContain('lost the lease');
  }, 960_000);
});
