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

// Asked once, when a benchmark first counts CPU time: importing the median costs no process.
let ticks: number | undefined;
const ticksPerSecond = () => (ticks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()));
/** One clock tick in seconds: the grain of the kernel's CPU accounting. */
export const tickSeconds = () => 1 / ticksPerSecond();

/**
 * The numeric fields of /proc/<pid>/stat from field 4 (ppid) on; [0] is the ppid. Read after the
 * last `)`: the command name in field 2 may hold spaces and parentheses.
 */
function statFields(pid: number | 'self'): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat
    .slice(stat.lastIndexOf(')') + 4)
    .split(' ')
    .map(Number);
}

/** A process's parent. */
export const parentPid = (pid: number) => statFields(pid)[0]!;

/** CPU seconds (utime+stime) of a process, of its reaped children, or both (/proc/<pid>/stat 14-17). */
export function cpuSeconds(pid: number | 'self', which: 'own' | 'children' | 'both'): number {
  const f = statFields(pid);
  // f[0] is field 4 (ppid): utime is field 14 (f[10]), stime f[11], cutime f[12], cstime f[13].
  const own = f[10]! + f[11]!;
  const children = f[12]! + f[13]!;
  return (which === 'own' ? own : which === 'children' ? children : own + children) / ticksPerSecond();
}
