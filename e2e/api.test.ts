// The ScalableApp API against a real apiserver: the generated CRD is accepted as a structural
// schema, both corpora behave (every invalid spec rejected naming its field, every sample accepted),
// and kubectl shows the descriptions and printer columns.
import { stringify } from 'yaml';
import { invalidCorpus, namesField, validCorpus } from '../operator/api/testdata/corpus.ts';
import { createNamespace, deleteNamespace, kubectl, tryKubectl } from './support/kube.ts';

let ns: string;
beforeAll(() => {
  kubectl([
    'apply',
    '--server-side',
    '--field-manager=scalableapp-tests',
    '-f',
    new URL('../crds/', import.meta.url).pathname,
  ]);
  kubectl(['wait', '--for=condition=Established', 'crd/scalableapps.scalableapp.io', '--timeout=60s']);
  ns = createNamespace('api');
});
afterAll(() => deleteNamespace(ns));

const manifest = (name: string, spec: unknown) =>
  stringify({
    apiVersion: 'scalableapp.io/v1alpha1',
    kind: 'ScalableApp',
    metadata: { name, namespace: ns },
    spec,
  });

describe('the CRD', () => {
  it('is accepted as a structural schema, with no violations reported by the apiserver', () => {
    const crd = JSON.parse(kubectl(['get', 'crd', 'scalableapps.scalableapp.io', '-o', 'json'])) as {
      status: { conditions: { type: string; status: string; message: string }[] };
    };
    const byType = Object.fromEntries(crd.status.conditions.map((c) => [c.type, c]));
    expect(byType.Established?.status).toBe('True');
    expect(byType.NonStructuralSchema).toBeUndefined();
    expect(byType.NamesAccepted?.status).toBe('True');
  });

  it('makes kubectl explain useful', () => {
    const out = kubectl(['explain', 'scalableapp.spec.database']);
    expect(out).toContain('Postgres primary with streaming read replicas');
    expect(out).toMatch(/synchronousReplicas\s+<integer>/);
    expect(kubectl(['explain', 'sapp.spec.web.autoscaling.minReplicas'])).toContain(
      'Fewest replicas the autoscaler keeps',
    );
  });

  it('lists ScalableApps with the printer columns, under the short name and the category', () => {
    kubectl(['apply', '-f', '-'], manifest('columns', { web: { image: 'nginx' } }));
    const header = kubectl(['get', 'sapp', '-n', ns]).split('\n')[0]!.trim().split(/\s+/);
    expect(header).toEqual(['NAME', 'READY', 'PHASE', 'WEB', 'PRIMARY', 'SHARDS', 'AGE']);
    expect(kubectl(['get', 'scalableapp', '-n', ns, '-o', 'name'])).toContain(
      'scalableapp.scalableapp.io/columns',
    );
    expect(kubectl(['get', 'scalableapp', '-n', ns, '-o', 'wide']).split('\n')[0]).toContain('REASON');
  });

  it('applies the schema defaults, so the stored object says what the operator will do', () => {
    kubectl(['apply', '-f', '-'], manifest('defaults', { web: { image: 'nginx' }, database: {} }));
    const stored = JSON.parse(kubectl(['get', 'sapp', 'defaults', '-n', ns, '-o', 'json'])) as {
      spec: Record<string, Record<string, unknown>>;
    };
    expect(stored.spec.web).toMatchObject({
      port: 8080,
      replicas: 2,
      sessions: 'none',
      expose: { type: 'ClusterIP' },
    });
    expect(stored.spec.database).toMatchObject({
      version: '17',
      replicas: 2,
      deletionPolicy: 'Retain',
      synchronousReplicas: 0,
    });
    expect(stored.spec.topology).toEqual({
      spreadAcrossZones: true,
      zoneKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'DoNotSchedule',
    });
  });
});

describe('valid corpus: every sample is accepted', () => {
  it.each(validCorpus().map((v) => [v.file, v.object] as const))('%s', (_file, object) => {
    const r = tryKubectl(['create', '--dry-run=server', '-n', ns, '-f', '-'], stringify(object));
    expect(r.stderr).toBe('');
    expect(r.ok).toBe(true);
  });
});

describe('invalid corpus: every spec is rejected, and the error names its field', () => {
  const ssa = ['apply', '--server-side', '--field-manager=scalableapp-tests', '-f', '-'];
  it.each(invalidCorpus().map((c, i) => [c.name, c, i] as const))('%s', (_name, c, i) => {
    const objectName = c.appName ?? `bad-${i}`;
    if (c.update) {
      kubectl(ssa, manifest(objectName, c.spec));
      const r = tryKubectl(ssa, manifest(objectName, c.update));
      expect(r.ok).toBe(false);
      expect(namesField(r.stderr, c.field) ? c.field : r.stderr).toBe(c.field);
      return;
    }
    // Both ways users send objects: server-side apply (GitOps tools, kubectl --server-side) and create.
    for (const args of [ssa, ['create', '-f', '-']]) {
      const r = tryKubectl(args, manifest(objectName, c.spec));
      expect(r.ok).toBe(false);
      expect(namesField(r.stderr, c.field) ? c.field : r.stderr).toBe(c.field);
    }
    expect(tryKubectl(['get', 'sapp', objectName, '-n', ns]).ok).toBe(false); // nothing half-created
  });
});
