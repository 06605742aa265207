// The few administrative operations Postgres failover needs, behind an interface: the decisions in
// failover.ts run against real servers through pgAdmin (the operator, the data-plane tests) and
// against an in-memory fake (unit tests).
import { setTimeout as sleep } from 'node:timers/promises';
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import { Client, escapeLiteral } from 'pg';
import { DEFAULT_REPLICATION_USER, DEFAULT_SUPERUSER } from '../../server-config/postgres.ts';

export type PgNode = {
  name: string;
  /** Where the operator connects to it. */
  host: string;
  port: number;
  /**
   * Where its standbys stream from when it is the primary: a name that follows the instance to a
   * new address (its pod's DNS name), so a restart or a new pod does not strand them. `host` when
   * absent (a process on loopback).
   */
  streamHost?: string;
  /**
   * The node serves TLS only: the operator verifies its certificate against `ca` and its name as
   * `streamHost` (the certificate names the pod, not its address), and a standby's primary_conninfo
   * asks for verify-full against `caFile`, the CA's path in the node's own pod.
   */
  tls?: { ca: string; caFile: string };
};

/**
 * node-postgres's TLS options for a server whose certificate `ca` signed for `name`: verified
 * against the name whatever address the socket connects to.
 */
export function verifiedTls(ca: string, name: string): ConnectionOptions {
  return { ca, servername: name, checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert) };
}

export type PgState = {
  role: 'primary' | 'replica';
  /**
   * How far the node's WAL goes, as a byte position: on a primary pg_current_wal_lsn(); on a replica
   * the WAL it received and flushed (pg_last_wal_receive_lsn(), kept after the link to its primary
   * broke), or what it replayed when that is further (the receive position is unknown, or restarts
   * at a segment boundary, after the replica itself restarted).
   */
  lsn: bigint;
  /** The timeline the node writes (primary) or last received (replica), when known. */
  timeline?: number;
  /** A replica's: the host its primary_conninfo names, whether or not it streams now. */
  upstream?: string;
  /**
   * A replica's: whether its WAL receiver streams now (pg_stat_wal_receiver.status). False also
   * while it waits between timelines or reconnects; a standby false for long cannot follow.
   */
  streaming?: boolean;
};

export interface PostgresAdmin {
  /** Whether the node answers an authenticated query in time. Never throws. */
  ping(n: PgNode): Promise<boolean>;
  state(n: PgNode): Promise<PgState>;
  /**
   * Makes the node a writable primary: lifts a fence, then pg_promote(wait => true), which replays
   * all the WAL the node received before it returns, then a checkpoint, so that pg_rewind sees the
   * new timeline. On a node that already is a primary (a retried failover) only the fence is lifted
   * and the checkpoint run: promote also serves to lift a fence from a primary.
   */
  promote(n: PgNode): Promise<void>;
  /**
   * Points a running standby at `primary` (primary_conninfo by ALTER SYSTEM, then a reload: since
   * Postgres 13 the walreceiver reconnects without a restart). Fails on a primary: a primary can only
   * become a standby by a restart (the instance script rewinds it).
   */
  follow(n: PgNode, primary: PgNode): Promise<void>;
  /**
   * Stops a standby receiving WAL: primary_conninfo emptied (ALTER SYSTEM, then a reload), and waits
   * until its WAL receiver has exited, so that the position it reports no longer moves and it flushes
   * (acknowledges) nothing more for any primary. `follow` attaches it again. Nothing to do on a
   * primary (one a retried failover promoted already). Fails when the receiver is still there after
   * the call's timeout.
   */
  detach(n: PgNode): Promise<void>;
  /**
   * Best effort against writes on a primary that is being replaced: new transactions default to
   * read-only (ALTER SYSTEM, so it survives a restart until the instance script starts the node as
   * the recorded primary) and client sessions are terminated, so they reconnect into that default.
   * A client that asks for a read-write transaction explicitly can still write: fencing narrows the
   * window, the Services and the record close it.
   */
  fence(n: PgNode): Promise<void>;
}

export type PgAdminOptions = {
  /**
   * The superuser's password, or several, the likeliest first: a server that refuses one
   * (invalid_password) is asked with the next (a password being changed, ADR 0028).
   */
  superuserPassword: string | readonly string[];
  /**
   * Not needed, and never sent: a standby's primary_conninfo names no password, its walreceiver
   * reads it from the passfile the instance script writes. Accepted so a caller can pass the whole
   * credential set.
   */
  replicationPassword?: string;
  superuser?: string;
  replicationUser?: string;
  /** Connect and query timeout of every call but promote. Default 2000 ms. */
  timeoutMs?: number;
  /** How long pg_promote may wait for the end of recovery. Default 60 s. */
  promoteTimeoutMs?: number;
};

/** A conninfo value: bare when it is a plain word, else single-quoted with \ and ' escaped. */
function conninfoValue(v: string): string {
  return /^[A-Za-z0-9._:/-]+$/.test(v) ? v : `'${v.replace(/[\\']/g, '\\$&')}'`;
}

/**
 * The host a primary_conninfo names: the inverse of primaryConninfo's quoting for the one keyword
 * the operator needs back (this reads only what the operator and the instance script wrote, so it
 * is not a general conninfo parser). Undefined when it names none, or an empty one (libpq's default).
 */
export function conninfoHost(conninfo: string): string | undefined {
  const m = /(?:^|\s)host\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']+))/.exec(conninfo);
  if (!m) return undefined;
  const host = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
  return host || undefined;
}

/**
 * The primary_conninfo of a standby named `standbyName` following `primary`: the same text the
 * instance script writes at start. application_name is what synchronous_standby_names matches.
 */
export function primaryConninfo(
  primary: PgNode,
  standbyName: string,
  replicationUser: string,
  caFile?: string,
): string {
  return [
    `host=${conninfoValue(primary.streamHost ?? primary.host)}`,
    `port=${primary.port}`,
    `user=${conninfoValue(replicationUser)}`,
    `application_name=${conninfoValue(standbyName)}`,
    ...(caFile ? ['sslmode=verify-full', `sslrootcert=${conninfoValue(caFile)}`] : []),
  ].join(' ');
}

/** A Postgres byte position ('16/B374D848') as a number. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Postgres refused the password (SQLSTATE 28P01), as opposed to not answering or any other error. */
export const isInvalidPassword = (err: unknown): boolean =>
  (err as { code?: unknown } | undefined)?.code === '28P01';

/** A call on a node: one superuser connection for it, its failure named after the node and `what`. */
export type SuperuserCall = <T>(
  n: PgNode,
  what: string,
  fn: (c: Client) => Promise<T>,
  queryTimeoutMs?: number,
) => Promise<T>;

/**
 * Calls as the superuser. Each opens its own connection: admin calls are rare, and a fresh
 * connection never waits behind a session a stalled node left half-done.
 */
export function superuserCalls(o: PgAdminOptions): SuperuserCall {
  const timeoutMs = o.timeoutMs ?? 2000;
  const superuser = o.superuser ?? DEFAULT_SUPERUSER;
  const passwords =
    typeof o.superuserPassword === 'string' ? [o.superuserPassword] : [...o.superuserPassword];
  return async function on<T>(
    n: PgNode,
    what: string,
    fn: (c: Client) => Promise<T>,
    queryTimeoutMs = timeoutMs,
  ): Promise<T> {
    try {
      // pg connects to localhost when the host is empty: a pod without an address is no node.
      if (!n.host) throw new Error('no address');
      let client: Client | undefined;
      for (const [i, password] of passwords.entries()) {
        const c = new Client({
          host: n.host,
          port: n.port,
          user: superuser,
          password,
          database: 'postgres',
          application_name: 'scalableapp-operator',
          connectionTimeoutMillis: timeoutMs,
          query_timeout: queryTimeoutMs,
          ssl: n.tls ? verifiedTls(n.tls.ca, n.streamHost ?? n.host) : false,
        });
        // A server that dies mid-call emits 'error' on the client as well as failing the query.
        c.on('error', () => {});
        try {
          await c.connect();
          client = c;
          break;
        } catch (err) {
          await c.end().catch(() => {});
          if (!isInvalidPassword(err) || i === passwords.length - 1) throw err;
        }
      }
      if (!client) throw new Error('no superuser password to log in with');
      try {
        return await fn(client);
      } finally {
        await client.end().catch(() => {});
      }
    } catch (err) {
      throw new Error(`postgres node ${n.name} (${n.host}:${n.port}): ${what} failed`, { cause: err });
    }
  };
}

/** PostgresAdmin over the wire, as the superuser (superuserCalls). */
export function pgAdmin(o: PgAdminOptions): PostgresAdmin {
  const timeoutMs = o.timeoutMs ?? 2000;
  const promoteTimeoutMs = o.promoteTimeoutMs ?? 60_000;
  const replicationUser = o.replicationUser ?? DEFAULT_REPLICATION_USER;
  const on = superuserCalls(o);

  const inRecovery = async (c: Client): Promise<boolean> =>
    (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;

  return {
    ping: (n) =>
      on(n, 'ping', async (c) => (await c.query('SELECT 1')).rowCount === 1).catch(
        // Unreachable, timed out, refusing our password, or still starting up: not a usable node.
        () => false,
      ),

    state: (n) =>
      on(n, 'reading the WAL position', async (c) => {
        if (await inRecovery(c)) {
          const { rows } = await c.query<{
            lsn: string | null;
            tli: number | null;
            conninfo: string;
            streaming: boolean | null;
          }>(
            `SELECT (GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn)::text AS lsn,
                    (SELECT received_tli FROM pg_stat_wal_receiver) AS tli,
                    (SELECT status = 'streaming' FROM pg_stat_wal_receiver) AS streaming,
                    current_setting('primary_conninfo') AS conninfo`,
          );
          const r = rows[0]!;
          const upstream = conninfoHost(r.conninfo);
          return {
            role: 'replica',
            lsn: BigInt(r.lsn ?? 0),
            streaming: r.streaming === true,
            ...(r.tli ? { timeline: r.tli } : {}),
            ...(upstream ? { upstream } : {}),
          };
        }
        const { rows } = await c.query<{ lsn: string; file: string }>(
          `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn,
                  pg_walfile_name(pg_current_wal_lsn()) AS file`,
        );
        const r = rows[0]!;
        // A WAL file's name starts with its timeline in 8 hex digits.
        return { role: 'primary', lsn: BigInt(r.lsn), timeline: parseInt(r.file.slice(0, 8), 16) };
      }),

    promote: (n) =>
      on(
        n,
        'promotion',
        async (c) => {
          // First, so the node takes writes the moment it leaves recovery (ALTER SYSTEM works on a
          // standby: it only writes postgresql.auto.conf).
          await c.query('ALTER SYSTEM RESET default_transaction_read_only');
          await c.query('SELECT pg_reload_conf()');
          if (await inRecovery(c)) {
            const { rows } = await c.query<{ promoted: boolean }>(
              'SELECT pg_promote(wait => true, wait_seconds => $1) AS promoted',
              [Math.ceil(promoteTimeoutMs / 1000)],
            );
            if (!rows[0]?.promoted) throw new Error(`still in recovery after ${promoteTimeoutMs} ms`);
          }
          // A promoted server records its new timeline in pg_control only at its next checkpoint,
          // which it runs in the background; until then pg_rewind, which reads the timeline there,
          // finds an old primary "on the same timeline" and leaves it diverged. So: one now (also on
          // a retry, which finds the node promoted already).
          await c.query('CHECKPOINT');
        },
        promoteTimeoutMs + timeoutMs,
      ),

    follow: (n, primary) =>
      on(n, `following ${primary.name}`, async (c) => {
        if (!(await inRecovery(c))) {
          throw new Error(
            'it is a primary: only a restart as a standby (the instance script) can make it follow',
          );
        }
        // As the instance script writes it at start: TLS when this standby's pod has the CA.
        const conninfo = primaryConninfo(primary, n.name, replicationUser, n.tls?.caFile);
        await c.query(`ALTER SYSTEM SET primary_conninfo = ${escapeLiteral(conninfo)}`);
        await c.query('SELECT pg_reload_conf()');
      }),

    detach: (n) =>
      on(n, 'stopping its WAL receiver', async (c) => {
        if (!(await inRecovery(c))) return; // a primary receives no WAL
        await c.query(`ALTER SYSTEM SET primary_conninfo = ''`);
        await c.query('SELECT pg_reload_conf()');
        // The startup process stops the receiver once it sees the setting (at once while it waits
        // for WAL, as a streaming standby does); the view has no row without a receiver.
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { rows } = await c.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM pg_stat_wal_receiver',
          );
          if (rows[0]!.n === 0) return;
          if (Date.now() >= deadline) throw new Error(`its WAL receiver still ran after ${timeoutMs} ms`);
          await sleep(50);
        }
      }),

    fence: (n) =>
      on(n, 'fencing', async (c) => {
        await c.query('ALTER SYSTEM SET default_transaction_read_only = on');
        await c.query('SELECT pg_reload_conf()');
        // Only client sessions: walsenders keep streaming, so standbys (and a switchover's target)
        // still receive everything the fenced primary wrote.
        await c.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
        );
      }),
  };
}
