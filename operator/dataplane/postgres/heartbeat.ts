// The operator's heartbeat to every recorded Postgres primary: one session each, a query every
// period. The primary's ready.sh counts the session's last query as contact (beside its standbys'
// status reports); a primary that has neither for a while is cut off and fences itself
// (operator/server-config/postgres-ready-script.ts). The heartbeat is also what lifts such a fence:
// it goes to the recorded primary only, so a fenced server it reaches is still the one the record
// names, and reachable from the operator again. A replaced primary never hears from it again; the
// operator restarts that one instead, and it rewinds into a standby.
import { Client } from 'pg';
import { FENCE_SETTING } from '../../server-config/postgres.ts';
import { HEARTBEAT_APPLICATION } from '../../server-config/postgres-ready-script.ts';
import { DEFAULT_SUPERUSER } from '../../server-config/postgres.ts';
import { verifiedTls } from './admin.ts';

export interface HeartbeatTarget {
  readonly host: string;
  readonly port: number;
  readonly password: string;
  /** The primary serves TLS only: its certificate chains to `ca` and names `servername`. */
  readonly tls?: { readonly ca: string; readonly servername: string };
}

/** One open session; the real one is a pg Client. */
export interface HeartbeatSession {
  query(sql: string): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}

export interface HeartbeatOptions {
  /** Between two queries. Default 2000 ms: well inside ready.sh's fence delay (10 s). */
  readonly periodMs?: number;
  /** Connect and query timeout. Default 2000 ms. */
  readonly timeoutMs?: number;
  readonly superuser?: string;
  /** A fenced primary's fence was lifted: `key` is the one keep() was given, `reason` the fence's. */
  readonly onLifted?: (key: string, reason: string) => void;
  /** Tests replace the connection. */
  readonly connect?: (target: HeartbeatTarget) => Promise<HeartbeatSession>;
}

interface Beat {
  target: HeartbeatTarget;
  session?: HeartbeatSession;
  busy: boolean;
  timer: ReturnType<typeof setInterval>;
}

const sameTarget = (a: HeartbeatTarget, b: HeartbeatTarget) =>
  a.host === b.host &&
  a.port === b.port &&
  a.password === b.password &&
  a.tls?.ca === b.tls?.ca &&
  a.tls?.servername === b.tls?.servername;

export class PrimaryHeartbeats {
  readonly #o: HeartbeatOptions;
  readonly #beats = new Map<string, Beat>();

  constructor(options: HeartbeatOptions = {}) {
    this.#o = options;
  }

  /**
   * Keeps one heartbeat for `key` (an app's cluster) going to `target`, or stops it (undefined: no
   * primary with an address). Idempotent: called on every decision about the cluster's primary.
   */
  keep(key: string, target: HeartbeatTarget | undefined): void {
    const beat = this.#beats.get(key);
    if (beat && target && sameTarget(beat.target, target)) return;
    if (beat) this.#drop(key, beat);
    if (!target) return;
    const created: Beat = {
      target,
      busy: false,
      timer: setInterval(() => void this.#beat(key, created), this.#o.periodMs ?? 2000),
    };
    // The operator's exit never waits for a heartbeat.
    created.timer.unref();
    this.#beats.set(key, created);
    void this.#beat(key, created);
  }

  /** Stops every heartbeat whose key starts with `prefix` (an app that went away). */
  forget(prefix: string): void {
    for (const [key, beat] of this.#beats) if (key.startsWith(prefix)) this.#drop(key, beat);
  }

  /** Stops them all (the operator lost its leadership or stops). */
  stop(): void {
    this.forget('');
  }

  /** The keys with a heartbeat (tests). */
  keys(): string[] {
    return [...this.#beats.keys()];
  }

  #drop(key: string, beat: Beat): void {
    clearInterval(beat.timer);
    beat.session?.end().catch(() => {});
    beat.session = undefined;
    this.#beats.delete(key);
  }

  async #beat(key: string, beat: Beat): Promise<void> {
    // A query that hangs (a cut-off server) must not pile up the next ones behind it.
    if (beat.busy) return;
    beat.busy = true;
    try {
      beat.session ??= await this.#connect(beat.target);
      // Dropped while connecting: close what was opened for it.
      if (this.#beats.get(key) !== beat) return void (await beat.session.end().catch(() => {}));
      const { rows } = await beat.session.query(
        `SELECT coalesce(current_setting('${FENCE_SETTING}', true), '') AS fenced`,
      );
      const reason = String(rows[0]?.fenced ?? '');
      if (reason) {
        await beat.session.query(`ALTER SYSTEM RESET ${FENCE_SETTING}`);
        await beat.session.query('SELECT pg_reload_conf()');
        this.#o.onLifted?.(key, reason);
      }
    } catch {
      // Unreachable, restarting, refusing: the next period tries a new session. Not worth a log
      // line: what a lost primary means is the failover's to say.
      beat.session?.end().catch(() => {});
      beat.session = undefined;
    } finally {
      beat.busy = false;
    }
  }

  async #connect(t: HeartbeatTarget): Promise<HeartbeatSession> {
    if (this.#o.connect) return this.#o.connect(t);
    const timeoutMs = this.#o.timeoutMs ?? 2000;
    const client = new Client({
      host: t.host,
      port: t.port,
      user: this.#o.superuser ?? DEFAULT_SUPERUSER,
      password: t.password,
      database: 'postgres',
      application_name: HEARTBEAT_APPLICATION,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      ssl: t.tls ? verifiedTls(t.tls.ca, t.tls.servername) : false,
    });
    // A server that goes away emits 'error' on an idle client: the next query fails and reconnects.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    return client;
  }
}
