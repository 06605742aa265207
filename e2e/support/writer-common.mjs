// What the writers that run inside a pod share (pg-writer.mjs, cache-writer.mjs): e2e/support/
// pod-writer.ts puts this text before the writer's own, so both run as one module from stdin.

/** Sorted ids as [first, last] ranges: thousands of ids stay one short line. */
function ranges(ids) {
  const out = [];
  for (const id of ids) {
    const last = out.at(-1);
    if (last && id === last[1] + 1) last[1] = id;
    else out.push([id, id]);
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * `run()` retried, 1 s apart, until it succeeds or `seconds` have passed; then its last error, with
 * how many attempts failed. For a writer's setup and read-back, which are not what a case measures:
 * one lost DNS answer (5 s in the resolver) or a server still starting must not end the writer.
 */
// eslint-disable-next-line @typescript-eslint/no-unused-vars
async function patiently(what, seconds, run) {
  const deadline = Date.now() + seconds * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new Error(
          `${what}: ${attempt} attempts in ${seconds} s failed, the last: ${err?.message ?? err}`,
        );
      }
      await sleep(1000);
    }
  }
}

/** Between two acknowledged writes: about a hundred a second, continuous and light on two cores. */
const PACE_MS = 10;

// Used by the writer text that follows this one, which lint sees as a file apart.
/**
 * Attempts ids first+1, first+2, ... until `seconds` have passed. `attempt(id)` resolves true when
 * the server acknowledged the write, false when its outcome is unconfirmed (counted apart), and
 * throws when it failed: the outcome is unknown, it is not counted as acknowledged, `reset()` drops
 * the connection, and the next attempt comes 100 ms later. Returns the acknowledged ids as ranges
 * with the time of each acknowledgement (ms since the epoch, in id order), the attempts, the failed
 * and unconfirmed ones, the longest time between two acknowledgements, and why attempts failed.
 */
// eslint-disable-next-line @typescript-eslint/no-unused-vars
async function writeLoop(seconds, first, attempt, reset) {
  const deadline = Date.now() + seconds * 1000;
  const acked = [];
  const at = [];
  let id = first;
  let failed = 0;
  let unconfirmed = 0;
  let lastAck = Date.now();
  let longestGapMs = 0;
  // Why attempts failed, for a failure's message: each distinct error's count (a few kinds at most).
  const errors = {};
  while (Date.now() < deadline) {
    id += 1;
    try {
      if (!(await attempt(id))) {
        unconfirmed += 1;
        continue;
      }
      const now = Date.now();
      longestGapMs = Math.max(longestGapMs, now - lastAck);
      lastAck = now;
      acked.push(id);
      at.push(now);
      await sleep(PACE_MS);
    } catch (err) {
      failed += 1;
      const why = String(err?.message ?? err).slice(0, 160);
      if (why in errors || Object.keys(errors).length < 8) errors[why] = (errors[why] ?? 0) + 1;
      reset();
      await sleep(100);
    }
  }
  return {
    acked: ranges(acked),
    at,
    ackedCount: acked.length,
    attempts: id - first,
    lastId: id,
    failed,
    unconfirmed,
    longestGapMs,
    errors,
  };
}
