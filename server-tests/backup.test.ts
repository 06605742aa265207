// Continuous archiving, backups and point-in-time recovery with the real pgBackRest (ADR 0029),
// real Postgres started by the pods' own start script and config, and a real S3-compatible object
// store (versitygw) on loopback, all configured by the operator's texts (server-config/pgbackrest.ts).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  BACKUP_KEY_ENV,
  archiveScript,
  backupHostConfig,
  pgBackRestRestoreCommand,
  pgBackRestConfig,
  pgBackRestServerConfig,
  STANDBY_FETCH_TIMEOUT_SECONDS,
  type BackupRepository,
  type PgBackRestOptions,
  type BackupHost,
  type TlsFiles,
} from '../operator/server-config/pgbackrest.ts';
import { issueCa, issueServerCert } from '../operator/tls/certificates.ts';
import {
  CREDENTIALS,
  LocalCluster,
  asOwner,
  chownTree,
  freePort,
  until,
  type LocalInstance,
} from './support/postgres-local-cluster.ts';
import { portOpen } from '../e2e/support/free-port.ts';
import { LocalObjectStore, STORE_HOST } from './support/object-store-local.ts';
import { pgArchiver } from '../operator/dataplane/postgres/archiver.ts';
import { archivingVerdict } from '../operator/controller/archiving.ts';

const execFileAsync = promisify(execFile);
const STANZA = 'db';
const QUEUE_MAX_MB = 64;

/** A cluster archiving into the store, and pgBackRest run as the instances' user. */
class BackedUpCluster {
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

  static async create(store: LocalObjectStore, names = ['pg-0']): Promise<BackedUpCluster> {
    // pgBackRest's directory: its config (as a ConfigMap would mount it), locks, logs and the
    // archive script's mark.
    const dir = await mkdtemp(join(tmpdir(), 'pgbackrest-'));
    const configFile = join(dir, 'pgbackrest.conf');
    const cluster = await LocalCluster.create({
      names,
      // The pods' archive_command: the script creates the stanza the first time, then pushes.
      archive: {
        archiveCommand: `sh ${join(dir, 'archive.sh')} %p`,
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
      join(dir, 'archive.sh'),
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
      const dir = join(this.dir, `server-${instance.name}`);
      await mkdir(dir);
      if (this.cluster.owner) await chownTree(dir, this.cluster.owner);
      const config = join(dir, 'pgbackrest.conf');
      await writeFile(
        config,
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

  /** A full backup run where no instance is (as a Job will), through the instances' TLS servers; its log. */
  async backupElsewhere(
    reach: { hosts: BackupHost[]; client: TlsFiles },
    fromStandby: boolean,
  ): Promise<string> {
    const dir = join(this.dir, `backup-host-${Date.now()}`);
    await mkdir(dir);
    const config = join(dir, 'pgbackrest.conf');
    await writeFile(
      config,
      backupHostConfig({
        stanza: STANZA,
        repository: this.repository,
        ...reach,
        fromStandby,
        retainFull: 2,
        compression: 'zst',
        lockDir: join(dir, 'lock'),
        logDir: join(dir, 'log'),
      }),
    );
    if (this.cluster.owner) await chownTree(dir, this.cluster.owner);
    return this.backRest(['backup', '--type=full'], { config });
  }

  async destroy(): Promise<void> {
    for (const p of [...this.#restored, ...this.#servers]) if (p.exitCode === null) p.kill('SIGKILL');
    await this.cluster.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Inserts one row after another until stopped (bounded: at most `max`); what each commit returned. */
function writer(primary: LocalInstance, max = 50_000) {
  const acked: { n: number; at: number; ackedAt: number }[] = [];
  let stop = false;
  const done = (async () => {
    const c = await primary.connect();
    try {
      for (let n = 1; n <= max && !stop; n++) {
        const { rows } = await c.query<{ at: Date }>('INSERT INTO events (n) VALUES ($1) RETURNING at', [n]);
        acked.push({ n, at: rows[0]!.at.getTime(), ackedAt: Date.now() });
      }
    } finally {
      await c.end().catch(() => {});
    }
  })();
  return {
    acked,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

// The operator's own reading of the archiver (dataplane/postgres/archiver.ts), and its verdict.
const pgArchive = pgArchiver({ superuserPassword: CREDENTIALS.superuser });
const archiver = async (p: LocalInstance) => {
  const s = await pgArchive.archiver(p.node);
  return { ...s, last: s.lastArchivedWal ?? null, ready: s.waiting };
};
const verdict = async (p: LocalInstance) =>
  archivingVerdict('db', await pgArchive.archiver(p.node), {
    rpoSeconds: 60,
    walQueueLimit: `${QUEUE_MAX_MB}Mi`,
  }).reason;

const switchWal = async (p: LocalInstance) =>
  (await p.query<{ wal: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS wal', [], 'superuser'))[0]!.wal;

/**
 * A store and a cluster archiving into it (the first instance the primary, the others its standbys),
 * with the table the tests write, and the first segment archived, which created the stanza
 * (archive.sh), as on a new cluster's primary.
 */
async function archivingCluster(names?: string[]): Promise<{ store: LocalObjectStore; b: BackedUpCluster }> {
  const store = await LocalObjectStore.start();
  const b = await BackedUpCluster.create(store, names);
  await b.cluster.startAll();
  await b.primary.query(
    'CREATE TABLE events (n int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)',
  );
  const first = await switchWal(b.primary);
  await until('the first segment archived', async () => (await archiver(b.primary)).last === first, 60_000);
  const [info] = JSON.parse(await b.backRest(['info', '--output=json', '--log-level-console=off'])) as {
    archive: { max: string }[];
  }[];
  expect(info!.archive[0]!.max).toBe(first);
  return { store, b };
}

/** A new store and archiving cluster for each test of a describe, handed to `use`, destroyed after it. */
function archivingClusterEach(
  names: string[] | undefined,
  use: (made: { store: LocalObjectStore; b: BackedUpCluster }) => void,
) {
  let made: { store: LocalObjectStore; b: BackedUpCluster } | undefined;
  beforeEach(async () => {
    made = await archivingCluster(names);
    use(made);
  });
  afterEach(async () => {
    await made?.b.destroy();
    await made?.store.destroy();
    made = undefined;
  });
}

describe('backups with pgBackRest into an object store', () => {
  let store: LocalObjectStore;
  let b: BackedUpCluster;
  archivingClusterEach(undefined, (made) => ({ store, b } = made));

  it('recovers a new instance to a time just before a mistake: every row acknowledged before it is there, none after', async () => {
    // Some bulk, so that the backup and the restore have something to move.
    await b.primary.query(
      "INSERT INTO events (n, pad) SELECT -g, repeat('x', 400) FROM generate_series(1, 100000) g",
    );
    const w = writer(b.primary);
    await until('writes to flow', async () => w.acked.length >= 200);
    const size = (
      await b.primary.query<{ mb: number }>('SELECT pg_database_size(current_database()) / 1048576 AS mb')
    )[0]!.mb;
    const backup = await b.backRest(['backup', '--type=full']);
    expect(backup).toMatch(/new backup label = \d{8}-\d{6}F/);
    const written = w.acked.length;
    // pgBackRest restores from a backup that ended before the target, by its stop time in seconds.
    const backupEnded = Date.now();
    await until(
      'more writes after the backup',
      async () => w.acked.length >= written + 300 && Date.now() > backupEnded + 2000,
    );
    // The target, by the server's clock; then more writes, then the mistake.
    const target = (await b.primary.query<{ t: string }>('SELECT clock_timestamp()::text AS t'))[0]!.t;
    const targetMs = new Date(target.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).getTime();
    const atTarget = w.acked.length;
    await until('writes after the target', async () => w.acked.length >= atTarget + 100);
    await b.primary.query('DELETE FROM events');
    await w.stop();
    // Every segment up to the mistake in the repository: check switches WAL and waits for it.
    await b.backRest(['check']);

    const { client, seconds } = await b.restore({ time: target });
    try {
      const { rows } = await client.query<{ n: number }>('SELECT n FROM events WHERE n > 0');
      const present = new Set(rows.map((r) => r.n));
      const before = w.acked.filter((a) => a.ackedAt < targetMs - 1);
      const after = w.acked.filter((a) => a.at > targetMs + 1);
      expect(before.length).toBeGreaterThan(300);
      expect(after.length).toBeGreaterThan(50);
      expect(before.filter((a) => !present.has(a.n))).toEqual([]);
      expect(after.filter((a) => present.has(a.n))).toEqual([]);
      const bulk = (await client.query<{ c: number }>('SELECT count(*)::int AS c FROM events WHERE n < 0'))
        .rows[0]!.c;
      expect(bulk).toBe(100_000);
      // The newest row that survived was written (its statement began) this long before the target.
      const newest = Math.max(...w.acked.filter((a) => present.has(a.n)).map((a) => a.at));
      console.log(
        `backup: point-in-time recovery of a ${size} MiB database: ${present.size} of ${w.acked.length} rows written under load ` +
          `recovered, all ${before.length} acknowledged before the target there, all ${after.length} written after it absent; ` +
          `the newest surviving row written ${(targetMs - newest).toFixed(1)} ms before the target; ` +
          `restore and recovery took ${seconds.toFixed(1)} s`,
      );
    } finally {
      await client.end();
    }
  }, 300_000);

  it('the store away: archiving fails and waits, then catches up with no gap; past the queue bound the oldest WAL is dropped and the newest kept', async () => {
    await b.backRest(['backup', '--type=full']);
    await store.stop();
    // Two segments while the store is away: under the bound, they wait in pg_wal.
    let n = 0;
    const write = async (rows: number) => {
      for (let i = 0; i < rows; i++) await b.primary.query('INSERT INTO events (n) VALUES ($1)', [++n]);
    };
    await write(10);
    await switchWal(b.primary);
    // What the status says (archiving.ts): the attempts fail, one segment waits.
    await until(
      'the verdict ArchivingFailing',
      async () => (await verdict(b.primary)) === 'ArchivingFailing',
      120_000,
    );
    await write(10);
    const lastWaiting = await switchWal(b.primary);
    const failing = await until(
      'the archiver to report failures',
      async () => {
        const a = await archiver(b.primary);
        return a.failed > 0 && a.ready >= 2 ? a : undefined;
      },
      120_000,
    );
    // Two of the bound's four segments: the condition warns before anything is dropped.
    expect(await verdict(b.primary)).toBe('ArchiveQueueFilling');
    expect(b.primary.log).not.toMatch(/dropped WAL file/);
    await store.resume();
    const caughtUp = await until(
      'archiving to catch up',
      async () => {
        const a = await archiver(b.primary);
        return a.ready === 0 && a.last !== null && a.last >= lastWaiting ? a : undefined;
      },
      180_000,
    );
    expect(await verdict(b.primary)).toBe('Archiving');
    // No gap: the archive replays to its end, every row there.
    const { client } = await b.restore('latest');
    try {
      const { rows } = await client.query<{ c: number }>('SELECT count(*)::int AS c FROM events');
      expect(rows[0]!.c).toBe(n);
    } finally {
      await client.end();
    }

    // Away again, and more WAL than the bound: the oldest segments are dropped from the queue instead
    // of filling the disk, the newest bound's worth waits, and is archived once the store is back.
    await store.stop();
    const bound = QUEUE_MAX_MB / 16;
    const segments = bound + 2;
    let newest = '';
    for (let i = 0; i < segments; i++) {
      await write(5);
      newest = await switchWal(b.primary);
    }
    const dropped = () =>
      [...b.primary.log.matchAll(/dropped WAL file '([0-9A-F]{24})' because archive queue exceeded/g)].map(
        (m) => m[1]!,
      );
    const held = await until(
      'the oldest segments past the bound dropped while the store is still away',
      async () => {
        const a = await archiver(b.primary);
        return dropped().length >= segments - bound && a.ready <= bound ? a : undefined;
      },
      240_000,
    );
    // The queue is back at its bound (it is checked before each attempt: while one waits on the store
    // it can grow by what the server writes meanwhile), and what was dropped is older than all kept.
    expect(held.ready).toBe(bound);
    const waiting = (
      await b.primary.query<{ name: string }>(
        "SELECT name FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready' ORDER BY name",
        [],
        'superuser',
      )
    ).map((r) => r.name.replace('.ready', ''));
    expect(dropped().every((d) => d < waiting[0]!)).toBe(true);
    await store.resume();
    await until(
      'the segments kept under the bound archived once the store is back',
      async () => {
        const a = await archiver(b.primary);
        return a.ready === 0 && a.last !== null && a.last >= newest ? a : undefined;
      },
      180_000,
    );
    console.log(
      `backup: store away: ${failing.failed} failed archive attempts and ${failing.ready} segments waiting; caught up to ` +
        `${caughtUp.last} once back; away again, ${segments} segments past the ${QUEUE_MAX_MB} MiB bound: ` +
        `${dropped().length} oldest dropped, ${held.ready} kept and archived up to ${newest} once back`,
    );
  }, 720_000);
});

describe('a failover while archiving', () => {
  let store: LocalObjectStore;
  let b: BackedUpCluster;
  archivingClusterEach(['pg-0', 'pg-1'], (made) => ({ store, b } = made));

  it('the promoted standby archives on its new timeline, and a restore replays across the switch', async () => {
    const [old, standby] = [b.cluster.get('pg-0'), b.cluster.get('pg-1')];
    await b.backRest(['backup', '--type=full']);
    await old.query('INSERT INTO events (n) SELECT g FROM generate_series(1, 100) g');
    const lastOld = await switchWal(old);
    await until(
      'the old primary archiving its last segment',
      async () => (await archiver(old)).last === lastOld,
    );
    await until(
      'the standby replaying every row',
      async () => (await standby.query<{ c: number }>('SELECT count(*)::int AS c FROM events'))[0]!.c === 100,
    );
    await old.stop();
    // In the pods each instance has its own directory for the marker; here they share one, so the
    // promoted standby's is made fresh: its first archive attempt runs stanza-create again.
    const marker = join(b.dir, 'state', 'stanza-created');
    await rm(marker);
    await b.cluster.admin.promote(standby.node);
    await standby.query('INSERT INTO events (n) SELECT g FROM generate_series(101, 200) g');
    const lastNew = await switchWal(standby);
    // Timeline 2: the WAL file's name starts with it.
    expect(lastNew.startsWith('00000002')).toBe(true);
    await until('the promoted standby archiving on timeline 2', async () => {
      const a = await archiver(standby);
      return a.last === lastNew && a.ready === 0;
    });
    expect(await verdict(standby)).toBe('Archiving');
    // stanza-create found the stanza this system's, and said so.
    expect(existsSync(marker)).toBe(true);
    // The new timeline's history file is in the archive too: without it no restore could follow.
    const [info] = JSON.parse(await b.backRest(['info', '--output=json', '--log-level-console=off'])) as {
      archive: { max: string }[];
    }[];
    expect(info!.archive[0]!.max).toBe(lastNew);
    const { client } = await b.restore('latest');
    try {
      const { rows } = await client.query<{ c: number; tli: number }>(
        `SELECT (SELECT count(*)::int FROM events) AS c,
                ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli`,
      );
      expect(rows[0]!.c).toBe(200);
      // Recovery followed the archive onto timeline 2 and promoted past it.
      expect(rows[0]!.tli).toBeGreaterThanOrEqual(3);
    } finally {
      await client.end();
    }
  }, 300_000);

  it('with the store away, a standby asks the archive for seconds, not minutes, and streams again once its primary is back', async () => {
    const [primary, standby] = [b.cluster.get('pg-0'), b.cluster.get('pg-1')];
    const rows = async () =>
      (await standby.query<{ c: number }>('SELECT count(*)::int AS c FROM events'))[0]!.c;
    await store.stop();
    // Streaming stops: the standby's startup process turns to restore_command, which the store fails.
    await primary.stop();
    const asked = standby.log.length;
    await until(
      'the standby to fail a fetch from the archive',
      async () => /unable to find a valid repository/.test(standby.log.slice(asked)),
      120_000,
    );
    await primary.start(primary);
    const back = performance.now();
    await primary.query('INSERT INTO events (n) VALUES (1)');
    // At pgBackRest's default io-timeout the fetch under way would hold the standby ~8 minutes.
    await until('the standby streaming the new row', async () => (await rows()) === 1, 120_000);
    console.log(
      `backup: the store away, the primary restarted: the standby streamed its first new row ` +
        `${((performance.now() - back) / 1000).toFixed(1)} s after the primary was back`,
    );
  }, 300_000);
});

describe('a base backup run where no instance is, through the instances’ TLS servers', () => {
  let b: BackedUpCluster;
  archivingClusterEach(['pg-0', 'pg-1'], (made) => ({ b } = made));

  it('copies from the standby, starts and stops on the primary; a restore from it to the end has every row', async () => {
    const reach = await b.serveBackups();
    await b.primary.query('INSERT INTO events (n) SELECT g FROM generate_series(1, 100) g');
    const started = performance.now();
    // The standby first: pgBackRest asks each instance whether it is in recovery, so order is no matter.
    const log = await b.backupElsewhere({ ...reach, hosts: [...reach.hosts].reverse() }, true);
    const seconds = (performance.now() - started) / 1000;
    // pgBackRest says where it copied from: the standby, once it replayed to the backup's start.
    expect(log).toMatch(/wait for replay on the standby to reach/);
    expect(log).toMatch(/new backup label = \d{8}-\d{6}F/);
    await b.primary.query('INSERT INTO events (n) SELECT g FROM generate_series(101, 200) g');
    const last = await switchWal(b.primary);
    await until('the last segment archived', async () => (await archiver(b.primary)).last === last, 60_000);
    const [info] = JSON.parse(await b.backRest(['info', '--output=json', '--log-level-console=off'])) as {
      backup: { type: string }[];
    }[];
    expect(info!.backup.map((x) => x.type)).toEqual(['full']);
    const { client } = await b.restore('latest');
    try {
      const { rows } = await client.query<{ c: number }>('SELECT count(*)::int AS c FROM events');
      expect(rows[0]!.c).toBe(200);
    } finally {
      await client.end();
    }
    console.log(`backup: a full backup from the standby through TLS servers took ${seconds.toFixed(1)} s`);
  }, 300_000);

  it('refuses a client whose certificate names another client', async () => {
    const reach = await b.serveBackups();
    // A certificate from the same CA for another client.
    const other = {
      ...reach.client,
      certFile: reach.client.certFile.replace('client.crt', 'stranger.crt'),
      keyFile: reach.client.keyFile.replace('client.key', 'stranger.key'),
    };
    const refused = await b.backupElsewhere({ hosts: reach.hosts, client: other }, true).then(
      () => 'it ran',
      (err: Error) => err.message,
    );
    // Both servers refuse it (tls-server-auth names the backup's client only), so no primary is found.
    expect(refused).toMatch(/unable to check pg1: \[AccessError\].*access denied/);
    expect(refused).toMatch(/unable to check pg2: \[AccessError\].*access denied/);
    expect(refused).toMatch(/unable to find primary cluster/);
  }, 300_000);
});

describe('a store away from the first attempt', () => {
  it('keeps pg_wal bounded although the stanza cannot be created, and archives once the store is there', async () => {
    const store = await LocalObjectStore.start();
    await store.stop();
    const b = await BackedUpCluster.create(store);
    try {
      await b.cluster.startAll();
      await b.primary.query('CREATE TABLE events (n int PRIMARY KEY)');
      const segments = QUEUE_MAX_MB / 16 + 2;
      for (let i = 0; i < segments; i++) {
        await b.primary.query('INSERT INTO events VALUES ($1)', [i]);
        await switchWal(b.primary);
      }
      // archive-push still runs after the failed stanza-create, and it enforces the bound.
      await until(
        'the queue past its bound dropped with no stanza',
        async () =>
          (await archiver(b.primary)).ready <= QUEUE_MAX_MB / 16 && /dropped WAL file/.test(b.primary.log),
        240_000,
      );
      expect(existsSync(join(b.dir, 'state', 'stanza-created'))).toBe(false);
      await store.resume();
      await b.primary.query('INSERT INTO events VALUES ($1)', [segments]);
      const next = await switchWal(b.primary);
      await until(
        'the stanza created and the segment archived',
        async () => (await archiver(b.primary)).last === next,
        120_000,
      );
      expect(existsSync(join(b.dir, 'state', 'stanza-created'))).toBe(true);
    } finally {
      await b.destroy();
      await store.destroy();
    }
  }, 420_000);
});
