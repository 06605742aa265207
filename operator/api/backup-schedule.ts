// Scheduled base backups (backup.schedule): the schedule names a request, as the annotation does, and
// the same one-at-a-time Jobs answer it (postgres-base-backup.ts). The request is the schedule's most
// recent time: a new one each time the schedule comes round, the same one until then, so an operator
// restart, a resync or a missed time (the operator down) makes one backup, never two.
import { CronExpressionParser } from 'cron-parser';

/** What a schedule asks for now: its request, and when the next one comes. */
export interface ScheduledRequest {
  /** `scheduled-<the schedule's last time, UTC>`; none before the schedule's first time. */
  readonly request?: string;
  readonly next: Date;
}

/** The schedule (five cron fields, UTC) at `now`. Throws on an expression cron-parser refuses. */
export function scheduledRequest(schedule: string, now: Date): ScheduledRequest {
  const times = () => CronExpressionParser.parse(schedule, { currentDate: now, tz: 'UTC' });
  const next = times().next().toDate();
  let last: Date | undefined;
  try {
    last = times().prev().toDate();
  } catch {
    // No time before now (a schedule of a date in the past is no schedule): nothing to answer yet.
  }
  return { ...(last ? { request: `scheduled-${last.toISOString().replace(/\.000Z$/, 'Z')}` } : {}), next };
}

/** Why cron-parser refuses a schedule, or undefined when it takes it (the schema's check). */
export function scheduleProblem(schedule: string): string | undefined {
  try {
    // Parsed and asked for a time: an expression no date satisfies (30 February) fails only then.
    CronExpressionParser.parse(schedule, { tz: 'UTC' }).next();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
