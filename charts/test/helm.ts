// The pinned helm binary (built by tools/toolchain.sh) and what the chart tests do with it: build a
// chart's dependencies once per content, render a chart to objects, lint. Used by charts/test/*
// and by the cluster tests that install charts (e2e/charts-*.test.ts).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { V1PodSpec } from '@kubernetes/client-node';
import type { Child } from '../../operator/tiers/objects.ts';

/** The repository's charts/ directory. */
export const CHARTS_DIR = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

let binary: string | undefined;

/** The helm that tools/toolchain.sh built (the version pinned in tools/versions.sh). */
export function helmBinary(): string {
  if (binary) return binary;
  const toolchain = new URL('../../tools/toolchain.sh', import.meta.url).pathname;
  const bin = execFileSync('bash', [toolchain, '--print'], { encoding: 'utf8' }).trim();
  const path = join(bin, 'helm');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash tools/toolchain.sh\` first`);
  binary = path;
  return path;
}

export interface HelmResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs helm; the outcome, for commands a test expects to fail. */
export function runHelm(args: readonly string[]): HelmResult {
  const r = spawnSync(helmBinary(), args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`helm ${args.join(' ')}: ${r.error.message}`, { cause: r.error });
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

/** Runs helm and returns its stdout; throws with its stderr when it fails. */
export function helm(args: readonly string[]): string {
  const r = runHelm(args);
  if (!r.ok) throw new Error(`helm ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** Runs helm without blocking (for `helm test`, which waits on pods a test must settle meanwhile). */
export function helmAsync(args: readonly string[]): Promise<HelmResult> {
  return new Promise((done, fail) => {
    const child = spawn(helmBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ ok: code === 0, stdout, stderr }));
  });
}

/**
 * Ends a `helm test` pod the way its container would have, on a cluster that runs no container:
 * KWOK marks every pod Running and Ready and never completes one (it has no stage for a bare pod
 * with restartPolicy Never), so `helm test` would wait until its timeout. Waits until the pod with
 * a uid other than `previousUid` is Running (helm created it, and admission let it in), then sets
 * its phase through the status subresource.
 */
export async function settleTestPod(
  kubectl: (args: string[]) => string,
  namespace: string,
  pod: string,
  phase: 'Succeeded' | 'Failed',
  previousUid?: string,
): Promise<{ uid: string }> {
  for (let i = 0; ; i++) {
    const r = kubectl([
      'get',
      'pods',
      '-n',
      namespace,
      '--field-selector',
      `metadata.name=${pod}`,
      '-o',
      'json',
    ]);
    const p = (JSON.parse(r) as { items: { metadata: { uid: string }; status?: { phase?: string } }[] })
      .items[0];
    if (p && p.metadata.uid !== previousUid && p.status?.phase === 'Running') {
      kubectl([
        'patch',
        'pod',
        pod,
        '-n',
        namespace,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status: { phase } }),
      ]);
      return { uid: p.metadata.uid };
    }
    if (i > 600) throw new Error(`helm test pod ${namespace}/${pod} never came up Running`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const chartPath = (chart: string) => join(CHARTS_DIR, chart);

/** Every chart directory under charts/ (those with a Chart.yaml), library charts included. */
export function chartDirectories(): string[] {
  return readdirSync(CHARTS_DIR)
    .filter((d) => existsSync(join(CHARTS_DIR, d, 'Chart.yaml')))
    .sort();
}

interface ChartMeta {
  name: string;
  type?: string;
  dependencies?: { name: string; version: string; repository?: string }[];
}

export const chartMeta = (chart: string): ChartMeta =>
  parse(readFileSync(join(chartPath(chart), 'Chart.yaml'), 'utf8')) as ChartMeta;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}

/** A digest of Chart.yaml and every file of the local (file://) dependencies: what the build depends on. */
function dependencyDigest(chart: string, deps: NonNullable<ChartMeta['dependencies']>): string {
  const h = createHash('sha256').update(readFileSync(join(chartPath(chart), 'Chart.yaml')));
  for (const d of deps) {
    if (!d.repository?.startsWith('file://')) continue;
    const dir = resolve(chartPath(chart), d.repository.slice('file://'.length));
    for (const f of filesUnder(dir)) h.update(f).update(readFileSync(f));
  }
  return h.digest('hex');
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * `helm dependency build` for one chart, skipped when the dependencies' content has not changed
 * since the last build (the packaged .tgz in charts/<chart>/charts/ are generated and gitignored).
 * Jest runs test files in parallel workers: a lock directory keeps two from building one chart at once.
 */
export function buildDependencies(chart: string): void {
  const deps = chartMeta(chart).dependencies ?? [];
  if (!deps.length) return;
  const stampDir = join(tmpdir(), 'scalableapp-helm-deps');
  mkdirSync(stampDir, { recursive: true });
  const key = createHash('sha256').update(chartPath(chart)).digest('hex').slice(0, 16);
  const stamp = join(stampDir, `${key}.digest`);
  const lock = join(stampDir, `${key}.lock`);
  const digest = dependencyDigest(chart, deps);
  const packages = deps.map((d) => join(chartPath(chart), 'charts', `${d.name}-${d.version}.tgz`));
  // The stamp names the inputs and the packages built from them, so a package replaced by hand
  // (or by a checkout) is noticed too.
  const current = () =>
    packages.every((p) => existsSync(p))
      ? `${digest} ${createHash('sha256')
          .update(packages.map((p) => readFileSync(p).toString('base64')).join())
          .digest('hex')}`
      : undefined;
  const fresh = () => existsSync(stamp) && readFileSync(stamp, 'utf8') === current();
  if (fresh()) return;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another worker builds it; a lock older than two minutes was left by a killed run.
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() - since > 120_000) {
        rmSync(lock, { recursive: true, force: true });
      }
      sleep(200);
    }
  }
  try {
    if (!fresh()) {
      helm(['dependency', 'build', chartPath(chart), '--skip-refresh']);
      writeFileSync(stamp, current() ?? '');
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Writes values to a temporary file for `-f` (JSON is YAML; numbers reach helm as from a values file). */
export function valuesFile(values: unknown): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'scalableapp-values-'));
  const path = join(dir, 'values.json');
  writeFileSync(path, JSON.stringify(values));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RenderOptions {
  readonly release: string;
  readonly namespace: string;
  readonly values?: unknown;
  /** API versions the "cluster" serves (`--api-versions`), e.g. gateway.networking.k8s.io/v1/HTTPRoute. */
  readonly apiVersions?: readonly string[];
}

/** `helm template` of one chart (dependencies built first); the outcome, so a test can expect failure. */
export function templateChart(chart: string, o: RenderOptions): HelmResult {
  buildDependencies(chart);
  const values = valuesFile(o.values ?? {});
  try {
    return runHelm([
      'template',
      o.release,
      chartPath(chart),
      '--namespace',
      o.namespace,
      '-f',
      values.path,
      ...(o.apiVersions ?? []).flatMap((v) => ['--api-versions', v]),
    ]);
  } finally {
    values.remove();
  }
}

/**
 * The NOTES a release of the chart prints after `helm install` (`helm template` renders none): a
 * client-side dry run, so nothing reaches a cluster and lookups find nothing.
 */
export function chartNotes(chart: string, o: RenderOptions): string {
  buildDependencies(chart);
  const values = valuesFile(o.values ?? {});
  try {
    const out = helm([
      'install',
      o.release,
      chartPath(chart),
      '--dry-run=client',
      '--namespace',
      o.namespace,
      '-f',
      values.path,
    ]);
    const at = out.indexOf('\nNOTES:\n');
    if (at < 0) throw new Error(`helm install --dry-run of ${chart} printed no NOTES`);
    return out.slice(at + '\nNOTES:\n'.length);
  } finally {
    values.remove();
  }
}

/** A rendered object: the shape the operator's builders return, so both sides read alike. */
export type RenderedObject = Child;

/** The objects `helm template` renders for one chart (hooks and test pods included). */
export function renderChart(chart: string, o: RenderOptions): RenderedObject[] {
  const r = templateChart(chart, o);
  if (!r.ok) throw new Error(`helm template ${chart} failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length)
        throw new Error(`helm template ${chart} printed invalid YAML: ${d.errors[0]!.message}`);
      return d.toJS() as RenderedObject | null;
    })
    .filter((o): o is RenderedObject => o !== null);
}

/** Every pod spec among rendered objects (pods and workloads' templates), by `Kind/name`. */
export function podSpecs(objects: readonly RenderedObject[]): [string, V1PodSpec][] {
  return objects.flatMap((o): [string, V1PodSpec][] => {
    if (o.kind === 'Pod') return [[`Pod/${o.metadata.name}`, o.spec as V1PodSpec]];
    const template = (o.spec as { template?: { spec: V1PodSpec } } | undefined)?.template;
    return template ? [[`${o.kind}/${o.metadata.name}`, template.spec]] : [];
  });
}
