import {
  clearedSessionCookie,
  isSessionId,
  newSessionId,
  parseCookies,
  SESSION_COOKIE,
  sessionCookie,
  sessionIdFrom,
  sessionKey,
  viaHttps,
} from './sessions.ts';

describe('session ids', () => {
  it('are 43 base64url characters (32 random bytes), different every time', () => {
    const ids = new Set(Array.from({ length: 100 }, newSessionId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(isSessionId(id)).toBe(true);
  });

  it('name a cache key only when well-formed, so a cookie cannot reach another key', () => {
    const id = newSessionId();
    expect(sessionKey(id)).toBe(`demo:session:${id}`);
    for (const bad of ['', 'short', `${id}x`, `${id.slice(0, 42)}*`, '../../demo:consumed:photos'])
      expect(() => sessionKey(bad)).toThrow('not a session id');
  });
});

describe('the session cookie', () => {
  const id = newSessionId();

  it('is HttpOnly, SameSite=Lax, site-wide and expires with the cache entry', () => {
    expect(sessionCookie(id, 300, false)).toBe(
      `${SESSION_COOKIE}=${id}; Path=/; Max-Age=300; HttpOnly; SameSite=Lax`,
    );
  });

  it('is Secure when the client came over HTTPS', () => {
    expect(sessionCookie(id, 300, true)).toMatch(/; Secure$/);
    expect(viaHttps('https')).toBe(true);
    expect(viaHttps('HTTPS, http')).toBe(true);
    expect(viaHttps('http, https')).toBe(false);
    expect(viaHttps(undefined)).toBe(false);
  });

  it('is removed with Max-Age=0 on logout', () => {
    expect(clearedSessionCookie(false)).toBe(`${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`);
  });

  it('is found among other cookies, quoted or not, the first one of its name winning', () => {
    expect(sessionIdFrom(`theme=dark; ${SESSION_COOKIE}=${id}; lang=en`)).toBe(id);
    expect(sessionIdFrom(`${SESSION_COOKIE}="${id}"`)).toBe(id);
    expect(sessionIdFrom([`a=1`, `${SESSION_COOKIE}=${id}`])).toBe(id);
    expect(sessionIdFrom(`${SESSION_COOKIE}=${id}; ${SESSION_COOKIE}=${newSessionId()}`)).toBe(id);
  });

  it('is ignored when absent or malformed', () => {
    expect(sessionIdFrom(undefined)).toBeUndefined();
    expect(sessionIdFrom('theme=dark')).toBeUndefined();
    expect(sessionIdFrom(`${SESSION_COOKIE}=nope`)).toBeUndefined();
    expect(sessionIdFrom(`${SESSION_COOKIE}=`)).toBeUndefined();
  });

  it('parses cookie headers leniently: no name, no =, spaces', () => {
    expect([...parseCookies(' a = 1 ;=x; b; c=2=3 ')]).toEqual([
      ['a', '1'],
      ['c', '2=3'],
    ]);
  });
});
