// A Postgres SCRAM-SHA-256 password verifier computed by the operator (RFC 5802, RFC 7677, in the
// format Postgres keeps in pg_authid), so that ALTER ROLE carries the verifier and never the
// password: a plaintext password in a statement can reach the server's log, and pg_stat_activity
// shows it to every role with pg_read_all_stats (the metrics exporter's among them) while it runs.
// node:crypto has every primitive; no npm package computes verifiers (docs/adr/0025).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/** Postgres' default iteration count (scram_iterations, 4096). */
export const SCRAM_ITERATIONS = 4096;

/**
 * Whether the verifier of `password` is the same whatever the server does to it first. Postgres
 * runs SASLprep over the password, which changes some non-ASCII text; printable ASCII it leaves as
 * it is, so the operator computes verifiers for that only (every password it generates is).
 */
export const verifierSafe = (password: string) => /^[\x20-\x7e]+$/.test(password);

export function scramVerifier(
  password: string,
  salt: Buffer = randomBytes(16),
  iterations = SCRAM_ITERATIONS,
): string {
  if (!verifierSafe(password))
    throw new Error('the password must be printable ASCII (the operator computes its SCRAM verifier)');
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const hmac = (text: string) => createHmac('sha256', salted).update(text).digest();
  const storedKey = createHash('sha256').update(hmac('Client Key')).digest();
  const serverKey = hmac('Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
