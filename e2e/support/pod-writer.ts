// Runs a writer script (pg-writer.mjs, cache-writer.mjs) inside a pod of the demo image, after the
// helpers they share (writer-common.mjs), and reads the one JSON line it prints last. The writers
// count what their server acknowledged; `lost` compares that with what was read back afterwards.
import { readFileSync } from 'node:fs';
import { kubectlAsync } from './kube.ts';

/** Ids as sorted [first, last] ranges (writer-common.mjs). */
export type Ranges = [number, number][];

const COMMON = readFileSync(new URL('./writer-common.mjs', import.meta.url), 'utf8');

/** A writer's text, read once: the shared helpers, then the writer. */
export const writerScript = (file: string) =>
  `${COMMON}\n${readFileSync(new URL(`./${file}`, import.meta.url), 'utf8')}`;

export async function runWriter<T>(
  ns: string,
  pod: string,
  script: string,
  env: Record<string, string>,
): Promise<T> {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const r = await kubectlAsync(
    ['exec', '-i', '-n', ns, pod, '--', 'env', ...vars, 'node', '--input-type=module', '-'],
    script,
  );
  if (!r.ok) throw new Error(`the writer in ${ns}/${pod} failed: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T;
}

/** The acknowledged ids that `stored` lacks. */
export function lost(acked: Ranges, stored: Ranges): number[] {
  const have = new Set<number>();
  for (const [a, b] of stored) for (let i = a; i <= b; i++) have.add(i);
  const out: number[] = [];
  for (const [a, b] of acked) for (let i = a; i <= b; i++) if (!have.has(i)) out.push(i);
  return out;
}

/** What a writer acknowledged: the ids as ranges, and when each was acknowledged (ms), in id order. */
export interface Acknowledged {
  acked: Ranges;
  at: number[];
  /** The id of the last attempt. */
  lastId: number;
}

/** What writeLoop (writer-common.mjs) prints: the acknowledged writes and how the attempts went. */
export interface LoopResult extends Acknowledged {
  ackedCount: number;
  attempts: number;
  /** Attempts that failed: their outcome is unknown, and they are not counted as acknowledged. */
  failed: number;
  /** Attempts the server answered without confirming them (a writer's own rule; 0 for most). */
  unconfirmed: number;
  /** The longest time between two acknowledged writes: the outage a client saw, at most. */
  longestGapMs: number;
  /** Each distinct error of a failed attempt (the first eight kinds), with its count. */
  errors: Record<string, number>;
}

/**
 * Writes resumed: one of the last five attempts was acknowledged. Not "of the last hundred": when
 * every failed attempt waits out a timeout, a hundred attempts are a minute or more, and a run whose
 * writes stopped at the cut and never came back passed that check (seen: 391 acknowledged, then 89
 * failures to the end).
 */
export const resumed = (w: Acknowledged): boolean => (w.acked.at(-1)?.[1] ?? 0) >= w.lastId - 4;

/** When each of `ids` (acknowledged ones) was acknowledged. */
export function acknowledgedAt(w: Acknowledged, ids: readonly number[]): number[] {
  const index = new Map<number, number>();
  let n = 0;
  for (const [a, b] of w.acked) for (let i = a; i <= b; i++) index.set(i, n++);
  return ids.map((id) => w.at[index.get(id)!]!);
}
