// Sessions live only in the cache tier, so any web replica serves any request (no sticky sessions):
// the browser holds a random id in a cookie, the cache holds the session under that id with a TTL.
// This file is the pure part: ids, keys and the cookie header; cache.ts does the I/O.
import { randomBytes } from 'node:crypto';

export const SESSION_COOKIE = 'demo_session';
/** 32 random bytes, base64url without padding: 43 characters. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

export const newSessionId = (): string => randomBytes(32).toString('base64url');

export const isSessionId = (id: string): boolean => SESSION_ID.test(id);

/** The cache key of a session; only well-formed ids get one, so a cookie cannot name another key. */
export function sessionKey(id: string): string {
  if (!isSessionId(id)) throw new Error('not a session id');
  return `demo:session:${id}`;
}

/** The cookies of a request's Cookie header, by name (the first one of a name wins, as browsers send it). */
export function parseCookies(header: string | string[] | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  const text = Array.isArray(header) ? header.join('; ') : (header ?? '');
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (name && !cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}

/** The session id of a request, when its cookie holds a well-formed one. */
export function sessionIdFrom(cookieHeader: string | string[] | undefined): string | undefined {
  const id = parseCookies(cookieHeader).get(SESSION_COOKIE);
  return id !== undefined && isSessionId(id) ? id : undefined;
}

/**
 * The Set-Cookie value for a session: HttpOnly (no script reads it), SameSite=Lax, for the whole
 * site, expiring with the cache entry. `secure` when the client came over HTTPS (the Ingress
 * terminates TLS and says so in X-Forwarded-Proto) or the app is told so.
 */
export function sessionCookie(id: string, ttlSeconds: number, secure: boolean): string {
  if (!isSessionId(id)) throw new Error('not a session id');
  return [
    `${SESSION_COOKIE}=${id}`,
    'Path=/',
    `Max-Age=${ttlSeconds}`,
    'HttpOnly',
    'SameSite=Lax',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** A Set-Cookie that removes the session cookie (logout). */
export function clearedSessionCookie(secure: boolean): string {
  return [
    `${SESSION_COOKIE}=`,
    'Path=/',
    'Max-Age=0',
    'HttpOnly',
    'SameSite=Lax',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** Whether the client reached us over HTTPS, as the proxy in front says (first hop of the header). */
export function viaHttps(forwardedProto: string | string[] | undefined): boolean {
  const v = Array.isArray(forwardedProto) ? forwardedProto[0] : forwardedProto;
  return v?.split(',')[0]?.trim().toLowerCase() === 'https';
}

/** What a session holds in the cache. */
export type SessionRecord = {
  data: unknown;
  createdAt: string;
  /** The pod that created it: a read from another pod shows the session is not sticky. */
  createdBy: string;
};
