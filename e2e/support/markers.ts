import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Present while a test run owns the cluster it started. */
export const STARTED_MARKER = join(
  tmpdir(),
  `scalableapp-cluster-started-${process.env.SCALABLEAPP_CLUSTER ?? 'scalableapp'}`,
);
