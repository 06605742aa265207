// What the real-node Postgres failover suites ask of one database tier (real-database-failover,
// real-database-async-failover): its recorded primary, its Services, whether an old primary is back
// as a standby, and what the writer (pg-load.ts) got acknowledged against what the table holds.
import { getApp } from './apps.ts';
import { eventsWhere, eventually, json, kubectl, tryKubectl } from './kube.ts';
import { lost, resumed, storedIds, superuserQuery, type ShardTarget, type WriteResult } from './pg-load.ts';
import { podStates } from './real-node.ts';
import { ROLE_LABEL } from '../../operator/tiers/labels.ts';

/** The database tier of `app`, or with `shard` (a shard's cluster name) that shard. */
export class PgFailover {
  readonly ns: string;
  readonly app: string;
  /** The writer pod (its label is the database's allowed client). */
  readonly writer: string;
  /** The Postgres cluster: `<app>-db`, or the shard's. */
  readonly cluster: string;
  /** Where the writer writes when it is a shard (pg-load.ts). */
  readonly target: ShardTarget | undefined;
  constructor(ns: string, app: string, writer: string, shard?: string) {
    this.ns = ns;
    this.app = app;
    this.writer = writer;
    this.cluster = shard ?? `${app}-db`;
    this.target = shard ? { service: `${shard}-rw` } : undefined;
  }

  /** The recorded primary: the app's status for the database tier, the shard's ConfigMap record. */
  primaryOf = (): string =>
    this.target
      ? json<any>(['get', 'configmap', `${this.cluster}-config`, '-n', this.ns]).data.primary
      : getApp(this.ns, this.app).status?.database?.primary;

  restarts = (pod: string): number =>
    podStates(this.ns, `statefulset.kubernetes.io/pod-name=${pod}`)[0]?.containers[0]?.restarts ?? 0;

  podIP = (pod: string): string => json<any>(['get', 'pod', pod, '-n', this.ns]).status.podIP;

  /** The read-only Service's endpoints, which the operator publishes (ready standbys). */
  readOnlyAddresses(): string[] {
    const slices = json<any>([
      'get',
      'endpointslices',
      '-n',
      this.ns,
      '-l',
      `kubernetes.io/service-name=${this.cluster}-ro`,
    ]).items;
    return slices.flatMap((s: any) => (s.endpoints ?? []).flatMap((e: any) => e.addresses));
  }

  /**
   * Waits until `pod` is a Ready standby again: labelled replica, streaming (its log says so since
   * the last start), and behind the read-only Service. Resolves with its log.
   */
  async rejoinedAsStandby(pod: string): Promise<string> {
    const ns = this.ns;
    try {
      return await eventually(
        `${pod} back as a Ready standby behind the read-only Service`,
        () => {
          const p = json<any>(['get', 'pod', pod, '-n', ns]);
          const ready = p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True');
          if (!ready || p.metadata.labels?.[ROLE_LABEL] !== 'replica') return false;
          if (!this.readOnlyAddresses().includes(p.status.podIP)) return false;
          const log = kubectl(['logs', '-n', ns, pod]);
          return /started streaming WAL from primary/.test(log) && log;
        },
        300_000,
        2000,
      );
    } catch (err) {
      // What it was doing instead: its state, its last probe failures, and its log.
      const p = tryKubectl(['get', 'pod', pod, '-n', ns, '-o', 'jsonpath={.status}']).stdout;
      const events = tryKubectl([
        'get',
        'events',
        '-n',
        ns,
        '--field-selector',
        `involvedObject.name=${pod}`,
      ]);
      const log = tryKubectl(['logs', '-n', ns, pod]).stdout.slice(-4000);
      throw new Error(
        `${(err as Error).message}\nstatus: ${p}\nevents:\n${events.stdout.slice(-3000)}\nlog:\n${log}`,
      );
    }
  }

  /**
   * Waits until an instance other than `before` is the recorded primary, calling `each` on every
   * look (a suite watching something else meanwhile). Resolves with it and the time since `since`.
   */
  async promotedAway(
    before: string,
    since: number,
    each: () => void = () => {},
  ): Promise<{ promoted: string; afterMs: number }> {
    const promoted = await eventually(
      `an instance of ${this.cluster} other than ${before} promoted`,
      () => {
        each();
        const p = this.primaryOf();
        return p !== before && p;
      },
      120_000,
      500,
    );
    return { promoted, afterMs: Date.now() - since };
  }

  /** The acknowledged ids the table lacks, read back through the read-write Service. */
  async lostOf(r: WriteResult, table: string): Promise<number[]> {
    expect(r.ackedCount).toBeGreaterThan(0);
    const stored = await storedIds(this.ns, this.writer, table, this.target);
    if (!resumed(r)) {
      const errors = JSON.stringify(r.errors, null, 1);
      throw new Error(
        `writes to ${table} never resumed; the writer's errors: ${errors}\n${this.replicationState()}`,
      );
    }
    return lost(r.acked, stored.ids);
  }

  /**
   * Why writes may not have resumed, for a failure's message: each instance's role label and
   * readiness, whom it streams to or from, the cluster's Events and the operator's last log lines.
   */
  replicationState(): string {
    const instance = new RegExp(`^${this.cluster}-[0-9]+$`);
    const pods = json<any>(['get', 'pods', '-n', this.ns]).items.filter((p: any) =>
      instance.test(p.metadata.name),
    );
    const ask = (pod: string, sql: string) => {
      try {
        return superuserQuery(this.ns, pod, sql);
      } catch (err) {
        return `(${(err as Error).message.split('\n')[0]})`;
      }
    };
    const instances = pods.map((p: any) => {
      const name: string = p.metadata.name;
      const role = p.metadata.labels?.[ROLE_LABEL];
      const ready = p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ?? false;
      const sending = ask(
        name,
        'SELECT application_name, state, sync_state, replay_lsn FROM pg_stat_replication',
      );
      const receiving = ask(
        name,
        'SELECT status, sender_host, received_tli, flushed_lsn, latest_end_lsn FROM pg_stat_wal_receiver',
      );
      const settings = ask(
        name,
        "SELECT current_setting('synchronous_standby_names'), pg_is_in_recovery(), current_setting('primary_conninfo')",
      );
      const replay = ask(
        name,
        'SELECT timeline_id, pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn(), pg_is_wal_replay_paused() FROM pg_control_checkpoint()',
      );
      // The server's own account (the start script, the walreceiver, the startup process).
      const log = tryKubectl(['logs', '-n', this.ns, name, '-c', 'postgres', '--tail=25']).stdout;
      return (
        `${name} role=${role} ready=${ready}: settings ${settings}; replay ${replay}; ` +
        `sends [${sending}]; receives [${receiving}]\n  log: ${log.slice(-2500).replaceAll('\n', '\n    ')}`
      );
    });
    const events = tryKubectl(['get', 'events', '-n', this.ns, '--sort-by=.lastTimestamp']).stdout;
    const log = tryKubectl([
      'logs',
      '-n',
      'scalableapp-system',
      'deployment/scalableapp-operator',
      '--tail=60',
    ]).stdout;
    return [...instances, `events:\n${events.slice(-4000)}`, `operator log:\n${log.slice(-6000)}`].join('\n');
  }

  /** Every acknowledged id is stored, and writes resumed. */
  async expectNothingLost(r: WriteResult, table: string): Promise<void> {
    expect(await this.lostOf(r, table)).toEqual([]);
  }

  /** The first "fenced" readiness failure of the pod, from its Events: when, and what it said. */
  fenceEvent(pod: string): { at: number; message: string } | undefined {
    const events = eventsWhere(this.ns, `involvedObject.name=${pod}`);
    const fenced = events
      .filter((e) => e.reason === 'Unhealthy' && /fenced: /.test(e.message ?? ''))
      .map((e) => ({ at: Date.parse(e.firstTimestamp ?? e.eventTime ?? ''), message: e.message ?? '' }))
      .sort((a, b) => a.at - b.at);
    return fenced[0];
  }
}

/** One line of figures per case (the session notes quote them). */
export function report(what: string, r: WriteResult, extra = ''): void {
  console.log(
    `${what}: ${r.ackedCount} commits acknowledged of ${r.attempts} attempts (${r.failed} failed, ` +
      `${r.unconfirmed} returned unconfirmed by a standby), ` +
      `longest time without an acknowledgement ${r.longestGapMs} ms${extra}`,
  );
}
