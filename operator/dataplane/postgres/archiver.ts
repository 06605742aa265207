// How a primary's continuous archiving goes (ADR 0029), as Postgres itself counts it: its archiver's
// statistics (pg_stat_archiver) and the segments waiting in pg_wal for archive_command (the .ready
// files of archive_status). Asked as the superuser, on the recorded primary only: a standby does not
// archive (archive_mode = on).
import { superuserCalls, type PgAdminOptions, type PgNode } from './admin.ts';

export interface ArchiverState {
  /** Segments archived and attempts failed since the statistics were last reset (the server's start). */
  readonly archived: number;
  readonly failed: number;
  readonly lastArchivedWal?: string;
  readonly lastArchivedAt?: Date;
  readonly lastFailedWal?: string;
  readonly lastFailedAt?: Date;
  /** Segments in pg_wal that wait for archive_command (archive_status/*.ready). */
  readonly waiting: number;
  /** When the oldest of them was finished (its .ready file written); none waiting, none. */
  readonly oldestWaitingAt?: Date;
  /** The server's clock when asked: ages are measured against it, never against the operator's. */
  readonly now: Date;
}

export interface PostgresArchiver {
  archiver(n: PgNode): Promise<ArchiverState>;
}

export function pgArchiver(o: PgAdminOptions): PostgresArchiver {
  const on = superuserCalls(o);
  return {
    archiver: (n) =>
      on(n, 'reading the archiver', async (c) => {
        const { rows } = await c.query<{
          archived: string;
          failed: string;
          last_archived_wal: string | null;
          last_archived_time: Date | null;
          last_failed_wal: string | null;
          last_failed_time: Date | null;
          waiting: string;
          oldest_waiting: Date | null;
          now: Date;
        }>(
          `SELECT archived_count AS archived, failed_count AS failed, last_archived_wal,
                  last_archived_time, last_failed_wal, last_failed_time,
                  w.waiting, w.oldest_waiting, clock_timestamp() AS now
             FROM pg_stat_archiver,
                  (SELECT count(*) AS waiting, min(modification) AS oldest_waiting
                     FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') w`,
        );
        const r = rows[0]!;
        return {
          archived: Number(r.archived),
          failed: Number(r.failed),
          ...(r.last_archived_wal ? { lastArchivedWal: r.last_archived_wal } : {}),
          ...(r.last_archived_time ? { lastArchivedAt: r.last_archived_time } : {}),
          ...(r.last_failed_wal ? { lastFailedWal: r.last_failed_wal } : {}),
          ...(r.last_failed_time ? { lastFailedAt: r.last_failed_time } : {}),
          waiting: Number(r.waiting),
          ...(r.oldest_waiting ? { oldestWaitingAt: r.oldest_waiting } : {}),
          now: r.now,
        };
      }),
  };
}
