// `helm test` of every chart, run for real on the real node: each chart installed with Helm alone
// (no operator acts on it) into a fresh namespace that enforces the restricted Pod Security Standard,
// with the images built here, volumes from the node's local-path provisioner and CPU requests small
// enough for a 2-core machine; its pods Running and Ready on the real node; then `helm test`, whose
// pods really run their checks through the chart's own NetworkPolicies (enforced here) and must pass.
//
// e2e/charts-*.test.ts cover the rest of each chart (upgrades, kept volumes, refusals) on simulated
// nodes, where they end the test pod themselves; here nothing is played: a test pod that cannot reach
// its server, or whose image lacks its client, fails the suite with its logs.
import { readFileSync } from 'node:fs';
import { helmIn, installChart } from './support/helm-releases.ts';
import { eventsWhere, eventually, json, tryKubectl } from './support/kube.ts';
import {
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  localImages,
  podStates,
  startProbe,
  type PodState,
} from './support/real-node.ts';
import { sample, scrapeFrom, scrapedPods } from './support/scrape.ts';
import { LOCAL_POSTGRES_MAJOR, LOCAL_STORAGE_CLASS, readImagesEnv } from '../tools/local-sample.ts';

interface Images {
  postgres: string;
  cache: string;
  rabbitmq: string;
  nginx: string;
  demoApp: string;
  demoConsumer: string;
  operator: string;
  /** Debian minbase with sh, coreutils and netcat-openbsd: the client of the HTTP tests. */
  toolbox: string;
  exporters: { postgres: string; cache: string; edgeCache: string };
}

let images: Images | undefined;
const img = (): Images => {
  if (images) return images;
  const local = localImages();
  // IMAGE_TOOLBOX and IMAGE_OPERATOR are not a sample's: read from images.env beside them.
  const env = readImagesEnv(['IMAGE_TOOLBOX', 'IMAGE_OPERATOR']);
  return (images = {
    postgres: local.IMAGE_POSTGRES,
    cache: local.IMAGE_CACHE,
    rabbitmq: local.IMAGE_RABBITMQ,
    nginx: local.IMAGE_NGINX,
    demoApp: local.IMAGE_DEMO_APP,
    demoConsumer: local.IMAGE_DEMO_CONSUMER,
    operator: env.IMAGE_OPERATOR!,
    toolbox: env.IMAGE_TOOLBOX!,
    exporters: {
      postgres: local.IMAGE_POSTGRES_EXPORTER,
      cache: local.IMAGE_CACHE_EXPORTER,
      edgeCache: local.IMAGE_NGINX_EXPORTER,
    },
  });
};

const REAL_NODE = readFileSync(new URL('../tools/node-env.sh', import.meta.url), 'utf8').match(
  /^NODE_NAME=(\S+)$/m,
)![1];

/** Small enough for the one real node: every chart's test pod and servers at once. */
const resources = (memoryRequest: string, memoryLimit: string) => ({
  requests: { cpu: '10m', memory: memoryRequest },
  limits: { memory: memoryLimit },
});
const storage = { size: '1Gi', storageClassName: LOCAL_STORAGE_CLASS };
/** The scraper of these tests: a pod of the demo image in the release's namespace (startProbe). */
const SCRAPER = { name: 'scraper', labels: { role: 'scraper' } };
/** Every chart with metrics serves them here: the exporters of the local images, the test's scraper. */
const monitoring = (exporter?: keyof Images['exporters']) => ({
  enabled: true,
  scrapers: [{ podSelector: { matchLabels: SCRAPER.labels } }],
  ...(exporter ? { exporterImages: { [exporter]: img().exporters[exporter] } } : {}),
});
const postgres = () => ({
  image: img().postgres,
  version: LOCAL_POSTGRES_MAJOR,
  resources: resources('256Mi', '512Mi'),
  storage,
});
const web = () => ({ image: img().demoApp, replicas: 1, resources: resources('128Mi', '256Mi') });
const queue = () => ({
  image: img().rabbitmq,
  replicas: 1,
  queues: [{ name: 'orders' }, { name: 'mail' }],
  resources: resources('512Mi', '1Gi'),
  storage,
});

interface Release {
  chart: string;
  release: string;
  values: () => object;
}
interface ChartCase extends Release {
  /** Releases installed first, in this order: an edge cache's origin, the consumers' queue. */
  before?: Release[];
}

const cases: ChartCase[] = [
  {
    chart: 'cache',
    release: 'shop',
    values: () => ({
      image: img().cache,
      replicas: 2,
      resources: resources('256Mi', '256Mi'),
      monitoring: monitoring('cache'),
    }),
  },
  {
    chart: 'web',
    release: 'shop',
    values: () => ({ ...web(), replicas: 2, test: { image: img().toolbox } }),
  },
  {
    chart: 'edge-cache',
    release: 'shop',
    // The proxy resolves its origin's Service at start: the web tier comes first, as another release.
    before: [{ chart: 'web', release: 'site', values: web }],
    values: () => ({
      image: img().nginx,
      replicas: 2,
      assetVersion: '1.2',
      web: { release: 'site' },
      resources: resources('64Mi', '128Mi'),
      monitoring: monitoring('edgeCache'),
      test: { image: img().toolbox },
    }),
  },
  {
    chart: 'database',
    release: 'shop',
    values: () => ({ ...postgres(), replicas: 1, monitoring: monitoring('postgres') }),
  },
  {
    chart: 'shards',
    release: 'shop',
    values: () => ({
      ...postgres(),
      count: 2,
      key: 'user_id',
      replicasPerShard: 1,
      monitoring: monitoring('postgres'),
    }),
  },
  {
    chart: 'queue',
    release: 'shop',
    // The broker's image for the test: it speaks TLS with openssl (Debian's rabbitmq-server needs it).
    values: () => ({ ...queue(), monitoring: monitoring(), test: { image: img().rabbitmq } }),
  },
  {
    chart: 'consumers',
    release: 'shop-workers',
    before: [{ chart: 'queue', release: 'shop', values: queue }],
    values: () => ({
      queue: { release: 'shop' },
      consumers: [
        { name: 'orders', image: img().demoConsumer, queue: 'orders', replicas: 1 },
        // Autoscaled without KEDA: runs one replica, which the test expects attached too.
        { name: 'mailer', image: img().demoConsumer, queue: 'mail', autoscaling: { maxReplicas: 2 } },
      ].map((c) => ({ ...c, resources: resources('128Mi', '256Mi') })),
      // The broker's image: its test speaks TLS to the broker with openssl, which the toolbox lacks.
      test: { image: img().rabbitmq },
    }),
  },
  {
    // Beside the operator of scalableapp-system: its own namespace, an instance of its own (it acts on
    // no app without the label scalableapp.io/instance=real-charts), only that namespace watched (a
    // Role, nothing cluster-wide), and the CRD left to the installed operator (crds.install=false).
    chart: 'operator',
    release: 'sapp-op',
    values: () => {
      const ref = img().operator;
      const colon = ref.lastIndexOf(':');
      return {
        image: { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) },
        crds: { install: false },
        instance: 'real-charts',
        watchNamespace: currentNs,
        replicas: 1,
        resources: resources('96Mi', '256Mi'),
        tests: { image: img().toolbox },
      };
    },
  },
];

let currentNs = '';
const durations: string[] = [];
const seconds = (since: number) => `${Math.round((Date.now() - since) / 1000)}s`;

/**
 * Waits until every pod of the namespace is Running with every container ready, as the real node's
 * kubelet reports it: each container status names its containerd container, and stays so for three
 * polls in a row. Neither `helm --wait` nor a pod's Ready condition alone is enough here: the KWOK
 * controller of this cluster also writes the status of pods on the real node (kwok-controller runs
 * with --manage-all-nodes), marking them Running and Ready before their containers even start, until
 * the kubelet writes again.
 */
async function kubeletReady(ns: string): Promise<PodState[]> {
  let streak = 0;
  return eventually(
    `every pod in ${ns} running and ready, as its kubelet reports`,
    () => {
      const list = json<{ items: any[] }>(['get', 'pods', '-n', ns]).items;
      const ok =
        list.length > 0 &&
        list.every(
          (p) =>
            p.status.phase === 'Running' &&
            p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') &&
            (p.status.containerStatuses ?? []).length === p.spec.containers.length &&
            p.status.containerStatuses.every(
              (c: any) => c.ready && c.state?.running && String(c.containerID).startsWith('containerd://'),
            ),
        );
      streak = ok ? streak + 1 : 0;
      return streak >= 3 && podStates(ns);
    },
    600_000,
    2000,
  );
}

/** What a failure message needs: every pod's state, the events of the troubled ones, test pods' logs. */
function diagnose(ns: string): string {
  const out: string[] = [];
  const pods = podStates(ns);
  out.push(`pods in ${ns}:`);
  for (const p of pods) {
    out.push(`  ${p.name} on ${p.node || '-'}: ${p.phase}${p.ready ? ', ready' : ''}`);
    for (const c of p.containers)
      if (!c.ready) out.push(`    ${c.name}: restarts ${c.restarts}${c.waiting ? `, ${c.waiting}` : ''}`);
  }
  for (const p of pods) {
    const test = /-test(-readyz)?$/.test(p.name);
    if (!test && p.ready) continue;
    const events = eventsWhere(ns, `involvedObject.name=${p.name}`);
    out.push(`events of ${p.name}:`, ...events.map((e) => `  ${e.reason}: ${e.message}`));
    const logs = tryKubectl(['logs', '-n', ns, p.name, '--all-containers', '--tail=40']);
    out.push(`logs of ${p.name}:`, logs.ok ? logs.stdout : logs.stderr);
  }
  return out.join('\n');
}

function install(ns: string, r: Release): void {
  const started = Date.now();
  const result = installChart(r.chart, r.release, ns, r.values());
  if (!result.ok) {
    throw new Error(
      `helm install ${r.release} (charts/${r.chart}) failed:\n${result.stderr}\n${diagnose(ns)}`,
    );
  }
  durations.push(`${r.chart} (${r.release}): installed and ready in ${seconds(started)}`);
}

/** What each tier's metrics say of a live server. */
const LIVE: Record<string, (text: string) => boolean> = {
  database: (t) => sample(t, 'pg_up') === 1 && sample(t, 'pg_exporter_last_scrape_error') === 0,
  shard: (t) => sample(t, 'pg_up') === 1 && sample(t, 'pg_exporter_last_scrape_error') === 0,
  cache: (t) => sample(t, 'redis_up') === 1,
  'edge-cache': (t) => sample(t, 'nginx_up') === 1,
  queue: (t) => /^rabbitmq_queue_messages_ready\{[^}]*queue="orders"/m.test(t),
};

/**
 * Every pod annotated for scraping answers the scraper with the series of its live server: the
 * exporter runs, logs in with the chart's monitor credentials, and the chart's NetworkPolicy admits
 * the scraper named in monitoring.scrapers.
 */
async function exportersUp(ns: string): Promise<void> {
  const pods = scrapedPods(ns);
  if (pods.length === 0) return;
  const failures: string[] = [];
  await eventually(
    `every metrics endpoint in ${ns} with live series`,
    () => {
      failures.length = 0;
      for (const p of pods) {
        const text = scrapeFrom(ns, SCRAPER.name, `http://${p.host}:${p.port}${p.path}`);
        if (!LIVE[p.component]?.(text)) failures.push(`${p.name} (${p.component}): ${text.slice(0, 300)}`);
      }
      return failures.length === 0;
    },
    180_000,
    5000,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${failures.join('\n')}\n${diagnose(ns)}`);
  });
  durations.push(`${ns}: ${pods.length} metrics endpoints answered the scraper`);
}

describeReal('helm test of every chart, run on the real node', () => {
  afterAll(() => {
    if (durations.length) console.log(`durations:\n  ${durations.join('\n  ')}`);
  });

  it.each(cases.map((c) => [c.chart, c] as const))(
    '%s: installs with the local images, its pods run on the real node, and `helm test` passes',
    async (_name, c) => {
      const ns = createRealNamespace(`real-chart-${c.chart}`);
      currentNs = ns;
      const started = Date.now();
      try {
        startProbe(ns, SCRAPER.name, SCRAPER.labels);
        for (const r of [...(c.before ?? []), c]) install(ns, r);
        // Every pod on the real node, every container ready as its kubelet says (see kubeletReady).
        const readyFrom = Date.now();
        const pods = await kubeletReady(ns);
        durations.push(
          `${c.chart}: every pod ready on the real node ${seconds(readyFrom)} after helm returned`,
        );
        for (const p of pods) expect({ pod: p.name, node: p.node }).toEqual({ pod: p.name, node: REAL_NODE });
        await exportersUp(ns);

        const testStarted = Date.now();
        const test = helmIn(['test', c.release, '-n', ns, '--timeout', '5m', '--logs']);
        durations.push(`${c.chart}: helm test ${test.ok ? 'passed' : 'FAILED'} in ${seconds(testStarted)}`);
        if (!test.ok) {
          throw new Error(
            `helm test ${c.release} in ${ns} failed:\n${test.stdout}\n${test.stderr}\n${diagnose(ns)}`,
          );
        }
        // One suite per test pod, each Succeeded; --logs printed what each checked.
        expect(test.stdout).toMatch(/Phase:\s+Succeeded/);
        expect(test.stdout).not.toMatch(/Phase:\s+Failed/);
        console.log(`helm test ${c.release} (charts/${c.chart}):\n${test.stdout}`);

        for (const r of [c, ...[...(c.before ?? [])].reverse()]) {
          const down = helmIn(['uninstall', r.release, '-n', ns, '--wait', '--timeout', '3m']);
          expect({ release: r.release, ok: down.ok, stderr: down.stderr }).toMatchObject({
            release: r.release,
            ok: true,
          });
        }
      } finally {
        // Volumes and kept Secrets go with the namespace; waiting gives the next chart the node's CPU.
        deleteNamespaceAndWait(ns);
        durations.push(`${c.chart}: whole case (namespace deleted) ${seconds(started)}`);
      }
    },
    20 * 60_000,
  );
});
