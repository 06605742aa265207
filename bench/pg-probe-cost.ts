// Benchmark (a script, never a test): what one liveness check of a Postgres instance costs the real
// node, side by side, on a running pod (README command 1's demo app, or any ScalableApp's instance):
//   exec pg_isready  what an exec probe does: containerd asks the pod's shim, which runs `runc exec`
//                    (a runc process, its nsexec children, the container's namespaces joined) and
//                    pg_isready in it, whose startup packet the postmaster answers with a backend
//   tcp connect      what a tcpSocket probe does: the kubelet connects to the pod's port and closes;
//                    the postmaster forks a backend that reads nothing and exits without a log line
// Per kind, CHECKS checks interleaved (exec, tcp, exec, ...) so the node's other load falls on both:
// CPU seconds of the node's side (containerd, the pod's shim and the processes it reaps, the
// postmaster and the backends it reaps, from /proc), and the wall time of each check; then the ratio
// of the medians. The exec's client (`ctr`, standing in for the kubelet's CRI call) is left out of
// the node's side and printed apart: the kubelet's own call is a gRPC request, not a process.
// Run on a cluster with a Postgres pod on the real node (npm run up):
//   node bench/pg-probe-cost.ts                      (CHECKS=40, POD=demo/millions-db-0)
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { cpuSeconds, log, median, parentPid, tickSeconds } from './stats.ts';

const CHECKS = Number(process.env.CHECKS ?? 40);
const [NS, POD] = (process.env.POD ?? 'demo/millions-db-0').split('/') as [string, string];
/** The containerd socket the node scripts start, where they say (tools/versions.sh, tools/node-env.sh). */
const containerdSock = execFileSync(
  'bash',
  [
    '-c',
    'source tools/versions.sh >/dev/null && source tools/node-env.sh >/dev/null && echo "$CONTAINERD_SOCK"',
  ],
  { cwd: new URL('..', import.meta.url) },
)
  .toString()
  .trim();

const kubectl = (args: string[]) => execFileSync('kubectl', args, { env: process.env }).toString().trim();

const containerId = kubectl([
  'get',
  'pod',
  '-n',
  NS,
  POD,
  '-o',
  'jsonpath={.status.containerStatuses[?(@.name=="postgres")].containerID}',
]).replace(/^containerd:\/\//, '');
const podIp = kubectl(['get', 'pod', '-n', NS, POD, '-o', 'jsonpath={.status.podIP}']);
if (!containerId || !podIp) throw new Error(`${NS}/${POD} has no running postgres container`);
const ctr = (args: string[]) =>
  execFileSync('ctr', ['-a', containerdSock, '-n', 'k8s.io', ...args]).toString();
/** The container's first process: start.sh, which runs postgres as its child (ADR 0030). */
const first = Number(
  ctr(['task', 'ls'])
    .split('\n')
    .find((l) => l.startsWith(containerId))!
    .split(/\s+/)[1],
);
const shim = parentPid(first);
const postmaster = Number(
  execFileSync('pgrep', ['-P', String(first), '-x', 'postgres'])
    .toString()
    .trim(),
);
const containerd = Number(execFileSync('pgrep', ['-x', 'containerd']).toString().trim().split('\n')[0]);

type Sample = { node: number; client: number; wall: number };

/** The node's CPU (containerd, the shim and what it reaps, the postmaster and what it reaps) now. */
const nodeCpu = () =>
  cpuSeconds(containerd, 'own') + cpuSeconds(shim, 'both') + cpuSeconds(postmaster, 'both');

async function measure(check: () => Promise<void>): Promise<Sample> {
  const [n0, c0, t0] = [nodeCpu(), cpuSeconds('self', 'children'), Date.now()];
  await check();
  return {
    node: nodeCpu() - n0,
    client: cpuSeconds('self', 'children') - c0,
    wall: (Date.now() - t0) / 1000,
  };
}

let execs = 0;
const execCheck = async () => {
  ctr([
    'task',
    'exec',
    '--exec-id',
    `bench-${process.pid}-${execs++}`,
    containerId,
    'pg_isready',
    '-q',
    '-h',
    '127.0.0.1',
    '-p',
    '5432',
  ]);
};
const tcpCheck = () =>
  new Promise<void>((resolve, reject) => {
    const s = connect({ host: podIp, port: 5432, timeout: 5_000 }, () => {
      s.destroy();
      resolve();
    });
    s.on('timeout', () => s.destroy(new Error('connect timed out')));
    s.on('error', reject);
  });

log(
  `${NS}/${POD}: container ${containerId.slice(0, 12)}, postmaster ${postmaster}, shim ${shim}; ${CHECKS} checks each`,
);
const exec: Sample[] = [];
const tcp: Sample[] = [];
for (let i = 0; i < CHECKS; i++) {
  exec.push(await measure(execCheck));
  tcp.push(await measure(tcpCheck));
  // The postmaster reaps the probe's backend a moment after the check returns: let it.
  await new Promise((r) => setTimeout(r, 100));
}
// CPU is counted in clock ticks (10 ms): a tcp check takes far less than one, so CPU is the mean over
// all checks (the ticks add up); wall time is the median.
const mean = (s: Sample[], k: keyof Sample) => s.reduce((a, x) => a + x[k], 0) / s.length;
const med = (s: Sample[], k: keyof Sample) => median(s.map((x) => x[k]));
const row = (name: string, s: Sample[]) =>
  `${name.padEnd(16)} node CPU ${mean(s, 'node').toFixed(4)} s   client CPU ${mean(s, 'client').toFixed(4)} s   ` +
  `wall ${med(s, 'wall').toFixed(3)} s   (means and median of ${s.length})`;
console.log(row('exec pg_isready', exec));
console.log(row('tcp connect', tcp));
// No tick at all in the tcp checks: count one, so the ratio is a lower bound.
const tcpCpu = Math.max(mean(tcp, 'node'), tickSeconds() / tcp.length);
const bound = mean(tcp, 'node') === 0 ? '>= ' : '';
console.log(
  `node CPU per check, exec / tcp: ${bound}${(mean(exec, 'node') / tcpCpu).toFixed(0)}x; ` +
    `wall: ${(med(exec, 'wall') / Math.max(med(tcp, 'wall'), 0.001)).toFixed(0)}x`,
);
