// Static assets under the edge cache's path prefix, with the asset version in every URL: a deploy that
// changes ASSET_VERSION changes every URL, so neither the edge cache nor a browser can serve an old
// file for a new page, and nothing needs purging. Pure: the server writes what assetResponse says.
import { createHash } from 'node:crypto';
import type { AssetsConfig } from './config.ts';

/** The files, rendered for a version (a real app would read its build output instead). */
const FILES: Record<string, { type: string; body: (version: string) => string }> = {
  'app.css': {
    type: 'text/css; charset=utf-8',
    body: (v) => `/* demo-app asset version ${v} */\nbody { font-family: sans-serif; margin: 2rem; }\n`,
  },
  'app.js': {
    type: 'text/javascript; charset=utf-8',
    body: (v) => `// demo-app asset version ${v}\nexport const assetVersion = ${JSON.stringify(v)};\n`,
  },
};

export const ASSET_NAMES = Object.keys(FILES);

/** How long browsers and the edge may keep a versioned asset: for ever, since its URL changes with it. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** An unversioned URL may change on any deploy: a short TTL only. */
export const UNVERSIONED = 'public, max-age=60';

/** The URL of an asset for the running version, e.g. /static/2026-11-22/app.css. */
export const assetUrl = (c: AssetsConfig, name: string): string => `${c.basePath}/${c.version}/${name}`;

/** Whether a request path is under the asset prefix (so the asset handler owns it). */
export const isAssetPath = (c: AssetsConfig, path: string): boolean => path.startsWith(`${c.basePath}/`);

export type AssetResponse = {
  status: number;
  headers: Record<string, string>;
  body: string;
};

const etagOf = (version: string, body: string) =>
  `"${version}-${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;

function notFound(message: string): AssetResponse {
  return {
    status: 404,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    body: `${JSON.stringify({ error: 'not found', tier: 'edgeCache', message })}\n`,
  };
}

/**
 * The answer to `GET <basePath>/<version>/<name>` (or `<basePath>/<name>`, unversioned). Another
 * version than the running one is a 404 (never cached by the edge, which caches 200s only), so an
 * old URL is never filled with new content. No Set-Cookie ever: the edge would cache it for everyone.
 */
export function assetResponse(c: AssetsConfig, path: string, ifNoneMatch: string | undefined): AssetResponse {
  const rest = path.slice(c.basePath.length + 1).split('/');
  const [version, name] = rest.length === 1 ? [undefined, rest[0]!] : rest.length === 2 ? rest : [];
  const file = name !== undefined ? FILES[name] : undefined;
  if (!file || name === undefined) return notFound(`no asset ${path}; assets: ${ASSET_NAMES.join(', ')}`);
  if (version !== undefined && version !== c.version)
    return notFound(`asset version ${version} is not served here; the running version is ${c.version}`);
  const body = file.body(c.version);
  const etag = etagOf(c.version, body);
  const headers = {
    'content-type': file.type,
    'cache-control': version === undefined ? UNVERSIONED : IMMUTABLE,
    etag,
    'x-asset-version': c.version,
  };
  const matches = ifNoneMatch?.split(',').some((t) => t.trim() === etag || t.trim() === '*');
  return matches ? { status: 304, headers, body: '' } : { status: 200, headers, body };
}
