// What the real-node Postgres failover suites ask of one database tier (real-database-failover,
// real-database-async-failover): its recorded primary, its Services, whether an old primary is back
// as a standby, and what the writer (pg-load.ts) got acknowledged against what the table holds.
import { getApp } from './apps.ts';
import { eventsWhere, eventually, json, kubectl, tryKubectl } from './kube.ts';
import { lost, resumed, storedIds, type ShardTarget, type WriteResult } from './pg-load.ts';
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

  /** The acknowledged ids the table lacks, read back through the read-write Service. */
  async lostOf(r: WriteResult, table: string): Promise<number[]> {
    expect(r.ackedCount).toBeGreaterThan(0);
    const stored = await storedIds(this.ns, this.writer, table, this.target);
    expect(resumed(r)).toBe(true);
    return lost(r.acked, stored.ids);
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
