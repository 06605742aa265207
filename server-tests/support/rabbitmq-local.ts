// Real rabbitmq-server nodes on 127.0.0.1, each started by running the very start script the pods run
// (written to a file, run with sh) with the very files the operator puts in the broker's ConfigMap
// (brokerConfigFiles). Used by the data-plane tests (server-tests/queue.test.ts) and by what is built on
// them (the queue autoscaler's data-plane test, benchmarks); the operator never imports it.
//
//   const broker = await startBroker({ nodes: 3, queues: [{ name: 'photos' }] });
//   await broker.publish('photos', ['a', 'b']);            // over AMQP, the app's login, confirmed
//   await broker.take('photos', 2);                        // basic.get and ack, as a consumer would
//   await broker.admin.queueDepth('photos');               // { ready, unacknowledged, consumers }
//   broker.amqpUrl                                         // amqp://user:pass@127.0.0.1:port/%2F (node 0)
//   await broker.kill9(0);                                 // SIGKILL to node 0's process group
//   await broker.start(0);                                 // the same node again, with its data
//   await broker.start(0, { wait: false });                // ...without waiting for it to answer
//   await broker.shutdown(1);                              // a clean stop (SIGTERM)
//   await broker.cli(1, 'rabbitmq-diagnostics', ['-q', 'ping']);  // as the pod's exec probes run
//   broker.nodes[1].api.get('/api/queues/%2F/photos')      // anything else of the management API
// The management API (admin, api) is asked with the monitoring login, as the operator asks it; the
// messaging (publish, take, amqpUrl) uses the application's login, as the app's pods do.
//   await broker.stop();                                   // kill everything, remove the temp dir
//
//   await broker.scaleUp(3);                               // a 1-node broker grown as its StatefulSet is
// startBroker resolves once every node answers its management API with the monitoring login, every
// node sees all the others running, and every queue reports statistics (so queueDepth works at once).
//
// What differs from a pod, and why: node names are short names `rabbit-<i>@localhost` (a long name
// needs a dotted host name), every node gets its own ports and its own rabbitmq.conf with them (the
// same generator, other ports, listening on 127.0.0.1 only), the Erlang distribution listens on
// loopback only, and all nodes register with one epmd on a free port (ERL_EPMD_PORT) that this
// harness starts, so nothing collides with another run or a system epmd. As root, the nodes run as
// Debian's `rabbitmq` user (setpriv), as a pod runs them as uid 999, so the start script's file
// permissions are tested as they will be used.
// rabbitmq-server comes from tools/dataplane-deps.sh (Debian's rabbitmq-server 3.10).
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import { eventually } from '../../e2e/support/eventually.ts';
import { freePort, portOpen } from '../../e2e/support/free-port.ts';
import {
  brokerAdmin,
  managementApi,
  type BrokerAdmin,
  type ManagementApi,
} from '../../operator/dataplane/rabbitmq/admin.ts';
import {
  CONFIG_FILES,
  CREDENTIAL_FILES,
  brokerConfigFiles,
  diskFreeLimitBytes,
  memoryHighWatermarkBytes,
  distributionTlsArgs,
  type BrokerEnv,
  type BrokerTlsFiles,
} from '../../operator/server-config/rabbitmq.ts';
import { issueCa, issueServerCert, type KeyPair } from '../../operator/tls/certificates.ts';

/** Characters that need escaping in the definitions' JSON (quote, backslash) and in a URL, on purpose. */
export const DEFAULT_PASSWORD = `mq "pass"\\word:@/x`;
export const DEFAULT_USER = 'scalableapp';
/** The operator's login: the management API's read-only views. Escaping on purpose, too. */
export const MONITORING_USER = 'scalableapp-monitor';
export const MONITORING_PASSWORD = `mon "pass"\\word:@/y`;
/** The operator's administrator login (QUEUE_OPERATOR_USER), as the operator's Secret has it. */
export const OPERATOR_PASSWORD = `op "pass"\\word:@/z`;

/** A login of the app other than the harness's own. */
export type Login = { readonly user: string; readonly password: string };

export type StartBrokerOptions = {
  nodes: 1 | 3;
  queues: readonly { readonly name: string }[];
  user?: string;
  password?: string;
  /** How long to wait for the cluster to be up. Default 180 s (a deadline against hangs, not a target). */
  timeoutMs?: number;
  /** The statistics interval of the generated config (default STATS_INTERVAL_MS), to compare others. */
  statsIntervalMs?: number;
  /**
   * Serve TLS only, as spec.queue.tls does: the harness issues a CA and a certificate for
   * BROKER_TLS_NAME, and every client of the harness trusts that CA and checks that name.
   */
  tls?: boolean;
};

/** The name the nodes' certificate holds and the harness's clients check (they connect to 127.0.0.1). */
export const BROKER_TLS_NAME = 'broker.scalableapp.test';
/**
 * Every name of the nodes' certificate: the clients', and `localhost` exactly, the host of every
 * node's name (rabbit-<i>@localhost), which the Erlang distribution over TLS checks as a pod's
 * certificate names each broker (a wildcard would not do: Erlang does not match one there).
 */
export const BROKER_TLS_NAMES = [BROKER_TLS_NAME, 'localhost'];

/** The certificate the nodes serve, as files the test may replace (renewal), and the CA it chains to. */
export interface BrokerTls {
  readonly ca: KeyPair;
  readonly files: BrokerTlsFiles;
  /** Replaces the certificate and key files as the kubelet does (a new file renamed over the old). */
  renew(pair: KeyPair): Promise<void>;
}

/** What a client of the harness passes to trust the nodes' certificate. */
type ClientTls = { ca: string; servername: string };

export interface LocalBroker {
  readonly nodes: readonly LocalBrokerNode[];
  /** A BrokerAdmin (the monitoring login) of the first node that is running at the time of each call. */
  readonly admin: BrokerAdmin;
  /**
   * Publishes each body, in order, as a persistent message through the default exchange to the
   * queue of that name, over AMQP with the app's login on the first running node, each confirmed
   * by the broker. Fails when the queue does not exist (the message comes back: mandatory).
   */
  publish(queue: string, bodies: readonly string[]): Promise<void>;
  /** Takes up to `count` messages from the queue and acknowledges them (basic.get); their bodies. */
  take(queue: string, count: number): Promise<string[]>;
  /** publish, with another login (a rotated one). */
  publishAs(login: Login, queue: string, bodies: readonly string[]): Promise<void>;
  /**
   * Writes a key of the credentials Secret as the kubelet updates a mounted Secret (a new file
   * renamed over the old), or removes it (undefined). Nodes read it when they start.
   */
  setSecret(key: string, value: string | undefined): Promise<void>;
  /** Node 0's AMQP URL (amqps:// with tls). */
  readonly amqpUrl: string;
  /** With `tls`: the CA and the certificate files. */
  readonly tls: BrokerTls | undefined;
  readonly user: string;
  readonly password: string;
  /** The temporary directory holding every node's files; removed by stop(). */
  readonly root: string;
  /** The uid the nodes run as: the `rabbitmq` user's when we are root, else undefined (ours). */
  readonly uid: number | undefined;
  /** SIGKILL to every process of node i at once, as when its pod dies. */
  kill9(i: number): Promise<void>;
  /** A clean shutdown of node i (SIGTERM, as the kubelet sends), waited for. */
  shutdown(i: number): Promise<void>;
  /**
   * Starts node i again (same files, ports and data); resolves when its management API answers, or
   * at once with `wait: false` (a node that waits for its peers does not answer until they are up).
   */
  start(i: number, options?: { wait?: boolean }): Promise<void>;
  /**
   * Runs a RabbitMQ CLI tool against node i as the node's user with the node's environment (the
   * cookie in its HOME), as the pod's exec probes run; never rejects.
   */
  cli(
    i: number,
    tool: 'rabbitmqctl' | 'rabbitmq-diagnostics' | 'rabbitmq-queues',
    args: string[],
    /** Variables to change in the node's environment for this call; undefined removes one. */
    env?: Record<string, string | undefined>,
  ): Promise<CliResult>;
  /**
   * Grows the cluster to `to` nodes as a scale-up of the StatefulSet does: every node's files name
   * all the peers, the new nodes start at once (podManagementPolicy Parallel) and join the running
   * cluster, then the existing ones restart one at a time, highest first (the rolling update the new
   * config hash causes). Resolves when every node sees all the others running.
   */
  scaleUp(to: 3): Promise<void>;
  /** Kills every node and the epmd, and removes the temporary directory. */
  stop(): Promise<void>;
}

export type CliResult = { code: number | null; stdout: string; stderr: string };

const LOG_LIMIT = 1 << 20;

/** The directory of the real rabbitmq-server script: $RABBITMQ_BIN, Debian's, or dataplane-deps.sh's. */
export function rabbitmqBinDir(): string {
  const has = (d: string) => existsSync(join(d, 'rabbitmq-server'));
  if (process.env.RABBITMQ_BIN) {
    if (!has(process.env.RABBITMQ_BIN))
      throw new Error(`RABBITMQ_BIN=${process.env.RABBITMQ_BIN} lacks rabbitmq-server`);
    return process.env.RABBITMQ_BIN;
  }
  const script = new URL('../../tools/dataplane-deps.sh', import.meta.url).pathname;
  let dirs: string[];
  try {
    dirs = execFileSync('bash', [script, '--print'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (err) {
    throw new Error('rabbitmq-server is not installed: run `bash tools/dataplane-deps.sh`', { cause: err });
  }
  // Debian's /usr/sbin/rabbitmq-server is a wrapper that su's to `rabbitmq` and sends the output to
  // /var/log; the script it wraps is the one the official image runs.
  const debian = '/usr/lib/rabbitmq/bin';
  const found = [debian, ...dirs].find(
    (d) => has(d) && !readFileSync(join(d, 'rabbitmq-server'), 'utf8').includes('su rabbitmq'),
  );
  if (!found) throw new Error(`no rabbitmq-server script in ${[debian, ...dirs].join(', ')}`);
  return found;
}

/** The uid and gid to run the nodes as: ours, or the `rabbitmq` user's (Debian's package) when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = spawnSync('getent', ['passwd', 'rabbitmq'], { encoding: 'utf8' }).stdout?.split(':') ?? [];
  if (passwd.length < 4)
    throw new Error('running as root, and there is no `rabbitmq` user to run the nodes as');
  return { uid: Number(passwd[2]), gid: Number(passwd[3]) };
}

/** The processes of a process group, and every descendant of its leader (in case one left the group). */
function processesOf(leader: number): number[] {
  const found = new Set<number>();
  const stats: { pid: number; ppid: number; pgrp: number }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // State Z: a zombie is dead already.
      if (fields[0] === 'Z') continue;
      stats.push({ pid: Number(entry), ppid: Number(fields[1]), pgrp: Number(fields[2]) });
    } catch {
      // Gone meanwhile.
    }
  }
  for (const s of stats) if (s.pgrp === leader || s.pid === leader) found.add(s.pid);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of stats) {
      if (!found.has(s.pid) && found.has(s.ppid)) {
        found.add(s.pid);
        grew = true;
      }
    }
  }
  return [...found];
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** One node; LocalBroker runs and stops it. */
export class LocalBrokerNode {
  readonly index: number;
  /** The Erlang node name, `rabbit-<i>@localhost`. */
  readonly name: string;
  readonly amqpPort: number;
  readonly managementPort: number;
  readonly distPort: number;
  /** amqp://user:password@127.0.0.1:<amqpPort>/%2F (amqps:// with TLS) */
  readonly amqpUrl: string;
  /** http://127.0.0.1:<managementPort> (https:// with TLS) */
  readonly managementUrl: string;
  /** With TLS: what a client trusts and checks. */
  readonly clientTls: ClientTls | undefined;
  readonly admin: BrokerAdmin;
  /** The management API itself, for what BrokerAdmin does not ask (queue members, users). */
  readonly api: ManagementApi;
  /** The environment the start script runs with; the CLI tools run with it too (see LocalBroker.cli). */
  readonly env: Readonly<Record<string, string>>;
  /** The directory of this node's ConfigMap files. */
  readonly configDir: string;
  #log = '';
  #proc: ChildProcess | undefined;
  readonly #script: string;
  readonly #owner: { uid: number; gid: number } | undefined;

  constructor(o: {
    index: number;
    ports: { amqp: number; management: number; dist: number };
    root: string;
    user: string;
    password: string;
    env: Record<string, string>;
    owner: { uid: number; gid: number } | undefined;
    tls: ClientTls | undefined;
  }) {
    this.index = o.index;
    this.clientTls = o.tls;
    const secure = o.tls ? 's' : '';
    this.name = `rabbit-${o.index}@localhost`;
    this.amqpPort = o.ports.amqp;
    this.managementPort = o.ports.management;
    this.distPort = o.ports.dist;
    this.amqpUrl = `amqp${secure}://${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}@127.0.0.1:${this.amqpPort}/%2F`;
    this.managementUrl = `http${secure}://127.0.0.1:${this.managementPort}`;
    const login = {
      baseUrl: this.managementUrl,
      user: MONITORING_USER,
      password: MONITORING_PASSWORD,
      timeoutMs: 5000,
      ...o.tls,
    };
    this.admin = brokerAdmin(login);
    this.api = managementApi(login);
    const dir = join(o.root, `rabbit-${o.index}`);
    this.configDir = join(dir, 'config');
    this.#script = join(this.configDir, CONFIG_FILES.startScript);
    this.#owner = o.owner;
    const env: BrokerEnv = {
      RABBITMQ_NODENAME: this.name,
      RABBITMQ_USE_LONGNAME: 'false',
      HOME: join(dir, 'home'),
      CONFIG_DIR: this.configDir,
      CREDENTIALS_DIR: join(o.root, 'credentials'),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
      // The probes' CLI speaks TLS to a node whose distribution does (the pod's env, too).
      ...(o.tls ? { RABBITMQ_CTL_ERL_ARGS: distributionTlsArgs(this.configDir) } : {}),
    };
    this.env = { ...o.env, ...(env as Record<string, string>) };
  }

  /** LocalBroker.publish, on this node. */
  publish(queue: string, bodies: readonly string[]): Promise<void> {
    return withChannel(this.amqpUrl, (ch) => publishConfirmed(ch, queue, bodies), this.clientTls);
  }

  /** An AMQP URL of this node for another login. */
  urlFor(login: Login): string {
    const url = new URL(this.amqpUrl);
    url.username = encodeURIComponent(login.user);
    url.password = encodeURIComponent(login.password);
    return url.toString();
  }

  /** LocalBroker.publishAs, on this node. */
  publishAs(login: Login, queue: string, bodies: readonly string[]): Promise<void> {
    return withChannel(this.urlFor(login), (ch) => publishConfirmed(ch, queue, bodies), this.clientTls);
  }

  /** LocalBroker.take, on this node. */
  take(queue: string, count: number): Promise<string[]> {
    return withChannel(this.amqpUrl, (ch) => takeAcked(ch, queue, count), this.clientTls);
  }

  get running(): boolean {
    const p = this.#proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  /** Everything the script and the node wrote, across restarts (the last MiB). */
  get log(): string {
    return this.#log;
  }

  /** Runs the start script; resolves when the management API answers with the monitoring login. */
  async start(timeoutMs: number): Promise<void> {
    this.launch();
    await this.answering(timeoutMs);
  }

  /** Runs the start script, waiting for nothing. */
  launch(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const owner = this.#owner;
    const [cmd, args] = owner
      ? [
          'setpriv',
          [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups', '--', 'sh', this.#script],
        ]
      : ['sh', [this.#script]];
    const proc = spawn(cmd, args, { env: this.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = proc;
    const append = (chunk: Buffer) => {
      this.#log += chunk.toString();
      if (this.#log.length > LOG_LIMIT) this.#log = this.#log.slice(-LOG_LIMIT);
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
  }

  async answering(timeoutMs: number): Promise<void> {
    const proc = this.#proc!;
    await eventually(
      `${this.name} to answer its management API`,
      () => this.api.get('/api/overview').then(() => true),
      timeoutMs,
      250,
      () => (this.running ? undefined : `it exited (${proc.exitCode ?? proc.signalCode})`),
    ).catch((err: unknown) => {
      throw new Error(`${this.name} did not start; its log ends with:\n${this.#log.slice(-4000)}`, {
        cause: err,
      });
    });
  }

  cli(tool: string, args: string[], change: Record<string, string | undefined> = {}): Promise<CliResult> {
    const env = Object.fromEntries(
      Object.entries({ ...this.env, ...change }).filter((e): e is [string, string] => e[1] !== undefined),
    );
    const owner = this.#owner;
    const path = join(this.env.RABBITMQ_BIN!, tool);
    const [cmd, argv] = owner
      ? ['setpriv', [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--clear-groups', '--', path, ...args]]
      : [path, args];
    return new Promise((resolve) => {
      execFile(cmd, argv, { env, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });
  }

  async kill9(): Promise<void> {
    const proc = this.#proc;
    if (!proc || !this.running) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    // Stopped first, so nothing forks while we list what to kill.
    try {
      process.kill(-proc.pid!, 'SIGSTOP');
    } catch {
      // Already gone.
    }
    const all = processesOf(proc.pid!);
    killAll(all);
    await exited;
    await eventually(
      `the processes of ${this.name} to be gone`,
      () => processesOf(proc.pid!).length === 0,
      30_000,
      50,
    );
  }

  async shutdown(timeoutMs: number): Promise<void> {
    const proc = this.#proc;
    if (!proc || !this.running) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    // rabbitmq-server's own script traps TERM and stops the node cleanly.
    proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs, 'late')));
    const outcome = await Promise.race([exited, deadline]);
    clearTimeout(timer);
    if (outcome === 'late') {
      await this.kill9();
      throw new Error(`${this.name} did not stop within ${timeoutMs} ms; killed it`);
    }
    // The VM may outlive the script by a moment; the next start needs its ports.
    await eventually(
      `the processes of ${this.name} to be gone`,
      () => processesOf(proc.pid!).length === 0,
      timeoutMs,
      50,
    );
  }
}

/** One epmd for this harness's nodes, on a free loopback port. */
async function startEpmd(): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn('epmd', ['-port', String(port), '-address', '127.0.0.1'], {
    detached: true,
    stdio: 'ignore',
  });
  await eventually(
    `epmd on port ${port}`,
    () => portOpen(port),
    10_000,
    50,
    () => (proc.exitCode !== null || proc.signalCode !== null ? 'epmd exited' : undefined),
  );
  return { port, proc };
}

export async function startBroker(o: StartBrokerOptions): Promise<LocalBroker> {
  const user = o.user ?? DEFAULT_USER;
  const password = o.password ?? DEFAULT_PASSWORD;
  const timeoutMs = o.timeoutMs ?? 180_000;
  const bin = rabbitmqBinDir();
  const owner = runAs();
  const root = await mkdtemp(join(tmpdir(), 'rabbitmq-dataplane-'));
  let epmd: { port: number; proc: ChildProcess } | undefined;
  const nodes: LocalBrokerNode[] = [];

  const closeClients = () => Promise.all(nodes.map((n) => Promise.all([n.admin.close(), n.api.close()])));
  const stop = async () => {
    await closeClients();
    await Promise.all(nodes.map((n) => n.kill9()));
    if (epmd && epmd.proc.exitCode === null && epmd.proc.signalCode === null) {
      const exited = new Promise((resolve) => epmd!.proc.once('exit', resolve));
      epmd.proc.kill('SIGKILL');
      await exited;
    }
    await rm(root, { recursive: true, force: true });
  };

  let baseEnv: Record<string, string> = {};
  let tls: BrokerTls | undefined;
  /** Adds the nodes up to `size` (not started) and writes every node's files, naming all `size` peers. */
  const addNodes = async (size: number) => {
    const names = Array.from({ length: size }, (_, i) => `rabbit-${i}@localhost`);
    for (let index = nodes.length; index < size; index++) {
      const ports = { amqp: await freePort(), management: await freePort(), dist: await freePort() };
      const clientTls = tls ? { ca: tls.ca.cert, servername: BROKER_TLS_NAME } : undefined;
      nodes.push(
        new LocalBrokerNode({ index, ports, root, user, password, env: baseEnv, owner, tls: clientTls }),
      );
    }
    for (const node of nodes) {
      await mkdir(node.configDir, { recursive: true });
      const files = brokerConfigFiles({
        nodes: names,
        queues: o.queues,
        amqpPort: node.amqpPort,
        managementPort: node.managementPort,
        listenAddress: '127.0.0.1',
        definitionsFile: join(node.env.HOME!, 'definitions.json'),
        // The pod's arithmetic on the API's default limit and volume: 1Gi of memory, 5Gi of disk.
        memoryHighWatermarkBytes: memoryHighWatermarkBytes('1Gi'),
        diskFreeLimitBytes: diskFreeLimitBytes('5Gi', '1Gi'),
        ...(o.statsIntervalMs ? { statsIntervalMs: o.statsIntervalMs } : {}),
        ...(tls ? { tls: tls.files } : {}),
      });
      for (const [file, text] of Object.entries(files)) await writeFile(join(node.configDir, file), text);
    }
    if (owner) execFileSync('chown', ['-R', `${owner.uid}:${owner.gid}`, root]);
  };

  try {
    epmd = await startEpmd();
    const credentials = join(root, 'credentials');
    await mkdir(credentials, { mode: 0o700 });
    const secret = (file: string, value: string) =>
      writeFile(join(credentials, file), value, { mode: 0o400 });
    await secret(CREDENTIAL_FILES.username, user);
    await secret(CREDENTIAL_FILES.password, password);
    await secret(CREDENTIAL_FILES.monitoringUsername, MONITORING_USER);
    await secret(CREDENTIAL_FILES.monitoringPassword, MONITORING_PASSWORD);
    await secret(CREDENTIAL_FILES.operatorPassword, OPERATOR_PASSWORD);
    await secret(CREDENTIAL_FILES.erlangCookie, `cookie-${Math.random().toString(36).slice(2)}${Date.now()}`);

    if (o.tls) tls = await brokerTls(root, owner);
    baseEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      RABBITMQ_BIN: bin,
      ERL_EPMD_PORT: String(epmd.port),
    };
    await addNodes(o.nodes);

    // All at once, as a StatefulSet with podManagementPolicy Parallel starts its pods.
    await Promise.all(nodes.map((n) => n.start(timeoutMs)));
    await waitUntilFormed(nodes, o.queues, timeoutMs);
  } catch (err) {
    const logs = nodes.map((n) => `--- ${n.name}:\n${n.log.slice(-3000)}`).join('\n');
    await stop().catch(() => {});
    throw new Error(`the local broker did not come up:\n${logs}`, { cause: err });
  }

  const firstRunning = () => {
    const n = nodes.find((x) => x.running);
    if (!n) throw new Error('no broker node is running');
    return n;
  };
  const node = (i: number) => {
    const n = nodes[i];
    if (!n) throw new Error(`no node ${i}: the broker has ${nodes.length}`);
    return n;
  };
  return {
    nodes,
    admin: {
      queueDepth: (queue, vhost) => firstRunning().admin.queueDepth(queue, vhost),
      clusterNodes: () => firstRunning().admin.clusterNodes(),
      close: async () => void (await closeClients()),
    },
    publish: (queue, bodies) => firstRunning().publish(queue, bodies),
    take: (queue, count) => firstRunning().take(queue, count),
    publishAs: (login, queue, bodies) => firstRunning().publishAs(login, queue, bodies),
    setSecret: async (key, value) => {
      const file = join(root, 'credentials', key);
      if (value === undefined) return rm(file, { force: true });
      await writeFile(`${file}.new`, value, { mode: 0o400 });
      if (owner) execFileSync('chown', [`${owner.uid}:${owner.gid}`, `${file}.new`]);
      await rename(`${file}.new`, file);
    },
    amqpUrl: nodes[0]!.amqpUrl,
    tls,
    user,
    password,
    root,
    uid: owner?.uid,
    kill9: (i) => node(i).kill9(),
    shutdown: (i) => node(i).shutdown(timeoutMs),
    start: async (i, options) => {
      if (options?.wait === false) node(i).launch();
      else await node(i).start(timeoutMs);
    },
    cli: (i, tool, args, env) => node(i).cli(tool, args, env),
    scaleUp: async (to) => {
      const existing = [...nodes];
      if (to <= existing.length) throw new Error(`the broker has ${existing.length} nodes already`);
      await addNodes(to);
      await Promise.all(nodes.slice(existing.length).map((n) => n.start(timeoutMs)));
      for (const n of existing.reverse()) {
        await n.shutdown(timeoutMs);
        await n.start(timeoutMs);
      }
      await waitUntilFormed(nodes, o.queues, timeoutMs);
    },
    stop,
  };
}

/** Every node sees every other running, and every queue exists and reports statistics. */
async function waitUntilFormed(
  nodes: readonly LocalBrokerNode[],
  queues: readonly { readonly name: string }[],
  timeoutMs: number,
): Promise<void> {
  const all = nodes.map((n) => n.name).sort();
  for (const n of nodes) {
    await eventually(
      `${n.name} to see ${all.join(', ')} running`,
      async () => JSON.stringify(await n.admin.clusterNodes()) === JSON.stringify(all),
      timeoutMs,
      250,
    );
  }
  for (const q of queues) {
    await eventually(
      `statistics of queue ${q.name}`,
      () => nodes[0]!.admin.queueDepth(q.name),
      timeoutMs,
      250,
    );
  }
}

/** One AMQP connection and confirm channel for `use`, closed afterwards whatever happened. */
/**
 * A CA and a certificate for BROKER_TLS_NAME in `root`/tls, readable by the nodes' user (a pod's
 * Secret volume: root-owned, group-readable, here simply owned by that user).
 */
async function brokerTls(root: string, owner: { uid: number; gid: number } | undefined): Promise<BrokerTls> {
  const dir = join(root, 'tls');
  await mkdir(dir, { recursive: true });
  const ca = await issueCa('rabbitmq data-plane test CA', new Date());
  const files: BrokerTlsFiles = {
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    caFile: join(dir, 'ca.crt'),
  };
  const put = async (file: string, text: string) => {
    await writeFile(`${file}.new`, text, { mode: 0o400 });
    if (owner) execFileSync('chown', [`${owner.uid}:${owner.gid}`, `${file}.new`]);
    await rename(`${file}.new`, file);
  };
  const renew = async (pair: KeyPair) => {
    await put(files.keyFile, pair.key);
    await put(files.certFile, pair.cert);
  };
  await put(files.caFile, ca.cert);
  await renew(await issueServerCert(ca, BROKER_TLS_NAMES, new Date(), { clientAuth: true }));
  return { ca, files, renew };
}

async function withChannel<T>(
  url: string,
  use: (ch: amqp.ConfirmChannel) => Promise<T>,
  tls?: ClientTls,
): Promise<T> {
  const conn = await amqp.connect(url, {
    timeout: 10_000,
    ...(tls ? { ca: [tls.ca], servername: tls.servername } : {}),
  });
  // A broker that goes away mid-test must not become an unhandled 'error' event.
  conn.on('error', () => {});
  try {
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => {});
    const result = await use(ch);
    // The channel's close-ok comes after the broker handled everything sent on it before (the last
    // ack too); closing only the connection may drop what is still in flight.
    await ch.close();
    return result;
  } finally {
    await conn.close().catch(() => {});
  }
}

async function publishConfirmed(ch: amqp.ConfirmChannel, queue: string, bodies: readonly string[]) {
  let returned: string | undefined;
  ch.on('return', (m: amqp.Message) => (returned ??= m.fields.routingKey));
  for (const body of bodies) ch.sendToQueue(queue, Buffer.from(body), { persistent: true, mandatory: true });
  // A returned message is sent back before its confirm, so by now it has been seen.
  await ch.waitForConfirms();
  if (returned !== undefined)
    throw new Error(`queue ${JSON.stringify(returned)} in vhost "/" does not exist: message not routed`);
}

async function takeAcked(ch: amqp.ConfirmChannel, queue: string, count: number): Promise<string[]> {
  const bodies: string[] = [];
  while (bodies.length < count) {
    const m = await ch.get(queue, { noAck: false });
    if (m === false) break;
    bodies.push(m.content.toString());
    ch.ack(m);
  }
  return bodies;
}
