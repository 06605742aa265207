// spec.monitoring against REAL servers, exporters and a real Prometheus, all on 127.0.0.1 and free
// ports: a Postgres primary and standby started by the instance script, redis-server, nginx and a
// RabbitMQ node, each configured by the operator's own generators with monitoring on; beside them the
// exporters the operator's containers name, run with those containers' arguments and environment
// (only addresses and file paths changed, and the test says which); and a Prometheus that scrapes
// them all. What docs/monitoring.md promises (the series, the logins that can read statistics and
// nothing else) is shown here to be what the scraper gets. The binaries come from
// tools/dataplane-deps.sh (Debian bookworm: postgres_exporter 0.11.1, redis_exporter 1.45.0,
// nginx-prometheus-exporter 0.11.0, Prometheus 2.42). Figures are printed, never asserted.
import { issueCa, issueServerCert, type KeyPair } from '../operator/tls/certificates.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { V1Container, V1EnvVarSource, V1Volume } from '@kubernetes/client-node';
import { Client } from 'pg';
import { parse as parseYaml } from 'yaml';
import { eventually } from '../e2e/support/eventually.ts';
import { freePort } from '../e2e/support/free-port.ts';
import { parseApp } from '../operator/api/testdata/apps.ts';
import { OPERATOR_SERIES, dashboardQueries, withAllSelected } from '../operator/monitoring/dashboards.ts';
import { connectRedis, errorCode, type RedisClient } from '../operator/dataplane/redis-client.ts';
import {
  CACHE_USERS,
  cacheAuthInclude,
  cacheServerConfig,
  maxMemoryBytes,
} from '../operator/server-config/cache.ts';
import {
  STATUS_PATH,
  edgeCacheNginxArgs,
  edgeCacheNginxConfig,
} from '../operator/server-config/edge-cache.ts';
import {
  DEFAULT_MONITOR_USER,
  hbaConfig,
  synchronousStandbyNames,
} from '../operator/server-config/postgres.ts';
import { CREDENTIAL_FILES } from '../operator/server-config/postgres-instance-script.ts';
import { FENCED_HBA_FILE } from '../operator/server-config/postgres-ready-script.ts';
import {
  CONFIG_FILES,
  brokerConfigFiles,
  diskFreeLimitBytes,
  memoryHighWatermarkBytes,
  type BrokerConfigOptions,
} from '../operator/server-config/rabbitmq.ts';
import { CACHE_PASSWORD_KEYS, CACHE_PORT, cacheAuthName } from '../operator/tiers/cache.ts';
import {
  EDGE_STATUS_PORT,
  METRICS_PORT,
  POSTGRES_EXPORTER_QUERIES,
  cacheExporter,
  edgeExporter,
  postgresExporter,
} from '../operator/tiers/monitoring.ts';
import { EXPORTER_QUERIES_KEY, PG_PORT } from '../operator/tiers/postgres-cluster.ts';
import { APP_DATABASE, APP_USER, LocalCluster, until } from './support/postgres-local-cluster.ts';
import {
  dataplaneBinary,
  startPrometheus,
  type LocalPrometheus,
  type Sample,
} from './support/prometheus-local.ts';
import { startBroker, type LocalBroker } from './support/rabbitmq-local.ts';

const LOOPBACK = '127.0.0.1';
const AS_ROOT = process.getuid?.() === 0;
const TIER_SETUP_TIMEOUT = 180_000;

/** RabbitMQ boots twice here (see the queue's beforeAll): a deadline against hangs, not a target. */
const QUEUE_SETUP_TIMEOUT = 600_000;

const app = parseApp({
  web: { image: 'shop:1' },
  cache: {},
  database: { replicas: 1, synchronousReplicas: 1 },
  queue: { queues: [{ name: 'photos' }] },
  edgeCache: {},
  monitoring: { enabled: true },
});

/** Everything started, stopped last to first in afterAll whatever failed in between. */
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

// ---------------------------------------------------------------------------------------------------
// The exporters, as the operator renders them.

type LocalCommand = {
  args: string[];
  env: Record<string, string>;
  /** The flags and variables given another value on loopback, in the container's order. */
  rewritten: string[];
  /** Arguments and variables passed through unchanged: what a drift in the operator shows up in. */
  kept: string[];
};

/** For a flag or variable: the value the operator must render, and the one used on loopback. */
type Rewrites = Record<string, readonly [expected: string | V1EnvVarSource, local: string]>;

/**
 * The container's arguments and environment with `rewrites` applied. Fails when a rewritten value is
 * not what the test expects (the operator changed it) or a rewrite matches nothing, and when a
 * variable comes from a Secret the test was not told how to fill.
 */
function onLoopback(c: V1Container, rewrites: Rewrites): LocalCommand {
  if (c.command) throw new Error(`${c.name}: the image's entrypoint is overridden: ${c.command.join(' ')}`);
  const out: LocalCommand = { args: [], env: {}, rewritten: [], kept: [] };
  const used = new Set<string>();
  const rewrite = (key: string, rendered: string | V1EnvVarSource | undefined): string => {
    const [expected, local] = rewrites[key]!;
    if (!isDeepStrictEqual(rendered, expected)) {
      throw new Error(
        `${c.name}: ${key} is ${JSON.stringify(rendered)}, expected ${JSON.stringify(expected)}`,
      );
    }
    used.add(key);
    out.rewritten.push(key);
    return local;
  };
  for (const arg of c.args ?? []) {
    const flag = /^(--?[^=]+)=(.*)$/.exec(arg);
    if (flag && rewrites[flag[1]!]) {
      out.args.push(`${flag[1]}=${rewrite(flag[1]!, flag[2])}`);
    } else {
      out.args.push(arg);
      out.kept.push(arg);
    }
  }
  for (const e of c.env ?? []) {
    if (rewrites[e.name]) {
      out.env[e.name] = rewrite(e.name, e.value ?? e.valueFrom);
    } else if (e.valueFrom || e.value === undefined) {
      throw new Error(`${c.name}: ${e.name} comes from ${JSON.stringify(e.valueFrom)}: say what to use here`);
    } else {
      out.env[e.name] = e.value;
      out.kept.push(`${e.name}=${e.value}`);
    }
  }
  const unused = Object.keys(rewrites).filter((k) => !used.has(k));
  if (unused.length) throw new Error(`${c.name}: the container has no ${unused.join(', ')} to rewrite`);
  return out;
}

/** The operator's listen flag, and ours: the same port number is free in a pod, not here. */
const listenOn = (operatorPort: number, port: number) => [`:${operatorPort}`, `${LOOPBACK}:${port}`] as const;

type Exporter = { name: string; pid: number; log: () => string };

/**
 * Runs an exporter as its container would: with only the container's environment, and as its uid
 * when we are root. Resolves once its metrics endpoint answers.
 */
async function runExporter(
  name: string,
  binary: string,
  container: V1Container,
  cmd: LocalCommand,
  port: number,
): Promise<Exporter> {
  const sc = container.securityContext;
  if (AS_ROOT && (sc?.runAsUser === undefined || sc.runAsGroup === undefined)) {
    throw new Error(`${name}: the container names no uid and gid to run as`);
  }
  const proc = spawn(binary, cmd.args, {
    env: cmd.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(AS_ROOT ? { uid: sc!.runAsUser!, gid: sc!.runAsGroup! } : {}),
  });
  let log = '';
  const append = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-(1 << 20)));
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);
  cleanups.push(() => stopProcess(proc));
  await eventually(
    `the ${name} exporter to answer on port ${port}`,
    async () => (await fetch(`http://${LOOPBACK}:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).ok,
    30_000,
    100,
    () => (exited(proc) ? `it exited (${proc.exitCode ?? proc.signalCode}):\n${log}` : undefined),
  );
  return { name, pid: proc.pid!, log: () => log };
}

const exited = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;

async function stopProcess(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (exited(p)) return;
  const gone = once(p, 'exit');
  p.kill(signal);
  const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

/** A private directory the exporter's uid may enter, as a pod's mounts are. */
function exporterDir(prefix: string, container: V1Container): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  if (AS_ROOT) chownSync(dir, container.securityContext!.runAsUser!, container.securityContext!.runAsGroup!);
  return dir;
}

/** A Secret's file: root's, the exporter's group may read it (the pod's fsGroup), at the volume's mode. */
function secretFile(path: string, value: string, volume: V1Volume, container: V1Container): void {
  writeFileSync(path, value);
  if (AS_ROOT) chownSync(path, 0, container.securityContext!.runAsGroup!);
  chmodSync(path, volume.secret!.defaultMode!);
}

/** Where a volume's first item is in the container. */
function mountedFile(container: V1Container, volume: V1Volume): string {
  const mount = container.volumeMounts?.find((m) => m.name === volume.name);
  if (!mount) throw new Error(`${container.name} does not mount ${volume.name}`);
  return `${mount.mountPath}/${volume.secret!.items![0]!.path}`;
}

/** Error-level lines of an exporter's log (go-kit's logfmt and logrus both write `level=error`). */
const errorLines = (log: string) => log.split('\n').filter((l) => /level=(error|fatal)/.test(l));

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------------
// Prometheus, scraping every tier; each target's port is picked now, its server comes up later.

const ports = {} as Record<'pgPrimary' | 'pgStandby' | 'cache' | 'edge' | 'queue', number>;
const exporters: Exporter[] = [];
let prom: LocalPrometheus;
const JOBS = { postgres: 'postgres', cache: 'cache', edge: 'edge-cache', queue: 'queue' } as const;

// Fifteen one-second scrapes per target: enough for a mean and a maximum, short for CI.
const FIGURES_WINDOW_S = 15;

/** Every target, as the figures name it, with the exporter process behind it (the broker has none). */
const scrapedTargets = () => [
  { what: 'database primary', port: ports.pgPrimary, exporter: 'postgres pg-0' },
  { what: 'database standby', port: ports.pgStandby, exporter: 'postgres pg-1' },
  { what: 'cache', port: ports.cache, exporter: 'cache' },
  { what: 'edge cache', port: ports.edge, exporter: 'edge-cache' },
  { what: 'queue', port: ports.queue, exporter: undefined },
];

beforeAll(async () => {
  for (const k of ['pgPrimary', 'pgStandby', 'cache', 'edge', 'queue'] as const) ports[k] = await freePort();
  const target = (port: number) => `${LOOPBACK}:${port}`;
  prom = await startPrometheus({
    jobs: [
      {
        name: JOBS.postgres,
        targets: [target(ports.pgPrimary), target(ports.pgStandby)],
        labels: { tier: 'database' },
      },
      { name: JOBS.cache, targets: [target(ports.cache)], labels: { tier: 'cache' } },
      { name: JOBS.edge, targets: [target(ports.edge)], labels: { tier: 'edge-cache' } },
      { name: JOBS.queue, targets: [target(ports.queue)], labels: { tier: 'queue' } },
    ],
    scrapeIntervalSeconds: 1,
  });
  cleanups.push(() => prom.stop());
});

/**
 * Polls a query until `ok` holds of its series (scrapes come every second); the last series either
 * way, so that expect() judges them and shows them when they are wrong.
 */
async function settled(promql: string, ok: (s: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
  let last: Sample[] = [];
  await eventually(promql, async () => ok((last = await prom.query(promql))), timeoutMs, 250).catch(
    () => undefined,
  );
  return last;
}

const instance = (port: number) => `${LOOPBACK}:${port}`;
/** Each series' value by its `instance` label (one series per target). */
const byInstance = (s: Sample[]) => Object.fromEntries(s.map((x) => [x.metric.instance, x.value]));
/** The one series' value; NaN when there is not exactly one. */
const only = (s: Sample[]) => (s.length === 1 ? s[0]!.value : NaN);

// ---------------------------------------------------------------------------------------------------

describe('database: a primary and a synchronous standby, an exporter beside each', () => {
  const NAMES = ['pg-0', 'pg-1'];
  // Quotes, a backslash and a colon on purpose. No space: postgres_exporter 0.11 refuses to start on
  // the DSN it builds from a password with one ("malformed dsn"); generated ones are base64url.
  const MONITOR_PASSWORD = `mon:it\\or'pw"`;
  let cluster: LocalCluster;
  let command: LocalCommand;
  let volume: V1Volume;

  beforeAll(async () => {
    cluster = await LocalCluster.create({ names: NAMES, synchronousReplicas: 1 });
    cleanups.push(() => cluster.destroy());
    // What the helper writes without monitoring, made what the operator's ConfigMap and Secret hold
    // with it: the monitor role's password (so initdb creates the role) and its pg_hba.conf line.
    await cluster.setMonitorPassword(MONITOR_PASSWORD);
    const hba = { cidr: `${LOOPBACK}/32`, appUsers: [APP_USER], appDatabase: APP_DATABASE, monitor: true };
    writeFileSync(join(cluster.configDir, 'pg_hba.conf'), hbaConfig(hba));
    writeFileSync(join(cluster.configDir, FENCED_HBA_FILE), hbaConfig({ ...hba, fenced: true }));
    await cluster.startAll();
    const [primary, standby] = cluster.instances;
    await until('pg-1 streaming from pg-0', async () => {
      const rows = await primary!.query<{ state: string }>(
        "SELECT state FROM pg_stat_replication WHERE application_name = 'pg-1'",
        [],
        'superuser',
      );
      return rows[0]?.state === 'streaming';
    });

    const rendered = postgresExporter(app, {
      port: PG_PORT,
      credentialsSecret: 'shop-db-credentials',
      passwordKey: CREDENTIAL_FILES.monitorPassword,
      monitorUser: DEFAULT_MONITOR_USER,
      queriesPath: `/config/${EXPORTER_QUERIES_KEY}`,
      tls: false,
    });
    const container = rendered.containers[0]!;
    volume = rendered.volumes[0]!;
    const binary = dataplaneBinary('prometheus-postgres-exporter');
    for (const [i, port] of [
      [primary!, ports.pgPrimary],
      [standby!, ports.pgStandby],
    ] as const) {
      const dir = exporterDir(`pg-exporter-${i.name}-`, container);
      const queries = join(dir, EXPORTER_QUERIES_KEY);
      writeFileSync(queries, POSTGRES_EXPORTER_QUERIES, { mode: 0o444 });
      secretFile(join(dir, 'password'), MONITOR_PASSWORD, volume, container);
      command = onLoopback(container, {
        '--web.listen-address': listenOn(METRICS_PORT.postgres, port),
        '--extend.query-path': [`/config/${EXPORTER_QUERIES_KEY}`, queries],
        DATA_SOURCE_URI: [
          `${LOOPBACK}:${PG_PORT}/postgres?sslmode=disable`,
          `${LOOPBACK}:${i.node.port}/postgres?sslmode=disable`,
        ],
        DATA_SOURCE_PASS_FILE: [mountedFile(container, volume), join(dir, 'password')],
      });
      exporters.push(await runExporter(`postgres ${i.name}`, binary, container, command, port));
    }
  }, TIER_SETUP_TIMEOUT);

  it("runs the operator's exporter: only its address, the server's port and the mounted files differ", () => {
    expect(volume.secret).toEqual({
      secretName: 'shop-db-credentials',
      items: [{ key: CREDENTIAL_FILES.monitorPassword, path: 'password' }],
      defaultMode: 0o440,
    });
    expect(command.rewritten).toEqual([
      '--web.listen-address',
      '--extend.query-path',
      'DATA_SOURCE_URI',
      'DATA_SOURCE_PASS_FILE',
    ]);
    expect(command.kept).toEqual([`DATA_SOURCE_USER=${DEFAULT_MONITOR_USER}`]);
  });

  it('both exporters are scraped, log in as the monitor role and load every query of the ConfigMap', async () => {
    const both = (s: Sample[]) => s.length === 2;
    const all = (v: number) => (s: Sample[]) => both(s) && s.every((x) => x.value === v);
    expect(byInstance(await settled(`up{job="${JOBS.postgres}"}`, all(1)))).toEqual({
      [instance(ports.pgPrimary)]: 1,
      [instance(ports.pgStandby)]: 1,
    });
    for (const [q, v] of [
      ['pg_up', 1],
      ['pg_exporter_user_queries_load_error', 0],
      ['pg_exporter_last_scrape_error', 0],
    ] as const) {
      const s = await settled(`${q}{job="${JOBS.postgres}"}`, all(v));
      expect([q, s.map((x) => x.value)]).toEqual([q, [v, v]]);
    }
    // Every query of the ConfigMap answers on the primary (pg_standby has no rows on a standby)...
    for (const ns of Object.keys(parseYaml(POSTGRES_EXPORTER_QUERIES) as object)) {
      const q = `count({__name__=~"${ns}_.+",instance="${instance(ports.pgPrimary)}"})`;
      expect([ns, only(await settled(q, (x) => only(x) > 0)) > 0]).toEqual([ns, true]);
    }
    // ...and every collector, built-in or ours, could read what it asked for as the monitor role (a
    // query refused makes pg_exporter_last_scrape_error 1 and logs at level=error).
    for (const e of exporters.filter((x) => x.name.startsWith('postgres'))) {
      expect([e.name, errorLines(e.log())]).toEqual([e.name, []]);
    }
  });

  it("tells the primary from the standby, the standby's lag by its name, and the synchronous quorum", async () => {
    const [primary] = cluster.instances;
    const [p, s] = [instance(ports.pgPrimary), instance(ports.pgStandby)];
    const standby = await settled(`pg_instance_standby{job="${JOBS.postgres}"}`, (x) => x.length === 2);
    expect(byInstance(standby)).toEqual({ [p]: 0, [s]: 1 });
    const streaming = await settled(
      `pg_instance_streaming_from_primary{instance="${s}"}`,
      (x) => only(x) === 1,
    );
    expect(only(streaming)).toBe(1);

    const lag = await settled(`pg_standby_replay_lag_bytes{instance="${p}"}`, (x) => x.length === 1);
    expect(lag.map((x) => [x.metric.standby, x.metric.sync_state])).toEqual([['pg-1', 'quorum']]);
    expect(lag[0]!.value).toBeGreaterThanOrEqual(0);

    const names = (
      await primary!.query<{ names: string }>("SELECT current_setting('synchronous_standby_names') AS names")
    )[0]!.names;
    expect(names).toBe(synchronousStandbyNames(1, NAMES));
    const required = await settled(`pg_synchronous_required{instance="${p}"}`, (x) => x.length === 1);
    expect(only(required)).toBe(1);
    expect(only(await settled(`pg_synchronous_standbys{instance="${p}"}`, (x) => only(x) === 1))).toBe(1);

    const max = Number(
      (await primary!.query<{ max: string }>("SELECT current_setting('max_connections') AS max"))[0]!.max,
    );
    const connections = await settled(`pg_connections_max{job="${JOBS.postgres}"}`, (x) => x.length === 2);
    expect(connections.map((x) => x.value)).toEqual([max, max]);
    expect(max).toBeGreaterThan(0);
  });

  it('the monitor role reads statistics, not data, and only over loopback into the postgres database', async () => {
    const primary = cluster.instances[0]!;
    // The app's table in the one database the monitor role may enter: the app's own database it
    // cannot even connect to (below).
    await primary.query(
      `CREATE TABLE orders (id int PRIMARY KEY, card text);
       ALTER TABLE orders OWNER TO ${APP_USER};
       INSERT INTO orders VALUES (1, '4111 1111 1111 1111')`,
      [],
      'superuser',
    );
    const monitor = (database: string) =>
      new Client({ ...primary.node, user: DEFAULT_MONITOR_USER, password: MONITOR_PASSWORD, database });
    const sqlState = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (err: { code?: string }) => err.code,
      );
    const c = monitor('postgres');
    await c.connect();
    try {
      expect(await sqlState(c.query('SELECT count(*) FROM pg_stat_activity'))).toBe('ok');
      expect(await sqlState(c.query('SELECT * FROM orders'))).toBe('42501'); // insufficient_privilege
    } finally {
      await c.end();
    }
    const intoApp = monitor(APP_DATABASE);
    expect(await sqlState(intoApp.connect())).toBe('28000'); // no pg_hba.conf line
    await intoApp.end().catch(() => {});
    // The operator's file admits the app from the pod network; the monitor role, loopback alone.
    const hba = { cidr: '0.0.0.0/0', appUsers: [APP_USER], appDatabase: APP_DATABASE, monitor: true };
    for (const text of [hbaConfig(hba), hbaConfig({ ...hba, fenced: true })]) {
      expect(text.split('\n').filter((l) => l.includes(DEFAULT_MONITOR_USER))).toEqual([
        `host postgres ${DEFAULT_MONITOR_USER} 127.0.0.1/32 scram-sha-256`,
      ]);
    }
  });
});

describe('cache: redis-server with the monitor user, redis_exporter beside it', () => {
  const PASSWORDS = {
    app: 'app password',
    operator: 'operator password',
    replication: 'repl',
    monitor: 'mon"pw',
  };
  const MAXMEMORY = maxMemoryBytes('256Mi', 20);
  let port: number;
  let command: LocalCommand;
  let redis: ChildProcess;
  const clients: RedisClient[] = [];
  // TLS, the default (spec.cache.tls): the exporter encrypts without a name check over loopback.
  let ca: KeyPair;
  const connect = async (login: 'app' | 'operator' | 'monitor') => {
    const c = await connectRedis({
      host: LOOPBACK,
      port,
      ...(login === 'app' ? {} : { username: CACHE_USERS[login] }),
      password: PASSWORDS[login],
      tls: { ca: ca.cert, servername: 'localhost' },
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cache-monitoring-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const authFile = join(dir, 'auth.conf');
    writeFileSync(authFile, cacheAuthInclude(PASSWORDS), { mode: 0o600 });
    ca = await issueCa('cache monitoring test CA', new Date());
    const server = await issueServerCert(ca, ['localhost'], new Date());
    const tls = {
      certFile: join(dir, 'tls.crt'),
      keyFile: join(dir, 'tls.key'),
      caFile: join(dir, 'ca.crt'),
    };
    writeFileSync(tls.certFile, server.cert);
    writeFileSync(tls.keyFile, server.key, { mode: 0o600 });
    writeFileSync(tls.caFile, ca.cert);
    port = await freePort();
    writeFileSync(
      join(dir, 'redis.conf'),
      cacheServerConfig({
        port,
        bind: LOOPBACK,
        maxMemoryBytes: MAXMEMORY,
        evictionPolicy: 'allkeys-lru',
        minReplicasToWrite: 0,
        maxReplicaLagSeconds: 10,
        dir,
        authFile,
        tls,
      }),
    );
    redis = spawn(dataplaneBinary('redis-server'), [join(dir, 'redis.conf')], { stdio: 'ignore' });
    cleanups.push(() => stopProcess(redis, 'SIGKILL'));
    cleanups.push(async () => clients.forEach((c) => c.destroy()));
    await eventually(
      'redis-server to answer',
      async () => (await (await connect('operator')).ping()) === 'PONG',
      30_000,
      50,
      () => (exited(redis) ? 'redis-server exited' : undefined),
    );

    const container = cacheExporter(app, {
      port: CACHE_PORT,
      authSecret: cacheAuthName(app),
      passwordKey: CACHE_PASSWORD_KEYS.monitor,
      monitorUser: CACHE_USERS.monitor,
      tls: true,
    })[0]!;
    command = onLoopback(container, {
      '--web.listen-address': listenOn(METRICS_PORT.cache, ports.cache),
      '--redis.addr': [`rediss://${LOOPBACK}:${CACHE_PORT}`, `rediss://${LOOPBACK}:${port}`],
      REDIS_PASSWORD: [
        { secretKeyRef: { name: 'shop-cache-auth', key: CACHE_PASSWORD_KEYS.monitor } },
        PASSWORDS.monitor,
      ],
    });
    exporters.push(
      await runExporter(
        'cache',
        dataplaneBinary('prometheus-redis-exporter'),
        container,
        command,
        ports.cache,
      ),
    );
  }, TIER_SETUP_TIMEOUT);

  it("runs the operator's exporter: only its address, the server's port and the Secret's password differ", () => {
    expect(command.rewritten).toEqual(['--web.listen-address', '--redis.addr', 'REDIS_PASSWORD']);
    expect(command.kept).toEqual([
      '--skip-tls-verification',
      `--redis.user=${CACHE_USERS.monitor}`,
      '--config-command=-',
      '--set-client-name=false',
    ]);
  });

  it('is scraped and logs in (redis_up 1), and reads maxmemory from INFO without CONFIG', async () => {
    expect(only(await settled(`up{job="${JOBS.cache}"}`, (s) => only(s) === 1))).toBe(1);
    expect(only(await settled(`redis_up{job="${JOBS.cache}"}`, (s) => only(s) === 1))).toBe(1);
    const max = await settled(`redis_memory_max_bytes{job="${JOBS.cache}"}`, (s) => s.length === 1);
    expect(only(max)).toBe(MAXMEMORY);
    const scrapeError = await settled(
      `redis_exporter_last_scrape_error{job="${JOBS.cache}"}`,
      (s) => s.length === 1,
    );
    expect(only(scrapeError)).toBe(0);
  });

  it("counts the app's hits and misses", async () => {
    const hits = `redis_keyspace_hits_total{job="${JOBS.cache}"}`;
    const misses = `redis_keyspace_misses_total{job="${JOBS.cache}"}`;
    const [h0, m0] = [
      only(await settled(hits, (s) => s.length === 1)),
      only(await settled(misses, (s) => s.length === 1)),
    ];
    const c = await connect('app');
    for (let i = 0; i < 5; i++) await c.set(`page:${i}`, `<html>${i}</html>`);
    for (let i = 0; i < 5; i++) await c.get(`page:${i}`);
    for (let i = 0; i < 3; i++) await c.get(`absent:${i}`);
    expect(only(await settled(hits, (s) => only(s) >= h0 + 5)) - h0).toBe(5);
    expect(only(await settled(misses, (s) => only(s) >= m0 + 3)) - m0).toBe(3);
  });

  it('what the scrapes cost the server: no command of the monitor login is refused', async () => {
    // redis_exporter names its connection at every scrape unless told not to (--set-client-name),
    // which the monitor ACL would refuse; and its `-` config command is an unknown command, counted
    // in failed_calls, never a refusal. Before the next test, whose own refusals would count here too.
    const o = await connect('operator');
    const stats = (await o.sendCommand(['INFO', 'commandstats'])) as string;
    const refused = [...stats.matchAll(/^cmdstat_([^:]+):.*rejected_calls=([1-9]\d*)/gm)].map((m) => m[1]);
    expect(refused).toEqual([]);
    const cache = exporters.find((e) => e.name === 'cache')!;
    expect(errorLines(cache.log())).toEqual([]);
  });

  it('the monitor login can neither write, read a key nor see the config (masterauth)', async () => {
    const c = await connect('monitor');
    const refusal = (p: Promise<unknown>) => p.then(() => 'ok', errorCode);
    expect(await refusal(c.sendCommand(['INFO', 'memory']))).toBe('ok');
    expect(await refusal(c.sendCommand(['SET', 'page:0', 'defaced']))).toBe('NOPERM');
    expect(await refusal(c.sendCommand(['GET', 'page:0']))).toBe('NOPERM');
    expect(await refusal(c.sendCommand(['CONFIG', 'GET', 'masterauth']))).toBe('NOPERM');
  });
});

describe('edge cache: nginx with its stub_status server, nginx-prometheus-exporter beside it', () => {
  let edgePort: number;
  let command: LocalCommand;
  let origin: HttpServer;

  beforeAll(async () => {
    origin = createHttpServer((req, res) => res.writeHead(200).end(`asset ${req.url}\n`));
    origin.listen(0, LOOPBACK);
    await once(origin, 'listening');
    cleanups.push(async () => {
      origin.closeAllConnections();
      origin.close();
    });
    const dir = mkdtempSync(join(tmpdir(), 'edge-monitoring-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    edgePort = await freePort();
    const statusPort = await freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      edgeCacheNginxConfig({
        listenPort: edgePort,
        originHost: LOOPBACK,
        originPort: (origin.address() as AddressInfo).port,
        pathPrefix: '/static',
        ttlSeconds: 60,
        staleIfErrorSeconds: 60,
        assetVersion: 'v1',
        cacheSize: '16m',
        runDir: dir,
        listenAddress: LOOPBACK,
        statusPort,
      }),
    );
    // As the edge pod's uid when we are root (see edge-cache.test.ts); the log file stands in for the
    // container's stdout, which nginx reopens for its access log.
    const logPath = join(dir, 'nginx.log');
    const logFd = openSync(logPath, 'a');
    const edgeContainer = edgeExporter(app, STATUS_PATH)[0]!;
    const { runAsUser: uid, runAsGroup: gid } = edgeContainer.securityContext!;
    if (AS_ROOT) {
      chownSync(dir, uid!, gid!);
      chownSync(logPath, uid!, gid!);
    }
    const nginx = spawn(dataplaneBinary('nginx'), edgeCacheNginxArgs(conf, dir), {
      stdio: ['ignore', logFd, logFd],
      detached: true,
      ...(AS_ROOT ? { uid: uid!, gid: gid! } : {}),
    });
    closeSync(logFd);
    cleanups.push(async () => {
      // The master's whole group: a worker must not outlive it.
      const timer = setTimeout(() => process.kill(-nginx.pid!, 'SIGKILL'), 10_000);
      await stopProcess(nginx);
      clearTimeout(timer);
    });
    await eventually(
      'nginx to answer /healthz',
      async () => (await fetch(`http://${LOOPBACK}:${edgePort}/healthz`)).ok,
      30_000,
      50,
      () => (exited(nginx) ? `nginx exited:\n${readFileSync(logPath, 'utf8')}` : undefined),
    );

    command = onLoopback(edgeContainer, {
      '--web.listen-address': listenOn(METRICS_PORT.edgeCache, ports.edge),
      '--nginx.scrape-uri': [
        `http://${LOOPBACK}:${EDGE_STATUS_PORT}${STATUS_PATH}`,
        `http://${LOOPBACK}:${statusPort}${STATUS_PATH}`,
      ],
    });
    exporters.push(
      await runExporter(
        'edge-cache',
        dataplaneBinary('prometheus-nginx-exporter'),
        edgeContainer,
        command,
        ports.edge,
      ),
    );
  }, TIER_SETUP_TIMEOUT);

  it("runs the operator's exporter: only its address and the status server's port differ", () => {
    expect(command.rewritten).toEqual(['--web.listen-address', '--nginx.scrape-uri']);
    expect(command.kept).toEqual(['NGINX_RETRIES=10', 'NGINX_RETRY_INTERVAL=2s']);
  });

  it('is scraped, reads stub_status (nginx_up 1) and counts the requests served', async () => {
    expect(only(await settled(`up{job="${JOBS.edge}"}`, (s) => only(s) === 1))).toBe(1);
    expect(only(await settled(`nginx_up{job="${JOBS.edge}"}`, (s) => only(s) === 1))).toBe(1);
    const requests = `nginx_http_requests_total{job="${JOBS.edge}"}`;
    const before = only(await settled(requests, (s) => s.length === 1));
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`http://${LOOPBACK}:${edgePort}/static/app-${i % 2}.js`);
      expect(res.status).toBe(200);
      await res.text();
    }
    // The exporter's own stub_status reads count too: at least ours, not exactly ours.
    expect(only(await settled(requests, (s) => only(s) >= before + 10)) - before).toBeGreaterThanOrEqual(10);
    const edge = exporters.find((e) => e.name === 'edge-cache')!;
    expect(errorLines(edge.log())).toEqual([]);
  });
});

describe('queue: RabbitMQ with its Prometheus plugin, per queue', () => {
  const QUEUES = [{ name: 'photos' }];
  let broker: LocalBroker;
  let changed: string[];

  beforeAll(async () => {
    broker = await startBroker({ nodes: 1, queues: QUEUES });
    cleanups.push(() => broker.stop());
    // The local broker is started without monitoring. Its node is given the files the operator
    // renders with monitoring (the same generator, its Prometheus port a free one) and restarted.
    // First make sure the files it runs are what the generator makes of these options, so that the
    // only difference is monitoring's.
    const node = broker.nodes[0]!;
    const options: BrokerConfigOptions = {
      nodes: [node.name],
      queues: QUEUES,
      amqpPort: node.amqpPort,
      managementPort: node.managementPort,
      listenAddress: LOOPBACK,
      definitionsFile: join(node.env.HOME!, 'definitions.json'),
      memoryHighWatermarkBytes: memoryHighWatermarkBytes('1Gi'),
      diskFreeLimitBytes: diskFreeLimitBytes('5Gi', '1Gi'),
    };
    // The files the generator makes of these options (without TLS, no distribution TLS options).
    const names = Object.keys(brokerConfigFiles(options));
    const onDisk = Object.fromEntries(names.map((f) => [f, readFileSync(join(node.configDir, f), 'utf8')]));
    if (!isDeepStrictEqual(onDisk, brokerConfigFiles(options))) {
      throw new Error('rabbitmq-local.ts no longer writes brokerConfigFiles() of these options: align them');
    }
    const monitored = brokerConfigFiles({ ...options, prometheusPort: ports.queue });
    changed = names.filter((f) => monitored[f] !== onDisk[f]);
    // Rewritten in place: the files keep the owner the node runs as.
    for (const f of changed) writeFileSync(join(node.configDir, f), monitored[f]!);
    await broker.shutdown(0);
    await broker.start(0);
  }, QUEUE_SETUP_TIMEOUT);

  it("monitoring changes only the plugins and rabbitmq.conf: the plugin's port, on loopback, per object", () => {
    expect(changed.sort()).toEqual([CONFIG_FILES.plugins, CONFIG_FILES.conf].sort());
    const conf = readFileSync(join(broker.nodes[0]!.configDir, CONFIG_FILES.conf), 'utf8');
    expect(conf.split('\n').filter((l) => l.startsWith('prometheus.'))).toEqual([
      `prometheus.tcp.port = ${ports.queue}`,
      `prometheus.tcp.ip = ${LOOPBACK}`,
      'prometheus.return_per_object_metrics = true',
    ]);
  });

  it('is scraped, and the depth of a queue reaches the messages published to it', async () => {
    expect(only(await settled(`up{job="${JOBS.queue}"}`, (s) => only(s) === 1, 60_000))).toBe(1);
    const N = 25;
    await broker.publish(
      'photos',
      Array.from({ length: N }, (_, i) => `photo ${i}`),
    );
    const ready = `rabbitmq_queue_messages_ready{job="${JOBS.queue}",queue="photos"}`;
    expect(only(await settled(ready, (s) => only(s) === N, 60_000))).toBe(N);
  });
});

describe('through Prometheus, every tier at once', () => {
  it('every target is up', async () => {
    const targets = await eventually(
      'every target up',
      async () => {
        const t = await prom.targets();
        return t.length === 5 && t.every((x) => x.health === 'up') ? t : undefined;
      },
      30_000,
      250,
    ).catch(() => prom.targets());
    expect(targets.map((t) => [t.job, t.health, t.lastError]).sort()).toEqual(
      [
        [JOBS.cache, 'up', ''],
        [JOBS.edge, 'up', ''],
        [JOBS.postgres, 'up', ''],
        [JOBS.postgres, 'up', ''],
        [JOBS.queue, 'up', ''],
      ].sort(),
    );
  });

  it('every dashboard query over the servers’ series finds at least one series', async () => {
    // The operator's own series (scalableapp_*, controller-runtime's) need a running operator: the
    // real-node suites look at those. Here, every query over the exporters' and the broker's.
    const queries = dashboardQueries()
      .filter((q) => !OPERATOR_SERIES.test(q.expr))
      .map((q) => ({ ...q, expr: withAllSelected(q.expr) }));
    expect(queries.length).toBeGreaterThan(15);
    let empty: string[] = [];
    // A rate over [5m] needs two samples of its counter: the first scrapes may come too early.
    await eventually(
      'every query answered',
      async () => {
        empty = [];
        for (const q of queries)
          if ((await prom.query(q.expr)).length === 0) empty.push(`${q.panel}: ${q.expr}`);
        return empty.length === 0;
      },
      30_000,
      1000,
    ).catch(() => undefined);
    expect(empty).toEqual([]);
  });

  it('prints what scraping each target costs (figures for docs/monitoring.md, nothing asserted on them)', async () => {
    // A target is scraped, and timed, while it is down too: wait until the last tier to come up (the
    // queue) has answered every scrape of a whole window, so the figures are of answered scrapes only.
    await eventually(
      `every target up for ${FIGURES_WINDOW_S} s`,
      async () => (await prom.value(`min(min_over_time(up[${FIGURES_WINDOW_S}s]))`)) === 1,
      (FIGURES_WINDOW_S + 30) * 1000,
      1000,
    );
    const ms = (v: number | undefined) => (v === undefined ? '?' : `${(1000 * v).toFixed(1)} ms`);
    const mib = (pid: number) => `${(rssKiB(pid) / 1024).toFixed(1)} MiB`;
    const lines: string[] = [];
    for (const t of scrapedTargets()) {
      const of = (promql: string) => prom.value(`${promql}{instance="${instance(t.port)}"}`);
      const over = (fn: string) =>
        prom.value(`${fn}(scrape_duration_seconds{instance="${instance(t.port)}"}[${FIGURES_WINDOW_S}s])`);
      const [avg, max, samples] = [
        await over('avg_over_time'),
        await over('max_over_time'),
        await of('scrape_samples_scraped'),
      ];
      const exporter = exporters.find((e) => e.name === t.exporter);
      lines.push(
        `monitoring ${t.what}: scrape ${ms(avg)} avg, ${ms(max)} max over ${FIGURES_WINDOW_S} s; ` +
          `${samples ?? '?'} samples; exporter RSS ${exporter ? mib(exporter.pid) : 'none (the broker serves its own)'}`,
      );
    }
    lines.push(`monitoring prometheus itself: RSS ${mib(prom.pid)}`);
    for (const l of lines) console.log(l);
    expect(lines.filter((l) => l.includes('?'))).toEqual([]);
  });
});
