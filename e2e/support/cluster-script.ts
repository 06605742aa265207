// Thin wrapper around tools/cluster.sh, the one place that knows how the local cluster is run.
import { execFileSync, spawnSync } from 'node:child_process';

const script = new URL('../../tools/cluster.sh', import.meta.url).pathname;

export function clusterScript(...args: string[]): { ok: boolean; stdout: string } {
  const r = spawnSync('bash', [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return { ok: r.status === 0, stdout: r.stdout };
}

export function kubeconfigPath(): string {
  return execFileSync('bash', [script, 'kubeconfig'], { encoding: 'utf8' }).trim();
}
