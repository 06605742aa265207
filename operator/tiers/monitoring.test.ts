// spec.monitoring as the tiers render it: off, nothing of it anywhere; on, an exporter beside every
// data tier's server and the edge cache's proxy, RabbitMQ's own endpoint, the scrape annotations,
// least-privilege logins, and the scrapers (only they) admitted to the metrics ports.
import type { V1ConfigMap, V1NetworkPolicy, V1PodTemplateSpec, V1Secret } from '@kubernetes/client-node';
import { everyTier } from '../api/testdata/apps.ts';
import type { ScalableAppInput } from '../api/scalable-app.ts';
import { desiredState } from '../controller/desired-state.ts';
import { ALL_FACTS } from './testdata/facts.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';
import { CACHE_ACL } from '../server-config/cache.ts';
import { EXPORTER_QUERIES_KEY } from './postgres-cluster.ts';
import { METRICS_PORT } from './monitoring.ts';
import { ownedKinds } from '../controller/children.ts';
import type { Child } from './objects.ts';

const FACTS = {
  ...ALL_FACTS,
  cacheLogins: { ...ALL_FACTS.cacheLogins!, monitor: 'cache-monitor-password' },
  dbCredentials: { ...ALL_FACTS.dbCredentials!, monitor: 'db-monitor-password' },
  shardCredentials: { ...ALL_FACTS.shardCredentials!, monitor: 'shard-monitor-password' },
};

const withMonitoring = (monitoring?: ScalableAppInput['spec']['monitoring']) =>
  everyTier(monitoring ? { monitoring } : {});

const children = (monitoring?: ScalableAppInput['spec']['monitoring']) =>
  desiredState(withMonitoring(monitoring), FACTS);
const find = <T>(all: Child[], kind: string, name: string) =>
  all.find((c) => c.kind === kind && c.metadata.name === name) as unknown as T;
const template = (all: Child[], kind: string, name: string) =>
  find<{ spec: { template: V1PodTemplateSpec } }>(all, kind, name).spec.template;
const metrics = (t: V1PodTemplateSpec) => t.spec!.containers.find((c) => c.name === 'metrics');

/** Each scraped workload: its kind and name, and the port its pods' annotations name. */
const WORKLOADS = [
  ['StatefulSet', 'shop-db', METRICS_PORT.postgres],
  ['StatefulSet', 'shop-shard-0', METRICS_PORT.postgres],
  ['StatefulSet', 'shop-shard-1', METRICS_PORT.postgres],
  ['StatefulSet', 'shop-cache', METRICS_PORT.cache],
  ['StatefulSet', 'shop-mq', METRICS_PORT.queue],
  ['Deployment', 'shop-edge', METRICS_PORT.edgeCache],
] as const;

describe('spec.monitoring off (the default)', () => {
  const all = children();
  it.each(WORKLOADS)('%s %s has no exporter and no scrape annotations', (kind, name) => {
    const t = template(all, kind, name);
    expect(metrics(t)).toBeUndefined();
    expect(Object.keys(t.metadata!.annotations ?? {}).filter((k) => k.startsWith('prometheus.io/'))).toEqual(
      [],
    );
  });
  it('creates no monitoring login, no exporter queries, no Prometheus plugin and admits no scraper', () => {
    const db = find<V1ConfigMap>(all, 'ConfigMap', 'shop-db-config').data!;
    expect(db[EXPORTER_QUERIES_KEY]).toBeUndefined();
    expect(db['pg_hba.conf']).not.toMatch(/monitor/);
    const auth = Buffer.from(find<V1Secret>(all, 'Secret', 'shop-cache-auth').data!['auth.conf']!, 'base64');
    expect(auth.toString()).not.toMatch(/^user monitor /m);
    const mq = find<V1ConfigMap>(all, 'ConfigMap', 'shop-mq-config').data!;
    expect(mq.enabled_plugins).toBe('[rabbitmq_management].\n');
    expect(mq['rabbitmq.conf']).not.toMatch(/prometheus/);
    const ports = all
      .filter((c) => c.kind === 'NetworkPolicy')
      .flatMap((p) => (p as V1NetworkPolicy).spec!.ingress ?? [])
      .flatMap((r) => r.ports ?? [])
      .map((p) => p.port);
    for (const port of Object.values(METRICS_PORT)) expect(ports).not.toContain(port);
  });
});

describe('spec.monitoring.enabled', () => {
  const all = children({ enabled: true });

  it.each(WORKLOADS)('%s %s is annotated for scraping on its metrics port', (kind, name, port) => {
    expect(template(all, kind, name).metadata!.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(port),
      'prometheus.io/path': '/metrics',
    });
  });

  it.each(WORKLOADS.filter(([, name]) => name !== 'shop-mq'))(
    '%s %s runs an exporter after its server, restricted, as its own uid, with resources and no readiness probe',
    (kind, name, port) => {
      const t = template(all, kind, name);
      const c = metrics(t)!;
      expect(t.spec!.containers[0]!.name).not.toBe('metrics');
      expect(c.ports).toEqual([{ name: 'metrics', containerPort: port, protocol: 'TCP' }]);
      expect(c.command).toBeUndefined(); // the image's entrypoint is the exporter
      expect(c.readinessProbe).toBeUndefined();
      expect(c.livenessProbe).toBeDefined();
      expect(c.resources).toEqual({ requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } });
      expect(c.securityContext).toMatchObject({ runAsUser: 65532, readOnlyRootFilesystem: true });
      expect(restrictedViolations(t.spec!)).toEqual([]);
    },
  );

  it('gives the Postgres exporter only the monitor password, as a file, and its queries', () => {
    const t = template(all, 'StatefulSet', 'shop-db');
    const c = metrics(t)!;
    const env = Object.fromEntries(c.env!.map((e) => [e.name, e.value]));
    expect(env).toEqual({
      // TLS (the default) without a name check: loopback, a name no certificate holds.
      DATA_SOURCE_URI: '127.0.0.1:5432/postgres?sslmode=require',
      DATA_SOURCE_USER: 'monitor',
      DATA_SOURCE_PASS_FILE: '/monitor/password',
    });
    expect(t.spec!.volumes!.find((v) => v.name === 'monitor')!.secret).toMatchObject({
      secretName: 'shop-db-credentials',
      items: [{ key: 'monitor-password', path: 'password' }],
    });
    expect(c.volumeMounts!.map((m) => m.name).sort()).toEqual(['config', 'monitor', 'tmp']);
    expect(c.args).toContain(`--extend.query-path=/config/${EXPORTER_QUERIES_KEY}`);
    const db = find<V1ConfigMap>(all, 'ConfigMap', 'shop-db-config').data!;
    expect(db[EXPORTER_QUERIES_KEY]).toMatch(/^pg_standby:/m);
    // The monitor role logs in from loopback only, to the postgres database, fenced or not.
    for (const key of ['pg_hba.conf', 'pg_hba.fenced.conf'])
      expect(db[key]?.split('\n').filter((l) => /monitor/.test(l))).toEqual([
        'hostssl postgres monitor 127.0.0.1/32 scram-sha-256',
      ]);
    const secret = find<V1Secret>(all, 'Secret', 'shop-db-credentials');
    expect(Buffer.from(secret.data!['monitor-password']!, 'base64').toString()).toBe('db-monitor-password');
  });

  it('gives the cache exporter a login that reads statistics and cannot write, reconfigure or flush', () => {
    const t = template(all, 'StatefulSet', 'shop-cache');
    const c = metrics(t)!;
    expect(c.env).toEqual([
      {
        name: 'REDIS_PASSWORD',
        valueFrom: { secretKeyRef: { name: 'shop-cache-auth', key: 'monitor-password' } },
      },
    ]);
    expect(c.args).toEqual(expect.arrayContaining(['--redis.user=monitor', '--config-command=-']));
    const auth = Buffer.from(find<V1Secret>(all, 'Secret', 'shop-cache-auth').data!['auth.conf']!, 'base64');
    const line = auth
      .toString()
      .split('\n')
      .find((l) => l.startsWith('user monitor '))!;
    expect(line).toMatch(/^user monitor on #[0-9a-f]{64} /);
    expect(line.endsWith(CACHE_ACL.monitor)).toBe(true);
    // No key or channel pattern, so no key can be read; only statistics commands, none that writes.
    const readOnly = /^\+(ping|info|slowlog\|(get|len)|latency\|latest)$/;
    expect(CACHE_ACL.monitor.split(' ').filter((rule) => !readOnly.test(rule))).toEqual([]);
  });

  it("turns on RabbitMQ's Prometheus plugin with metrics per queue, on a named port", () => {
    const mq = find<V1ConfigMap>(all, 'ConfigMap', 'shop-mq-config').data!;
    expect(mq.enabled_plugins).toBe('[rabbitmq_management,rabbitmq_prometheus].\n');
    expect(mq['rabbitmq.conf']).toMatch(/^prometheus\.tcp\.port = 15692$/m);
    expect(mq['rabbitmq.conf']).toMatch(/^prometheus\.return_per_object_metrics = true$/m);
    const broker = template(all, 'StatefulSet', 'shop-mq').spec!.containers[0]!;
    expect(broker.ports).toContainEqual({ name: 'metrics', containerPort: 15692, protocol: 'TCP' });
  });

  it('has nginx answer stub_status on loopback for its exporter', () => {
    const conf = find<V1ConfigMap>(all, 'ConfigMap', 'shop-edge-config').data!['nginx.conf']!;
    expect(conf).toMatch(/listen 127\.0\.0\.1:8081;[\s\S]*location = \/stub_status \{\s*stub_status;/);
    expect(metrics(template(all, 'Deployment', 'shop-edge'))!.args).toContain(
      '--nginx.scrape-uri=http://127.0.0.1:8081/stub_status',
    );
  });

  /** Every ingress rule that names a metrics port: its port and its peers. */
  const metricsRules = (policies: Child[]) =>
    policies
      .filter((c) => c.kind === 'NetworkPolicy')
      .flatMap((p) =>
        ((p as V1NetworkPolicy).spec!.ingress ?? []).map((r) => ({ policy: p.metadata.name, r })),
      )
      .filter(({ r }) => r.ports?.some((p) => (Object.values(METRICS_PORT) as unknown[]).includes(p.port)));

  it('admits the default scrapers (Prometheus in the namespace monitoring) to each metrics port, and to nothing else', () => {
    const rules = metricsRules(all);
    expect(rules.map(({ policy, r }) => [policy, r.ports!.map((p) => p.port)]).sort()).toEqual(
      [
        ['shop-allow-cache-ingress', [METRICS_PORT.cache]],
        ['shop-allow-database-ingress', [METRICS_PORT.postgres]],
        ['shop-allow-edge-ingress', [METRICS_PORT.edgeCache]],
        ['shop-allow-queue-ingress', [METRICS_PORT.queue]],
        ['shop-allow-shards-ingress', [METRICS_PORT.postgres]],
      ].sort(),
    );
    for (const { r } of rules)
      expect((r as unknown as { from: unknown }).from).toEqual([
        {
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        },
      ]);
  });

  it('admits exactly the scrapers the spec names, and with none nobody', () => {
    const own = metricsRules(
      children({ enabled: true, scrapers: [{ podSelector: { matchLabels: { role: 'scraper' } } }] }),
    );
    expect(own).toHaveLength(5);
    for (const { r } of own)
      expect((r as unknown as { from: unknown }).from).toEqual([
        { podSelector: { matchLabels: { role: 'scraper' } } },
      ]);
    expect(metricsRules(children({ enabled: true, scrapers: [] }))).toEqual([]);
  });
});

describe('PodMonitors, when the Prometheus Operator serves them', () => {
  const monitors = (spec: Parameters<typeof children>[0], podMonitors: boolean) =>
    desiredState(withMonitoring(spec), { ...FACTS, podMonitors }).filter((c) => c.kind === 'PodMonitor');

  it('makes one per monitored tier, selecting its pods and naming app and tier, with the labels asked for', () => {
    const all = monitors(
      { enabled: true, podMonitors: { labels: { release: 'kps' }, interval: '15s' } },
      true,
    );
    expect(all.map((m) => m.metadata.name).sort()).toEqual([
      'shop-cache-metrics',
      'shop-database-metrics',
      'shop-edge-cache-metrics',
      'shop-queue-metrics',
      'shop-shard-metrics',
    ]);
    const db = all.find((m) => m.metadata.name === 'shop-database-metrics') as unknown as {
      metadata: { labels: Record<string, string> };
      spec: { selector: unknown; podMetricsEndpoints: unknown[] };
    };
    expect(db.metadata.labels).toMatchObject({ release: 'kps', 'app.kubernetes.io/instance': 'shop' });
    expect(db.spec.selector).toEqual({
      matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'database' },
    });
    expect(db.spec.podMetricsEndpoints).toEqual([
      {
        port: 'metrics',
        path: '/metrics',
        interval: '15s',
        relabelings: [
          {
            sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'],
            targetLabel: 'app',
            action: 'replace',
          },
          {
            sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_component'],
            targetLabel: 'tier',
            action: 'replace',
          },
        ],
      },
    ]);
  });

  it('makes none without the CRD, and none with monitoring off', () => {
    expect(monitors({ enabled: true }, false)).toEqual([]);
    expect(monitors({ enabled: false }, true)).toEqual([]);
  });

  it('watches PodMonitors only where they are served', () => {
    const kinds = (podMonitors: boolean) => ownedKinds({ gatewayApi: false, podMonitors }).map((k) => k.kind);
    expect(kinds(true)).toContain('PodMonitor');
    expect(kinds(false)).not.toContain('PodMonitor');
    expect(kinds(true)).not.toContain('HTTPRoute');
  });
});
