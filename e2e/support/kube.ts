// What cluster tests share: the admin kubeconfig of the local cluster, the pinned kubectl, a
// namespace per test file, and polling without timing assertions.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { Kube } from '../../operator/kube/client.ts';
import { kubeconfigPath } from './cluster-script.ts';
export { eventually } from './eventually.ts';

const toolsBin = execFileSync(
  'bash',
  [new URL('../../tools/toolchain.sh', import.meta.url).pathname, '--print'],
  { encoding: 'utf8' },
).trim();

export const KUBECONFIG = process.env.KUBECONFIG ?? kubeconfigPath();

/** spawnSync's default (1 MiB) kills kubectl part-way through a list of a hundred full-stack apps. */
const MAX_OUTPUT = 256 << 20;

/** Runs the kubectl that tools/toolchain.sh built (matching the cluster), as cluster admin. */
/** The command line of one kubectl call against the test cluster: [binary, arguments]. */
const kubectlCommand = (args: string[]): [string, string[]] => [
  `${toolsBin}/kubectl`,
  ['--kubeconfig', KUBECONFIG, ...args],
];

export function kubectl(args: string[], input?: string): string {
  const r = tryKubectl(args, input);
  if (!r.ok) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** kubectl running beside the test (a client that runs while the test breaks a server); never throws. */
export function kubectlAsync(
  args: string[],
  input?: string,
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(...kubectlCommand(args));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ ok: code === 0, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Like kubectl, but returns the outcome instead of throwing (for commands expected to fail). */
export function tryKubectl(args: string[], input?: string): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync(...kubectlCommand(args), { encoding: 'utf8', input, maxBuffer: MAX_OUTPUT });
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

export function adminKube(fieldManager = 'scalableapp-tests'): Kube {
  const kc = new KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  return new Kube(kc, fieldManager);
}

export function json<T = unknown>(args: string[]): T {
  return JSON.parse(kubectl([...args, '-o', 'json'])) as T;
}

/** The Events in `ns` matching a field selector, e.g. `reason=Failover` or `involvedObject.name=x,reason=y`. */
export const eventsWhere = (ns: string, fieldSelector: string) =>
  json<{
    items: {
      reason?: string;
      message?: string;
      count?: number;
      firstTimestamp?: string;
      eventTime?: string;
    }[];
  }>(['get', 'events', '-n', ns, '--field-selector', fieldSelector]).items;

/** A fresh namespace for one test file; delete it in afterAll. */
export function createNamespace(prefix: string, labels: Record<string, string> = {}): string {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  kubectl(['create', 'namespace', name]);
  if (Object.keys(labels).length)
    kubectl(['label', 'namespace', name, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)]);
  return name;
}

export function deleteNamespace(name: string): void {
  tryKubectl(['delete', 'namespace', name, '--wait=false']);
}
