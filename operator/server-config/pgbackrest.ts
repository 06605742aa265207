// pgBackRest's configuration for one Postgres cluster (ADR 0029), as pure text: the same function
// gives the file the instances will mount and the one the data-plane tests run real archiving,
// backups and restores with. No secret is part of it: the object store's keys reach pgBackRest as
// environment variables (BACKUP_KEY_ENV), which the pods take from a Secret.

/** Where backups and archived WAL go. */
export type BackupRepository =
  | {
      readonly type: 's3';
      /** The object store's host name (the certificate must name it) and port. */
      readonly endpoint: string;
      readonly port?: number;
      readonly bucket: string;
      readonly region: string;
      /** Path-style URIs (`https://host/bucket/key`): what self-hosted stores serve. */
      readonly uriStyle?: 'path' | 'host';
      /** A CA bundle to verify the store's certificate with, instead of the system's. */
      readonly caFile?: string;
      /** The cluster's directory in the bucket. */
      readonly path: string;
    }
  | { readonly type: 'posix'; readonly path: string };

export const BACKUP_COMPRESSIONS = ['zst', 'lz4', 'gz', 'none'] as const;

export interface PgBackRestOptions {
  /** The cluster's name in the repository (pgBackRest's stanza). */
  readonly stanza: string;
  readonly repository: BackupRepository;
  /** The instance's data directory, socket directory and port (pgBackRest's pg1-*). */
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  /** pgBackRest's own working directories: its locks and its logs. */
  readonly lockDir: string;
  readonly logDir: string;
  /** How many full backups the repository keeps (with the WAL they need); older ones expire. */
  readonly retainFull: number;
  readonly compression: (typeof BACKUP_COMPRESSIONS)[number];
  /**
   * The most WAL (MiB) waiting to be archived before pgBackRest gives up on it: past this, segments
   * are dropped from the archive (point-in-time recovery has a gap there, the next backup closes it)
   * instead of filling the instance's disk (ADR 0029).
   */
  readonly archiveQueueMaxMb: number;
  /**
   * How long one request to the store may wait (pgBackRest's io-timeout) while archiving, default 10:
   * an unreachable store is retried for about eight times this before archiving counts as failed
   * (measured with 2.45; at its default of 60 s that was eight minutes without a sign).
   */
  readonly storeTimeoutSeconds?: number;
  /** Parallel processes for a backup and a restore run with this file (synchronous archiving uses one). */
  readonly processMax?: number;
  /**
   * What pgBackRest writes to its own log files (in logDir), default info. The pods say warn: their
   * logDir is an emptyDir nothing rotates, and warnings reach Postgres' log (the pod's) anyway.
   */
  readonly fileLogLevel?: 'off' | 'warn' | 'info';
}

/**
 * How long one request to the store may wait while a running instance fetches WAL (its
 * restore_command). A standby runs it whenever streaming stops and does nothing else until it
 * returns: at the default io-timeout an unreachable store held it about eight minutes (8 times
 * io-timeout, measured by hand with 2.45: 24.8 s at 3 s, 80.8 s at 10 s), and so its following a new
 * primary after a failover. A failed fetch costs a standby nothing: it streams. Never for a restore:
 * there a failed fetch reads as the end of the archive, and recovery would end early.
 */
export const STANDBY_FETCH_TIMEOUT_SECONDS = 3;

/** The environment variables pgBackRest reads the object store's access key and secret from. */
export const BACKUP_KEY_ENV = {
  accessKeyId: 'PGBACKREST_REPO1_S3_KEY',
  secretAccessKey: 'PGBACKREST_REPO1_S3_KEY_SECRET',
} as const;

const STANZA = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** A DNS name (or dotted IPv4 address): labels of letters, digits and inner hyphens, 253 at most. */
const HOST =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** A certificate's common name is at most 64 characters. */
const COMMON_NAME = /^(?=.{1,64}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
/** As many pgN-* hosts as pgBackRest 2.45 accepts. */
const MAX_HOSTS = 256;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION = /^[a-z0-9-]{1,32}$/;

/** A pgBackRest path: absolute, no `//`, no `.` or `..` part, no trailing `/`, nothing a config line could misread. */
function checkPath(what: string, path: string): string {
  if (
    !/^\/[A-Za-z0-9_./-]*$/.test(path) ||
    path.includes('//') ||
    (path.length > 1 && path.endsWith('/')) ||
    path.split('/').some((part) => part === '.' || part === '..')
  )
    throw new Error(
      `${what} must be an absolute path of [A-Za-z0-9_./-] without // or . or .. parts or a trailing /, got ${JSON.stringify(path)}`,
    );
  return path;
}

/** One of a fixed list: the types say so, but a caller the types do not reach must not write lines. */
function oneOf<T extends string>(what: string, list: readonly T[], value: T): T {
  if (!list.includes(value))
    throw new Error(`${what} must be one of ${list.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

function check(what: string, re: RegExp, value: string): string {
  if (!re.test(value)) throw new Error(`${what} is not valid: ${JSON.stringify(value)}`);
  return value;
}

function checkInt(what: string, n: number, min: number, max: number): number {
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RangeError(`${what} must be an integer in ${min}..${max}, got ${n}`);
  return n;
}

/** The repository, how many full backups it keeps, and how what goes into it is compressed. */
function repositoryLines(o: {
  readonly repository: BackupRepository;
  readonly retainFull: number;
  readonly compression: (typeof BACKUP_COMPRESSIONS)[number];
}): string[] {
  return [
    ...storeLines(o.repository),
    `repo1-retention-full=${checkInt('retainFull', o.retainFull, 1, 9999)}`,
    'repo1-retention-full-type=count',
    `compress-type=${oneOf('compression', BACKUP_COMPRESSIONS, o.compression)}`,
  ];
}

function storeLines(r: BackupRepository): string[] {
  if (r.type === 'posix') return ['repo1-type=posix', `repo1-path=${checkPath('repository.path', r.path)}`];
  return [
    'repo1-type=s3',
    `repo1-s3-endpoint=${check('repository.endpoint', HOST, r.endpoint)}`,
    ...(r.port === undefined ? [] : [`repo1-storage-port=${checkInt('repository.port', r.port, 1, 65535)}`]),
    `repo1-s3-bucket=${check('repository.bucket', BUCKET, r.bucket)}`,
    `repo1-s3-region=${check('repository.region', REGION, r.region)}`,
    `repo1-s3-uri-style=${oneOf('repository.uriStyle', ['path', 'host'], r.uriStyle ?? 'path')}`,
    ...(r.caFile === undefined ? [] : [`repo1-storage-ca-file=${checkPath('repository.caFile', r.caFile)}`]),
    `repo1-path=${checkPath('repository.path', r.path)}`,
  ];
}

/** The stanza's section for an instance on this host: its data directory, socket and port. */
const localInstanceLines = (stanza: string, o: { dataDir: string; socketDir: string; port: number }) => [
  `[${stanza}]`,
  `pg1-path=${checkPath('dataDir', o.dataDir)}`,
  `pg1-socket-path=${checkPath('socketDir', o.socketDir)}`,
  `pg1-port=${checkInt('port', o.port, 1, 65535)}`,
  '',
];

/** pgbackrest.conf for one instance of a cluster. */
export function pgBackRestConfig(o: PgBackRestOptions): string {
  const stanza = check('stanza', STANZA, o.stanza);
  return [
    '# Generated by the ScalableApp operator.',
    '[global]',
    ...repositoryLines(o),
    // Synchronous archiving: each archive_command pushes its segment itself and ends with it.
    // Asynchronous archiving forks a daemon that outlives the command; when the postmaster was PID 1
    // of the pod, the daemon was reparented to it, and its error exit restarted every session
    // (ADR 0029, seen on the real node with the store away). Since ADR 0030 the start script is
    // PID 1 and reaps, but nothing outlives a command here. The queue's bound
    // (archive-push-queue-max) holds in both modes: it is checked before each push.
    'archive-async=n',
    `archive-push-queue-max=${checkInt('archiveQueueMaxMb', o.archiveQueueMaxMb, 16, 1024 * 1024)}MiB`,
    `lock-path=${checkPath('lockDir', o.lockDir)}`,
    `log-path=${checkPath('logDir', o.logDir)}`,
    // Warnings and errors reach Postgres' log (archive_command's stderr), and so the pod's.
    'log-level-console=off',
    'log-level-stderr=warn',
    `log-level-file=${oneOf('fileLogLevel', ['off', 'warn', 'info'], o.fileLogLevel ?? 'info')}`,
    `process-max=${checkInt('processMax', o.processMax ?? 1, 1, 32)}`,
    // A backup starts with an immediate checkpoint, not the next scheduled one.
    'start-fast=y',
    '',
    '[global:archive-push]',
    `io-timeout=${checkInt('storeTimeoutSeconds', o.storeTimeoutSeconds ?? 10, 1, 600)}`,
    '',
    // The archive script runs stanza-create before each push until it succeeds: at the default io-timeout an
    // unreachable store would hold every archive attempt for minutes before the push (and the queue's
    // bound) is reached.
    '[global:stanza-create]',
    `io-timeout=${checkInt('storeTimeoutSeconds', o.storeTimeoutSeconds ?? 10, 1, 600)}`,
    '',
    ...localInstanceLines(stanza, o),
  ].join('\n');
}

/** A certificate, its key and the CA that checks the other side (PEM files). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/**
 * pgbackrest.conf for the TLS server beside one instance (`pgbackrest server`), through which the
 * backup, which runs elsewhere, reaches the instance's data directory and database. It admits only a
 * client whose certificate (signed by `tls.caFile`) has the common name `clientName`, and only for
 * this stanza. What it then runs takes its options from the client (the server reloads them from the
 * request; 2.45 protocol/helper.c): an admitted client may read what the postgres user may. The
 * client's certificate is the boundary: it lives in a Secret only the backup Job mounts.
 */
export function pgBackRestServerConfig(o: {
  readonly stanza: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly listen: { readonly address: string; readonly port: number };
  readonly tls: TlsFiles;
  readonly clientName: string;
  readonly lockDir: string;
  readonly logDir: string;
}): string {
  const stanza = check('stanza', STANZA, o.stanza);
  return [
    '# Generated by the ScalableApp operator.',
    '[global]',
    `tls-server-address=${check('listen.address', HOST, o.listen.address)}`,
    `tls-server-port=${checkInt('listen.port', o.listen.port, 1, 65535)}`,
    `tls-server-cert-file=${checkPath('tls.certFile', o.tls.certFile)}`,
    `tls-server-key-file=${checkPath('tls.keyFile', o.tls.keyFile)}`,
    `tls-server-ca-file=${checkPath('tls.caFile', o.tls.caFile)}`,
    `tls-server-auth=${check('clientName', COMMON_NAME, o.clientName)}=${stanza}`,
    `lock-path=${checkPath('lockDir', o.lockDir)}`,
    `log-path=${checkPath('logDir', o.logDir)}`,
    'log-level-console=off',
    'log-level-stderr=warn',
    'log-level-file=off',
    '',
    ...localInstanceLines(stanza, o),
  ].join('\n');
}

/** One instance as the backup reaches it: its TLS server, and where its data and socket are there. */
export interface BackupHost {
  readonly host: string;
  readonly serverPort: number;
  /** The server's own pgbackrest.conf there: what the commands it runs read (pgN-host-config). */
  readonly serverConfig: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
}

/**
 * pgbackrest.conf where the backup runs (a Job, never an instance): every instance of the cluster
 * through its TLS server, in any order (pgBackRest asks each whether it is in recovery), and the
 * repository. `backup-standby` copies the replicated files (the bulk) from a standby once it has
 * replayed to the backup's start; the primary starts and stops the backup and gives the few files
 * that are not replicated. With no standby up it fails ("unable to find standby cluster": 2.45 has
 * no fallback), so the caller asks for it only when a standby is there.
 */
export function backupHostConfig(o: {
  readonly stanza: string;
  readonly repository: BackupRepository;
  readonly hosts: readonly BackupHost[];
  readonly client: TlsFiles;
  readonly fromStandby: boolean;
  readonly retainFull: number;
  readonly compression: (typeof BACKUP_COMPRESSIONS)[number];
  readonly processMax?: number;
  readonly lockDir: string;
  readonly logDir: string;
}): string {
  const stanza = check('stanza', STANZA, o.stanza);
  if (o.hosts.length < 1 || o.hosts.length > MAX_HOSTS)
    throw new RangeError(`hosts must list 1..${MAX_HOSTS} instances, got ${o.hosts.length}`);
  const where = o.hosts.map((h) => `${h.host}:${h.serverPort}`);
  const twice = where.find((w, i) => where.indexOf(w) !== i);
  // pgBackRest would find "more than one primary cluster" in the same instance listed twice.
  if (twice) throw new Error(`hosts lists ${twice} twice`);
  if (o.fromStandby && o.hosts.length < 2)
    throw new Error('fromStandby needs a standby among hosts: with one instance it can only fail');
  return [
    '# Generated by the ScalableApp operator.',
    '[global]',
    ...repositoryLines(o),
    `process-max=${checkInt('processMax', o.processMax ?? 1, 1, 32)}`,
    'start-fast=y',
    `backup-standby=${o.fromStandby ? 'y' : 'n'}`,
    `lock-path=${checkPath('lockDir', o.lockDir)}`,
    `log-path=${checkPath('logDir', o.logDir)}`,
    'log-level-console=info',
    'log-level-file=off',
    '',
    `[${stanza}]`,
    ...o.hosts.flatMap((h, i) => {
      const n = `pg${i + 1}`;
      return [
        `${n}-host=${check(`hosts[${i}].host`, HOST, h.host)}`,
        `${n}-host-type=tls`,
        `${n}-host-port=${checkInt(`hosts[${i}].serverPort`, h.serverPort, 1, 65535)}`,
        `${n}-host-config=${checkPath(`hosts[${i}].serverConfig`, h.serverConfig)}`,
        `${n}-host-cert-file=${checkPath('client.certFile', o.client.certFile)}`,
        `${n}-host-key-file=${checkPath('client.keyFile', o.client.keyFile)}`,
        `${n}-host-ca-file=${checkPath('client.caFile', o.client.caFile)}`,
        `${n}-path=${checkPath(`hosts[${i}].dataDir`, h.dataDir)}`,
        `${n}-socket-path=${checkPath(`hosts[${i}].socketDir`, h.socketDir)}`,
        `${n}-port=${checkInt(`hosts[${i}].port`, h.port, 1, 65535)}`,
      ];
    }),
    '',
  ].join('\n');
}

/** pgBackRest on one cluster's stanza with its config: the start of every command line. */
const pgBackRest = (o: { configFile: string; stanza: string }) =>
  `pgbackrest --config=${checkPath('configFile', o.configFile)} --stanza=${check('stanza', STANZA, o.stanza)}`;

/**
 * Postgres' restore_command through pgBackRest (archive_command is archiveScript's); with
 * `ioTimeoutSeconds` for a running instance (STANDBY_FETCH_TIMEOUT_SECONDS), without for a restore.
 */
export const pgBackRestRestoreCommand = (o: {
  configFile: string;
  stanza: string;
  ioTimeoutSeconds?: number;
}) =>
  `${pgBackRest(o)}${o.ioTimeoutSeconds === undefined ? '' : ` --io-timeout=${checkInt('ioTimeoutSeconds', o.ioTimeoutSeconds, 1, 600)}`} archive-get %f "%p"`;

/**
 * What a backup Job runs (sh): create the stanza if archiving has not yet (a check that it is this
 * system's when it has), back up in full, and write what the repository then holds (`info`, after
 * retention's expiry) to `reportFile`. pgBackRest 2.45 cannot prefer a standby: with backup-standby
 * and none ready it fails ("unable to find standby cluster"), and only then the backup runs again
 * from the primary alone, saying so; any other failure fails the script.
 */
export function backupJobScript(o: {
  configFile: string;
  stanza: string;
  reportFile: string;
  /** Where the first attempt's errors are kept to be read (the pod's /tmp). */
  scratchDir: string;
  lockDir: string;
  logDir: string;
}): string {
  const run = pgBackRest(o);
  const errors = `${checkPath('scratchDir', o.scratchDir)}/backup.err`;
  return [
    '# Generated by the ScalableApp operator: one full backup of the cluster.',
    'set -eu',
    `mkdir -p ${checkPath('lockDir', o.lockDir)} ${checkPath('logDir', o.logDir)}`,
    `${run} stanza-create`,
    `if ! ${run} backup --type=full 2>${errors}; then`,
    `  cat ${errors} >&2`,
    `  grep -q 'unable to find standby cluster' ${errors} || exit 1`,
    "  echo 'no standby is ready: backing up from the primary alone'",
    `  ${run} backup --type=full --no-backup-standby`,
    'else',
    `  cat ${errors} >&2`,
    'fi',
    `${run} --log-level-console=off info --output=json >${checkPath('reportFile', o.reportFile)}`,
    '',
  ].join('\n');
}

/**
 * The archive script's file name. pgBackRest's `backup` and `check` refuse an archive_command that
 * does not contain "pgbackrest" (error 068, archive-check: they cannot otherwise know the WAL the
 * backup needs reaches this repository); found on the real node, where the script was archive.sh.
 */
export const ARCHIVE_SCRIPT = 'pgbackrest-archive.sh';

/**
 * The instances' archive_command (`sh <this script> %p`): creates the stanza the first time the
 * instance archives (a new cluster; a promoted standby, where it exists already and is checked to
 * be this system's), then pushes the segment. archive-push runs whether or not that worked: it is
 * what enforces the queue's bound (archive-push-queue-max, before it checks the stanza), so a store
 * unreachable at a pod's first attempt still never fills pg_wal. A stanza that belongs to another
 * system (a repository path reused by a new cluster) fails both, so archiving fails visibly and the
 * old archive is kept.
 */
export function archiveScript(o: {
  configFile: string;
  stanza: string;
  /** The pod's own directory (never the data volume): the mark that the stanza was checked. */
  stateDir: string;
  lockDir: string;
  logDir: string;
}): string {
  const run = pgBackRest(o);
  const state = checkPath('stateDir', o.stateDir);
  return [
    '# Generated by the ScalableApp operator: archive_command = sh <this file> %p',
    'set -eu',
    `mkdir -p ${state} ${checkPath('lockDir', o.lockDir)} ${checkPath('logDir', o.logDir)}`,
    // In the pod's own directory: a new pod (a moved primary, a promoted standby) checks it again.
    `if [ ! -e ${state}/stanza-created ] && ${run} stanza-create; then`,
    `  : >${state}/stanza-created`,
    'fi',
    `exec ${run} archive-push "$1"`,
    '',
  ].join('\n');
}
