/**
 * The nginx.conf of the edge cache: the in-cluster "CDN", a caching reverse proxy in front of the web
 * tier. Pure: the same input always gives the same text, so the operator can hash it into the pod
 * template (a changed config rolls the pods) and tests can run it in a real nginx.
 *
 * Requests under `pathPrefix` are cached for `ttlSeconds` and served stale while the origin fails;
 * everything else is proxied uncached. The cache key carries `assetVersion`, so a deploy that bumps it
 * starts from an empty cache without anyone purging anything.
 */
export interface EdgeCacheConfigInput {
  listenPort: number;
  /** The web tier's Service (a DNS name) or an IPv4 address. */
  originHost: string;
  originPort: number;
  /** e.g. `/static`; a trailing slash is optional. */
  pathPrefix: string;
  ttlSeconds: number;
  staleIfErrorSeconds: number;
  assetVersion: string;
  /** The cache's max_size, an nginx size such as `512m`; keep it below the writable volume's limit. */
  cacheSize: string;
  /** The one writable directory (an emptyDir under a read-only root): cache, temp files, pid. */
  runDir: string;
  /** With a resolver, `originHost` is re-resolved at run time instead of once at start-up. */
  resolver?: string;
  /** The IPv4 address to listen on; all addresses when absent (a pod). Tests bind loopback. */
  listenAddress?: string;
  /**
   * With monitoring: a second server on 127.0.0.1:statusPort answering STATUS_PATH with nginx's
   * stub_status, which the exporter beside nginx reads. Loopback only: nothing else needs it.
   */
  statusPort?: number;
}

/** Where the stub_status server answers (on 127.0.0.1:statusPort). */
export const STATUS_PATH = '/stub_status';

/** Header on every proxied response: HIT, MISS, EXPIRED, STALE, UPDATING, REVALIDATED or BYPASS. */
export const CACHE_STATUS_HEADER = 'X-Cache-Status';
/** Header on /healthz naming the asset version the running config was built for (a reload is done). */
export const ASSET_VERSION_HEADER = 'X-Edge-Asset-Version';
export const HEALTH_PATH = '/healthz';

/**
 * The access log's line: every field a string (nginx writes `-` for a value it lacks, which would
 * not be a JSON number), the keys an aggregator indexes. `cache` is $upstream_cache_status, empty
 * outside the cached prefix.
 */
const ACCESS_LOG_FIELDS: Record<string, string> = {
  time: '$time_iso8601',
  remote_addr: '$remote_addr',
  method: '$request_method',
  uri: '$request_uri',
  status: '$status',
  bytes_sent: '$body_bytes_sent',
  cache: '$upstream_cache_status',
  request_time: '$request_time',
  upstream_time: '$upstream_response_time',
};
export const ACCESS_LOG_KEYS = Object.keys(ACCESS_LOG_FIELDS);
const ACCESS_LOG_FORMAT = `{${Object.entries(ACCESS_LOG_FIELDS)
  .map(([k, v]) => `"${k}":"${v}"`)
  .join(',')}}`;

/**
 * The command-line arguments to run the config in the foreground: `daemon off` is a flag and not in
 * the file, so the same file also works under `nginx -t` and for a daemonised debug run, and `-e`
 * moves the log nginx writes *before* reading the config off the read-only filesystem.
 */
export function edgeCacheNginxArgs(configPath: string, prefix?: string): string[] {
  return ['-c', configPath, ...(prefix ? ['-p', prefix] : []), '-e', 'stderr', '-g', 'daemon off;'];
}

// Validation: every value ends up verbatim in nginx syntax, so anything beyond these characters could
// end a directive early (`;`, `{`, quotes, whitespace) and inject configuration.
const HOST =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const PATH_PREFIX = /^\/[A-Za-z0-9._~/-]*$/;
const ASSET_VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NGINX_SIZE = /^[1-9]\d*[kKmMgG]?$/;
const ABSOLUTE_DIR = /^\/[A-Za-z0-9._/-]*$/;
// Addresses and names plus nginx's own options (`valid=10s ipv6=off`), separated by spaces.
const RESOLVER = /^[A-Za-z0-9.:[\]=_-]+(?: [A-Za-z0-9.:[\]=_-]+)*$/;

function invalid(field: string, value: unknown, rule: string): never {
  throw new Error(`edge cache config: ${field} ${rule}, got ${JSON.stringify(value)}`);
}

function checkPort(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    invalid(field, value, 'must be an integer port in 1..65535');
}

function checkSeconds(field: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min)
    invalid(field, value, `must be a whole number of seconds >= ${min}`);
}

function validate(o: EdgeCacheConfigInput): void {
  checkPort('listenPort', o.listenPort);
  checkPort('originPort', o.originPort);
  if (!HOST.test(o.originHost) && !IPV4.test(o.originHost))
    invalid('originHost', o.originHost, 'must be a DNS name or an IPv4 address');
  if (!o.pathPrefix.startsWith('/')) invalid('pathPrefix', o.pathPrefix, "must start with '/'");
  if (!PATH_PREFIX.test(o.pathPrefix))
    invalid('pathPrefix', o.pathPrefix, 'may only contain letters, digits and . _ ~ / -');
  // "/" would cache every response, dynamic pages (and whatever they personalise) included.
  if (o.pathPrefix.replace(/\/+$/, '') === '')
    invalid('pathPrefix', o.pathPrefix, "must name a path below '/', not the whole site");
  if (o.pathPrefix.includes('//') || o.pathPrefix.split('/').some((s) => s === '.' || s === '..'))
    invalid('pathPrefix', o.pathPrefix, "must be a normalised path (no '//', '.' or '..' segments)");
  checkSeconds('ttlSeconds', o.ttlSeconds, 1);
  checkSeconds('staleIfErrorSeconds', o.staleIfErrorSeconds, 0);
  if (!ASSET_VERSION.test(o.assetVersion))
    invalid('assetVersion', o.assetVersion, 'must be 1-64 characters of letters, digits and . _ -');
  if (!NGINX_SIZE.test(o.cacheSize))
    invalid('cacheSize', o.cacheSize, 'must be an nginx size such as 512m (a number with k, m or g)');
  if (!ABSOLUTE_DIR.test(o.runDir) || o.runDir.split('/').includes('..'))
    invalid('runDir', o.runDir, 'must be an absolute path of letters, digits and . _ / -');
  if (o.resolver !== undefined && !RESOLVER.test(o.resolver))
    invalid('resolver', o.resolver, 'must be addresses or names with nginx resolver options');
  if (o.listenAddress !== undefined && !IPV4.test(o.listenAddress))
    invalid('listenAddress', o.listenAddress, 'must be an IPv4 address');
  if (o.statusPort !== undefined) {
    checkPort('statusPort', o.statusPort);
    if (o.statusPort === o.listenPort) invalid('statusPort', o.statusPort, 'must differ from listenPort');
  }
}

export function edgeCacheNginxConfig(o: EdgeCacheConfigInput): string {
  validate(o);
  const run = o.runDir.replace(/\/+$/, '');
  // A location of "/static/" so "/static" does not also match "/staticfoo".
  const prefix = `${o.pathPrefix.replace(/\/+$/, '')}/`;
  const listen = o.listenAddress ? `${o.listenAddress}:${o.listenPort}` : `${o.listenPort}`;
  // Stale copies must outlive the stale window even when nobody asks for them: `inactive` is measured
  // from the last access, so an entry stored at t stays on disk until at least t + ttl + stale.
  const inactive = o.ttlSeconds + o.staleIfErrorSeconds;
  const cacheControl = `public, max-age=${o.ttlSeconds}, stale-if-error=${o.staleIfErrorSeconds}`;

  // Without a resolver the name is resolved once at start-up, which suits a Service's stable
  // ClusterIP; with one, a variable makes nginx re-resolve it at run time (open-source nginx 1.22
  // cannot re-resolve the servers of an upstream block). No keepalive pool either way: the edge asks
  // the origin mostly on misses, and a pooled connection the origin closed as idle (many app servers
  // time out within seconds) would turn a POST, which nginx does not retry, into a 502.
  const target = `${o.originHost}:${o.originPort}`;
  const origin = o.resolver
    ? {
        http: [`resolver ${o.resolver};`],
        server: [`set $edge_origin ${target};`],
        pass: 'proxy_pass http://$edge_origin;',
      }
    : { http: [], server: [], pass: `proxy_pass http://${target};` };

  const lines = [
    '# Generated by the ScalableApp operator (operator/server-config/edge-cache.ts); do not edit.',
    '# Run as: nginx -c <this file> -e stderr -g "daemon off;"',
    // One worker: nginx 1.22 sizes `auto` by the node's CPUs, not the pod's limit; scale out by replicas.
    'worker_processes 1;',
    `pid ${run}/nginx.pid;`,
    'error_log stderr warn;',
    '',
    'events {',
    '    worker_connections 1024;',
    '}',
    '',
    'http {',
    // Every path nginx writes to, under the one writable directory (the root filesystem is read-only).
    `    client_body_temp_path ${run}/client_body;`,
    `    proxy_temp_path ${run}/proxy;`,
    `    fastcgi_temp_path ${run}/fastcgi;`,
    `    uwsgi_temp_path ${run}/uwsgi;`,
    `    scgi_temp_path ${run}/scgi;`,
    `    proxy_cache_path ${run}/cache levels=1:2 keys_zone=edge:10m max_size=${o.cacheSize} inactive=${inactive}s use_temp_path=off;`,
    '',
    // One JSON object per request, which a log aggregator parses without a pattern: the cache's
    // HIT/MISS/STALE counts come from `cache` (escape=json keeps any request text valid JSON).
    `    log_format edge escape=json '${ACCESS_LOG_FORMAT}';`,
    '    access_log /dev/stdout edge;',
    '    server_tokens off;',
    '    default_type application/octet-stream;',
    // The web tier owns request limits; the edge must not reject an upload the origin accepts.
    '    client_max_body_size 0;',
    '',
    ...origin.http.map((l) => `    ${l}`),
    '',
    '    server {',
    `        listen ${listen};`,
    ...origin.server.map((l) => `        ${l}`),
    // Set here once: a proxy_set_header inside a location would drop all of these for it.
    '        proxy_http_version 1.1;',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    // In-cluster connects are instant; a dead origin should fail fast and fall back to stale copies.
    '        proxy_connect_timeout 5s;',
    '',
    `        location = ${HEALTH_PATH} {`,
    '            access_log off;',
    '            default_type text/plain;',
    `            add_header ${ASSET_VERSION_HEADER} "${o.assetVersion}" always;`,
    '            return 200 "ok\\n";',
    '        }',
    '',
    `        location ^~ ${prefix} {`,
    `            ${origin.pass}`,
    '            proxy_cache edge;',
    // The version in the key: a new assetVersion misses every entry of the old one.
    `            proxy_cache_key "${o.assetVersion}|$scheme://$host$request_uri";`,
    `            proxy_cache_valid 200 301 302 ${o.ttlSeconds}s;`,
    '            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;',
    '            proxy_cache_background_update on;',
    '            proxy_cache_lock on;',
    '            proxy_cache_revalidate on;',
    // The edge's TTL is the policy under this prefix, whatever a framework's default Cache-Control or
    // Expires says. Set-Cookie is deliberately NOT ignored: a response setting a cookie belongs to one
    // client, and ignoring it would cache and replay that cookie to everyone. The origin keeps one
    // deliberate opt-out, `X-Accel-Expires: 0`, which nginx reads and never forwards.
    '            proxy_ignore_headers Cache-Control Expires;',
    // Clients see the edge's policy, not the origin's, so browsers and the edge agree.
    '            proxy_hide_header Cache-Control;',
    '            proxy_hide_header Expires;',
    // Not `always`: an error page must not be cached by browsers for the TTL.
    `            add_header Cache-Control "${cacheControl}";`,
    `            add_header ${CACHE_STATUS_HEADER} $upstream_cache_status always;`,
    '        }',
    '',
    '        location / {',
    `            ${origin.pass}`,
    // Empty (so absent) here: nothing outside the prefix touches the cache.
    `            add_header ${CACHE_STATUS_HEADER} $upstream_cache_status always;`,
    '        }',
    '    }',
    ...(o.statusPort === undefined
      ? []
      : [
          '',
          '    server {',
          `        listen 127.0.0.1:${o.statusPort};`,
          '        access_log off;',
          `        location = ${STATUS_PATH} {`,
          '            stub_status;',
          '        }',
          '        location / {',
          '            return 404;',
          '        }',
          '    }',
        ]),
    '}',
    '',
  ];
  // Blank lines left by an empty section (no resolver / no server-level lines) are harmless but noisy.
  return lines.join('\n').replace(/\n{3,}/g, '\n\n');
}
