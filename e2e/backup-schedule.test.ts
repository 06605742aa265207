// Scheduled base backups on the local control plane (simulated nodes, the operator as a host
// process): each time the schedule comes round a backup Job named after that time, one per time, and
// the last time's Job goes once the next one is there. kwok completes a Job's pods at once, so the
// backup itself (pgBackRest into a store) and the status it reports are shown on the real node
// (real-backup.test.ts); one Job at a time is pinned by the unit tests (postgres-base-backup.test.ts).
import { applyApp, getApp } from './support/apps.ts';
import { createNamespace, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';
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

describe('backups on a schedule', () => {
  it("runs one Job per time the schedule comes round, named after it, and the last time's Job goes", async () => {
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
    const firstRequest = requestOf(first!);
    expect(firstRequest).toMatch(/^scheduled-\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/);
    expect(first!.metadata.name).toBe(backupJobName({ name: 'shop-db' }, firstRequest));
    const firstTime = Date.parse(firstRequest.slice('scheduled-'.length));

    // The next minute: the operator woke for it without any change to the app, and made its Job.
    const nextRequest = `scheduled-${new Date(firstTime + 60_000).toISOString().replace('.000Z', 'Z')}`;
    const seen = new Set<string>();
    await eventually(
      "the next time's Job, and the first one gone",
      () => {
        const jobs = backupJobs();
        for (const j of jobs) seen.add(requestOf(j));
        const names = jobs.map((j) => j.metadata.name);
        return names.length === 1 && names[0] === backupJobName({ name: 'shop-db' }, nextRequest);
      },
      150_000,
      1000,
    );
    // Every Job seen answered one of the schedule's times from the first on, and nothing else.
    expect([...seen].filter((r) => !/^scheduled-.*:00Z$/.test(r) || r < firstRequest)).toEqual([]);
    expect(getApp(ns, 'shop').metadata.generation).toBe(1);
  }, 300_000);
});
