// The operator's entry point: flags, telemetry, the manager, leader election and graceful shutdown.
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { Kube } from './kube/client.ts';
import { Manager } from './controller/manager.ts';
import { defaultLeaseName, parseInstance } from './controller/instance.ts';
import { createHealthServer } from './runtime/health.ts';
import { LeaderElector, clientNodeLeaseStore, leaseBucket } from './runtime/leader-election.ts';
import { createLogger, parseLogLevel } from './runtime/log.ts';
import { createMetrics } from './runtime/metrics.ts';
import { TokenBucket, rateLimitedApiClient } from './runtime/rate-limiter.ts';
import { MANAGER } from './tiers/labels.ts';

const { values: flags } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    // One namespace, or all (the default). Scoped operators never touch each other's apps.
    'watch-namespace': { type: 'string', default: process.env.WATCH_NAMESPACE ?? '' },
    // Like an IngressClass: act only on apps labelled scalableapp.io/instance=<this>; with none (the
    // default), only on apps without that label. Two instances never act on one app (docs/adr/0012).
    instance: { type: 'string', default: process.env.SCALABLEAPP_INSTANCE ?? '' },
    'leader-elect': { type: 'boolean', default: false },
    'leader-election-namespace': {
      type: 'string',
      default: process.env.POD_NAMESPACE ?? 'scalableapp-system',
    },
    // Default: scalableapp-operator, or scalableapp-operator-<instance> (each instance leads alone).
    'leader-election-id': { type: 'string' },
    // The data tiers' NetworkPolicies admit pods of this namespace (failover, queue depths).
    'operator-namespace': { type: 'string', default: process.env.POD_NAMESPACE ?? 'scalableapp-system' },
    'lease-duration': { type: 'string', default: '15' },
    'renew-deadline': { type: 'string', default: '10' },
    'retry-period': { type: 'string', default: '2' },
    'metrics-bind-address': { type: 'string', default: ':8080' },
    concurrency: { type: 'string', default: '4' },
    // `simulated` where no container runs (the local KWOK cluster): cache servers are judged by pod readiness.
    'data-plane': { type: 'string', default: 'real' },
    'cache-failover-delay': { type: 'string', default: '5' },
    qps: { type: 'string', default: '20' },
    burst: { type: 'string', default: '40' },
    'relist-period': { type: 'string', default: '600' },
    'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
  },
});

const log = createLogger({ level: parseLogLevel(flags['log-level']) });
const int = (name: keyof typeof flags) => {
  const v = Number(flags[name]);
  if (!Number.isFinite(v) || v <= 0)
    throw new Error(`--${name} must be a positive number, got ${String(flags[name])}`);
  return v;
};

if (!['real', 'simulated'].includes(flags['data-plane']!)) {
  throw new Error(`--data-plane must be real or simulated, got ${flags['data-plane']}`);
}

const instance = parseInstance(flags.instance, '--instance (or SCALABLEAPP_INSTANCE)');
const leaseName = flags['leader-election-id'] || defaultLeaseName(instance);
if (flags['leader-elect'] && !leaseName) {
  throw new Error(
    `--instance ${instance} cannot be part of a Lease name (lowercase letters, digits, '-' and '.'): give --leader-election-id`,
  );
}

const kc = new KubeConfig();
if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
else kc.loadFromDefault();

const metrics = createMetrics();
const bucket = new TokenBucket({ qps: int('qps'), burst: Math.floor(int('burst')) });
const kube = new Kube(kc, MANAGER, {
  beforeRequest: () => bucket.acquire(),
  onRequest: (verb, resource, mutating) => {
    if (mutating) metrics.apiRequests.inc({ verb, resource });
  },
});
const manager = new Manager({
  kube,
  log,
  metrics,
  concurrency: Math.floor(int('concurrency')),
  relistPeriodMs: int('relist-period') * 1000,
  dataPlane: flags['data-plane'] === 'simulated' ? 'simulated' : 'real',
  cacheFailoverDelayMs: int('cache-failover-delay') * 1000,
  operatorNamespace: flags['operator-namespace']!,
  ...(flags['watch-namespace'] ? { namespace: flags['watch-namespace'] } : {}),
  ...(instance ? { instance } : {}),
});

const stop = new AbortController();
let exitCode = 0;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    log.info(`received ${sig}; shutting down`);
    stop.abort();
  });
}

const health = createHealthServer({
  registry: metrics.registry,
  readiness: () => manager.hasSynced() || 'caches not synced yet',
});
const [host, port] = (() => {
  const addr = flags['metrics-bind-address']!;
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i) || undefined, Number(addr.slice(i + 1))] as const;
})();
const boundPort = await health.start(port, host);
log.info('serving /healthz, /readyz and /metrics', { port: boundPort });

try {
  await manager.startCaches();
  if (flags['leader-elect']) {
    const namespace = flags['leader-election-namespace']!;
    const name = leaseName!;
    const identity = `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`;
    const elector = new LeaderElector(
      clientNodeLeaseStore(
        rateLimitedApiClient(kc, CoordinationV1Api, leaseBucket(int('retry-period'))),
        namespace,
        name,
      ),
      {
        leaseName: name,
        namespace,
        identity,
        leaseDurationSeconds: int('lease-duration'),
        renewDeadlineSeconds: int('renew-deadline'),
        retryPeriodSeconds: int('retry-period'),
        logger: log,
        onStartedLeading: (signal) => {
          log.info('became leader; starting workers', { identity });
          metrics.leaderElectionMasterStatus.set({ name }, 1);
          return manager.runWorkers(signal);
        },
        onStoppedLeading: () => {
          metrics.leaderElectionMasterStatus.set({ name }, 0);
          log.info('stopped leading', { identity });
        },
        onNewLeader: (leader) => log.info('leader observed', { leader }),
      },
    );
    const end = await elector.run(stop.signal);
    // Losing the lease without being asked to stop means another replica may already reconcile:
    // exit, as controller-runtime does, and let the restart rejoin as a follower.
    if (end === 'lost') exitCode = 1;
  } else {
    await manager.runWorkers(stop.signal);
  }
} catch (err) {
  log.error('operator failed', { err });
  exitCode = 1;
} finally {
  manager.stop();
  await health.close();
  log.info('stopped', { exitCode });
  process.exit(exitCode);
}
