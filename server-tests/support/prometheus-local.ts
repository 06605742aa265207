// A real Prometheus server on 127.0.0.1 scraping static targets, for the data-plane tests of the
// tiers' metrics (server-tests/monitoring.test.ts): what an exporter's endpoint looks like to the
// scraper that will read it, not only to curl. Prometheus comes from tools/dataplane-deps.sh
// (Debian's 2.42, promtool with it).
//
//   const prom = await startPrometheus({ jobs: [{ name: 'cache', targets: ['127.0.0.1:9121'] }] });
//   await prom.query('redis_up');          // [{ metric: { job: 'cache', ... }, value: 1 }]
//   await prom.targets();                  // every active target: its job, health and last error
//   await prom.stop();                     // kills it and removes its directory
//
// The server listens on loopback only, on a port free at start, with its TSDB in a temporary
// directory; the targets may come up after it does (they are down until then, as in a cluster).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { eventually } from '../../e2e/support/eventually.ts';
import { freePort } from '../../e2e/support/free-port.ts';

export type ScrapeJob = {
  name: string;
  /** host:port of each target. */
  targets: readonly string[];
  /** Added to every series of the job's targets. */
  labels?: Readonly<Record<string, string>>;
  /** Default /metrics. */
  metricsPath?: string;
};

export type StartPrometheusOptions = {
  jobs: readonly ScrapeJob[];
  /** Scrape (and rule evaluation) interval; the scrape timeout is the same. Default 1. */
  scrapeIntervalSeconds?: number;
  /** How long to wait for /-/ready. A deadline against hangs, not a target. Default 60 s. */
  timeoutMs?: number;
};

/** One series of an instant query: its labels and its value now. */
export type Sample = { metric: Record<string, string>; value: number };

/** What /api/v1/targets says of one active target. */
export type Target = {
  job: string;
  instance: string;
  labels: Record<string, string>;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  lastScrapeDuration: number;
  scrapeUrl: string;
};

export interface LocalPrometheus {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly pid: number;
  /** The prometheus.yml it runs with. */
  readonly config: string;
  /** An instant query: every series it returns, with its value as a number. */
  query(promql: string): Promise<Sample[]>;
  /** The value of a query that returns one series; undefined while it returns none. */
  value(promql: string): Promise<number | undefined>;
  targets(): Promise<Target[]>;
  /** What the server wrote (the last MiB). */
  log(): string;
  stop(): Promise<void>;
}

const LOG_LIMIT = 1 << 20;
const REQUEST_TIMEOUT_MS = 5000;

/** A binary of tools/dataplane-deps.sh's packages: the first directory it prints that has it. */
export function dataplaneBinary(name: string): string {
  const script = new URL('../../tools/dataplane-deps.sh', import.meta.url).pathname;
  let dirs: string[];
  try {
    dirs = execFileSync('bash', [script, '--print'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (err) {
    throw new Error(`${name} is not installed: run \`bash tools/dataplane-deps.sh\``, { cause: err });
  }
  const found = dirs.map((d) => join(d, name)).find((p) => existsSync(p));
  if (!found) throw new Error(`no ${name} in ${dirs.join(', ')}: run \`bash tools/dataplane-deps.sh\``);
  return found;
}

/** prometheus.yml for static targets: one scrape config per job. */
export function prometheusConfig(jobs: readonly ScrapeJob[], intervalSeconds = 1): string {
  if (jobs.length === 0) throw new Error('at least one job is required');
  const interval = `${intervalSeconds}s`;
  return stringify({
    // The timeout may not exceed the interval; a loopback scrape that needs a whole second is broken.
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: jobs.map((j) => ({
      job_name: j.name,
      metrics_path: j.metricsPath ?? '/metrics',
      static_configs: [{ targets: [...j.targets], ...(j.labels ? { labels: { ...j.labels } } : {}) }],
    })),
  });
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (!res.ok || body.status !== 'success') {
    throw new Error(`GET ${url}: ${res.status} ${body.error ?? JSON.stringify(body).slice(0, 500)}`);
  }
  return body.data;
}

type VectorResult = {
  resultType: string;
  result: { metric: Record<string, string>; value: [number, string] }[];
};
type TargetsResult = {
  activeTargets: {
    labels: Record<string, string>;
    scrapePool: string;
    scrapeUrl: string;
    health: Target['health'];
    lastError: string;
    lastScrapeDuration: number;
  }[];
};

export async function startPrometheus(o: StartPrometheusOptions): Promise<LocalPrometheus> {
  const [prometheus, promtool] = [dataplaneBinary('prometheus'), dataplaneBinary('promtool')];
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-dataplane-'));
  const configFile = join(dir, 'prometheus.yml');
  const config = prometheusConfig(o.jobs, o.scrapeIntervalSeconds);
  await writeFile(configFile, config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  let proc: ChildProcess | undefined;

  const stop = async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      // A clean shutdown writes the head block; a test has no use for it past a few seconds.
      const timer = setTimeout(() => proc?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    // A config Prometheus would refuse is reported with promtool's reason, not as a server that
    // never gets ready.
    execFileSync(promtool, ['check', 'config', configFile], { encoding: 'utf8', stdio: 'pipe' });
    const p = spawn(
      prometheus,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc = p;
    const append = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.length > LOG_LIMIT) log = log.slice(-LOG_LIMIT);
    };
    p.stdout!.on('data', append);
    p.stderr!.on('data', append);
    await eventually(
      `Prometheus on ${url} to be ready`,
      async () => (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).ok,
      o.timeoutMs ?? 60_000,
      100,
      () =>
        p.exitCode !== null || p.signalCode !== null
          ? `it exited (${p.exitCode ?? p.signalCode})`
          : undefined,
    );
  } catch (err) {
    await stop();
    throw new Error(`Prometheus did not start; its log ends with:\n${log.slice(-4000)}`, { cause: err });
  }

  const query = async (promql: string): Promise<Sample[]> => {
    const data = await getJson<VectorResult>(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    if (data.resultType !== 'vector') throw new Error(`${promql} is a ${data.resultType}, not a vector`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };

  return {
    url,
    pid: proc.pid!,
    config,
    query,
    async value(promql) {
      const samples = await query(promql);
      if (samples.length > 1) throw new Error(`${promql} returned ${samples.length} series, not one`);
      return samples[0]?.value;
    },
    async targets() {
      const data = await getJson<TargetsResult>(`${url}/api/v1/targets?state=active`);
      return data.activeTargets.map((t) => ({
        job: t.scrapePool,
        instance: t.labels.instance ?? '',
        labels: t.labels,
        health: t.health,
        lastError: t.lastError,
        lastScrapeDuration: t.lastScrapeDuration,
        scrapeUrl: t.scrapeUrl,
      }));
    },
    log: () => log,
    stop,
  };
}
