// Waiting in tests without timing assertions: the deadline only stops a hang, it asserts nothing
// about speed. No dependencies, so data-plane tests and benchmarks use it too.

/**
 * Polls until `probe` returns a value that is not undefined/false, or fails with the last value
 * seen after `timeoutMs`. The timeout is a deadline for a hang, never an assertion about speed.
 * `hopeless`, when it returns a reason (the process under test died), fails at once instead.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 120_000,
  everyMs = 500,
  hopeless: () => string | undefined = () => undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
      last = v;
    } catch (e) {
      last = e;
    }
    const reason = hopeless();
    if (reason) throw new Error(`gave up waiting for ${what}: ${reason}`);
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
