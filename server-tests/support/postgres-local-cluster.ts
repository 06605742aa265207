// Real postgres instances on 127.0.0.1, each started by running the very instance script the pods run
// (written to a file, run with sh), with the very config texts the operator deploys. Used by the
// data-plane tests (server-tests/postgres.test.ts) and the failover benchmark (bench/postgres-failover.ts);
// the operator never imports it.
//
// Postgres refuses to run as root: when we are root, every instance runs as the `postgres` OS user
// (Debian's package creates it) through setpriv, which execs, so the process we spawn is the
// script's, which stays the postmaster's parent as it is PID 1 in a pod. Each instance gets its own
// process group, so kill9() takes the script, the postmaster and all its backends down at once, like
// a dying pod.
import { freePort } from '../../e2e/support/free-port.ts';
export { freePort } from '../../e2e/support/free-port.ts';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { APP_LOGINS } from '../../operator/tiers/postgres-cluster.ts';
import { eventually } from '../../e2e/support/eventually.ts';
import {
  pgAdmin,
  verifiedTls,
  type PgNode,
  type PostgresAdmin,
} from '../../operator/dataplane/postgres/admin.ts';
import { issueCa, issueServerCert, type KeyPair } from '../../operator/tls/certificates.ts';
import {
  hbaConfig,
  postgresConfig,
  synchronousStandbyNames,
  type PostgresConfigOptions,
} from '../../operator/server-config/postgres.ts';
import { FENCED_HBA_FILE, instanceReadyScript } from '../../operator/server-config/postgres-ready-script.ts';
import {
  CREDENTIAL_FILES,
  instanceStartScript,
  type InstanceEnv,
} from '../../operator/server-config/postgres-instance-script.ts';

export const APP_USER = 'app';

export const APP_DATABASE = 'app';
/** Characters that need escaping in a passfile (':' and '\') and in SQL (quotes) on purpose. */
export const CREDENTIALS = {
  superuser: `su:per\\secret'"`,
  replication: `re:pl\\'secret`,
  app: `app 'secret":x`,
};

/** The directory with initdb, pg_basebackup, pg_rewind and postgres: $PG_BIN, else dataplane-deps.sh's. */
export function postgresBinDir(): string {
  const has = (d: string) =>
    ['initdb', 'pg_basebackup', 'pg_rewind', 'postgres'].every((b) => existsSync(join(d, b)));
  if (process.env.PG_BIN) {
    if (!has(process.env.PG_BIN))
      throw new Error(`PG_BIN=${process.env.PG_BIN} lacks the Postgres server binaries`);
    return process.env.PG_BIN;
  }
  const script = new URL('../../tools/dataplane-deps.sh', import.meta.url).pathname;
  let dirs: string[];
  try {
    dirs = execFileSync('bash', [script, '--print'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (err) {
    throw new Error('the Postgres server is not installed: run `bash tools/dataplane-deps.sh`', {
      cause: err,
    });
  }
  const found = dirs.find(has);
  if (!found) throw new Error(`no directory with the Postgres server binaries in ${dirs.join(', ')}`);
  return found;
}

/**
 * Polls until `probe` returns something other than undefined/false, or fails at the deadline; at
 * once when `hopeless` gives a reason (the process waited on has exited).
 */
export const until = <T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  hopeless?: () => string | undefined,
) => eventually(what, probe, timeoutMs, 50, hopeless);

/**
 * The command line that runs `cmd` as `owner` (the instances' user when we are root) through
 * setpriv, which execs, so the process spawned is the program itself; `cmd` itself when no owner.
 */
export function asOwner(
  owner: { uid: number; gid: number } | undefined,
  cmd: string,
  args: string[],
): [string, string[]] {
  return owner
    ? ['setpriv', [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups', '--', cmd, ...args]]
    : [cmd, args];
}

/** The uid and gid to run postgres as: ours, or the `postgres` user's when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch (err) {
    throw new Error('running as root, and there is no `postgres` user to run the servers as', { cause: err });
  }
}

/** Gives a tree to the instances' user (their files must be theirs). */
export async function chownTree(path: string, owner: { uid: number; gid: number }): Promise<void> {
  await chown(path, owner.uid, owner.gid);
  for (const e of await readdir(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) await chownTree(p, owner);
    else await chown(p, owner.uid, owner.gid);
  }
}

const LOG_LIMIT = 1 << 20;

export class LocalInstance {
  readonly name: string;
  readonly node: PgNode;
  readonly dataDir: string;
  readonly runDir: string;
  /** Everything the script and postgres wrote, across restarts (the last MiB). */
  log = '';
  proc: ChildProcess | undefined;
  readonly #cluster: LocalCluster;
  #pidNamespace = false;

  constructor(cluster: LocalCluster, name: string, port: number) {
    this.#cluster = cluster;
    this.name = name;
    // With TLS, reached at the address, its certificate checked against the name it holds.
    const tls = cluster.tls;
    this.node = {
      name,
      host: '127.0.0.1',
      port,
      ...(tls ? { streamHost: TLS_NAME, tls: { ca: tls.ca.cert, caFile: tls.caFile } } : {}),
    };
    this.dataDir = join(cluster.root, name, 'pgdata');
    this.runDir = join(cluster.root, name, 'run');
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /**
   * pgBackRest's view of this instance (the pods have one data directory, socket and port; here each
   * instance has its own): this environment overrides its config file's pg1-* lines.
   */
  backRestEnv(): Record<string, string> {
    return {
      PGBACKREST_PG1_PATH: this.dataDir,
      PGBACKREST_PG1_PORT: String(this.node.port),
      PGBACKREST_PG1_SOCKET_PATH: this.runDir,
    };
  }

  /**
   * Runs the instance script with `primary` as the recorded primary; resolves when it answers. With
   * `pidNamespace` (root only) the script is PID 1 of a PID namespace of its own, as in a pod: it
   * inherits every orphan there.
   */
  async start(primary: LocalInstance, timeoutMs = 60_000, o: { pidNamespace?: boolean } = {}): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const c = this.#cluster;
    const env: InstanceEnv & { PATH: string } = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PGDATA: this.dataDir,
      PGPORT: String(this.node.port),
      INSTANCE_NAME: this.name,
      PRIMARY_NAME: primary.name,
      PRIMARY_HOST: primary.node.streamHost ?? primary.node.host,
      PRIMARY_PORT: String(primary.node.port),
      PG_BIN: c.pgBin,
      CONFIG_DIR: c.configDir,
      CREDENTIALS_DIR: c.credentialsDir,
      RUN_DIR: this.runDir,
      ...(c.tls ? { TLS_CA_FILE: c.tls.caFile } : {}),
    };
    const [owned, ownedArgs] = asOwner(c.owner, 'sh', [c.script]);
    // unshare forks the script into the namespace and stays its parent; --kill-child: the namespace
    // dies with it.
    const [cmd, args] = o.pidNamespace
      ? ['unshare', ['--pid', '--fork', '--kill-child', '--', owned, ...ownedArgs]]
      : [owned, ownedArgs];
    const proc = spawn(cmd, args, {
      env: { ...env, ...c.env, ...this.backRestEnv() },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.#pidNamespace = o.pidNamespace ?? false;
    const append = (chunk: Buffer) => {
      this.log += chunk.toString();
      if (this.log.length > LOG_LIMIT) this.log = this.log.slice(-LOG_LIMIT);
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    const outcome = await until(
      `${this.name} to answer`,
      // A process that exited will never answer: stop waiting at once.
      async () => (proc.exitCode !== null || proc.signalCode !== null ? 'exited' : c.admin.ping(this.node)),
      timeoutMs,
    ).catch((err: unknown) => {
      throw new Error(`${this.name} did not start; its log ends with:\n${this.log.slice(-4000)}`, {
        cause: err,
      });
    });
    if (outcome === 'exited') {
      throw new Error(
        `${this.name} exited (${proc.exitCode ?? proc.signalCode}); its log ends with:\n${this.log.slice(-4000)}`,
      );
    }
  }

  /**
   * SIGKILL to the script, the postmaster and every process under it, as when a pod dies. Frozen
   * first, so nothing forks while we list the processes: the postmaster when it runs (the script
   * only waits for it then), else the script. The script dies last, once it has reaped the
   * postmaster: a postmaster left a zombie of this host's init would still "exist" for the next
   * start's lock-file check (in a pod the whole PID namespace goes at once).
   */
  async kill9(): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    const script = this.script();
    const postmaster = this.postmaster();
    process.kill(postmaster ?? script ?? proc.pid!, 'SIGSTOP');
    const all = [proc.pid!, ...descendants(proc.pid!)];
    const last = [proc.pid!, ...(script === undefined ? [] : [script])];
    const kill = (pid: number) => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    all.filter((pid) => !last.includes(pid)).forEach(kill);
    if (postmaster !== undefined) {
      await until(
        `the script of ${this.name} to reap its postmaster`,
        async () => !existsSync(`/proc/${postmaster}`),
      );
    }
    last.forEach(kill);
    // Whatever the script itself was running (initdb, pg_basebackup, pg_rewind) is in its group (the
    // backends call setsid(): they are not, so they were listed).
    kill(-proc.pid!);
    await exited;
    await until(`the processes of ${this.name} to be gone`, async () => all.every((pid) => !alive(pid)));
  }

  /** A fast shutdown (SIGINT: what the official image's STOPSIGNAL asks for), as when a pod is deleted. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGINT');
    await exited;
  }

  /**
   * A connection (close it with end()): as the app user to the app database, or as the superuser to
   * the `postgres` database.
   */
  async connect(
    options: { as?: 'app' | 'superuser'; timeoutMs?: number; ssl?: false | ConnectionOptions } = {},
  ): Promise<Client> {
    const superuser = options.as === 'superuser';
    const tls = this.#cluster.tls;
    const client = new Client({
      // As the app does: the certificate checked against the CA and the name (verify-full).
      ssl: options.ssl ?? (tls ? verifiedTls(tls.ca.cert, TLS_NAME) : false),
      host: this.node.host,
      port: this.node.port,
      user: superuser ? 'postgres' : APP_USER,
      password: superuser ? CREDENTIALS.superuser : CREDENTIALS.app,
      database: superuser ? 'postgres' : APP_DATABASE,
      connectionTimeoutMillis: options.timeoutMs ?? 5000,
    });
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      throw new Error(`connecting to ${this.name} failed`, { cause: err });
    }
    return client;
  }

  /** Runs one query on a fresh connection (as the app user unless told otherwise). */
  async query<R extends object = Record<string, unknown>>(
    sql: string,
    values: unknown[] = [],
    as: 'app' | 'superuser' = 'app',
  ): Promise<R[]> {
    const c = await this.connect({ as });
    try {
      return (await c.query<R>(sql, values)).rows;
    } finally {
      await c.end().catch(() => {});
    }
  }

  async inRecovery(): Promise<boolean> {
    return (await this.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]!.r;
  }

  /**
   * Runs the readiness probe the pods run (ready.sh), as the instance's owner, with the self-fence
   * after `fenceAfterSeconds` when given. Its exit status and what it said.
   */
  ready(fenceAfterSeconds?: number): { ready: boolean; said: string } {
    const c = this.#cluster;
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PGPORT: String(this.node.port),
      PGDATA: this.dataDir,
      PG_BIN: c.pgBin,
      CONFIG_DIR: c.configDir,
      CREDENTIALS_DIR: c.credentialsDir,
      RUN_DIR: this.runDir,
      ...(c.tls ? { TLS_CERT_FILE: c.tls.certFile } : {}),
      ...(fenceAfterSeconds !== undefined ? { FENCE_AFTER_SECONDS: String(fenceAfterSeconds) } : {}),
    };
    const [cmd, args] = asOwner(c.owner, 'sh', [join(c.configDir, 'ready.sh')]);
    const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 10_000 });
    return { ready: r.status === 0, said: `${r.stdout}${r.stderr}`.trim() };
  }

  /** The postmaster's process id (as this host sees it), while there is one. */
  postmaster(): number | undefined {
    const all = processes();
    const mine = new Set(descendants(this.proc?.pid ?? -1, all));
    return all.find((p) => mine.has(p.pid) && /(^|\/)postgres -D /.test(p.args))?.pid;
  }

  /** The instance script's process id as this host sees it (started with `pidNamespace`: PID 1 there). */
  script(): number | undefined {
    const proc = this.proc?.pid;
    // setpriv execs: unshare's one child is the script.
    return this.#pidNamespace ? processes().find((p) => p.ppid === proc)?.pid : proc;
  }

  /** The process ids of the postmaster's children of one kind (e.g. 'walreceiver'). */
  pids(kind: string): number[] {
    const postmaster = this.postmaster() ?? -1;
    return processes()
      .filter((p) => p.ppid === postmaster && p.args.startsWith(`postgres: ${kind}`))
      .map((p) => p.pid);
  }
}

export type Process = { pid: number; ppid: number; args: string };

/** Every process of this host: its id, its parent's, its command line. */
export function processes(): Process[] {
  return execFileSync('ps', ['-e', '-o', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }));
}

function descendants(pid: number, all = processes()): number[] {
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const p of all.filter((x) => x.ppid === parent)) {
      found.push(p.pid);
      walk(p.pid);
    }
  };
  walk(pid);
  return found;
}

/** Running, or at least not yet dead: a zombie (state Z in /proc/PID/stat) counts as dead. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export type LocalClusterOptions = {
  /** Instance names; the first is the initial primary. */
  names: readonly string[];
  synchronousReplicas?: number;
  /** Serve TLS only, with a certificate for `localhost` from a CA of the cluster's own (as the pods do). */
  tls?: boolean;
  /** Continuous archiving (the backup tests). */
  archive?: PostgresConfigOptions['archive'];
  /** More environment for every instance: the postmaster's, which archive_command inherits. */
  env?: Readonly<Record<string, string>>;
};

/** The name the certificate of a TLS cluster holds; clients and standbys reach instances by it. */
export const TLS_NAME = 'localhost';

/** A TLS cluster's CA and where its files are (one certificate for every instance, as one Secret). */
export interface LocalTls {
  readonly ca: KeyPair;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A set of instances sharing one config and one credentials directory, as the pods share a ConfigMap. */
export class LocalCluster {
  readonly root: string;
  readonly pgBin: string;
  readonly configDir: string;
  readonly credentialsDir: string;
  readonly script: string;
  readonly owner: { uid: number; gid: number } | undefined;
  readonly admin: PostgresAdmin;
  readonly instances: LocalInstance[] = [];
  tls: LocalTls | undefined;
  env: Readonly<Record<string, string>> = {};

  private constructor(root: string, pgBin: string, owner: { uid: number; gid: number } | undefined) {
    this.root = root;
    this.pgBin = pgBin;
    this.owner = owner;
    this.configDir = join(root, 'config');
    this.credentialsDir = join(root, 'credentials');
    this.script = join(root, 'start.sh');
    this.admin = pgAdmin({ superuserPassword: CREDENTIALS.superuser, timeoutMs: 2000 });
  }

  /**
   * Puts (or replaces) the monitor role's password where the operator's Secret mounts it, owned by
   * the instances' user: with it, start.sh makes the role at initdb and at each start of a primary.
   */
  async setMonitorPassword(password: string): Promise<void> {
    await this.setCredential(CREDENTIAL_FILES.monitorPassword, password);
  }

  /**
   * Puts (or replaces) one key of the credentials Secret where the instances read it, owned by their
   * user, as the kubelet refreshes a changed Secret in a pod.
   */
  async setCredential(key: string, value: string): Promise<void> {
    const file = join(this.credentialsDir, key);
    await rm(file, { force: true });
    await writeFile(file, value, { mode: 0o400 });
    if (this.owner) await chown(file, this.owner.uid, this.owner.gid);
  }

  /**
   * pg-0, a primary with a table `orders`, and pg-1, its synchronous standby (every commit of the app
   * waits for it), both running and pg-1 streaming.
   */
  static async synchronousPair(): Promise<LocalCluster> {
    const c = await LocalCluster.create({ names: ['pg-0', 'pg-1'], synchronousReplicas: 1 });
    await c.startAll();
    await c.get('pg-0').query('CREATE TABLE orders (id int PRIMARY KEY)');
    await until('pg-1 to stream from pg-0', () => c.get('pg-1').inRecovery());
    return c;
  }

  /** Writes config, credentials and the script; starts nothing (see startAll and LocalInstance.start). */
  static async create(o: LocalClusterOptions): Promise<LocalCluster> {
    const [pgBin, owner] = [postgresBinDir(), runAs()];
    const root = await mkdtemp(join(tmpdir(), 'pg-dataplane-'));
    const cluster = new LocalCluster(root, pgBin, owner);
    const { configDir, credentialsDir } = cluster;
    cluster.env = o.env ?? {};
    if (o.tls) {
      const dir = join(root, 'tls');
      await mkdir(dir, { mode: 0o700 });
      const ca = await issueCa('dataplane test CA', new Date());
      cluster.tls = {
        ca,
        caFile: join(dir, 'ca.crt'),
        certFile: join(dir, 'tls.crt'),
        keyFile: join(dir, 'tls.key'),
      };
      await writeFile(cluster.tls.caFile, ca.cert);
      await cluster.installCertificate(await issueServerCert(ca, [TLS_NAME], new Date()));
    }
    await mkdir(configDir);
    await mkdir(credentialsDir, { mode: 0o700 });
    await writeFile(
      join(configDir, 'postgresql.conf'),
      postgresConfig({
        port: 5432, // overridden per instance by the script's -p "$PGPORT"
        listenAddresses: '127.0.0.1',
        synchronousStandbyNames: synchronousStandbyNames(o.synchronousReplicas ?? 0, o.names),
        // Small: a test cluster, and many of them on one machine.
        walKeepSizeMb: 64,
        maxConnections: 50,
        ...(cluster.tls ? { tls: { certFile: cluster.tls.certFile, keyFile: cluster.tls.keyFile } } : {}),
        ...(o.archive ? { archive: o.archive } : {}),
      }),
    );
    await writeFile(
      join(configDir, 'pg_hba.conf'),
      hbaConfig({
        cidr: '127.0.0.1/32',
        appUsers: APP_LOGINS,
        appDatabase: APP_DATABASE,
        tls: o.tls ?? false,
      }),
    );
    await writeFile(
      join(configDir, FENCED_HBA_FILE),
      hbaConfig({
        cidr: '127.0.0.1/32',
        appUsers: APP_LOGINS,
        appDatabase: APP_DATABASE,
        fenced: true,
        tls: o.tls ?? false,
      }),
    );
    await writeFile(join(configDir, 'ready.sh'), instanceReadyScript());
    const secret = (file: string, value: string) =>
      writeFile(join(credentialsDir, file), value, { mode: 0o400 });
    await secret(CREDENTIAL_FILES.superuserPassword, CREDENTIALS.superuser);
    await secret(CREDENTIAL_FILES.replicationPassword, CREDENTIALS.replication);
    await secret(CREDENTIAL_FILES.appPassword, CREDENTIALS.app);
    await writeFile(cluster.script, instanceStartScript({ appUser: APP_USER, appDatabase: APP_DATABASE }));
    for (const name of o.names) {
      const instance = new LocalInstance(cluster, name, await freePort());
      await mkdir(join(root, name));
      cluster.instances.push(instance);
    }
    if (cluster.owner) await chownTree(root, cluster.owner);
    return cluster;
  }

  /**
   * Puts a server certificate and its key in place, as the kubelet swaps a renewed Secret's files:
   * each file replaced whole, the key private to the instances' user. A running server reads them
   * at its next reload (ready.sh sees the change).
   */
  async installCertificate(pair: KeyPair): Promise<void> {
    const tls = this.tls!;
    for (const [file, text, mode] of [
      [tls.keyFile, pair.key, 0o600],
      [tls.certFile, pair.cert, 0o644],
    ] as const) {
      await writeFile(`${file}.new`, text, { mode });
      if (this.owner) await chown(`${file}.new`, this.owner.uid, this.owner.gid);
      await rename(`${file}.new`, file);
    }
  }

  get(name: string): LocalInstance {
    const i = this.instances.find((x) => x.name === name);
    if (!i) throw new Error(`no instance ${name}`);
    return i;
  }

  get nodes(): PgNode[] {
    return this.instances.map((i) => i.node);
  }

  /** Starts every instance at once, the first as the primary, as a StatefulSet's pods would start. */
  async startAll(): Promise<void> {
    const primary = this.instances[0]!;
    await Promise.all(this.instances.map((i) => i.start(primary)));
  }

  /** Kills every instance and removes the directory. */
  async destroy(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.kill9()));
    await rm(this.root, { recursive: true, force: true });
  }
}
