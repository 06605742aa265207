// Scheduled base backups on the local control plane (simulated nodes, the operator as a host
// process): the schedule's time makes a backup Job of its own name, one runs at a time, a failed one
// is told once and the schedule's next time runs anyway. The backup itself (pgBackRest into a store)
// is shown on the real node (real-backup.test.ts); here the Jobs' pods never finish by themselves,
// which is what shows that a second time of the schedule waits for the first Job.
import { applyApp, getApp } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventsWhere, eventually, json, kubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';
import { BACKUP_REQUEST_ANNOTATION, backupJobName } from '../operator/tiers/postgres-base-backup.ts';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('backup-schedule');
  kubectl([
    'create',
    'secret',
    'generic',
    'store-keys',
    '-n',
    ns,
    '--from-literal=id=a',
    '--from-literal=secret=b',
  ]);
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  await op?.stop();
  deleteNamespace(ns);
});

interface Job {
  metadata: { name: string; annotations?: Record<string, string> };
  status?: { conditions?: { type: string; status: string }[] };
}
const backupJobs = () =>
  json<{ items: Job[] }>([
    'get',
    'jobs',
    '-n',
    ns,
    '-l',
    'app.kubernetes.io/instance=shop,app.kubernetes.io/component=database-backup',
  ]).items;
const requestOf = (j: Job) => j.metadata.annotations?.[BACKUP_REQUEST_ANNOTATION] ?? '';
const condition = (type: string) =>
  getApp(ns, 'shop').status?.conditions?.find((c: { type: string }) => c.type === type) as
    { status: string; reason: string; message: string } | undefined;

describe('backups on a schedule', () => {
  it("runs a Job at the schedule's time, one at a time; a failed one is told once and the next time runs", async () => {
    applyApp(ns, 'shop', {
      database: {
        replicas: 0,
        storage: { size: '1Gi' },
        backup: {
          s3: {
            endpoint: 'store.example',
            bucket: 'backups',
            accessKeyId: { name: 'store-keys', key: 'id' },
            secretAccessKey: { name: 'store-keys', key: 'secret' },
          },
          walQueueLimit: '256Mi',
          schedule: '* * * * *',
        },
      },
    });
    // Setting a schedule starts with a backup: its most recent time (a minute ago at most).
    const [first] = await eventually("the schedule's first Job", () => {
      const jobs = backupJobs();
      return jobs.length > 0 && jobs;
    });
    expect(requestOf(first!)).toMatch(/^scheduled-\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/);
    expect(first!.metadata.name).toBe(backupJobName({ name: 'shop-db' }, requestOf(first!)));

    // The schedule comes round while the first Job runs (its pod never ends here): no second Job.
    const firstTime = Date.parse(requestOf(first!).slice('scheduled-'.length));
    const wait = firstTime + 60_000 + 15_000 - Date.now();
    await new Promise((r) => setTimeout(r, Math.max(wait, 0)));
    expect(backupJobs().map((j) => j.metadata.name)).toEqual([first!.metadata.name]);

    // Its pod gone: the Job fails (no retries). The condition names it, one Warning says so, and the
    // schedule's latest time gets its Job; the failed one, no longer asked for, goes.
    kubectl(['delete', 'pods', '-n', ns, '-l', `job-name=${first!.metadata.name}`, '--wait=false']);
    const failed = await eventually('DatabaseBackup BackupFailed', () => {
      const c = condition('DatabaseBackup');
      return c?.reason === 'BackupFailed' && c;
    });
    expect(failed.status).toBe('False');
    expect(failed.message).toContain(`backup Job ${first!.metadata.name} failed`);
    const next = await eventually("the next time's Job", () =>
      backupJobs().find((j) => j.metadata.name !== first!.metadata.name),
    );
    expect(requestOf(next) > requestOf(first!)).toBe(true);
    await eventually(
      'the failed Job gone',
      () => !backupJobs().some((j) => j.metadata.name === first!.metadata.name),
    );
    expect(eventsWhere(ns, 'involvedObject.name=shop,reason=BackupFailed').map((e) => e.count ?? 1)).toEqual([
      1,
    ]);
  }, 300_000);
});
