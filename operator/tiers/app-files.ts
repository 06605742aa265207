import type { V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { shardMapVolume } from './shards.ts';
import { caVolume } from './tls.ts';

/**
 * The files the app's own pods (web, consumers) read beside their environment: the shard map (the
 * kubelet swaps it on change) and the CA certificate the connection URLs name as sslrootcert.
 */
export function appFiles(app: ScalableApp): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const parts = [shardMapVolume(app), caVolume(app)];
  return { volumes: parts.flatMap((p) => p.volumes), mounts: parts.flatMap((p) => p.mounts) };
}
