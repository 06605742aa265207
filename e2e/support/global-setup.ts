// Starts the local cluster for the cluster tests, or reuses one that already runs. Whether this run
// started it is recorded so the teardown stops only what it started.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { clusterScript, kubeconfigPath } from './cluster-script.ts';
import { STARTED_MARKER } from './markers.ts';

export default async function globalSetup(): Promise<void> {
  const running = clusterScript('status').ok;
  if (!running) {
    console.log('\n[cluster tests] starting the local cluster (tools/cluster.sh up)');
    const up = clusterScript('up');
    if (!up.ok) throw new Error('tools/cluster.sh up failed; see its output above');
    writeFileSync(STARTED_MARKER, new Date().toISOString());
  } else {
    console.log('\n[cluster tests] reusing the running local cluster');
  }
  process.env.KUBECONFIG = kubeconfigPath();
  // Every cluster test file may create ScalableApps first thing, in any order: the CRD (and the
  // operator's RBAC) must be there before any of them runs, not only once some test installed it.
  execFileSync('bash', [new URL('../../tools/operator-local.sh', import.meta.url).pathname, 'install'], {
    stdio: 'inherit',
  });
}
