// A Postgres cluster started by the pods' own script, archiving with the real pgBackRest into a real
// S3-compatible store (versitygw) on loopback, all configured by the operator's texts
// (server-config/pgbackrest.ts). Used by the data-plane tests (server-tests/backup.test.ts) and the
// archiving benchmark (bench/archiving.ts); the operator never imports it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  BACKUP_KEY_ENV,
  ARCHIVE_SCRIPT,
  archiveScript,
  backupHostConfig,
  backupJobScript,
  pgBackRestRestoreCommand,
  pgBackRestConfig,
  pgBackRestServerConfig,
  STANDBY_FETCH_TIMEOUT_SECONDS,
  type BackupRepository,
  type PgBackRestOptions,
  type BackupHost,
  type TlsFiles,
} from '../../operator/server-config/pgbackrest.ts';
import { issueCa, issueServerCert } from '../../operator/tls/certificates.ts';
import {
  CREDENTIALS,
  LocalCluster,
  asOwner,
  chownTree,
  freePort,
  until,
  type LocalInstance,
} from './postgres-local-cluster.ts';
import { portOpen } from '../../e2e/support/free-port.ts';
import { LocalObjectStore, STORE_HOST } from './object-store-local.ts';
import { pgArchiver } from '../../operator/dataplane/postgres/archiver.ts';

const execFileAsync = promisify(execFile);
export const STANZA = 'db';
/** The archive queue's bound the cluster is configured with (archive-push-queue-max), in MiB. */
export const QUEUE_MAX_MB = 64;

/** A cluster archiving into the store, and pgBackRest run as the instances' user. */
export class BackedUpCluster {
  readonly cluster: LocalCluster;
  readonly dir: string;
  readonly store: LocalObjectStore;
  readonly #restored: ChildProcess[] = [];

  readonly repository: BackupRepository;
  readonly #servers: ChildProcess[] = [];

  private constructor(
    cluster: LocalCluster,
    dir: string,
    store: LocalObjectStore,
    repository: BackupRepository,
  ) {
    this.cluster = cluster;
    this.dir = dir;
    this.store = store;
    this.repository = repository;
  }

  static async create(
    store: LocalObjectStore,
    names = ['pg-0'],
    env: Record<string, string> = {},
  ): Promise<BackedUpCluster> {
    // pgBackRest's directory: its config (as a ConfigMap would mount it), locks, logs and the
    // archive script's mark.
    const dir = await mkdtemp(join(tmpdir(), 'pgbackrest-'));
    const configFile = join(dir, 'pgbackrest.conf');
    const cluster = await LocalCluster.create({
      names,
      // The pods' archive_command: the script creates the stanza the first time, then pushes.
      archive: {
        archiveCommand: `sh ${join(dir, ARCHIVE_SCRIPT)} %p`,
        restoreCommand: pgBackRestRestoreCommand({
          configFile,
          stanza: STANZA,
          ioTimeoutSeconds: STANDBY_FETCH_TIMEOUT_SECONDS,
        }),
        timeoutSeconds: 60,
      },
      env: {
        [BACKUP_KEY_ENV.accessKeyId]: store.accessKeyId,
        [BACKUP_KEY_ENV.secretAccessKey]: store.secretAccessKey,
        ...env,
      },
    });
    const options: PgBackRestOptions = {
      stanza: STANZA,
      repository: {
        type: 's3',
        endpoint: STORE_HOST,
        port: store.port,
        bucket: store.bucket,
        region: store.region,
        caFile: store.caFile,
        path: `/tests/${join(dir).split('/').pop()}`,
      },
      // The pods' values; each local instance's own come from its environment (LocalInstance.start).
      dataDir: '/var/lib/postgresql/data/pgdata',
      socketDir: '/var/run/postgresql',
      port: 5432,
      lockDir: join(dir, 'lock'),
      logDir: join(dir, 'log'),
      retainFull: 2,
      compression: 'zst',
      archiveQueueMaxMb: QUEUE_MAX_MB,
      storeTimeoutSeconds: 3,
    };
    await writeFile(configFile, pgBackRestConfig(options));
    await writeFile(
      join(dir, ARCHIVE_SCRIPT),
      archiveScript({ configFile, stateDir: join(dir, 'state'), ...options }),
    );
    // The script makes pgBackRest's own directories, as in a new pod.
    await mkdir(join(dir, 'restores'));
    if (cluster.owner) await chownTree(dir, cluster.owner);
    return new BackedUpCluster(cluster, dir, store, options.repository);
  }

  get primary(): LocalInstance {
    return this.cluster.get('pg-0');
  }

  /**
   * Runs pgBackRest as the instances' user; its output, or throws. By default on the primary's data
   * directory with the instances' config and environment; `elsewhere`: with that config file and
   * only the store's keys, as where no instance is. Never synchronously: the writer and the store
   * (whose output we read) must go on meanwhile.
   */
  async backRest(args: string[], elsewhere?: { config: string }): Promise<string> {
    const [cmd, cmdArgs] = asOwner(this.cluster.owner, 'pgbackrest', [
      `--config=${elsewhere?.config ?? join(this.dir, 'pgbackrest.conf')}`,
      `--stanza=${STANZA}`,
      ...args,
    ]);
    const env = elsewhere
      ? {
          [BACKUP_KEY_ENV.accessKeyId]: this.store.accessKeyId,
          [BACKUP_KEY_ENV.secretAccessKey]: this.store.secretAccessKey,
        }
      : { ...this.cluster.env, ...this.primary.backRestEnv() };
    try {
      const r = await execFileAsync(cmd, cmdArgs, {
        encoding: 'utf8',
        timeout: 180_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, PGBACKREST_LOG_LEVEL_CONSOLE: 'info' },
      });
      return `${r.stdout}${r.stderr}`;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; code?: unknown };
      throw new Error(
        `pgbackrest ${args.join(' ')} failed (${String(e.code)}):\n${e.stdout ?? ''}${e.stderr ?? ''}\n` +
          `The primary's log ends with:\n${this.primary.log.slice(-3000)}`,
      );
    }
  }

  /**
   * Restores into a new data directory (never over the running one) to `target` (a time, or the end
   * of the archive), starts it with archiving off (it must never push into the source's repository),
   * waits until recovery has ended, and returns a superuser connection to it, and how long it took.
   */
  async restore(target: { time: string } | 'latest'): Promise<{ client: Client; seconds: number }> {
    const started = performance.now();
    const dataDir = await mkdtemp(join(this.dir, 'restores', 'data-'));
    if (this.cluster.owner) await chownTree(dataDir, this.cluster.owner);
    const socketDir = join(this.dir, 'restores', `socket-${dataDir.split('-').pop()}`);
    await mkdir(socketDir);
    if (this.cluster.owner) await chownTree(socketDir, this.cluster.owner);
    await this.backRest([
      'restore',
      `--pg1-path=${dataDir}`,
      ...(target === 'latest'
        ? ['--type=default']
        : ['--type=time', `--target=${target.time}`, '--target-action=promote']),
    ]);
    const port = await freePort();
    const [cmd, args] = asOwner(this.cluster.owner, join(this.cluster.pgBin, 'postgres'), [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'archive_mode=off',
      '-c',
      `unix_socket_directories=${socketDir}`,
      '-c',
      'listen_addresses=127.0.0.1',
    ]);
    const proc = spawn(cmd, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...this.cluster.env },
    });
    this.#restored.push(proc);
    let log = '';
    proc.stderr!.on('data', (c: Buffer) => void (log = (log + c.toString()).slice(-20_000)));
    const client = await until(
      'the restored instance to finish recovery',
      async () => {
        const c = new Client({
          host: '127.0.0.1',
          port,
          user: 'postgres',
          password: CREDENTIALS.superuser,
          database: 'app',
        });
        c.on('error', () => {});
        try {
          await c.connect();
          const { rows } = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
          if (!rows[0]!.r) return c;
        } catch {
          // Not up yet, or still replaying.
        }
        await c.end().catch(() => {});
        return undefined;
      },
      120_000,
      () => (proc.exitCode !== null ? `the restored postgres exited (${proc.exitCode})` : undefined),
    ).catch((err: unknown) => {
      throw new Error(`the restored instance did not come up; its log ends with:\n${log}`, { cause: err });
    });
    return { client, seconds: (performance.now() - started) / 1000 };
  }

  /**
   * Starts `pgbackrest server` beside every instance, as the pods' sidecar will (TLS, a client
   * certificate of the backup's name required), and returns what the backup needs to reach them.
   */
  async serveBackups(): Promise<{ hosts: BackupHost[]; client: TlsFiles }> {
    const now = new Date();
    const clientName = 'scalableapp-backup';
    const ca = await issueCa('backup test CA', now);
    const server = await issueServerCert(ca, [STORE_HOST], now);
    const client = await issueServerCert(ca, [clientName], now, { clientAuth: true });
    // Signed by the same CA, for another client: the servers must refuse it.
    const stranger = await issueServerCert(ca, ['someone-else'], now, { clientAuth: true });
    const tls = join(this.dir, 'tls');
    await mkdir(tls);
    const files = {
      'ca.crt': ca.cert,
      'server.crt': server.cert,
      'server.key': server.key,
      'client.crt': client.cert,
      'client.key': client.key,
      'stranger.crt': stranger.cert,
      'stranger.key': stranger.key,
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(tls, name), text, { mode: 0o600 });
    if (this.cluster.owner) await chownTree(tls, this.cluster.owner);
    const hosts: BackupHost[] = [];
    for (const instance of this.cluster.instances) {
      const serverPort = await freePort();
      const config = await this.#configIn(`server-${instance.name}`, (dir) =>
        pgBackRestServerConfig({
          stanza: STANZA,
          dataDir: instance.dataDir,
          socketDir: instance.runDir,
          port: instance.node.port,
          listen: { address: '127.0.0.1', port: serverPort },
          tls: {
            certFile: join(tls, 'server.crt'),
            keyFile: join(tls, 'server.key'),
            caFile: join(tls, 'ca.crt'),
          },
          clientName,
          lockDir: join(dir, 'lock'),
          logDir: join(dir, 'log'),
        }),
      );
      const [cmd, args] = asOwner(this.cluster.owner, 'pgbackrest', [`--config=${config}`, 'server']);
      const proc = spawn(cmd, args, {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { PATH: process.env.PATH ?? '' },
      });
      this.#servers.push(proc);
      let log = '';
      proc.stderr!.on('data', (c: Buffer) => void (log += c.toString()));
      await until(
        `the TLS server of ${instance.name} to listen`,
        () => portOpen(serverPort),
        20_000,
        () => (proc.exitCode !== null ? `it exited: ${log}` : undefined),
      );
      hosts.push({
        host: STORE_HOST,
        serverPort,
        serverConfig: config,
        dataDir: instance.dataDir,
        socketDir: instance.runDir,
        port: instance.node.port,
      });
    }
    return {
      hosts,
      client: {
        certFile: join(tls, 'client.crt'),
        keyFile: join(tls, 'client.key'),
        caFile: join(tls, 'ca.crt'),
      },
    };
  }

  /** A directory of the instances' user under ours, holding the pgbackrest.conf `text` gives; its path. */
  async #configIn(name: string, text: (dir: string) => string): Promise<string> {
    const dir = join(this.dir, name);
    await mkdir(dir);
    const config = join(dir, 'pgbackrest.conf');
    await writeFile(config, text(dir));
    if (this.cluster.owner) await chownTree(dir, this.cluster.owner);
    return config;
  }

  /** A full backup run where no instance is (as a Job will), through the instances' TLS servers; its log. */
  async backupElsewhere(
    reach: { hosts: BackupHost[]; client: TlsFiles },
    fromStandby: boolean,
  ): Promise<string> {
    const config = await this.#configIn(`backup-host-${Date.now()}`, (dir) =>
      this.#backupHostConfig(reach, fromStandby, dir),
    );
    return this.backRest(['backup', '--type=full'], { config });
  }

  /** Where a backup runs: the repository, and every instance through its TLS server. */
  #backupHostConfig(reach: { hosts: BackupHost[]; client: TlsFiles }, fromStandby: boolean, dir: string) {
    return backupHostConfig({
      stanza: STANZA,
      repository: this.repository,
      ...reach,
      fromStandby,
      retainFull: 2,
      compression: 'zst',
      lockDir: join(dir, 'lock'),
      logDir: join(dir, 'log'),
    });
  }

  /**
   * The backup Job's script (backupJobScript) run here, as the Job runs it, through the instances'
   * TLS servers: its exit code, its output, and the repository it reported.
   */
  async runBackupJob(
    reach: { hosts: BackupHost[]; client: TlsFiles },
    fromStandby: boolean,
  ): Promise<{ code: number; output: string; report: string }> {
    let scriptFile = '';
    let reportFile = '';
    await this.#configIn(`backup-job-${Date.now()}`, (dir) => {
      const work = { lockDir: join(dir, 'lock'), logDir: join(dir, 'log') };
      scriptFile = join(dir, 'backup.sh');
      reportFile = join(dir, 'report.json');
      const configFile = join(dir, 'pgbackrest.conf');
      writeFileSync(
        scriptFile,
        backupJobScript({ configFile, stanza: STANZA, reportFile, scratchDir: dir, ...work }),
      );
      return this.#backupHostConfig(reach, fromStandby, dir);
    });
    const [cmd, args] = asOwner(this.cluster.owner, 'sh', [scriptFile]);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      [BACKUP_KEY_ENV.accessKeyId]: this.store.accessKeyId,
      [BACKUP_KEY_ENV.secretAccessKey]: this.store.secretAccessKey,
    };
    const r = await execFileAsync(cmd, args, { encoding: 'utf8', timeout: 180_000, env }).then(
      (ok) => ({ code: 0, output: `${ok.stdout}${ok.stderr}` }),
      (err: { code?: unknown; stdout?: string; stderr?: string }) => ({
        code: typeof err.code === 'number' ? err.code : -1,
        output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
      }),
    );
    return { ...r, report: existsSync(reportFile) ? readFileSync(reportFile, 'utf8') : '' };
  }

  async destroy(): Promise<void> {
    for (const p of [...this.#restored, ...this.#servers]) if (p.exitCode === null) p.kill('SIGKILL');
    await this.cluster.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }
}

// The operator's own reading of the archiver (dataplane/postgres/archiver.ts).
export const pgArchive = pgArchiver({ superuserPassword: CREDENTIALS.superuser });
export const archiver = async (p: LocalInstance) => {
  const s = await pgArchive.archiver(p.node);
  return { ...s, last: s.lastArchivedWal ?? null, ready: s.waiting };
};
/** Closes the current WAL segment; its name. */
export const switchWal = async (p: LocalInstance) =>
  (await p.query<{ wal: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS wal', [], 'superuser'))[0]!.wal;

/**
 * A store and a cluster archiving into it (the first instance the primary, the others its standbys),
 * with the table the tests write, and the first segment archived, which created the stanza
 * (ARCHIVE_SCRIPT), as on a new cluster's primary.
 */
export async function archivingCluster(
  names?: string[],
  env: Record<string, string> = {},
): Promise<{ store: LocalObjectStore; b: BackedUpCluster }> {
  const store = await LocalObjectStore.start();
  const b = await BackedUpCluster.create(store, names, env);
  await b.cluster.startAll();
  await b.primary.query(
    'CREATE TABLE events (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)',
  );
  const first = await switchWal(b.primary);
  await until('the first segment archived', async () => (await archiver(b.primary)).last === first, 60_000);
  const [info] = JSON.parse(await b.backRest(['info', '--output=json', '--log-level-console=off'])) as {
    archive: { max: string }[];
  }[];
  if (info!.archive[0]!.max !== first) {
    throw new Error(`the repository's newest segment is ${info!.archive[0]!.max}, not ${first}`);
  }
  return { store, b };
}
