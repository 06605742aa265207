import type { V1Pod } from '@kubernetes/client-node';
import { runningContainer } from '../controller/testdata/pods.ts';
import { incarnation, isContainerReady, isContainerRunning } from './pods.ts';

// The kubelet reports container statuses sorted by name: with monitoring on, the exporter
// (`metrics`) comes before `postgres`, so the server's status is never "the first one".
const withExporter = (server: Partial<ReturnType<typeof runningContainer>>): V1Pod => ({
  metadata: { name: 'shop-db-0', uid: 'u1' },
  status: {
    containerStatuses: [runningContainer('metrics'), { ...runningContainer('postgres'), ...server }],
  },
});

describe('a pod server container, found by name', () => {
  it('is a new incarnation when the server restarts, not when the exporter beside it does', () => {
    const pod = withExporter({ restartCount: 2 });
    expect(incarnation(pod, 'postgres')).toBe('u1/2');
    const exporterRestarted: V1Pod = {
      ...pod,
      status: {
        containerStatuses: [
          runningContainer('metrics', { restarts: 5 }),
          runningContainer('postgres', { restarts: 2 }),
        ],
      },
    };
    expect(incarnation(exporterRestarted, 'postgres')).toBe(incarnation(pod, 'postgres'));
  });

  it('runs and is ready by its own status, whatever the exporter does', () => {
    const waiting = withExporter({ state: { waiting: { reason: 'CrashLoopBackOff' } }, ready: false });
    expect(isContainerRunning(waiting, 'postgres')).toBe(false);
    expect(isContainerReady(waiting, 'postgres')).toBe(false);
    expect(isContainerRunning(waiting, 'metrics')).toBe(true);
    expect(isContainerRunning(withExporter({}), 'postgres')).toBe(true);
    expect(isContainerRunning(undefined, 'postgres')).toBe(false);
  });
});
