// A write load on a database tier from inside a pod (e2e/support/pg-writer.mjs), and the host-side
// means to break the pod's server: its processes, found by the pod's cgroup on the real node.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { json } from './kube.ts';
import { APP_DATABASE } from '../../operator/tiers/postgres-cluster.ts';
import { runWriter as run, writerScript, type Acknowledged, type Ranges } from './pod-writer.ts';

export { acknowledgedAt, lost, resumed, type Ranges } from './pod-writer.ts';

const WRITER = writerScript('pg-writer.mjs');

/** `at`: when each acknowledged id was acknowledged (ms since the epoch), in id order. */
export interface WriteResult extends Acknowledged {
  ackedCount: number;
  attempts: number;
  failed: number;
  /** Commits that returned with the warning that the wait for a synchronous standby was cancelled. */
  unconfirmed: number;
  /** The longest time between two acknowledged commits: the outage a client saw, at most. */
  longestGapMs: number;
}

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

/** One INSERT from the pod straight to `host` (a pod's address), not through the Service. */
export const writeDirectly = (ns: string, pod: string, table: string, host: string) =>
  runWriter<{ acknowledged: boolean; error: string }>(ns, pod, {
    WRITER_MODE: 'direct',
    WRITER_TABLE: table,
    TARGET_HOST: host,
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
  // The sandbox's pause process holds the namespace for the pod's whole life, restarts included.
  const pid = podProcesses(ns, pod, 'pause')[0];
  if (!pid) throw new Error(`no pause process of ${ns}/${pod} to find its network namespace by`);
  for (const a of allow) if (!/^\d+\.\d+\.\d+\.\d+$/.test(a)) throw new Error(`not an IPv4 address: ${a}`);
  const netns = `/proc/${pid}/ns/net`;
  const set = allow.length ? `{ ${allow.join(', ')} }` : '{ 127.0.0.1 }';
  const ruleset = `table inet ${ISOLATION_TABLE} {
  chain input { type filter hook input priority -10; policy drop; iif "lo" accept; ip saddr ${set} accept; }
  chain output { type filter hook output priority -10; policy drop; oif "lo" accept; ip daddr ${set} accept; }
}
`;
  execFileSync('nsenter', [`--net=${netns}`, 'nft', '-f', '-'], { input: ruleset });
  return () => execFileSync('nsenter', [`--net=${netns}`, 'nft', 'delete', 'table', 'inet', ISOLATION_TABLE]);
}
