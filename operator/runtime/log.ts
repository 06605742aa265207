// The operator's structured logger: pino, writing one JSON object per line, which log collectors
// parse without configuration. Every field, bound or per line, first goes through sanitize() below:
// reconcile code logs Kubernetes objects and API errors whose contents it does not control, so
// secret-looking keys are redacted at any depth, which pino's own path-based redaction cannot do
// (docs/adr/0016-logging.md).
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. controller, namespace, name, reconcileID). */
  with(fields: LogFields): Logger;
  /** Whether a line at `level` would be written; guards expensive field building. */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** Lines below this level are dropped. Default 'info'. */
  level?: LogLevel;
  /** Where lines go. Default process.stdout. */
  out?: { write(line: string): unknown };
  /** The time stamped on each line. Default Date.now. */
  now?: () => number;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys whose values are never printed, at any depth. */
export const SECRET_KEY = /password|passwd|secret|token|credential|private.?key|authorization|api.?key/i;
export const REDACTED = '[redacted]';

// Bounds so that a huge or deeply nested object cannot stall the process in the logger.
const MAX_DEPTH = 12;
const MAX_ARRAY = 100;

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && Object.hasOwn(LEVELS, value);
}

/** Parses a level from configuration (e.g. LOG_LEVEL); undefined or empty gives `fallback`. */
export function parseLogLevel(value: string | undefined, fallback: LogLevel = 'info'): LogLevel {
  if (value === undefined || value === '') return fallback;
  const level = value.toLowerCase();
  if (!isLogLevel(level))
    throw new RangeError(`unknown log level "${value}": use debug, info, warn or error`);
  return level;
}

/** The line's own keys: a field of that name is written as `field.<name>` instead. */
const OWN_KEYS = new Set(['ts', 'level', 'msg']);

/** Fields as they are written: sanitized, and never in place of the line's own keys. */
function fieldsOf(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(sanitize(fields) as LogFields)) {
    out[OWN_KEYS.has(key) ? `field.${key}` : key] = value;
  }
  return out;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const now = options.now ?? Date.now;
  const root = pino(
    {
      level: options.level ?? 'info',
      // No pid or hostname: the kubelet's log metadata says which pod wrote a line.
      base: undefined,
      messageKey: 'msg',
      // pino's own `err` serializer would flatten the cause chain into one message before the
      // formatter below sees it; sanitize() keeps every cause, with its fields, redacted.
      serializers: { err: (value: unknown) => value },
      timestamp: () => `,"ts":"${new Date(now()).toISOString()}"`,
      formatters: {
        level: (label) => ({ level: label }),
        log: fieldsOf,
      },
    },
    options.out ?? process.stdout,
  );
  // Bound fields are kept here and merged into each line, not bound with pino's child(): a call's
  // field then replaces a bound one of the same name instead of being written beside it twice.
  const make = (bound: LogFields): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (!root.isLevelEnabled(level)) return;
      root[level]({ ...bound, ...fields }, msg);
    };
    return {
      debug: (msg, fields) => write('debug', msg, fields),
      info: (msg, fields) => write('info', msg, fields),
      warn: (msg, fields) => write('warn', msg, fields),
      error: (msg, fields) => write('error', msg, fields),
      with: (fields) => make({ ...bound, ...fields }),
      enabled: (level) => root.isLevelEnabled(level),
    };
  };
  return make({});
}

/** A logger that writes nothing; a default for library code whose caller gives no logger. */
export const discardLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  with: () => discardLogger,
  enabled: () => false,
};

/** A fresh ID that ties together the lines of one reconcile. */
export function newReconcileID(): string {
  return randomUUID();
}

/**
 * `value` as plain JSON data: secret-looking keys redacted at any depth, errors with message, stack and
 * cause chain, cycles and excessive depth cut off.
 */
export function sanitize(value: unknown): unknown {
  return clean(value, 0, new Set());
}

/** An error as plain JSON data (see `sanitize`). */
export function serializeError(err: Error): LogFields {
  return cleanError(err, 0, new Set());
}

function clean(value: unknown, depth: number, ancestors: Set<object>): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'symbol':
      return value.toString();
    case 'function':
      return `[function ${value.name || 'anonymous'}]`;
  }
  if (value === null) return null;
  const object = value as object;
  if (object instanceof Date) return Number.isNaN(object.getTime()) ? 'Invalid Date' : object.toISOString();
  if (ArrayBuffer.isView(object)) return `[${object.byteLength} bytes]`;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (ancestors.has(object)) return '[circular]';
  ancestors.add(object);
  try {
    if (object instanceof Error) return cleanError(object, depth, ancestors);
    if (Array.isArray(object) || object instanceof Set) {
      const items = [...object];
      const cleaned = items.slice(0, MAX_ARRAY).map((item) => clean(item, depth + 1, ancestors));
      if (items.length > MAX_ARRAY) cleaned.push(`[${items.length - MAX_ARRAY} more]`);
      return cleaned;
    }
    if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
      return clean((object as { toJSON(): unknown }).toJSON(), depth + 1, ancestors);
    }
    const entries: Array<[unknown, unknown]> =
      object instanceof Map ? [...object.entries()] : Object.entries(object as Record<string, unknown>);
    const result: LogFields = {};
    for (const [rawKey, item] of entries) {
      const key = String(rawKey);
      result[key] = SECRET_KEY.test(key) ? REDACTED : clean(item, depth + 1, ancestors);
    }
    return result;
  } finally {
    ancestors.delete(object);
  }
}

function cleanError(err: Error, depth: number, ancestors: Set<object>): LogFields {
  const result: LogFields = { name: err.name, message: err.message };
  if (err.stack !== undefined) result.stack = err.stack;
  // Extra fields such as an ApiException's code and body, under the same redaction as everything else.
  for (const [key, item] of Object.entries(err)) {
    if (key === 'cause' || Object.hasOwn(result, key)) continue;
    result[key] = SECRET_KEY.test(key) ? REDACTED : clean(item, depth + 1, ancestors);
  }
  if (err instanceof AggregateError) result.errors = clean(err.errors, depth + 1, ancestors);
  if (err.cause !== undefined) result.cause = clean(err.cause, depth + 1, ancestors);
  return result;
}
