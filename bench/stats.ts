// What the benchmarks summarise their runs with.

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
