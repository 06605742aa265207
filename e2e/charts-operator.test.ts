// charts/operator on the local cluster: helm installs it into a namespace that enforces the restricted
// Pod Security Standard, and the operator, run with the token of the chart's ServiceAccount, reconciles a
// sample with nothing but the chart's RBAC and CRD. Then the CRD's lifecycle (docs/adr/0009): an
// upgrade applies a changed CRD, uninstall keeps it and the apps, a reinstall adopts it again.
//
// On kwok no container runs: the chart's Deployment becomes Available because KWOK marks its pods Ready,
// so the operator under test is a local process with the chart's ServiceAccount token (as in every
// cluster test). On kind the chart's pods run for real and would race that process, so the file is
// skipped there.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { chartPath } from '../charts/test/helm.ts';
import { applyManifest, readyAt } from './support/apps.ts';
import { helmIn, helmTest, installChart, upgradeChart } from './support/helm-releases.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

const root = new URL('../', import.meta.url).pathname;
const chart = chartPath('operator');
const CRD = 'scalableapps.scalableapp.io';
const crdFile = `files/crds/${CRD}.yaml`;
const onKwok = (process.env.SCALABLEAPP_PROVIDER ?? 'kwok') === 'kwok';

function helmOk(args: string[]): string {
  const r = helmIn(args);
  if (!r.ok) throw new Error(`helm ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

interface Crd {
  metadata: {
    resourceVersion: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: { versions: { name: string; additionalPrinterColumns?: { name: string }[] }[] };
}
const liveCrd = () => json<Crd>(['get', 'crd', CRD]);
const printerColumns = (crd: Crd) => crd.spec.versions[0]!.additionalPrinterColumns?.map((c) => c.name);
const sample = parse(readFileSync(`${root}manifests/samples/01-web-only.yaml`, 'utf8')) as {
  metadata: { name: string };
};

// The chart's own namespace enforces restricted pod security; the apps live in another one.
let ns: string;
let appNs: string;
let release: string;
let fullname: string;
let op: OperatorProcess | undefined;

const install = (name: string, extra: string[] = [], values: object = {}) =>
  installChart('operator', name, ns, { dataPlane: 'simulated', ...values }, extra);

(onKwok ? describe : describe.skip)('charts/operator', () => {
  beforeAll(() => {
    ns = createNamespace('chart-operator', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    appNs = createNamespace('chart-operator-apps');
    release = ns;
    fullname = `${release}-scalableapp-operator`;
  });

  afterAll(async () => {
    await op?.stop();
    for (const r of [release, `${release}-apps`]) helmIn(['uninstall', r, '-n', ns, '--wait']);
    // The CRD is shared by every cluster test: put back the generated one (as the global setup applied
    // it) and drop what this file's releases left on it, so no later install finds another owner.
    kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager=scalableapp-install',
      '-f',
      `${root}crds/`,
    ]);
    tryKubectl(['annotate', 'crd', CRD, 'meta.helm.sh/release-name-', 'meta.helm.sh/release-namespace-']);
    tryKubectl(['annotate', 'crd', CRD, 'helm.sh/resource-policy-']);
    tryKubectl(['label', 'crd', CRD, 'app.kubernetes.io/managed-by-', 'app.kubernetes.io/instance-']);
    tryKubectl(['label', 'crd', CRD, 'app.kubernetes.io/version-', 'helm.sh/chart-']);
    deleteNamespace(appNs);
    deleteNamespace(ns);
  });

  it('installs into a restricted namespace: the Deployment is Available behind its metrics Service', async () => {
    // The global setup applied the CRD with kubectl, so this release must adopt it (docs/adr/0009).
    const installed = install(release, ['--take-ownership']);
    if (!installed.ok) throw new Error(installed.stderr);
    const deploy = json<{ status: { availableReplicas?: number } }>(['get', 'deploy', fullname, '-n', ns]);
    expect(deploy.status.availableReplicas).toBe(2);
    const pdb = json<{ spec: { maxUnavailable: number } }>(['get', 'pdb', fullname, '-n', ns]);
    expect(pdb.spec.maxUnavailable).toBe(1);
    // The EndpointSlice controller follows pod readiness a moment after the Deployment reports it.
    const readyEndpoints = () =>
      json<{ items: { endpoints?: { conditions?: { ready?: boolean } }[] }[] }>([
        'get',
        'endpointslices',
        '-n',
        ns,
        '-l',
        `kubernetes.io/service-name=${fullname}-metrics`,
      ])
        .items.flatMap((s) => s.endpoints ?? [])
        .filter((e) => e.conditions?.ready).length;
    await eventually('both replicas behind the metrics Service', () => readyEndpoints() === 2);

    const crd = liveCrd();
    expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    expect(crd.metadata.annotations?.['meta.helm.sh/release-name']).toBe(release);
  });

  it("reconciles the sample to Ready with only the chart's RBAC, and holds no more than it needs", async () => {
    const account = `system:serviceaccount:${ns}:${fullname}`;
    const can = (...args: string[]) =>
      tryKubectl(['auth', 'can-i', ...args, '--as', account]).stdout.trim() === 'yes';
    expect(can('patch', 'scalableapps.scalableapp.io', '--subresource=status', '-n', appNs)).toBe(true);
    expect(can('create', 'leases.coordination.k8s.io', '-n', ns)).toBe(true);
    expect(can('create', 'leases.coordination.k8s.io', '-n', appNs)).toBe(false);
    expect(can('delete', 'secrets', '-n', appNs)).toBe(false);
    expect(can('update', 'customresourcedefinitions.apiextensions.k8s.io')).toBe(false);

    op = await startOperator({ namespace: appNs, serviceAccount: { name: fullname, namespace: ns } });
    applyManifest(appNs, `${root}manifests/samples/01-web-only.yaml`);
    const app = await readyAt(appNs, sample.metadata.name);
    expect(app.status.conditions.find((c: { type: string }) => c.type === 'WebReady').status).toBe('True');
  });

  it('runs the helm test hook, admitted under restricted pod security', async () => {
    // KWOK runs no command: the pod is finished as its exit would (e2e/support/helm-releases.ts). What
    // this proves is Helm's side, and that the restricted namespace admits the hook pod.
    const run = await helmTest(ns, release, `${fullname}-test-readyz`, 'Succeeded');
    expect(run.result.ok).toBe(true);
    expect(run.pod.spec.containers[0].command.at(-1)).toBe(
      `http://${fullname}-metrics.${ns}.svc:8080/readyz`,
    );
  });

  it('applies a changed CRD on helm upgrade, and the previous one on the way back', () => {
    const before = liveCrd();
    const next = mkdtempSync(join(tmpdir(), 'chart-operator-'));
    try {
      cpSync(chart, next, { recursive: true });
      const crd = parse(readFileSync(join(next, crdFile), 'utf8'));
      crd.spec.versions[0].additionalPrinterColumns.push({
        name: 'Upgraded',
        type: 'string',
        jsonPath: '.metadata.name',
      });
      writeFileSync(join(next, crdFile), stringify(crd));
      const meta = readFileSync(join(next, 'Chart.yaml'), 'utf8').replace(
        /^version: .*$/m,
        'version: 0.1.1-e2e',
      );
      writeFileSync(join(next, 'Chart.yaml'), meta);
      // The adopted CRD's fields are co-owned with the global setup's kubectl field manager, so the
      // first upgrade that changes them must force (docs/adr/0009).
      helmOk(['upgrade', release, next, '-n', ns, '--reuse-values', '--wait', '--force-conflicts']);
    } finally {
      rmSync(next, { recursive: true, force: true });
    }
    const upgraded = liveCrd();
    expect(upgraded.metadata.resourceVersion).not.toBe(before.metadata.resourceVersion);
    expect(printerColumns(upgraded)).toEqual([...printerColumns(before)!, 'Upgraded']);
    expect(upgraded.metadata.labels?.['helm.sh/chart']).toBe('scalableapp-operator-0.1.1-e2e');

    // Helm owns the column now: going back needs no force, and removes it.
    const reverted = upgradeChart('operator', release, ns, []);
    if (!reverted.ok) throw new Error(reverted.stderr);
    const back = liveCrd();
    expect(printerColumns(back)).toEqual(printerColumns(before));
    expect(back.metadata.labels?.['helm.sh/chart']).toBe('scalableapp-operator-0.1.0');
  });

  it('keeps the CRD, the apps and their children on uninstall', async () => {
    await op?.stop();
    op = undefined;
    const out = helmOk(['uninstall', release, '-n', ns, '--wait']);
    expect(out).toContain(`[CustomResourceDefinition] ${CRD}`);
    expect(tryKubectl(['get', 'deployment', fullname, '-n', ns]).ok).toBe(false);
    expect(tryKubectl(['get', 'clusterrole', fullname]).ok).toBe(false);
    expect(tryKubectl(['get', 'crd', CRD]).ok).toBe(true);
    expect(tryKubectl(['get', 'scalableapp', sample.metadata.name, '-n', appNs]).ok).toBe(true);
    expect(tryKubectl(['get', 'deployment', `${sample.metadata.name}-web`, '-n', appNs]).ok).toBe(true);
  });

  it('adopts the kept CRD again under the same release name; a second release needs crds.install=false', () => {
    const again = install(release);
    expect(again.ok).toBe(true);
    expect(liveCrd().metadata.annotations?.['meta.helm.sh/release-name']).toBe(release);

    const second = `${release}-apps`;
    const refused = install(second);
    expect(refused.ok).toBe(false);
    expect(refused.stderr).toContain(`"meta.helm.sh/release-name" must equal "${second}"`);
    const scoped = install(second, [], { crds: { install: false }, watchNamespace: appNs });
    expect(scoped.ok).toBe(true);
  });

  it('reconciles with the namespaced Role of a release scoped by watchNamespace', async () => {
    const scoped = `${release}-apps-scalableapp-operator`;
    expect(tryKubectl(['get', 'clusterrole', scoped]).ok).toBe(false);
    expect(tryKubectl(['get', 'role', scoped, '-n', appNs]).ok).toBe(true);
    op = await startOperator({ namespace: appNs, serviceAccount: { name: scoped, namespace: ns } });
    applyManifest(appNs, { ...sample, metadata: { name: 'scoped' } });
    await readyAt(appNs, 'scoped');
    // A change to the app the first release's operator made is reconciled too.
    kubectl([
      'patch',
      'scalableapp',
      sample.metadata.name,
      '-n',
      appNs,
      '--type=merge',
      '-p',
      '{"spec":{"web":{"replicas":3}}}',
    ]);
    await eventually('the older app scaled to 3 by the scoped operator', () => {
      const d = json<{ spec: { replicas?: number } }>([
        'get',
        'deploy',
        `${sample.metadata.name}-web`,
        '-n',
        appNs,
      ]);
      return d.spec.replicas === 3;
    });
  });
});
