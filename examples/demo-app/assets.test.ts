import { assetResponse, assetUrl, IMMUTABLE, isAssetPath, UNVERSIONED } from './assets.ts';

const assets = { basePath: '/static', version: '2026-11-22', edgeConfigured: true };

describe('versioned assets', () => {
  it('puts the version in every URL', () => {
    expect(assetUrl(assets, 'app.css')).toBe('/static/2026-11-22/app.css');
    expect(isAssetPath(assets, '/static/2026-11-22/app.css')).toBe(true);
    expect(isAssetPath(assets, '/staticx/app.css')).toBe(false);
    expect(isAssetPath(assets, '/static')).toBe(false);
  });

  it('serves the running version as immutable, with an ETag, and never a cookie', () => {
    const r = assetResponse(assets, '/static/2026-11-22/app.css', undefined);
    expect(r.status).toBe(200);
    expect(r.headers).toMatchObject({
      'content-type': 'text/css; charset=utf-8',
      'cache-control': IMMUTABLE,
      'x-asset-version': '2026-11-22',
    });
    expect(r.headers.etag).toMatch(/^"2026-11-22-[0-9a-f]{16}"$/);
    expect(r.body).toContain('asset version 2026-11-22');
    expect(Object.keys(r.headers)).not.toContain('set-cookie');
  });

  it('answers 304 to a matching If-None-Match', () => {
    const { etag } = assetResponse(assets, '/static/2026-11-22/app.js', undefined).headers;
    const r = assetResponse(assets, '/static/2026-11-22/app.js', `"other", ${etag}`);
    expect([r.status, r.body]).toEqual([304, '']);
  });

  it('changes content and ETag with the version', () => {
    const a = assetResponse(assets, '/static/2026-11-22/app.css', undefined);
    const b = assetResponse({ ...assets, version: 'v2' }, '/static/v2/app.css', undefined);
    expect(b.body).not.toBe(a.body);
    expect(b.headers.etag).not.toBe(a.headers.etag);
  });

  it('refuses another version (a 404 the edge does not cache) and unknown files', () => {
    expect(assetResponse(assets, '/static/v1/app.css', undefined)).toMatchObject({
      status: 404,
      headers: { 'cache-control': 'no-store' },
    });
    expect(assetResponse(assets, '/static/2026-11-22/secret.txt', undefined).status).toBe(404);
    expect(assetResponse(assets, '/static/a/b/app.css', undefined).status).toBe(404);
  });

  it('serves an unversioned URL with a short TTL only', () => {
    const r = assetResponse(assets, '/static/app.css', undefined);
    expect([r.status, r.headers['cache-control']]).toEqual([200, UNVERSIONED]);
  });
});
