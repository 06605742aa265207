// Whether archiving keeps up, as the status tells it (archiving.ts): the verdicts from a primary's
// counts, and the reconciler's conditions, Events and writes around them. Real archiving into a real
// store, failing and catching up, is in server-tests/backup.test.ts.
import type { ArchiverState, PostgresArchiver } from '../dataplane/postgres/archiver.ts';
import { archivingCondition, archivingEvents, archivingVerdict, ARCHIVE_RECHECK_MS } from './archiving.ts';
import { fakeWorld, pinned } from './testdata/fake-world.ts';
import { dbPrimaryPod } from './testdata/pods.ts';

const now = new Date('2026-12-01T12:00:00Z');
const ago = (s: number) => new Date(now.getTime() - s * 1000);
const healthy: ArchiverState = {
  archived: 40,
  failed: 0,
  lastArchivedWal: '000000010000000000000028',
  lastArchivedAt: ago(20),
  waiting: 0,
  now,
};
const settings = { rpoSeconds: 300, walQueueLimit: '1Gi' };

describe('the verdict on one primary', () => {
  it('archiving: nothing waits, or a segment waits only just', () => {
    expect(archivingVerdict('shop-db', healthy, settings).reason).toBe('Archiving');
    expect(archivingVerdict('shop-db', { ...healthy, waiting: 1 }, settings).reason).toBe('Archiving');
    // A server that archived nothing yet and has nothing waiting is fine too.
    expect(archivingVerdict('shop-db', { archived: 0, failed: 0, waiting: 0, now }, settings).reason).toBe(
      'Archiving',
    );
  });

  it('failing: the last attempt failed after the last success, naming the segment', () => {
    const v = archivingVerdict(
      'shop-db',
      { ...healthy, failed: 3, lastFailedWal: '000000010000000000000029', lastFailedAt: ago(5), waiting: 2 },
      settings,
    );
    expect(v).toEqual({
      reason: 'ArchivingFailing',
      message: "shop-db: archiving fails; pgBackRest's error is in the primary's log",
    });
    // A failure before the last success is history.
    expect(
      archivingVerdict('shop-db', { ...healthy, failed: 1, lastFailedAt: ago(60) }, settings).reason,
    ).toBe('Archiving');
  });

  it('filling: half the bound waits (16 MiB a segment), before anything is dropped', () => {
    expect(archivingVerdict('shop-db', { ...healthy, waiting: 31 }, settings).reason).toBe('Archiving');
    const v = archivingVerdict('shop-db', { ...healthy, waiting: 32, lastFailedAt: ago(1) }, settings);
    expect(v.reason).toBe('ArchiveQueueFilling');
    expect(v.message).toContain('more than half of backup.walQueueLimit (1Gi)');
    // The smallest bound: one segment in flight is half of it, and no news.
    const small = { rpoSeconds: 300, walQueueLimit: '32Mi' };
    expect(archivingVerdict('shop-db', { ...healthy, waiting: 1 }, small).reason).toBe('Archiving');
    expect(archivingVerdict('shop-db', { ...healthy, waiting: 2 }, small).reason).toBe('ArchiveQueueFilling');
  });

  it("behind: the oldest waiting segment's own age is past twice the RPO bound", () => {
    const waitingSince = (sec: number) => ({ ...healthy, waiting: 2, oldestWaitingAt: ago(sec) });
    expect(archivingVerdict('shop-db', waitingSince(599), settings).reason).toBe('Archiving');
    expect(archivingVerdict('shop-db', waitingSince(601), settings).reason).toBe('ArchivingBehind');
    // A quiet primary that archived last a day ago, with a segment just finished: not behind.
    expect(
      archivingVerdict('shop-db', { ...waitingSince(1), lastArchivedAt: ago(86400) }, settings).reason,
    ).toBe('Archiving');
    // A new or just promoted primary that never archived, its first segment just finished: not behind.
    expect(
      archivingVerdict(
        'shop-db',
        { archived: 0, failed: 0, waiting: 1, oldestWaitingAt: ago(2), now },
        settings,
      ).reason,
    ).toBe('Archiving');
  });

  it("a tier's condition carries its worst cluster's reason and every bad cluster's message", () => {
    const c = archivingCondition('ShardsArchiving', [
      { reason: 'Archiving', message: 'shop-shard-0: archiving' },
      { reason: 'ArchivingBehind', message: 'shop-shard-1: behind' },
      { reason: 'ArchivingFailing', message: 'shop-shard-2: fails' },
    ]);
    expect(c).toEqual({
      type: 'ShardsArchiving',
      status: 'False',
      reason: 'ArchivingFailing',
      message: 'shop-shard-1: behind; shop-shard-2: fails',
    });
    expect(archivingCondition('ShardsArchiving', [{ reason: 'PrimaryNotAsked', message: 'x' }]).status).toBe(
      'Unknown',
    );
    // A primary not asked beside a failing one: the message is the failing one's alone.
    expect(
      archivingCondition('ShardsArchiving', [
        { reason: 'ArchivingFailing', message: 'shop-shard-0: fails' },
        { reason: 'PrimaryNotAsked', message: 'shop-shard-1: not ready' },
      ]).message,
    ).toBe('shop-shard-0: fails');
    // Nothing known while it was False: False stands, as it was.
    const was = { status: 'False' as const, reason: 'ArchivingFailing', message: 'shop-db: fails' };
    expect(
      archivingCondition('DatabaseArchiving', [{ reason: 'PrimaryNotAsked', message: 'x' }], was),
    ).toEqual({
      type: 'DatabaseArchiving',
      ...was,
    });
  });

  it('one Warning when archiving turns bad or its cause changes, one Normal when it recovers', () => {
    const bad = {
      type: 'DatabaseArchiving',
      status: 'False' as const,
      reason: 'ArchivingFailing',
      message: 'm',
    };
    const at = { lastTransitionTime: 't', observedGeneration: 1 };
    expect(archivingEvents(undefined, [bad])).toEqual([
      { type: 'Warning', reason: 'ArchivingFailing', message: 'm' },
    ]);
    expect(archivingEvents([{ ...bad, ...at }], [bad])).toEqual([]);
    expect(archivingEvents([{ ...bad, ...at }], [{ ...bad, reason: 'ArchiveQueueFilling' }])).toHaveLength(1);
    const good = { type: 'DatabaseArchiving', status: 'True' as const, reason: 'Archiving', message: 'ok' };
    expect(archivingEvents([{ ...bad, ...at }], [good])).toEqual([
      { type: 'Normal', reason: 'ArchivingRecovered', message: 'DatabaseArchiving: ok' },
    ]);
    expect(archivingEvents([{ ...good, ...at }], [good])).toEqual([]);
  });
});

describe('the reconciler and archiving', () => {
  const s3 = {
    endpoint: 'store.example',
    bucket: 'backups',
    accessKeyId: { name: 'store-keys', key: 'id' },
    secretAccessKey: { name: 'store-keys', key: 'secret' },
  };
  // Pinned: the advice on tags (ImagesPinned) is not among the Warnings counted.
  const spec = { database: { replicas: 0, image: pinned('postgres:17'), backup: { s3 } } };
  const secrets = { 'store-keys': { id: 'aWQ=', secret: 'c2VjcmV0' } };
  const primary = (ready = true) => dbPrimaryPod({ ready });
  const archiverOf = (state: () => ArchiverState | Error) => {
    const asked: string[] = [];
    const archiver: PostgresArchiver = {
      archiver: async (n) => {
        asked.push(`${n.name}@${n.host}`);
        const s = state();
        if (s instanceof Error) throw s;
        return s;
      },
    };
    return { archiver, asked };
  };

  it('says the store keys are missing, naming the field, and applies nothing', async () => {
    const { archiver, asked } = archiverOf(() => healthy);
    const w = fakeWorld({ spec, pods: [primary()], archiver });
    await w.reconcile();
    expect(w.condition('Ready')).toMatchObject({
      reason: 'MissingReference',
      message: expect.stringContaining(
        'spec.database.backup.s3.accessKeyId: Secret prod/store-keys not found',
      ),
    });
    expect(w.childWrites()).toEqual([]);
    expect(asked).toEqual([]);
  });

  it('turns the condition False with one Warning while archiving fails, writes nothing more while it stands, and recovers with one Normal Event', async () => {
    let state: ArchiverState = healthy;
    const { archiver, asked } = archiverOf(() => state);
    const w = fakeWorld({ spec, pods: [primary()], archiver, secrets });
    const first = await w.reconcile();
    expect(asked).toEqual(['shop-db-0@10.0.0.5']);
    expect(w.condition('DatabaseArchiving')).toMatchObject({ status: 'True', reason: 'Archiving' });
    // Looked at again while the tier archives: nothing in Kubernetes says when it fails.
    expect(first).toEqual({ requeueAfterMs: expect.any(Number) });
    expect((first as { requeueAfterMs: number }).requeueAfterMs).toBeLessThanOrEqual(ARCHIVE_RECHECK_MS);

    state = {
      ...healthy,
      failed: 1,
      lastFailedWal: '000000010000000000000029',
      lastFailedAt: now,
      waiting: 1,
    };
    await w.reconcile();
    expect(w.condition('DatabaseArchiving')).toMatchObject({ status: 'False', reason: 'ArchivingFailing' });
    expect(w.warnings()).toEqual([
      "ArchivingFailing: shop-db: archiving fails; pgBackRest's error is in the primary's log",
    ]);
    const writes = w.statusWrites();
    // Still failing, more attempts failed on the next segment, more wait: the same cause, no write,
    // no Event.
    state = { ...state, failed: 5, waiting: 3, lastFailedWal: '00000001000000000000002A' };
    await w.reconcile();
    expect(w.statusWrites()).toBe(writes);
    expect(w.warnings()).toHaveLength(1);
    // The primary restarts meanwhile (not ready, then not answering): the outage stands as it was,
    // announced once.
    w.setPods([primary(false)]);
    await w.reconcile();
    expect(w.condition('DatabaseArchiving')).toMatchObject({ status: 'False', reason: 'ArchivingFailing' });
    w.setPods([primary()]);
    await w.reconcile();
    expect(w.warnings().filter((x) => x.startsWith('Archiving'))).toHaveLength(1);

    state = {
      ...healthy,
      lastArchivedWal: '00000001000000000000002A',
      lastArchivedAt: new Date(now.getTime() + 1),
    };
    await w.reconcile();
    expect(w.condition('DatabaseArchiving')).toMatchObject({ status: 'True', reason: 'Archiving' });
    expect(w.normals()).toContain(
      'ArchivingRecovered: DatabaseArchiving: every segment the primaries finished is archived or being archived',
    );
  });

  it('says Unknown when the primary is not ready or does not answer, and asks no unready pod', async () => {
    const { archiver, asked } = archiverOf(() => new Error('connect ECONNREFUSED'));
    const w = fakeWorld({ spec, pods: [primary(false)], archiver, secrets });
    await w.reconcile();
    expect(asked).toEqual([]);
    expect(w.condition('DatabaseArchiving')).toMatchObject({
      status: 'Unknown',
      reason: 'PrimaryNotAsked',
      message: 'shop-db: its primary shop-db-0 is not ready',
    });
    w.setPods([primary()]);
    await w.reconcile();
    expect(asked).toEqual(['shop-db-0@10.0.0.5']);
    expect(w.condition('DatabaseArchiving')).toMatchObject({
      status: 'Unknown',
      message: 'shop-db: its primary shop-db-0 did not answer',
    });
    // Unknown is no cause for a Warning: the tier's own condition says why the primary is not ready.
    expect(w.warnings().filter((x) => x.startsWith('Archiving'))).toEqual([]);
  });

  it('asks nothing and shows no condition without backup', async () => {
    const { archiver, asked } = archiverOf(() => healthy);
    const w = fakeWorld({ spec: { database: { replicas: 0 } }, pods: [primary()], archiver });
    await w.reconcile();
    expect(asked).toEqual([]);
    expect(w.condition('DatabaseArchiving')).toBeUndefined();
  });
});
