// The backups' status (status.backups, DatabaseBackup/ShardsBackup; ADR 0029): read from the last
// backup Job's result and the repository it reports, kept in the status while a new Job runs.
// The report is pgBackRest 2.45's own output, captured from a real repository (two full backups).
import { readFileSync } from 'node:fs';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { TEST_TLS } from '../tiers/testdata/facts.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { BACKUP_REQUEST_ANNOTATION, CLUSTER_LABEL } from '../tiers/postgres-base-backup.ts';
import { backupEvents, observeBackups, recordOf, type BackupRecord } from './backups.ts';
import type { ScalableAppStatus } from '../api/scalable-app.ts';

const REPORT = readFileSync(new URL('./testdata/pgbackrest-info-2.45.json', import.meta.url), 'utf8').trim();
const facts: ObservedFacts = { gatewayApi: false, tls: TEST_TLS };
const NOW = new Date('2026-12-07T20:00:00Z');
const backup = {
  s3: {
    endpoint: 'minio.storage.svc',
    bucket: 'backups',
    accessKeyId: { name: 'k', key: 'id' },
    secretAccessKey: { name: 'k', key: 'secret' },
  },
};
const app = parseApp({ web: { image: 'x' }, database: { backup } });
const jobLabels = {
  'app.kubernetes.io/instance': 'shop',
  'app.kubernetes.io/component': 'database-backup',
  [CLUSTER_LABEL]: 'shop-db',
};

/** A cache holding these Jobs and Pods, selected as ChildCaches selects. */
function world(jobs: V1Job[], pods: V1Pod[] = []) {
  const all: Record<string, { metadata?: { labels?: Record<string, string> } }[]> = { Job: jobs, Pod: pods };
  return {
    select: (kind: string, _ns: string, labels: Record<string, string>) =>
      (all[kind] ?? []).filter((o) =>
        Object.entries(labels).every(([k, v]) => o.metadata?.labels?.[k] === v),
      ),
  };
}
/** A backup Job, running or ended (at `endedAt`, as the watch's JSON says it). */
const job = (name: string, ended?: 'Complete' | 'Failed', endedAt = '2026-12-07T18:30:30Z'): V1Job => ({
  metadata: { name, labels: jobLabels, annotations: { [BACKUP_REQUEST_ANNOTATION]: name } },
  status: ended
    ? { conditions: [{ type: ended, status: 'True', lastTransitionTime: endedAt as unknown as Date }] }
    : { active: 1 },
});
const podOf = (jobName: string, message: string): V1Pod => ({
  metadata: { name: `${jobName}-x`, labels: { ...jobLabels, 'job-name': jobName } },
  status: {
    phase: 'Succeeded',
    containerStatuses: [{ state: { terminated: { exitCode: 0, message } } } as never],
  },
});
const RECORD: BackupRecord = {
  cluster: 'shop-db',
  lastBackup: {
    label: '20261207-183022F',
    startTime: '2026-12-07T18:30:22Z',
    stopTime: '2026-12-07T18:30:25Z',
    job: 'shop-db-backup-a',
  },
  firstRecoverabilityPoint: '2026-12-07T18:30:21Z',
  fullBackups: 2,
};

describe("the backups' status", () => {
  it("reads the newest backup and the first recoverability point from pgBackRest's report", () => {
    expect(recordOf('shop-db', 'shop-db-backup-a', REPORT)).toEqual(RECORD);
    // A report cut at 4 KiB, or none, gives nothing rather than a guess.
    expect(recordOf('shop-db', 'j', REPORT.slice(0, 600))).toBeUndefined();
    expect(recordOf('shop-db', 'j', undefined)).toBeUndefined();
    expect(recordOf('shop-db', 'j', '[{"backup":[]}]')).toBeUndefined();
  });

  it('says NoBackup until a backup completes, then BackupCompleted with the record', () => {
    const none = observeBackups(app, facts, world([]), undefined, NOW);
    expect(none.records).toEqual([]);
    expect(none.conditions).toEqual([
      expect.objectContaining({ type: 'DatabaseBackup', status: 'False', reason: 'NoBackup' }),
    ]);
    expect(none.conditions[0]!.message).toContain('scalableapp.io/backup-request');
    const done = observeBackups(
      app,
      facts,
      world([job('shop-db-backup-a', 'Complete')], [podOf('shop-db-backup-a', REPORT)]),
      undefined,
      NOW,
    );
    expect(done.records).toEqual([RECORD]);
    expect(done.conditions).toEqual([
      {
        type: 'DatabaseBackup',
        status: 'True',
        reason: 'BackupCompleted',
        message: 'shop-db: last full backup 20261207-183022F',
      },
    ]);
  });

  it('keeps what the last backup found while the next one runs, and after its Job is gone', () => {
    const previous = { backups: [RECORD] } as ScalableAppStatus;
    for (const jobs of [[job('shop-db-backup-b')], []]) {
      const now = observeBackups(app, facts, world(jobs), previous, NOW);
      expect(now.records).toEqual([RECORD]);
      expect(now.conditions[0]).toMatchObject({ status: 'True', reason: 'BackupCompleted' });
    }
  });

  it('a failed Job turns the condition False, naming the Job, with the last good record kept', () => {
    const previous = { backups: [RECORD] } as ScalableAppStatus;
    const now = observeBackups(app, facts, world([job('shop-db-backup-b', 'Failed')]), previous, NOW);
    expect(now.records).toEqual([RECORD]);
    expect(now.conditions[0]).toMatchObject({ status: 'False', reason: 'BackupFailed' });
    expect(now.conditions[0]!.message).toContain(
      'shop-db-backup-b failed (kubectl logs job/shop-db-backup-b',
    );
  });

  it('one Normal Event per new backup, one Warning per failure; none while nothing changes', () => {
    const failed = observeBackups(app, facts, world([job('shop-db-backup-b', 'Failed')]), undefined, NOW);
    expect(backupEvents(undefined, failed.conditions, failed.records)).toEqual([
      { type: 'Warning', reason: 'BackupFailed', message: failed.conditions[0]!.message },
    ]);
    const after = {
      conditions: failed.conditions.map((c) => ({ ...c, lastTransitionTime: 't' })),
    } as ScalableAppStatus;
    expect(backupEvents(after, failed.conditions, failed.records)).toEqual([]);
    const done = observeBackups(
      app,
      facts,
      world([job('shop-db-backup-a', 'Complete')], [podOf('shop-db-backup-a', REPORT)]),
      undefined,
      NOW,
    );
    const [completed, ...more] = backupEvents(after, done.conditions, done.records);
    expect(more).toEqual([]);
    expect(completed).toMatchObject({ type: 'Normal', reason: 'BackupCompleted' });
    expect(completed!.message).toContain('20261207-183022F');
    expect(completed!.message).toContain('the first recoverability point is 2026-12-07T18:30:21Z');
    expect(backupEvents({ backups: [RECORD] } as ScalableAppStatus, done.conditions, done.records)).toEqual(
      [],
    );
    // Never NoBackup: every new app with backups starts there.
    const none = observeBackups(app, facts, world([]), undefined, NOW);
    expect(backupEvents(undefined, none.conditions, none.records)).toEqual([]);
  });

  it("with a schedule's and a request's Jobs both kept, the one that ended last tells", () => {
    const reported = [podOf('shop-db-backup-a', REPORT)];
    const okThenFailed = [
      job('shop-db-backup-a', 'Complete', '2026-12-07T18:30:30Z'),
      job('shop-db-backup-b', 'Failed', '2026-12-07T19:00:00Z'),
    ];
    const failed = observeBackups(app, facts, world(okThenFailed, reported), undefined, NOW);
    expect(failed.conditions[0]).toMatchObject({ status: 'False', reason: 'BackupFailed' });
    // The good backup before it is still the last one there is.
    expect(failed.records).toEqual([RECORD]);
    const failedThenOk = [
      job('shop-db-backup-b', 'Failed', '2026-12-07T18:00:00Z'),
      job('shop-db-backup-a', 'Complete', '2026-12-07T18:30:30Z'),
    ];
    const ok = observeBackups(app, facts, world(failedThenOk, reported), undefined, NOW);
    expect(ok.conditions[0]).toMatchObject({ status: 'True', reason: 'BackupCompleted' });
    // A kept Job's older report never replaces a newer record whose Job is gone.
    const newer = {
      ...RECORD,
      lastBackup: { ...RECORD.lastBackup, label: 'later', stopTime: '2026-12-07T19:40:00Z' },
    };
    const kept = observeBackups(
      app,
      facts,
      world(failedThenOk, reported),
      { backups: [newer] } as ScalableAppStatus,
      NOW,
    );
    expect(kept.records).toEqual([newer]);
  });

  it("looks again just after a schedule's next time, and at least hourly; not at all without a schedule", () => {
    const scheduled = (schedule: string) =>
      parseApp({ web: { image: 'x' }, database: { backup: { ...backup, schedule } } });
    // NOW is 20:00:00: the next 20:30 is 30 minutes away, woken a second after.
    expect(observeBackups(scheduled('30 * * * *'), facts, world([]), undefined, NOW).recheckMs).toBe(
      30 * 60_000 + 1000,
    );
    expect(observeBackups(scheduled('0 3 * * *'), facts, world([]), undefined, NOW).recheckMs).toBe(3600_000);
    expect(observeBackups(app, facts, world([]), undefined, NOW).recheckMs).toBeUndefined();
  });

  it('one condition per tier: the shards, each a cluster of its own', () => {
    const sharded = parseApp({ web: { image: 'x' }, shards: { count: 2, key: 'k', backup } });
    const { conditions } = observeBackups(sharded, facts, world([]), undefined, NOW);
    expect(conditions).toHaveLength(1);
    expect(conditions[0]).toMatchObject({ type: 'ShardsBackup', reason: 'NoBackup' });
    expect(conditions[0]!.message).toMatch(/shop-shard-0: .*; shop-shard-1: /);
  });
});
