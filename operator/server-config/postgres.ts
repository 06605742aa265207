// Postgres server configuration as pure text: the same functions produce the ConfigMap the operator
// deploys and the files the data-plane tests start real postgres processes with, so what the tests
// show about replication, synchronous commits and rewinds is what the pods run.
//
// No password is ever part of these texts: passwords reach the server once, at initdb time, from the
// credential files (see instance-script.ts), and standbys read theirs from a passfile.

/**
 * The custom setting that records a primary's self-fence (ready.sh sets it, the operator's heartbeat
 * resets it). Here, not beside the script, so that every text of the server's config has one home.
 */
export const FENCE_SETTING = 'scalableapp.fenced';

/** Kubernetes pod names fit; so do the names the tests use. Postgres truncates names at 63 bytes. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Role and database names we put in pg_hba.conf: plain identifiers, nothing to quote. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const CIDR = /^[0-9A-Fa-f.:]+\/[0-9]{1,3}$/;

export const DEFAULT_SUPERUSER = 'postgres';
/**
 * In the pod, where postgres puts its socket and the instance script the passfile its clients
 * (walreceiver, pg_rewind, the ready script) log in with: an emptyDir, so no password is on a volume.
 */
export const PG_RUN_DIR = '/var/run/postgresql';
/** The passfile's name in PG_RUN_DIR. */
export const PG_PASSFILE = 'pgpass';
export const DEFAULT_REPLICATION_USER = 'replicator';
/** The metrics exporter's role (a member of pg_monitor), created at initdb when it has a password. */
export const DEFAULT_MONITOR_USER = 'monitor';

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad port ${port}`);
  return port;
}

/** Returns `name` when it is a plain identifier, which needs no quoting in pg_hba.conf or SQL. */
export function checkIdentifier(what: string, name: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new Error(
      `${what} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/** A postgresql.conf string value: single-quoted, quotes doubled; line breaks refused outright. */
function quoted(what: string, value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error(`${what} must not contain line breaks or NUL`);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * The value of `synchronous_standby_names`: `ANY k ("a", "b", ...)` for k >= 1, '' (asynchronous)
 * for k = 0. Pass every instance's name, the primary's too: a primary never connects to itself as a
 * standby, so the text need not change when the primary moves, and ANY k counts only its standbys.
 * The names are matched against each standby's `application_name` (its instance name).
 */
export function synchronousStandbyNames(k: number, names: readonly string[]): string {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`synchronous replicas must be >= 0, got ${k}`);
  if (k === 0) return '';
  for (const n of names) {
    if (!NAME.test(n)) throw new Error(`bad standby name ${JSON.stringify(n)}`);
  }
  if (new Set(names).size !== names.length) throw new Error(`duplicate standby names in ${names.join(', ')}`);
  // k names out of the list may be the primary itself, which never acknowledges: k must leave room.
  if (k > names.length - 1) {
    throw new RangeError(
      `ANY ${k} needs more than ${k} instances, got ${names.length}: commits would never return`,
    );
  }
  // Double quotes: names with '-' or '.' are not bare identifiers in this syntax.
  return `ANY ${k} (${names.map((n) => `"${n}"`).join(', ')})`;
}

export type PostgresConfigOptions = {
  port: number;
  /** `listen_addresses`; default every address ('*'). The tests use 127.0.0.1. */
  listenAddresses?: string;
  /** The value synchronousStandbyNames() returns; '' or omitted = asynchronous replication. */
  synchronousStandbyNames?: string;
  /**
   * WAL sender processes: every standby streaming, plus two per clone in progress (pg_basebackup
   * -X stream opens a second connection for the WAL), plus pg_rewind. Default 10.
   */
  maxWalSenders?: number;
  /**
   * WAL kept for standbys that fall behind or restart, in MB (no replication slots: a slot on a
   * primary that is lost would not exist on the promoted one before Postgres 17). Default 1024.
   */
  walKeepSizeMb?: number;
  maxConnections?: number;
  /**
   * Serve TLS with this certificate and key (absolute paths; the key readable by the server only,
   * or root-owned and group-readable). pg_hba.conf then admits TCP clients only over TLS.
   */
  tls?: { certFile: string; keyFile: string };
  /** Never a config option: see the module comment. */
  password?: never;
};

/**
 * postgresql.conf for every instance, primary or standby: whether an instance is a standby is decided
 * by `standby.signal` in its data directory, which the start script writes, so one text serves all
 * of them and a failover changes no configuration. The start script copies it into PGDATA at every
 * start (pg_rewind's crash recovery reads it from there too) and appends the instance's port.
 */
export function postgresConfig(o: PostgresConfigOptions): string {
  const maxWalSenders = o.maxWalSenders ?? 10;
  const walKeep = o.walKeepSizeMb ?? 1024;
  const maxConnections = o.maxConnections ?? 100;
  for (const [what, n] of [
    ['maxWalSenders', maxWalSenders],
    ['walKeepSizeMb', walKeep],
    ['maxConnections', maxConnections],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${n}`);
  }
  const sync = o.synchronousStandbyNames ?? '';
  if (sync !== '' && !/^ANY [1-9][0-9]* \("[^"]+"(, "[^"]+")*\)$/.test(sync)) {
    throw new Error(
      `synchronousStandbyNames must come from synchronousStandbyNames(), got ${JSON.stringify(sync)}`,
    );
  }
  return [
    '# Generated by the ScalableApp operator.',
    `listen_addresses = ${quoted('listenAddresses', o.listenAddresses ?? '*')}`,
    `port = ${checkPort(o.port)}`,
    `max_connections = ${maxConnections}`,
    "password_encryption = 'scram-sha-256'",
    // Logs on stderr: the kubelet collects them (and the tests capture them).
    "log_destination = 'stderr'",
    'logging_collector = off',
    // Streaming replication. Standbys answer reads (hot_standby) and follow a new primary's timeline.
    'wal_level = replica',
    `max_wal_senders = ${maxWalSenders}`,
    `wal_keep_size = ${walKeep}`,
    'hot_standby = on',
    "recovery_target_timeline = 'latest'",
    // How long a standby waits before retrying its primary after a failed attempt (default 5 s). A
    // promotion requested while a standby has just lost its primary takes effect only once that
    // wait is over (Postgres 15), so this bounds what a failover spends in pg_promote: the whole
    // decision took 1.2 s (median) with 1 s, 0.37 s with 200 ms (bench/postgres-failover.ts). The price: while a primary is down, each standby
    // tries (and logs a failed connection) five times a second.
    "wal_retrieve_retry_interval = '200ms'",
    // How often a standby reports to its primary when no WAL flows (default 10 s). A primary takes
    // the reports as proof it is not cut off (ready.sh, the self-fence), so they must come well
    // within its fence delay.
    "wal_receiver_status_interval = '2s'",
    // pg_rewind needs every page's first change after a checkpoint in the WAL; initdb also enables
    // data checksums, this covers data directories created without them.
    'wal_log_hints = on',
    'full_page_writes = on',
    // With ANY k, a commit returns only once k standbys flushed it: what makes a failover that
    // promotes the most advanced of enough standbys lose no acknowledged commit.
    `synchronous_standby_names = ${quoted('synchronousStandbyNames', sync)}`,
    'synchronous_commit = on',
    // A primary's self-fence (ready.sh) is recorded by ALTER SYSTEM, which takes only a setting the
    // server knows: declared here, empty (not fenced).
    `${FENCE_SETTING} = ''`,
    ...(o.tls
      ? [
          // Read again at every reload: ready.sh reloads when the kubelet swapped in a renewed
          // certificate, and sessions keep the one they started with.
          'ssl = on',
          `ssl_cert_file = ${quoted('tls.certFile', o.tls.certFile)}`,
          `ssl_key_file = ${quoted('tls.keyFile', o.tls.keyFile)}`,
          "ssl_min_protocol_version = 'TLSv1.2'",
        ]
      : []),
    '',
  ].join('\n');
}

export type HbaOptions = {
  /** Where clients, standbys and the operator connect from: the pod network (or 127.0.0.1/32). */
  cidr: string | readonly string[];
  /** The application's logins (they take turns when its password is rotated: ADR 0025). */
  appUsers: readonly string[];
  appDatabase: string;
  superuser?: string;
  replicationUser?: string;
  /**
   * The file of a fenced primary (ready.sh swaps it in): the app's lines left out, so no client
   * can connect, while standbys still stream and the operator, as the superuser, can still look,
   * lift the fence or restart it.
   */
  fenced?: boolean;
  /**
   * Admit the monitoring role (spec.monitoring): over loopback only, where the exporter beside the
   * server connects from, and to the `postgres` database, where it reads the statistics views.
   */
  monitor?: boolean;
  monitorUser?: string;
  /** TCP connections only over TLS (hostssl): a plaintext client finds no line and is refused. */
  tls?: boolean;
};

/**
 * pg_hba.conf: password (SCRAM) authentication only, for three roles: the app (its logins) on its database, the
 * replication role for streaming and cloning, and the superuser for the operator's administration
 * and for pg_rewind (which reads the source's files through SQL functions); and, with monitoring,
 * the exporter's role from loopback. Everyone else is refused by the absence of a matching line.
 */
export function hbaConfig(o: HbaOptions): string {
  const cidrs = typeof o.cidr === 'string' ? [o.cidr] : [...o.cidr];
  if (cidrs.length === 0) throw new Error('at least one CIDR is required');
  for (const c of cidrs) if (!CIDR.test(c)) throw new Error(`bad CIDR ${JSON.stringify(c)}`);
  if (o.appUsers.length === 0) throw new Error('at least one app user is required');
  const app = o.appUsers.map((u) => checkIdentifier('appUsers', u)).join(',');
  const db = checkIdentifier('appDatabase', o.appDatabase);
  const superuser = checkIdentifier('superuser', o.superuser ?? DEFAULT_SUPERUSER);
  const replication = checkIdentifier('replicationUser', o.replicationUser ?? DEFAULT_REPLICATION_USER);
  const lines = ['# Generated by the ScalableApp operator.', '# TYPE  DATABASE  USER  ADDRESS  METHOD'];
  // Unix sockets (kubectl exec psql): the same roles, the same password rule.
  lines.push(`local replication ${replication} scram-sha-256`);
  lines.push(`local all ${superuser} scram-sha-256`);
  if (!o.fenced) lines.push(`local ${db} ${app} scram-sha-256`);
  const host = o.tls ? 'hostssl' : 'host';
  for (const c of cidrs) {
    lines.push(`${host} replication ${replication} ${c} scram-sha-256`);
    lines.push(`${host} all ${superuser} ${c} scram-sha-256`);
    if (!o.fenced) lines.push(`${host} ${db} ${app} ${c} scram-sha-256`);
  }
  // A fenced primary is still watched: its metrics tell why it fenced.
  if (o.monitor) {
    const monitor = checkIdentifier('monitorUser', o.monitorUser ?? DEFAULT_MONITOR_USER);
    lines.push(`${host} postgres ${monitor} 127.0.0.1/32 scram-sha-256`);
  }
  return `${lines.join('\n')}\n`;
}
