// Every sample in manifests/samples, applied as a user would, converges to Ready under the operator
// on the local control plane: the samples are documentation, and documentation that does not work is
// worse than none. (No container runs here; pods are judged by KWOK's readiness, data servers by pod
// readiness: see e2e/database-tier.test.ts.)
import { readFileSync, readdirSync } from 'node:fs';
import { parse } from 'yaml';
import { applyManifest, getApp, isReadyAtGeneration } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventually, kubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

const dir = new URL('../manifests/samples/', import.meta.url);
const samples = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((file) => {
    const app = parse(readFileSync(new URL(file, dir), 'utf8')) as any;
    const tlsSecret = app.spec.web?.expose?.tlsSecretName as string | undefined;
    return { file, name: app.metadata.name as string, tlsSecret };
  });

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('samples', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  // The TLS Secrets the Ingress samples name are the user's to create (the operator waits for them).
  for (const secret of new Set(samples.map((x) => x.tlsSecret).filter((x): x is string => !!x))) {
    kubectl([
      'create',
      'secret',
      'generic',
      secret,
      '-n',
      ns,
      '--from-literal=tls.crt=placeholder',
      '--from-literal=tls.key=placeholder',
    ]);
  }
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

describe('the samples', () => {
  it('are twelve, with distinct names', () => {
    expect(samples).toHaveLength(12);
    expect(new Set(samples.map((s) => s.name)).size).toBe(samples.length);
  });

  it.each(samples.map((s) => [s.file, s.name]))('%s converges to Ready', async (file, name) => {
    applyManifest(ns, new URL(file!, dir).pathname);
    const ready = await eventually(
      `${name} Ready`,
      () => {
        const a = getApp(ns, name!);
        return isReadyAtGeneration(a) && a;
      },
      240_000,
    );
    // Every tier the sample declares has its own condition, and each is True.
    const tiers = ready.status.conditions.filter(
      (c: any) => /^[A-Z][A-Za-z]*Ready$/.test(c.type) && c.type !== 'Ready',
    );
    expect(tiers.length).toBeGreaterThan(0);
    expect(tiers.filter((c: any) => c.status !== 'True')).toEqual([]);
  });
});
