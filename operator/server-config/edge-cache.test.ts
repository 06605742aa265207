import {
  ASSET_VERSION_HEADER,
  edgeCacheNginxArgs,
  edgeCacheNginxConfig,
  type EdgeCacheConfigInput,
} from './edge-cache.ts';

// The behaviour against a real nginx is in server-tests/edge-cache.test.ts; these tests pin down the
// directives that behaviour rests on, read through a small parser so they survive reformatting.

interface Directive {
  name: string;
  args: string[];
  block?: Directive[];
}

/** Parses nginx syntax into directives: words, quoted strings, `;`, `{ ... }` and `#` comments. */
function parseNginx(text: string): Directive[] {
  const tokens = [...text.matchAll(/#[^\n]*|"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)'|([{};])|([^\s{};"'#]+)/g)]
    .filter((m) => !m[0].startsWith('#'))
    .map((m) => ({ word: m[1] ?? m[2] ?? m[4], punct: m[3] }));
  let i = 0;
  const parseBlock = (): Directive[] => {
    const out: Directive[] = [];
    while (i < tokens.length) {
      const t = tokens[i++]!;
      if (t.punct === '}') return out;
      if (t.punct) throw new Error(`unexpected '${t.punct}' at token ${i}`);
      const d: Directive = { name: t.word!, args: [] };
      for (;;) {
        const a = tokens[i++];
        if (!a) throw new Error(`unterminated directive ${d.name}`);
        if (a.punct === ';') break;
        if (a.punct === '{') {
          d.block = parseBlock();
          break;
        }
        if (a.punct === '}') throw new Error(`unexpected '}' in ${d.name}`);
        d.args.push(a.word!);
      }
      out.push(d);
    }
    return out;
  };
  return parseBlock();
}

const all = (ds: Directive[], name: string) => ds.filter((d) => d.name === name);
function one(ds: Directive[], name: string, ...args: string[]): Directive {
  const found = ds.filter((d) => d.name === name && args.every((a, k) => d.args[k] === a));
  if (found.length !== 1)
    throw new Error(`expected one '${[name, ...args].join(' ')}', found ${found.length}`);
  return found[0]!;
}
const argsOf = (ds: Directive[], name: string) => one(ds, name).args;

const base: EdgeCacheConfigInput = {
  listenPort: 8080,
  originHost: 'shop-web.prod.svc.cluster.local',
  originPort: 80,
  pathPrefix: '/static',
  ttlSeconds: 300,
  staleIfErrorSeconds: 86400,
  assetVersion: 'v1.2.3',
  cacheSize: '512m',
  runDir: '/tmp',
};

function sections(input: Partial<EdgeCacheConfigInput> = {}) {
  const top = parseNginx(edgeCacheNginxConfig({ ...base, ...input }));
  const http = one(top, 'http').block!;
  const server = one(http, 'server').block!;
  const location = (...args: string[]) => one(server, 'location', ...args).block!;
  return { top, http, server, location, staticLoc: location('^~', '/static/') };
}

describe('edgeCacheNginxConfig: the cached path', () => {
  it('caches under the path prefix, in a zone whose key carries the asset version', () => {
    const { staticLoc } = sections();
    expect(argsOf(staticLoc, 'proxy_cache')).toEqual(['edge']);
    const [key] = argsOf(staticLoc, 'proxy_cache_key');
    expect(key).toContain('v1.2.3');
    expect(key).toContain('$request_uri');
  });

  it('gives a new asset version a different key, so every old entry misses', () => {
    const key = (assetVersion: string) => argsOf(sections({ assetVersion }).staticLoc, 'proxy_cache_key');
    expect(key('v2')).not.toEqual(key('v1'));
  });

  it('keeps 200 and redirects for the TTL, serves stale on errors and refreshes in the background', () => {
    const { staticLoc } = sections();
    expect(argsOf(staticLoc, 'proxy_cache_valid')).toEqual(['200', '301', '302', '300s']);
    expect(argsOf(staticLoc, 'proxy_cache_use_stale')).toEqual([
      'error',
      'timeout',
      'updating',
      'http_500',
      'http_502',
      'http_503',
      'http_504',
    ]);
    expect(argsOf(staticLoc, 'proxy_cache_background_update')).toEqual(['on']);
    expect(argsOf(staticLoc, 'proxy_cache_lock')).toEqual(['on']);
  });

  it("overrides the origin's Cache-Control and Expires but never caches a response that sets a cookie", () => {
    const { staticLoc } = sections();
    const ignored = argsOf(staticLoc, 'proxy_ignore_headers');
    expect(ignored).toEqual(expect.arrayContaining(['Cache-Control', 'Expires']));
    expect(ignored).not.toContain('Set-Cookie');
    const hidden = all(staticLoc, 'proxy_hide_header').map((d) => d.args[0]);
    expect(hidden).toEqual(expect.arrayContaining(['Cache-Control', 'Expires']));
  });

  it("tells clients the edge's policy, on successful responses only", () => {
    const { staticLoc } = sections({ ttlSeconds: 60, staleIfErrorSeconds: 600 });
    expect(one(staticLoc, 'add_header', 'Cache-Control').args).toEqual([
      'Cache-Control',
      'public, max-age=60, stale-if-error=600',
    ]);
    expect(one(staticLoc, 'add_header', 'X-Cache-Status').args).toEqual([
      'X-Cache-Status',
      '$upstream_cache_status',
      'always',
    ]);
  });

  it('keeps stale entries on disk for at least the TTL plus the stale window', () => {
    const { http } = sections({ ttlSeconds: 300, staleIfErrorSeconds: 86400 });
    const [dir, ...params] = argsOf(http, 'proxy_cache_path');
    expect(dir).toBe('/tmp/cache');
    const inactive = params.find((p) => p.startsWith('inactive='))!;
    expect(Number(/^inactive=(\d+)s$/.exec(inactive)![1])).toBeGreaterThanOrEqual(300 + 86400);
    expect(params).toContain('max_size=512m');
    expect(params).toContain('keys_zone=edge:10m');
  });

  it('treats a trailing slash on the prefix as the same prefix', () => {
    expect(edgeCacheNginxConfig({ ...base, pathPrefix: '/static/' })).toBe(edgeCacheNginxConfig(base));
  });
});

describe('edgeCacheNginxConfig: everything else', () => {
  it('proxies other paths to the origin without touching the cache', () => {
    const { location, staticLoc } = sections();
    const rest = location('/');
    expect(argsOf(rest, 'proxy_pass')).toEqual(['http://shop-web.prod.svc.cluster.local:80']);
    expect(argsOf(staticLoc, 'proxy_pass')).toEqual(['http://shop-web.prod.svc.cluster.local:80']);
    expect(all(rest, 'proxy_cache')).toEqual([]);
  });

  it('answers /healthz itself, naming the asset version it was built for', () => {
    const health = sections().location('=', '/healthz');
    expect(argsOf(health, 'return')).toEqual(['200', 'ok\\n']);
    expect(all(health, 'proxy_pass')).toEqual([]);
    expect(one(health, 'add_header', ASSET_VERSION_HEADER).args[1]).toBe('v1.2.3');
  });

  it('listens on the given port, on all addresses unless one is given', () => {
    expect(argsOf(sections().server, 'listen')).toEqual(['8080']);
    expect(argsOf(sections({ listenAddress: '127.0.0.1' }).server, 'listen')).toEqual(['127.0.0.1:8080']);
  });

  it('re-resolves the origin at run time through a variable when a resolver is given', () => {
    const { http, server, location } = sections({ resolver: '10.96.0.10 valid=10s' });
    expect(argsOf(http, 'resolver')).toEqual(['10.96.0.10', 'valid=10s']);
    expect(argsOf(server, 'set')).toEqual(['$edge_origin', 'shop-web.prod.svc.cluster.local:80']);
    expect(argsOf(location('/'), 'proxy_pass')).toEqual(['http://$edge_origin']);
  });
});

describe('edgeCacheNginxConfig: a non-root pod with a read-only root filesystem', () => {
  it('writes only under runDir: pid, every temp path and the cache', () => {
    const { top, http } = sections({ runDir: '/var/run/edge/' });
    expect(argsOf(top, 'pid')).toEqual(['/var/run/edge/nginx.pid']);
    for (const name of [
      'client_body_temp_path',
      'proxy_temp_path',
      'fastcgi_temp_path',
      'uwsgi_temp_path',
      'scgi_temp_path',
      'proxy_cache_path',
    ])
      expect(argsOf(http, name)[0]).toMatch(/^\/var\/run\/edge\/[a-z_]+$/);
  });

  it('logs to stderr and stdout, leaves daemon mode to the command line and sets no user', () => {
    const { top, http } = sections();
    expect(argsOf(top, 'error_log')[0]).toBe('stderr');
    expect(argsOf(http, 'access_log')[0]).toBe('/dev/stdout');
    expect(all(top, 'daemon')).toEqual([]);
    expect(all(top, 'user')).toEqual([]);
    expect(edgeCacheNginxArgs('/etc/edge/nginx.conf')).toEqual([
      '-c',
      '/etc/edge/nginx.conf',
      '-e',
      'stderr',
      '-g',
      'daemon off;',
    ]);
  });

  it('is a pure function of its input', () => {
    expect(edgeCacheNginxConfig({ ...base })).toBe(edgeCacheNginxConfig({ ...base }));
  });
});

describe('edgeCacheNginxConfig: validation', () => {
  it.each<[keyof EdgeCacheConfigInput, unknown]>([
    ['listenPort', 0],
    ['listenPort', 65536],
    ['listenPort', 80.5],
    ['originPort', -1],
    ['originHost', 'web;evil'],
    ['originHost', ''],
    ['pathPrefix', 'static'],
    ['pathPrefix', '/'],
    ['pathPrefix', '/static/../admin'],
    ['pathPrefix', '/sta tic'],
    ['ttlSeconds', 0],
    ['ttlSeconds', 1.5],
    ['staleIfErrorSeconds', -1],
    ['assetVersion', ''],
    ['assetVersion', 'v1";'],
    ['assetVersion', 'v1 2'],
    ['cacheSize', '512 MB'],
    ['runDir', 'tmp'],
    ['runDir', '/tmp;'],
    ['resolver', '10.0.0.1; include /etc/passwd'],
    ['listenAddress', '::1'],
  ])('rejects %s = %j, naming the field and the value', (field, value) => {
    expect(() => edgeCacheNginxConfig({ ...base, [field]: value })).toThrow(
      new RegExp(`${field} .*${JSON.stringify(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    );
  });

  it('accepts an IPv4 origin and version strings with dots, dashes and underscores', () => {
    expect(() =>
      edgeCacheNginxConfig({ ...base, originHost: '10.0.0.7', assetVersion: '2024-06-01_ab12.c' }),
    ).not.toThrow();
  });
});
