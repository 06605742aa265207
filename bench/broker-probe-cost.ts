// Benchmark (a script, never a test): what one liveness check of a broker costs, side by side, on a
// real rabbitmq-server on loopback with the TLS the pods serve (distribution over TLS included).
//   cli ping     `rabbitmq-diagnostics -q ping`, as an exec probe runs it: a whole Erlang VM starts,
//                joins the distribution over TLS, asks, and exits
//   https GET /  what an httpGet probe on the management port does: a TLS handshake and one request
//                to the management UI's index page, answered without a login by the broker's VM
// Per kind: CHECKS checks one after the other; CPU seconds of the checker (the CLI's processes, as
// this process's reaped children) and of the broker's VM (from /proc), and the wall time of each
// check; then the ratio of the medians. CPU is what matters on a node: three brokers checked every
// 30 s on two cores. Run (after tools/dataplane-deps.sh):
//   node bench/broker-probe-cost.ts            (CHECKS=10)
import { execFileSync } from 'node:child_process';
import { request } from 'node:https';
import { dirname } from 'node:path';
import { startBroker, type LocalBroker } from '../server-tests/support/rabbitmq-local.ts';
import { cpuSeconds, log, median } from './stats.ts';

const CHECKS = Number(process.env.CHECKS ?? 10);
/** The pid of the broker's Erlang VM: the beam.smp whose command line names the node's directory. */
function vmPid(nodeDir: string): number {
  const out = execFileSync('pgrep', ['-f', `beam.smp.*${nodeDir}`]).toString();
  return Number(out.trim().split('\n')[0]);
}

function httpsIndex(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // No keep-alive and no verification, as the kubelet's HTTPS probes.
    const req = request(
      { host: '127.0.0.1', port, path: '/', agent: false, rejectUnauthorized: false, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`GET / answered ${res.statusCode}`)),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET / timed out')));
    req.on('error', reject);
    req.end();
  });
}

type Sample = { checker: number; broker: number; wall: number };

async function measure(broker: LocalBroker, check: () => Promise<void>): Promise<Sample[]> {
  const vm = vmPid(dirname(broker.nodes[0]!.configDir));
  const samples: Sample[] = [];
  for (let i = 0; i < CHECKS; i++) {
    const [c0, b0, t0] = [cpuSeconds('self', 'children'), cpuSeconds(vm, 'own'), Date.now()];
    const own0 = process.cpuUsage();
    await check();
    const own = process.cpuUsage(own0);
    samples.push({
      checker: cpuSeconds('self', 'children') - c0 + (own.user + own.system) / 1e6,
      broker: cpuSeconds(vm, 'own') - b0,
      wall: (Date.now() - t0) / 1000,
    });
  }
  return samples;
}

const row = (name: string, s: Sample[]) =>
  `${name.padEnd(12)} checker CPU ${median(s.map((x) => x.checker)).toFixed(3)} s   broker CPU ${median(
    s.map((x) => x.broker),
  ).toFixed(3)} s   wall ${median(s.map((x) => x.wall)).toFixed(3)} s   (medians of ${s.length})`;

log('starting one broker with TLS (AMQP, management and distribution)');
const broker = await startBroker({ nodes: 1, queues: [{ name: 'probe' }], tls: true });
try {
  const node = broker.nodes[0]!;
  log(`cli ping: ${CHECKS} checks`);
  const cli = await measure(broker, async () => {
    const r = await broker.cli(0, 'rabbitmq-diagnostics', ['-q', 'ping']);
    if (r.code !== 0) throw new Error(`ping failed: ${r.stderr}`);
  });
  log(`https GET /: ${CHECKS} checks`);
  const http = await measure(broker, () => httpsIndex(node.managementPort));
  console.log(row('cli ping', cli));
  console.log(row('https GET /', http));
  const total = (s: Sample[]) => median(s.map((x) => x.checker + x.broker));
  console.log(
    `CPU per check, cli ping / https GET /: ${(total(cli) / total(http)).toFixed(1)}x; ` +
      `wall: ${(median(cli.map((x) => x.wall)) / median(http.map((x) => x.wall))).toFixed(1)}x`,
  );
} finally {
  await broker.stop();
}
