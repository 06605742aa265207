// A write load on a database tier from inside a pod (e2e/support/pg-writer.mjs), and the host-side
// means to break the pod's server: its processes, found by the pod's cgroup on the real node.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { json, tryKubectl } from './kube.ts';
import { APP_DATABASE } from '../../operator/tiers/postgres-cluster.ts';
import { DEFAULT_SUPERUSER, PG_PASSFILE, PG_RUN_DIR } from '../../operator/server-config/postgres.ts';
import { runWriter as run, writerScript, type LoopResult, type Ranges } from './pod-writer.ts';

export { acknowledgedAt, lost, resumed, type Ranges } from './pod-writer.ts';

const WRITER = writerScript('pg-writer.mjs');

/** `unconfirmed`: commits that returned with the warning that the wait for a synchronous standby was cancelled. */
export type WriteResult = LoopResult;

const runWriter = <T>(ns: string, pod: string, env: Record<string, string>) => run<T>(ns, pod, WRITER, env);

/** A shard to write to instead of the database tier: its read-write Service. */
export interface ShardTarget {
  readonly service: string;
}
const shardEnv = (shard?: ShardTarget): Record<string, string> =>
  shard ? { SHARD_SERVICE: shard.service, SHARD_DATABASE: APP_DATABASE } : {};

/**
 * Writes through DATABASE_URL (or to `shard`) from the pod for `seconds`; resolves with what was
 * acknowledged.
 */
export const writeFor = (ns: string, pod: string, seconds: number, table: string, shard?: ShardTarget) =>
  runWriter<WriteResult>(ns, pod, {
    WRITER_MODE: 'write',
    WRITE_SECONDS: String(seconds),
    WRITER_TABLE: table,
    ...shardEnv(shard),
  });

/**
 * One INSERT from the pod straight to `host` (a pod's address), not through the Service; with TLS
 * the server's certificate is checked against `name` (the pod's DNS name), as the Service's is.
 */
export const writeDirectly = (ns: string, pod: string, table: string, host: string, name: string) =>
  runWriter<{ acknowledged: boolean; error: string }>(ns, pod, {
    WRITER_MODE: 'direct',
    WRITER_TABLE: table,
    TARGET_HOST: host,
    TARGET_NAME: name,
  });

/** The ids the table holds, read through DATABASE_URL (or from `shard`) from the pod. */
export const storedIds = (ns: string, pod: string, table: string, shard?: ShardTarget) =>
  runWriter<{ ids: Ranges; count: number }>(ns, pod, {
    WRITER_MODE: 'ids',
    WRITER_TABLE: table,
    ...shardEnv(shard),
  });

/**
 * The host PIDs of a pod's processes named `comm` (the real node's containers share the host's
 * process table). Only a process whose cgroup path names this pod's UID is returned, so a signal
 * sent to them reaches nothing else on the machine.
 */
export function podProcesses(ns: string, pod: string, comm: string): number[] {
  const uid = json<any>(['get', 'pod', pod, '-n', ns]).metadata.uid as string;
  const marks = [`pod${uid}`, `pod${uid.replaceAll('-', '_')}`];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cgroup = readFileSync(`/proc/${entry}/cgroup`, 'utf8');
      if (!marks.some((m) => cgroup.includes(m))) continue;
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== comm) continue;
      pids.push(Number(entry));
    } catch {
      // The process ended while being read.
    }
  }
  return pids;
}

/** Sends a signal to every `comm` process of the pod; returns how many got it. */
export function signalPod(ns: string, pod: string, comm: string, signal: NodeJS.Signals): number {
  let sent = 0;
  for (const pid of podProcesses(ns, pod, comm)) {
    try {
      process.kill(pid, signal);
      sent += 1;
    } catch {
      // Gone already.
    }
  }
  return sent;
}

/** Fills a new table with `megabytes` MiB of rows through DATABASE_URL: data a clone must copy. */
export const padDatabase = (ns: string, pod: string, table: string, megabytes: number) =>
  runWriter<{ rows: number; bytes: number }>(ns, pod, {
    WRITER_MODE: 'pad',
    WRITER_TABLE: table,
    PAD_MEGABYTES: String(megabytes),
  });

/** One query as the superuser over a Postgres pod's local socket (the probes' own way in); its text. */
export function superuserQuery(ns: string, pod: string, sql: string): string {
  const args = ['-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-h', PG_RUN_DIR];
  // The passfile the start script wrote (named here; the password never leaves the pod).
  const env = ['env', `PGPASSFILE=${PG_RUN_DIR}/${PG_PASSFILE}`];
  const r = tryKubectl([
    'exec',
    '-n',
    ns,
    pod,
    '--',
    ...env,
    'psql',
    ...args,
    '-U',
    DEFAULT_SUPERUSER,
    '-d',
    'postgres',
    '-c',
    sql,
  ]);
  if (!r.ok) throw new Error(`psql in ${ns}/${pod} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** How many standbys stream from `primary` and have replayed all but the last MiB of its WAL. */
export const caughtUpStandbys = (ns: string, primary: string) =>
  Number(
    superuserQuery(
      ns,
      primary,
      'SELECT count(*) FROM pg_stat_replication WHERE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) < 1048576',
    ),
  );

/** The path of a pod's network namespace, for nsenter. */
function netnsOf(ns: string, pod: string): string {
  // The sandbox's pause process holds the namespace for the pod's whole life, restarts included.
  const pid = podProcesses(ns, pod, 'pause')[0];
  if (!pid) throw new Error(`no pause process of ${ns}/${pod} to find its network namespace by`);
  return `/proc/${pid}/ns/net`;
}

/**
 * Slows everything a pod sends to `rate` (tc's token bucket on its eth0, in its own network
 * namespace), as a loaded or distant link would. Returns the undo.
 */
export function throttlePod(ns: string, pod: string, rate: string): () => void {
  if (!/^\d+[km]bit$/.test(rate)) throw new Error(`not a tc rate: ${rate}`);
  const netns = netnsOf(ns, pod);
  const tc = (...args: string[]) => execFileSync('nsenter', [`--net=${netns}`, 'tc', ...args]);
  tc('qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '500ms');
  return () => tc('qdisc', 'del', 'dev', 'eth0', 'root');
}

/**
 * Hangs a pod's Postgres: every postgres process stopped (SIGSTOP), as a frozen primary would be.
 * Twice, so a backend forked while the first pass ran is stopped by the second. Returns how many the
 * first pass stopped (0: no postgres process found).
 */
export function hang(ns: string, pod: string): number {
  const stopped = signalPod(ns, pod, 'postgres', 'SIGSTOP');
  signalPod(ns, pod, 'postgres', 'SIGSTOP');
  return stopped;
}

const ISOLATION_TABLE = 'scalableapp_e2e_isolation';

/**
 * Cuts a pod off the network but for loopback and the `allow`ed addresses: an nftables table in the
 * pod's own network namespace, dropping everything
 * else both ways. The kubelet's exec probes, which need no network, still run. Returns the heal.
 */
export function isolatePod(ns: string, pod: string, allow: string[]): () => void {
  for (const a of allow) if (!/^\d+\.\d+\.\d+\.\d+$/.test(a)) throw new Error(`not an IPv4 address: ${a}`);
  const netns = netnsOf(ns, pod);
  const set = allow.length ? `{ ${allow.join(', ')} }` : '{ 127.0.0.1 }';
  const ruleset = `table inet ${ISOLATION_TABLE} {
  chain input { type filter hook input priority -10; policy drop; iif "lo" accept; ip saddr ${set} accept; }
  chain output { type filter hook output priority -10; policy drop; oif "lo" accept; ip daddr ${set} accept; }
}
`;
  execFileSync('nsenter', [`--net=${netns}`, 'nft', '-f', '-'], { input: ruleset });
  return () => execFileSync('nsenter', [`--net=${netns}`, 'nft', 'delete', 'table', 'inet', ISOLATION_TABLE]);
}
