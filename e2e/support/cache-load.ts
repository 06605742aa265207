// A session write load on a cache tier from inside a pod (e2e/support/cache-writer.mjs).
import { runWriter, writerScript, type LoopResult, type Ranges } from './pod-writer.ts';

export { acknowledgedAt, resumed } from './pod-writer.ts';

const WRITER = writerScript('cache-writer.mjs');

/** Writes sessions through CACHE_URL from the pod for `seconds`; resolves with what was acknowledged. */
export const writeSessionsFor = (ns: string, pod: string, seconds: number, prefix: string) =>
  runWriter<LoopResult>(ns, pod, WRITER, {
    WRITER_MODE: 'write',
    WRITE_SECONDS: String(seconds),
    WRITER_PREFIX: prefix,
  });

/** Which of the ids 1..maxId the cache holds, read through CACHE_URL from the pod. */
export const storedSessions = (ns: string, pod: string, prefix: string, maxId: number) =>
  runWriter<{ ids: Ranges; count: number }>(ns, pod, WRITER, {
    WRITER_MODE: 'stored',
    WRITER_PREFIX: prefix,
    MAX_ID: String(maxId),
  });
