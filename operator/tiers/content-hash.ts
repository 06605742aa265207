import { createHash } from 'node:crypto';

/**
 * JSON exactly as Go's encoding/json writes it, which is what Helm's `toJson` prints: object keys
 * sorted, and `<`, `>`, `&`, U+2028 and U+2029 escaped. The Helm charts compute the same hashes as
 * the builders (`toJson | sha256sum | trunc 16`), so a chart and the operator roll pods alike.
 */
export function goJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${goJson(k)}:${goJson(v)}`).join(',')}}`;
  }
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(
      /[<>&\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  return JSON.stringify(value);
}

/** The first 16 hex digits of the SHA-256 of goJson(value): short, and stable across Node and Helm. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(goJson(value)).digest('hex').slice(0, 16);
}
