// The schedule of full backups (backup.schedule): which request it names at a time, and when it
// names the next one. cron-parser reads the expression; these pin what we ask of it.
import { scheduleProblem, scheduledRequest } from './backup-schedule.ts';

describe('a backup schedule', () => {
  it('names its most recent time, in UTC, until the next one comes round', () => {
    const at = (iso: string) => scheduledRequest('0 3 * * *', new Date(iso));
    expect(at('2026-12-07T10:20:00Z')).toEqual({
      request: 'scheduled-2026-12-07T03:00:00Z',
      next: new Date('2026-12-08T03:00:00Z'),
    });
    expect(at('2026-12-08T02:59:59Z').request).toBe('scheduled-2026-12-07T03:00:00Z');
    expect(at('2026-12-08T03:00:01Z').request).toBe('scheduled-2026-12-08T03:00:00Z');
  });

  it('steps, ranges and day names work as in crontab', () => {
    expect(scheduledRequest('*/15 * * * *', new Date('2026-12-07T10:20:00Z'))).toEqual({
      request: 'scheduled-2026-12-07T10:15:00Z',
      next: new Date('2026-12-07T10:30:00Z'),
    });
    // 2026-12-07 is a Monday: the last Sunday 01:30 was the 6th.
    expect(scheduledRequest('30 1 * * SUN', new Date('2026-12-07T10:20:00Z')).request).toBe(
      'scheduled-2026-12-06T01:30:00Z',
    );
  });

  it('refuses what is not a schedule, saying why', () => {
    expect(scheduleProblem('0 3 * * *')).toBeUndefined();
    expect(scheduleProblem('61 3 * * *')).toMatch(/./);
    expect(scheduleProblem('0 3 * * MON-XYZ')).toMatch(/./);
    expect(scheduleProblem('0 0 30 2 *')).toMatch(/./);
  });
});
