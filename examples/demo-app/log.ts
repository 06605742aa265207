// One JSON object per line on stdout (errors on stderr), every text passed through redact(): a
// library's error message must not carry a password into the pod's log.
import { redact } from './config.ts';

export type Fields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** At most one line per `key` every `everyMs` (a broker that is down fails every reconnect). */
  throttled(key: string, everyMs: number, msg: string, fields?: Fields): void;
}

/** An error's message and code, redacted; never its stack (it may quote a connection string). */
export function errorText(err: unknown, secrets: readonly string[]): string {
  const e = err as { message?: unknown; code?: unknown } | undefined;
  const message = typeof e?.message === 'string' && e.message ? e.message : String(err);
  // AggregateError (a connect to every address of a name failed) has an empty message of its own.
  const inner = (err as { errors?: unknown[] } | undefined)?.errors;
  const text =
    !e?.message && Array.isArray(inner) && inner.length > 0
      ? inner.map((x) => (x as Error)?.message ?? String(x)).join('; ')
      : message;
  return redact(text, secrets);
}

export function createLogger(component: string, secrets: readonly string[]): Logger {
  const last = new Map<string, number>();
  const write = (level: 'info' | 'warn' | 'error', msg: string, fields: Fields = {}) => {
    // Redacted value by value, before JSON escapes a quote or backslash of a secret out of recognition.
    const line = JSON.stringify(
      { time: new Date().toISOString(), level, component, msg, ...fields },
      (_key, value: unknown) => (typeof value === 'string' ? redact(value, secrets) : value),
    );
    (level === 'info' ? process.stdout : process.stderr).write(`${line}\n`);
  };
  return {
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    throttled(key, everyMs, msg, fields) {
      const now = Date.now();
      if (now - (last.get(key) ?? -Infinity) < everyMs) return;
      last.set(key, now);
      write('warn', msg, fields);
    },
  };
}
