// spec.monitoring on the real node: every exporter (and RabbitMQ's own endpoint) answers a scraper
// with the series of a live server, the NetworkPolicies let the named scraper in and nobody else,
// and with monitoring off no exporter, annotation or scraper rule is left.
import { stringify } from 'yaml';
import { getApp, isReadyAtGeneration } from './support/apps.ts';
import { eventually, json, kubectl } from './support/kube.ts';
import {
  allPodsReady,
  connectFrom,
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  installInClusterOperator,
  localApp,
  startProbe,
} from './support/real-node.ts';
import { METRICS_PORT } from '../operator/tiers/monitoring.ts';
import { sample, scrapeFrom, scrapedPods } from './support/scrape.ts';

const APP = 'watched';
let ns: string;
let scrapers: string;

const spec = (enabled: boolean) => ({
  web: { image: 'placeholder', port: 8080, replicas: 1, healthCheck: { path: '/healthz' } },
  edgeCache: { replicas: 1 },
  cache: { replicas: 0 },
  database: { replicas: 1 },
  queue: { replicas: 1, queues: [{ name: 'orders' }] },
  monitoring: {
    enabled,
    // A scraper of the tests' own: pods labelled role=scraper in the scrapers' namespace.
    scrapers: [
      {
        podSelector: { matchLabels: { role: 'scraper' } },
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'SCRAPERS' } },
      },
    ],
  },
});

const apply = (enabled: boolean) => {
  const app = localApp(APP, spec(enabled));
  app.spec.monitoring.scrapers[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'] = scrapers;
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(app));
};

const scraped = () => scrapedPods(ns);

beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-monitoring');
  scrapers = createRealNamespace('real-monitoring-scrapers');
  apply(true);
  startProbe(scrapers, 'scraper', { role: 'scraper' });
  startProbe(scrapers, 'stranger', { role: 'stranger' });
  // The scraper's labels, in the app's namespace: the entry names the scrapers' namespace only.
  startProbe(ns, 'scraper', { role: 'scraper' });
  await eventually(
    'the watched app Ready on the real node',
    () => isReadyAtGeneration(getApp(ns, APP)),
    600_000,
    2000,
  );
  await allPodsReady(scrapers, 'role in (scraper,stranger)', 2);
  await allPodsReady(ns, 'role=scraper', 1);
}, 720_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
  if (scrapers) deleteNamespaceAndWait(scrapers);
});

describeReal('spec.monitoring on the real node', () => {
  it('annotates every data tier and edge-cache pod for scraping, on its tier’s port', () => {
    const byComponent = Object.fromEntries(scraped().map((p: any) => [p.component, p.port]));
    expect(byComponent).toEqual({
      database: METRICS_PORT.postgres,
      cache: METRICS_PORT.cache,
      queue: METRICS_PORT.queue,
      'edge-cache': METRICS_PORT.edgeCache,
    });
    expect(scraped()).toHaveLength(2 + 1 + 1 + 1);
  });

  it('every exporter answers the scraper with the series of its live server', async () => {
    const failures: string[] = [];
    // The exporters start with their servers: the first scrape may come before a server answers.
    await eventually(
      'every metrics endpoint with live series',
      () => {
        failures.length = 0;
        for (const p of scraped()) {
          const text = scrapeFrom(scrapers, 'scraper', `http://${p.host}:${p.port}${p.path}`);
          const want: Record<string, (t: string) => boolean> = {
            database: (t) =>
              sample(t, 'pg_up') === 1 &&
              sample(t, 'pg_instance_standby') !== undefined &&
              sample(t, 'pg_synchronous_required') !== undefined &&
              sample(t, 'pg_connections_max') !== undefined &&
              sample(t, 'pg_exporter_last_scrape_error') === 0,
            cache: (t) => sample(t, 'redis_up') === 1 && (sample(t, 'redis_memory_max_bytes') ?? 0) > 0,
            queue: (t) => /^rabbitmq_queue_messages_ready\{[^}]*queue="orders"/m.test(t),
            'edge-cache': (t) =>
              sample(t, 'nginx_up') === 1 && (sample(t, 'nginx_connections_accepted') ?? 0) > 0,
          };
          if (!want[p.component]?.(text)) failures.push(`${p.name}: ${text.slice(0, 400)}`);
        }
        return failures.length === 0;
      },
      180_000,
      5000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${failures.join('\n')}`);
    });
  }, 240_000);

  it('the primary reports its streaming standby, and the standby that it streams', () => {
    const dbPods = scraped().filter((p: any) => p.component === 'database');
    const texts: string[] = dbPods.map((p: any) =>
      scrapeFrom(scrapers, 'scraper', `http://${p.host}:${p.port}/metrics`),
    );
    const primary = texts.find((t) => sample(t, 'pg_instance_standby') === 0)!;
    const standby = texts.find((t) => sample(t, 'pg_instance_standby') === 1)!;
    expect(primary).toMatch(new RegExp(`^pg_standby_replay_lag_bytes\\{[^}]*standby="${APP}-db-[01]"`, 'm'));
    expect(sample(standby, 'pg_instance_streaming_from_primary')).toBe(1);
  });

  it('lets only the named scraper in: not another pod of its namespace, not its labels elsewhere', () => {
    for (const p of scraped()) {
      expect([p.name, connectFrom(scrapers, 'stranger', p).stdout.trim()]).not.toEqual([p.name, 'open']);
      expect([p.name, connectFrom(ns, 'scraper', p).stdout.trim()]).not.toEqual([p.name, 'open']);
    }
  });

  it('with monitoring off, no exporter, annotation or scraper rule is left', async () => {
    apply(false);
    await eventually(
      'the app at its new generation',
      () => isReadyAtGeneration(getApp(ns, APP)),
      600_000,
      2000,
    );
    const workloads = [
      ...json<any>(['get', 'statefulsets', '-n', ns]).items,
      ...json<any>(['get', 'deployments', '-n', ns]).items,
    ];
    for (const w of workloads) {
      const t = w.spec.template;
      expect([w.metadata.name, t.spec.containers.map((c: any) => c.name)]).not.toContainEqual(
        expect.arrayContaining(['metrics']),
      );
      expect([w.metadata.name, t.metadata.annotations?.['prometheus.io/scrape']]).toEqual([
        w.metadata.name,
        undefined,
      ]);
    }
    const ports = json<any>(['get', 'networkpolicies', '-n', ns]).items.flatMap((p: any) =>
      (p.spec.ingress ?? []).flatMap((r: any) => (r.ports ?? []).map((x: any) => x.port)),
    );
    for (const port of Object.values(METRICS_PORT)) expect(ports).not.toContain(port);
  }, 660_000);
});
