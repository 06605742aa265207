// The edge cache's generated nginx.conf, run by the real nginx in front of a tiny origin: what a
// browser sees on a hit, after the TTL while the origin fails, and after a deploy bumps the asset
// version. nginx runs as the pods' non-root uid (when the test runs as root), on loopback only.
import { eventually } from '../e2e/support/eventually.ts';
import { freePort } from '../e2e/support/free-port.ts';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import {
  ACCESS_LOG_KEYS,
  ASSET_VERSION_HEADER,
  edgeCacheNginxArgs,
  edgeCacheNginxConfig,
  type EdgeCacheConfigInput,
} from '../operator/server-config/edge-cache.ts';
import { RESTRICTED_UID } from '../operator/tiers/pod-security.ts';

// Generous: a first run installs nginx with apt-get. Waits inside tests poll with their own deadlines.
jest.setTimeout(60_000);

const root = new URL('../', import.meta.url).pathname;
const LOOPBACK = '127.0.0.1';

/** Installs the pinned binaries when missing (a no-op when present) and returns nginx's path. */
function nginxBinary(): string {
  execFileSync('bash', [join(root, 'tools/dataplane-deps.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const dirs = execFileSync('bash', [join(root, 'tools/dataplane-deps.sh'), '--print'], { encoding: 'utf8' });
  const bin = dirs
    .split('\n')
    .filter(Boolean)
    .map((d) => join(d, 'nginx'))
    .find((p) => existsSync(p));
  if (!bin) throw new Error(`no nginx in the directories tools/dataplane-deps.sh printed: ${dirs}`);
  return bin;
}

/** Polls fast (the servers are local), giving up at once when `hopeless` says the server died. */
const poll = <T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 15_000, hopeless = (): string | undefined => undefined } = {},
): Promise<T> => eventually(what, probe, timeoutMs, 50, hopeless);

/** The pids whose parent is `pid`, from /proc (the data-plane tests run on Linux). */
function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // exited while we looked
      }
    })
    .map(Number);
}

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A GET on a fresh connection: no keep-alive, so a request after a reload reaches the new workers. */
function get(port: number, path: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ host: LOOPBACK, port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The web tier stand-in: counts requests per path, and can answer 502 or stop listening. */
function startOrigin() {
  const hits = new Map<string, number>();
  let failWith502 = false;
  const server = createHttpServer((req, res) => {
    const path = req.url ?? '/';
    const n = (hits.get(path) ?? 0) + 1;
    hits.set(path, n);
    if (failWith502) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end('origin failing\n');
    } else if (path.startsWith('/static/')) {
      res.writeHead(200, {
        'content-type': 'application/javascript',
        // What many frameworks send by default; the edge's policy must win under the static prefix.
        'cache-control': 'no-cache',
        expires: 'Thu, 01 Jan 1970 00:00:00 GMT',
        ...(path === '/static/session.js' ? { 'set-cookie': `session=${n}; HttpOnly` } : {}),
      });
      res.end(`/* ${path} #${n} */\n`);
    } else {
      // Looks perfectly cacheable: the edge must still leave dynamic paths alone.
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600' });
      res.end(`${path} #${n}\n`);
    }
  });
  let port = 0;
  return {
    hits: (path: string) => hits.get(path) ?? 0,
    get port() {
      return port;
    },
    set failWith502(v: boolean) {
      failWith502 = v;
    },
    /** Listens, on the same port as before when restarted (nginx's config names it). */
    async start() {
      if (server.listening) return;
      server.listen(port, LOOPBACK);
      await once(server, 'listening');
      port = (server.address() as AddressInfo).port;
    },
    /** Stops listening: the edge now gets connection refused. */
    async stop() {
      if (!server.listening) return;
      server.close();
      server.closeAllConnections();
      await once(server, 'close');
    },
  };
}
type Origin = ReturnType<typeof startOrigin>;

/** nginx on the generated config, in a temp dir that plays the pod's writable emptyDir. */
async function startEdge(nginx: string, input: Omit<EdgeCacheConfigInput, 'runDir' | 'listenAddress'>) {
  const dir = mkdtempSync(join(tmpdir(), 'edge-cache-'));
  const conf = join(dir, 'nginx.conf');
  const logPath = join(dir, 'nginx.log');
  // As root, drop to the pods' uid so the config is proven to need no root and no writable root
  // filesystem. The log file stands in for the container's stdout/stderr, which runc also hands to
  // the container's user: nginx reopens /dev/stdout for access_log, and a root-owned pipe would refuse.
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? { uid: RESTRICTED_UID, gid: RESTRICTED_UID } : {};
  const logFd = openSync(logPath, 'a');
  if (asRoot) {
    chownSync(dir, RESTRICTED_UID, RESTRICTED_UID);
    chownSync(logPath, RESTRICTED_UID, RESTRICTED_UID);
  }
  const write = (assetVersion: string) =>
    writeFileSync(
      conf,
      edgeCacheNginxConfig({ ...input, assetVersion, runDir: dir, listenAddress: LOOPBACK }),
    );
  write(input.assetVersion);
  // Its own process group, so a master that ignores SIGTERM can be killed with its workers.
  const proc: ChildProcess = spawn(nginx, edgeCacheNginxArgs(conf, dir), {
    stdio: ['ignore', logFd, logFd],
    detached: true,
    ...ids,
  });
  closeSync(logFd);
  let exited: string | undefined;
  proc.on('exit', (code, signal) => (exited = `nginx exited (code ${code}, signal ${signal})`));
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');

  /** Healthy and serving the config built for `assetVersion` (so a reload has taken effect). */
  const serving = (assetVersion: string) =>
    poll(
      `nginx serving asset version ${assetVersion}`,
      async () => {
        const res = await get(input.listenPort, '/healthz');
        return res.status === 200 && res.headers[ASSET_VERSION_HEADER.toLowerCase()] === assetVersion
          ? res
          : undefined;
      },
      { hopeless: () => exited },
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\nnginx log:\n${log()}`);
    });

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = once(proc, 'exit');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => process.kill(-proc.pid!, 'SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A start that never became healthy must not leave nginx behind: the caller has no handle yet.
  await serving(input.assetVersion).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return {
    log,
    /**
     * Regenerates the config for a new asset version and reloads: SIGHUP, what `nginx -s reload` sends.
     * The shared cache zone survives a reload (a restart would forget every entry until the cache
     * loader runs, a minute later), so only the key can make the old entries miss.
     */
    async reload(assetVersion: string) {
      const oldWorkers = childPids(proc.pid!);
      write(assetVersion);
      proc.kill('SIGHUP');
      await serving(assetVersion);
      // Until the old workers have exited they still accept on the shared socket, with the old config.
      await poll('the workers of the old config to exit', async () =>
        oldWorkers.some((pid) => existsSync(`/proc/${pid}`)) ? undefined : true,
      );
    },
    stop,
  };
}
type Edge = Awaited<ReturnType<typeof startEdge>>;

const cacheStatus = (res: Response) => res.headers['x-cache-status'];

let nginx: string;
beforeAll(() => {
  nginx = nginxBinary();
}, 600_000);

/** One origin and one edge per describe; both always stopped, even when starting one failed. */
function edgeFixture(
  input: Omit<EdgeCacheConfigInput, 'runDir' | 'listenAddress' | 'originPort' | 'listenPort'>,
) {
  const f = {} as { origin: Origin; edge: Edge; port: number };
  beforeAll(async () => {
    f.origin = startOrigin();
    await f.origin.start();
    f.port = await freePort();
    f.edge = await startEdge(nginx, { ...input, originPort: f.origin.port, listenPort: f.port });
  });
  afterEach(async () => {
    f.origin.failWith502 = false;
    await f.origin.start(); // after a test that stopped it; a no-op otherwise
  });
  afterAll(async () => {
    await f.edge?.stop();
    await f.origin?.stop();
  });
  return f;
}

describe('edge cache, within the TTL', () => {
  const f = edgeFixture({
    originHost: LOOPBACK,
    pathPrefix: '/static',
    ttlSeconds: 300,
    staleIfErrorSeconds: 3600,
    assetVersion: 'v1',
    cacheSize: '16m',
  });

  it('answers a second request from the cache: a HIT, and the origin saw one request', async () => {
    const first = await get(f.port, '/static/app.js');
    const second = await get(f.port, '/static/app.js');
    expect([first.status, cacheStatus(first)]).toEqual([200, 'MISS']);
    expect([second.status, cacheStatus(second)]).toEqual([200, 'HIT']);
    expect(second.body).toBe(first.body);
    expect(f.origin.hits('/static/app.js')).toBe(1);
  });

  it('logs each request as one JSON object, with its cache status for an aggregator to count', async () => {
    await get(f.port, '/static/logged.js');
    await get(f.port, '/static/logged.js');
    // nginx writes the access log in the request's log phase, after the client already has the
    // response: on a loaded machine the second line can land a moment after the second answer.
    const requests = await eventually(
      'two access-log lines for /static/logged.js',
      () => {
        const lines = f.edge
          .log()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, string>)
          .filter((r) => r.uri === '/static/logged.js');
        return lines.length >= 2 && lines;
      },
      10_000,
      50,
    );
    expect(requests.map((r) => [r.method, r.status, r.cache])).toEqual([
      ['GET', '200', 'MISS'],
      ['GET', '200', 'HIT'],
    ]);
    for (const r of requests) expect(Object.keys(r)).toEqual(ACCESS_LOG_KEYS);
  });

  it("tells clients the edge's policy (max-age and stale-if-error), not the origin's", async () => {
    const res = await get(f.port, '/static/policy.js');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('public, max-age=300, stale-if-error=3600');
    expect(res.headers.expires).toBeUndefined();
  });

  it('never caches other paths, even when the origin calls them cacheable', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await get(f.port, '/api/cart');
      expect(res.status).toBe(200);
      expect(cacheStatus(res) ?? 'BYPASS').toBe('BYPASS');
      expect(res.headers['cache-control']).toBe('public, max-age=600');
      bodies.push(res.body);
    }
    expect(bodies).toEqual(['/api/cart #1\n', '/api/cart #2\n', '/api/cart #3\n']);
    expect(f.origin.hits('/api/cart')).toBe(3);
  });

  it("does not cache a static response that sets a cookie, so nobody is sent someone else's cookie", async () => {
    const first = await get(f.port, '/static/session.js');
    const second = await get(f.port, '/static/session.js');
    expect(first.headers['set-cookie']).toEqual(['session=1; HttpOnly']);
    expect(second.headers['set-cookie']).toEqual(['session=2; HttpOnly']);
    expect(f.origin.hits('/static/session.js')).toBe(2);
  });

  // Last in this describe: it changes the running config.
  it('misses every old entry after a reload with a new asset version', async () => {
    const path = '/static/versioned.js';
    await get(f.port, path);
    expect(cacheStatus(await get(f.port, path))).toBe('HIT');
    expect(f.origin.hits(path)).toBe(1);

    await f.edge.reload('v2');

    const after = await get(f.port, path);
    expect([after.status, cacheStatus(after)]).toEqual([200, 'MISS']);
    expect(after.body).toBe(`/* ${path} #2 */\n`);
    expect(f.origin.hits(path)).toBe(2);
    expect(cacheStatus(await get(f.port, path))).toBe('HIT');
  });
});

describe('edge cache, after the TTL while the origin fails', () => {
  const f = edgeFixture({
    originHost: LOOPBACK,
    pathPrefix: '/static',
    ttlSeconds: 1,
    staleIfErrorSeconds: 600,
    assetVersion: 'v1',
    cacheSize: '16m',
  });

  /** Caches `path`, lets `breakOrigin` break the origin, and returns the first response after expiry. */
  async function firstAfterExpiry(path: string, breakOrigin: () => Promise<void> | void) {
    const fresh = await get(f.port, path);
    expect([fresh.status, cacheStatus(fresh)]).toEqual([200, 'MISS']);
    await breakOrigin();
    // HITs until the one-second TTL passes; how long that takes is not what is tested.
    const expired = await poll('the cached entry to expire', async () => {
      const res = await get(f.port, path);
      return cacheStatus(res) === 'HIT' ? undefined : res;
    });
    return { fresh, expired };
  }

  it('serves the stale copy with 200 while the origin answers 502', async () => {
    const path = '/static/stale-502.js';
    const { fresh, expired } = await firstAfterExpiry(path, () => {
      f.origin.failWith502 = true;
    });
    expect(expired.status).toBe(200);
    expect(['STALE', 'UPDATING']).toContain(cacheStatus(expired));
    expect(expired.body).toBe(fresh.body);
    // The edge did ask (in the background) and got the 502 it is hiding.
    await poll('the origin to be asked again', async () => (f.origin.hits(path) >= 2 ? true : undefined));
  });

  it('serves the stale copy with 200 while the origin is down', async () => {
    const path = '/static/stale-down.js';
    const { fresh, expired } = await firstAfterExpiry(path, () => f.origin.stop());
    expect(expired.status).toBe(200);
    expect(['STALE', 'UPDATING']).toContain(cacheStatus(expired));
    expect(expired.body).toBe(fresh.body);
  });

  it('still sends the 502 for a path it never cached, rather than inventing content', async () => {
    f.origin.failWith502 = true;
    const res = await get(f.port, '/static/never-cached.js');
    expect(res.status).toBe(502);
    expect(res.headers['cache-control']).toBeUndefined();
  });
});
