// Runs the operator under test as a child process (as it runs in a pod, with its ServiceAccount's
// token and RBAC), scoped to one namespace so test files never touch each other's apps, and to the
// instance `e2e` (docs/adr/0012) so it acts only on the apps the tests label for it (e2e/support/apps.ts),
// and the default operator of `npm run up`, watching every namespace, never on them.
import { freePort } from './free-port.ts';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { eventually, kubectl, KUBECONFIG } from './kube.ts';
import { E2E_INSTANCE } from './apps.ts';

const root = new URL('../../', import.meta.url).pathname;
let saKubeconfig: string | undefined;

/** The kubeconfig of the operator's ServiceAccount (installs CRD, namespace and RBAC first). */
export function operatorKubeconfig(): string {
  saKubeconfig ??= execFileSync('bash', [`${root}tools/operator-local.sh`, 'kubeconfig'], {
    encoding: 'utf8',
  }).trim();
  return saKubeconfig;
}

const accountKubeconfigs = new Map<string, string>();

/**
 * A kubeconfig holding a token of ServiceAccount `namespace/name` (one some test installed, e.g. with a
 * chart), so the operator runs with exactly that account's RBAC. Written once per account, owner-only.
 */
export function serviceAccountKubeconfig(account: { name: string; namespace: string }): string {
  const key = `${account.namespace}/${account.name}`;
  const known = accountKubeconfigs.get(key);
  if (known) return known;
  const admin = new KubeConfig();
  admin.loadFromFile(KUBECONFIG);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error(`${KUBECONFIG} has no current cluster`);
  const token = kubectl(['create', 'token', account.name, '-n', account.namespace, '--duration=2h']).trim();
  const path = join(mkdtempSync(join(tmpdir(), 'scalableapp-sa-')), 'kubeconfig');
  const ca = cluster.caData
    ? { 'certificate-authority-data': cluster.caData }
    : cluster.caFile
      ? { 'certificate-authority': cluster.caFile }
      : {};
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: cluster.server, ...ca } }],
    users: [{ name: account.name, user: { token } }],
    contexts: [
      { name: 'account', context: { cluster: 'local', user: account.name, namespace: account.namespace } },
    ],
    'current-context': 'account',
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
  accountKubeconfigs.set(key, path);
  return path;
}

export interface OperatorProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  /** The lines read so far; see output() for everything written until now. */
  readonly logs: string[];
  /**
   * Every line the operator has written until now. Lines reach `logs` only when this process's event
   * loop reads the pipe, which a run of synchronous kubectl calls can hold off for seconds: this
   * yields to the loop first, so a check made right after an observed effect sees its log line.
   */
  output(): Promise<string>;
  metrics(): Promise<string>;
  /** Sum of a counter (all label sets matching `labels`). */
  counter(name: string, labels?: Record<string, string>): Promise<number>;
  ready(): Promise<boolean>;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startOperator(opts: {
  namespace: string;
  leaseName?: string;
  extraArgs?: string[];
  /**
   * The operator's instance: `e2e` by default, the label e2e/support/apps.ts puts on every app; null
   * runs it without one (it then acts only on apps without the label, as the default operator does).
   */
  instance?: string | null;
  /**
   * Run as this ServiceAccount (its lease in its namespace, where the operator's Role for leases is)
   * instead of manifests/operator's scalableapp-system/scalableapp-operator.
   */
  serviceAccount?: { name: string; namespace: string };
}): Promise<OperatorProcess> {
  const port = await freePort();
  const instance = opts.instance === undefined ? E2E_INSTANCE : opts.instance;
  const args = [
    'operator/main.ts',
    '--kubeconfig',
    opts.serviceAccount ? serviceAccountKubeconfig(opts.serviceAccount) : operatorKubeconfig(),
    '--watch-namespace',
    opts.namespace,
    ...(instance === null ? [] : ['--instance', instance]),
    '--metrics-bind-address',
    `127.0.0.1:${port}`,
    '--leader-elect',
    '--leader-election-namespace',
    opts.serviceAccount?.namespace ?? 'scalableapp-system',
    // The operator under test runs outside the cluster and cannot reach pod addresses (on kwok there
    // are no servers at all): it judges data servers by pod readiness, which the tests drive.
    '--data-plane',
    'simulated',
    '--leader-election-id',
    opts.leaseName ?? `scalableapp-${opts.namespace}`,
    ...(opts.extraArgs ?? []),
  ];
  // The instance is the flag's alone: none inherited from this environment.
  const { SCALABLEAPP_INSTANCE: _inherited, ...env } = process.env;
  const proc = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  for (const stream of [proc.stdout!, proc.stderr!]) {
    // A read can end inside a line: keep the tail until its newline comes.
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      logs.push(...lines.filter(Boolean));
    });
    stream.on('end', () => partial && logs.push(partial));
  }
  const exited = once(proc, 'exit');
  const metrics = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return res.text();
  };
  const op: OperatorProcess = {
    proc,
    port,
    logs,
    async output() {
      // Two turns of the loop: the first polls the pipes, the second runs what the reads queued.
      for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 50));
      return logs.join('\n');
    },
    metrics,
    async counter(name, labels = {}) {
      const text = await metrics();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    },
    async ready() {
      try {
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
      } catch {
        return false;
      }
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
  await eventually(
    'the operator to be ready',
    async () => {
      if (proc.exitCode !== null)
        throw new Error(`operator exited with ${proc.exitCode}: ${logs.slice(-5).join('\n')}`);
      return op.ready();
    },
    60_000,
    200,
  );
  return op;
}

/** Whether this process currently leads (from its own metric). */
export async function isLeader(op: OperatorProcess): Promise<boolean> {
  return (await op.counter('leader_election_master_status')) === 1;
}
