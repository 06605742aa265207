import { applyApp, isReadyAtGeneration } from './support/apps.ts';
// The operator survives being killed at any moment, and only one replica reconciles at a time.
import { createNamespace, deleteNamespace, eventually, json } from './support/kube.ts';
import { isLeader, startOperator, type OperatorProcess } from './support/operator.ts';

// Faster than the defaults (15/10/2 s, as controller-runtime's) so takeovers are quick, but with room
// for a loaded apiserver: with a 2 s renew deadline, one slow renewal on a busy two-core CI machine
// made the leader give up while it was alive, and the other replica lead early.
const FAST_LEASE = ['--lease-duration', '6', '--renew-deadline', '4', '--retry-period', '1'];
const running: OperatorProcess[] = [];
const start = async (ns: string, leaseName: string, extra: string[] = FAST_LEASE) => {
  const op = await startOperator({ namespace: ns, leaseName, extraArgs: extra });
  running.push(op);
  return op;
};
afterAll(async () => {
  await Promise.all(running.map((op) => op.stop('SIGKILL')));
});

const apply = applyApp;
const allReady = (ns: string, names: string[]) => {
  const apps = json<{ items: any[] }>(['get', 'sapp', '-n', ns]).items;
  return names.every((n) => isReadyAtGeneration(apps.find((x) => x.metadata.name === n)));
};
const lease = (name: string) => json<any>(['get', 'lease', name, '-n', 'scalableapp-system']);

describe('SIGKILL in the middle of reconciles', () => {
  let ns: string;
  beforeAll(() => {
    ns = createNamespace('kill');
  });
  afterAll(() => deleteNamespace(ns));

  it('converges after every one of 10 kills, with no duplicate or stale objects', async () => {
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (let round = 1; round <= 10; round++) {
      // New work each round, so every kill lands while there is something to reconcile.
      for (const n of names) {
        apply(ns, n, {
          web: {
            image: `registry.example/${n}:${round}`,
            replicas: (round % 3) + 1,
            ...(round % 2 ? { expose: { type: 'Ingress', host: `${n}.example.com` } } : {}),
          },
        });
      }
      const op = await start(ns, `kill-${ns}`);
      await eventually('leadership', () => isLeader(op), 30_000, 100);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
      await op.stop('SIGKILL');
    }
    const last = await start(ns, `kill-${ns}`);
    await eventually('every app Ready at its current generation', () => allReady(ns, names), 180_000);
    for (const n of names) {
      const owned = (kind: string) =>
        json<{ items: any[] }>(['get', kind, '-n', ns, '-l', `app.kubernetes.io/part-of=${n}`]).items;
      expect(owned('deployment').map((d) => d.spec.template.spec.containers[0].image)).toEqual([
        `registry.example/${n}:10`,
      ]);
      expect(owned('deployment')[0].spec.replicas).toBe((10 % 3) + 1);
      expect(owned('service')).toHaveLength(1);
      expect(owned('pdb')).toHaveLength(1);
      expect(owned('secret')).toHaveLength(1);
      expect(owned('networkpolicy')).toHaveLength(3);
      expect(owned('ingress')).toHaveLength(0); // round 10 has no Ingress: the one from round 9 was pruned
    }
    await last.stop();
  });
});

describe('leader election', () => {
  let ns: string;
  beforeAll(() => {
    ns = createNamespace('leader');
  });
  afterAll(() => deleteNamespace(ns));

  it('lets only the leader reconcile, and another replica take over when the leader dies', async () => {
    const leaseName = `leader-${ns}`;
    const a = await start(ns, leaseName);
    await eventually('a leads', () => isLeader(a), 30_000, 100);
    const b = await start(ns, leaseName);
    apply(ns, 'first', { web: { image: 'registry.example/first:1', replicas: 1 } });
    await eventually('first Ready', () => allReady(ns, ['first']));
    expect(await isLeader(b)).toBe(false);
    expect(await b.counter('controller_runtime_reconcile_total')).toBe(0);
    expect(await b.counter('scalableapp_api_requests_total')).toBe(0);
    expect(await a.counter('controller_runtime_reconcile_total')).toBeGreaterThan(0);

    await a.stop('SIGKILL');
    await eventually('b takes over', () => isLeader(b), 60_000, 100);
    apply(ns, 'second', { web: { image: 'registry.example/second:1', replicas: 1 } });
    await eventually('second Ready', () => allReady(ns, ['first', 'second']));
    expect(await b.counter('controller_runtime_reconcile_total')).toBeGreaterThan(0);
  });

  it('releases the lease at once on a graceful stop', async () => {
    // A long lease: if the stop did not release it, the other replica would wait 60 s.
    const slow = ['--lease-duration', '60', '--renew-deadline', '40', '--retry-period', '1'];
    const leaseName = `graceful-${ns}`;
    const a = await start(ns, leaseName, slow);
    await eventually('a leads', () => isLeader(a), 30_000, 100);
    const b = await start(ns, leaseName, slow);
    const holder = lease(leaseName).spec.holderIdentity;
    expect(await a.stop('SIGTERM')).toBe(0);
    // Read right after a exited: the record no longer names it.
    expect(lease(leaseName).spec.holderIdentity).not.toBe(holder);
    await eventually('b leads', () => isLeader(b), 30_000, 100);
  });
});
