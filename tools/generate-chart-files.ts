// Writes the texts the charts ship under files/ that the operator generates in TypeScript (start
// scripts, pg_hba.conf, the broker's fixed config files): Helm cannot run the operator's functions, so
// each chart reads a copy, written here from the very call the operator's builder makes. `--check`
// fails when a copy on disk differs (tools/test.sh runs it beside the schema check, and
// charts/test/chart-files.test.ts), so a change to a server text cannot land without its copies.
//
// To add a copy: add one entry to CHART_FILES.
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { hbaConfig } from '../operator/server-config/postgres.ts';
import { instanceStartScript } from '../operator/server-config/postgres-instance-script.ts';
import { instanceReadyScript } from '../operator/server-config/postgres-ready-script.ts';
import {
  advancedConfig,
  brokerStartScript,
  enabledPlugins,
  interNodeTlsConfig,
} from '../operator/server-config/rabbitmq.ts';
import { SERVER_TLS_PATHS } from '../operator/tiers/tls.ts';
import { CACHE_ACL } from '../operator/server-config/cache.ts';
import { APP_DATABASE, APP_LOGINS, APP_USER } from '../operator/tiers/postgres-cluster.ts';
import { POSTGRES_EXPORTER_QUERIES } from '../operator/tiers/monitoring.ts';
import { alertRulesFile, alertRulesTemplate } from '../operator/monitoring/alert-rules.ts';
import { DASHBOARDS, dashboardFile } from '../operator/monitoring/dashboards.ts';
import { CACHE_PEER_DOMAIN_PLACEHOLDER, readyScriptText, startScriptText } from '../operator/tiers/cache.ts';

export interface ChartFile {
  /** The file's path under charts/. */
  readonly path: string;
  /** The operator's call that writes the same text, as its builder makes it (for messages). */
  readonly source: string;
  readonly text: () => string;
}

/** Every combination of the hba options a chart chooses between, in the order of the file names' parts. */
const HBA_VARIANTS = [false, true].flatMap((fenced) =>
  [false, true].flatMap((monitor) => [false, true].map((tls) => ({ fenced, monitor, tls }))),
);

export const CHART_FILES: readonly ChartFile[] = [
  // pgConfigMap() in operator/tiers/postgres-cluster.ts; scalableapp-lib/templates/_postgres.tpl
  // reads them for the database tier and every shard.
  {
    path: 'scalableapp-lib/files/postgres/start.sh',
    source: 'instanceStartScript() in operator/server-config/postgres-instance-script.ts',
    text: () => instanceStartScript({ appUser: APP_USER, appDatabase: APP_DATABASE }),
  },
  // pg_hba.conf and its fenced twin, in every variant a chart may need: with spec.monitoring they
  // also admit the exporter's role from loopback (monitor: true), with TLS (on by default) they
  // admit TCP clients over TLS only (hostssl). scalableapp-lib's `postgres.hba` template picks the
  // copy by the chart's `monitoring.enabled` and `tls.enabled`.
  ...HBA_VARIANTS.map(({ fenced, monitor, tls }) => {
    const options = { fenced, monitor, tls };
    const given = Object.entries(options).filter(([, on]) => on);
    const suffix = given.map(([name]) => `.${name}`).join('');
    return {
      path: `scalableapp-lib/files/postgres/pg_hba${suffix}.conf`,
      source: `hbaConfig(${given.length ? `{ ${given.map(([n]) => `${n}: true`).join(', ')} }` : ''}) in operator/server-config/postgres.ts`,
      text: () =>
        hbaConfig({ appUsers: APP_LOGINS, appDatabase: APP_DATABASE, cidr: '0.0.0.0/0', ...options }),
    };
  }),
  {
    path: 'scalableapp-lib/files/postgres/exporter-queries.yaml',
    source: 'POSTGRES_EXPORTER_QUERIES in operator/tiers/monitoring.ts',
    text: () => POSTGRES_EXPORTER_QUERIES,
  },
  {
    path: 'scalableapp-lib/files/postgres/ready.sh',
    source: 'instanceReadyScript() in operator/server-config/postgres-ready-script.ts',
    text: () => instanceReadyScript(),
  },
  // cacheConfigMap() in operator/tiers/cache.ts; charts/cache/templates/_spec.tpl puts the release's
  // headless Service domain in place of the placeholder.
  {
    path: 'cache/files/start.sh',
    source: 'startScriptText() in operator/tiers/cache.ts',
    text: () => startScriptText(CACHE_PEER_DOMAIN_PLACEHOLDER),
  },
  {
    path: 'cache/files/ready.sh',
    source: 'readyScriptText() in operator/tiers/cache.ts',
    text: () => readyScriptText(),
  },
  // What each cache login may run: charts/cache writes auth.conf from it, and hashes it into the
  // config hash as cacheConfigHash() does (a server reads its users only at start).
  {
    path: 'cache/files/acl.json',
    source: 'CACHE_ACL in operator/server-config/cache.ts',
    text: () => `${JSON.stringify(CACHE_ACL, null, 2)}\n`,
  },
  // With TLS (on by default) the probe asks over TLS and makes the server load a renewed
  // certificate; charts/cache picks this copy by its `tls.enabled`.
  {
    path: 'cache/files/ready.tls.sh',
    source: 'readyScriptText(true) in operator/tiers/cache.ts',
    text: () => readyScriptText(true),
  },
  // brokerConfigFiles() in operator/server-config/rabbitmq.ts: the texts that take no input
  // (rabbitmq.conf and definitions.json name nodes and queues, so charts/queue templates them).
  {
    path: 'queue/files/start.sh',
    source: 'brokerStartScript() in operator/server-config/rabbitmq.ts',
    text: brokerStartScript,
  },
  {
    path: 'queue/files/advanced.config',
    source: 'advancedConfig() in operator/server-config/rabbitmq.ts',
    text: () => advancedConfig(),
  },
  {
    path: 'queue/files/enabled_plugins',
    source: 'enabledPlugins() in operator/server-config/rabbitmq.ts',
    text: () => enabledPlugins(),
  },
  // With spec.monitoring the Prometheus plugin too: charts/queue picks this copy when its
  // `monitoring.enabled` is set.
  {
    path: 'queue/files/enabled_plugins.prometheus',
    source: 'enabledPlugins({ prometheus: true }) in operator/server-config/rabbitmq.ts',
    text: () => enabledPlugins({ prometheus: true }),
  },
  // With TLS (on by default) the Erlang distribution's options, for the certificate mounted where
  // every TLS server has it: charts/queue adds this file when its `tls.enabled` is set.
  {
    path: 'queue/files/inter-node-tls.config',
    source: 'interNodeTlsConfig(SERVER_TLS_PATHS) in operator/server-config/rabbitmq.ts',
    text: () => interNodeTlsConfig(SERVER_TLS_PATHS),
  },
  // The alerts for every app: the operator chart's PrometheusRule reads them, and a Prometheus
  // without the Prometheus Operator loads the file as it is.
  {
    path: 'operator/files/prometheus-rules.yaml',
    source: 'alertRulesFile() in operator/monitoring/alert-rules.ts',
    text: alertRulesFile,
  },
  // The same with a placeholder for each threshold, which the chart's PrometheusRule fills in from
  // metrics.prometheusRule.thresholds.
  {
    path: 'operator/files/prometheus-rules-template.yaml',
    source: 'alertRulesTemplate() in operator/monitoring/alert-rules.ts',
    text: alertRulesTemplate,
  },
  // The dashboards: the operator chart ships each as a ConfigMap for Grafana's sidecar.
  ...DASHBOARDS.map((d) => ({
    path: `operator/files/dashboards/${d.uid}.json`,
    source: `DASHBOARDS (${d.uid}) in operator/monitoring/dashboards.ts`,
    text: () => dashboardFile(d),
  })),
];

export const chartFileUrl = (path: string) => new URL(`../charts/${path}`, import.meta.url);

/** Why the copy on disk is stale (naming the first line that differs), or undefined when it is not. */
export function chartFileDrift(entry: ChartFile): string | undefined {
  let current: string;
  try {
    current = readFileSync(chartFileUrl(entry.path), 'utf8');
  } catch {
    return `charts/${entry.path} is missing: run \`npm run generate\``;
  }
  const wanted = entry.text();
  if (current === wanted) return undefined;
  const [have, want] = [current.split('\n'), wanted.split('\n')];
  let at = have.findIndex((line, i) => line !== want[i]);
  if (at < 0) at = have.length;
  return (
    `charts/${entry.path} differs from ${entry.source} at line ${at + 1}: ` +
    `${JSON.stringify(have[at] ?? '<end of file>')} ≠ ${JSON.stringify(want[at] ?? '<end of file>')}; ` +
    'run `npm run generate`'
  );
}

function main() {
  if (!process.argv.includes('--check')) {
    for (const entry of CHART_FILES) {
      writeFileSync(chartFileUrl(entry.path), entry.text());
      console.log(`wrote charts/${entry.path}`);
    }
    return;
  }
  const drift = CHART_FILES.map(chartFileDrift).filter((d) => d !== undefined);
  for (const d of drift) console.error(d);
  if (drift.length > 0) process.exit(1);
  console.log(`${CHART_FILES.length} chart files are up to date`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
