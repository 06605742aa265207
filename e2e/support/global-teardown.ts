import { existsSync, rmSync } from 'node:fs';
import { clusterScript } from './cluster-script.ts';
import { STARTED_MARKER } from './markers.ts';

export default async function globalTeardown(): Promise<void> {
  if (!existsSync(STARTED_MARKER)) return; // someone else's cluster: leave it running
  rmSync(STARTED_MARKER);
  if (process.env.SCALABLEAPP_KEEP_CLUSTER === '1') {
    console.log('[cluster tests] SCALABLEAPP_KEEP_CLUSTER=1: leaving the cluster running');
    return;
  }
  console.log('[cluster tests] stopping the cluster this run started');
  clusterScript('down');
}
