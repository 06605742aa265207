// What the benchmarks summarise their runs with.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The median: the middle value, or the mean of the two middle ones. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('the median of no runs');
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Milliseconds as seconds with one decimal. */
export const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** A progress line, stamped with the time of day (UTC). */
export const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
/** One clock tick in seconds: the grain of the kernel's CPU accounting. */
export const TICK_SECONDS = 1 / TICKS;

/** CPU seconds (utime+stime) of a process, of its reaped children, or both (/proc/<pid>/stat 14-17). */
export function cpuSeconds(pid: number | 'self', which: 'own' | 'children' | 'both'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // f[0] is field 3 (state): utime is field 14 (f[11]), stime f[12], cutime f[13], cstime f[14].
  const own = f[11]! + f[12]!;
  const children = f[13]! + f[14]!;
  return (which === 'own' ? own : which === 'children' ? children : own + children) / TICKS;
}
