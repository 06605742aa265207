// charts/stack, the umbrella, installs what the operator builds for a whole app: for every sample
// ScalableApp (manifests/samples), `helm template <name> charts/stack` with the sample's spec as
// values equals desiredState() for that app, modulo the tier charts' documented exclusions. Also:
// the passwords the umbrella generates reach the tiers and the connection Secret alike, the wiring
// runs before every tier chart, and the spec's cross-tier rules are refused as the CRD refuses them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { validCorpus } from '../../operator/api/testdata/corpus.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { spec as specSchema, TIERS } from '../../operator/api/spec.ts';
import type { CelRule } from '../../operator/api/meta.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { steadyCachePassword, type ObservedFacts, type TlsFacts } from '../../operator/tiers/objects.ts';
import type { ScalableApp } from '../../operator/api/scalable-app.ts';
import { shardClusters, shardMap, shardNames } from '../../operator/tiers/shards.ts';
import { databaseCluster } from '../../operator/tiers/database.ts';
import { pgServerNames } from '../../operator/tiers/postgres-cluster.ts';
import { certDnsNames } from '../../operator/tls/certificates.ts';
import { X509Certificate } from 'node:crypto';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { buildDependencies, chartMeta, chartPath, podSpecs, renderChart, templateChart } from './helm.ts';
import { parity, TWO_SCRAPERS, type Exclusion } from './parity.ts';
import { cacheServerNames, cacheTls } from '../../operator/tiers/cache.ts';
import { mqServerNames, queueTls } from '../../operator/tiers/queue.ts';
import {
  appTls,
  cacheTlsValues,
  queueTlsValues,
  keptSecretExclusion,
  pgAuthValues,
  pgTlsValues,
  pgClusterExclusions,
  selfFenceExclusion,
  heldCachePrimaryExclusion,
} from './data-tier-checks.ts';

type Spec = NonNullable<ScalableAppInput['spec']>;
type Values = Record<string, any>;

const GATEWAY_API = 'gateway.networking.k8s.io/v1/HTTPRoute';

/** The logins the operator would have generated; the chart gets them as values. */
const PASSWORDS = {
  cache: 'c4che-pw/with:odd chars+',
  cacheLogins: { operator: 'cache-op "pw"', replication: 'cache-repl pw\\', monitor: 'cache-mon:pw' },
  // No spaces in a monitor password: postgres_exporter 0.11 refuses them (the charts' schemas too).
  db: { superuser: 'su-pw', replication: 'repl-pw', app: "app pw!*'()~", monitor: 'db-mon"pw' },
  shards: { superuser: 'shard-su', replication: 'shard-repl', app: 'shard app%pw', monitor: 'shard:mon' },
  queue: {
    username: 'app@queue',
    password: 'q:pw/?#',
    monitoringUsername: 'monitor@queue',
    monitoringPassword: 'm:pw/?#',
    erlangCookie: 'COOKIE-0123456789',
  },
};

/** The tiers a spec declares: what `tiers.<tier>` must say (tools/install-stack.sh derives the same). */
const declaredTiers = (spec: Spec) =>
  Object.fromEntries(
    TIERS.map((t) => [t, t === 'consumers' ? (spec.consumers?.length ?? 0) > 0 : spec[t] !== undefined]),
  );

/** The umbrella's values for a spec: the spec itself, which tiers to install, and the passwords. */
function stackValues(spec: Spec, passwords = true): Values {
  const values: Values = { ...structuredClone(spec), tiers: declaredTiers(spec) };
  if (!passwords) return values;
  const l = logins(spec);
  if (spec.cache)
    values.cache = {
      ...values.cache,
      auth: {
        password: l.cache,
        operatorPassword: l.cacheLogins.operator,
        replicationPassword: l.cacheLogins.replication,
        ...('monitor' in l.cacheLogins ? { monitorPassword: l.cacheLogins.monitor } : {}),
      },
    };
  if (spec.database) values.database = { ...values.database, auth: pgAuthValues(l.db) };
  if (spec.shards) values.shards = { ...values.shards, auth: pgAuthValues(l.shards) };
  if (spec.queue) values.queue = { ...values.queue, auth: l.queue };
  return values;
}

/**
 * The logins of a spec: the exporters' only with monitoring, as the charts generate them (the
 * operator keeps one in every Secret, ready for monitoring turned on later; its parity with a chart
 * is the tier's own test).
 */
const logins = (spec: Spec) => {
  if (spec.monitoring?.enabled) return PASSWORDS;
  const { monitor: _c, ...cacheLogins } = PASSWORDS.cacheLogins;
  const { monitor: _d, ...db } = PASSWORDS.db;
  const { monitor: _s, ...shards } = PASSWORDS.shards;
  return { ...PASSWORDS, cacheLogins, db, shards };
};

const operatorFacts = (gatewayApi: boolean, spec: Spec): ObservedFacts => {
  const l = logins(spec);
  return {
    gatewayApi,
    cachePassword: steadyCachePassword(l.cache),
    cacheLogins: l.cacheLogins,
    dbCredentials: l.db,
    shardCredentials: l.shards,
    queueCredentials: l.queue,
  };
};

/** The certificates the operator issued as the umbrella's values: each TLS tier's `tls`. */
function withTls(values: Values, app: ScalableApp, tls: TlsFacts | undefined): Values {
  if (!tls) return values;
  if (cacheTls(app))
    values.cache = { ...values.cache, tls: { ...values.cache.tls, ...cacheTlsValues(tls, app) } };
  if (queueTls(app))
    values.queue = { ...values.queue, tls: { ...values.queue.tls, ...queueTlsValues(tls, app) } };
  const facts = { gatewayApi: false };
  const db = app.spec.database?.tls.enabled ? [databaseCluster(app, facts)] : [];
  const shards = app.spec.shards?.tls.enabled ? shardClusters(app, facts) : [];
  if (db.length)
    values.database = {
      ...values.database,
      tls: { ...values.database.tls, ...pgTlsValues(tls, db, (c) => ({ certificate: c[db[0]!.name] })) },
    };
  if (shards.length)
    values.shards = {
      ...values.shards,
      tls: { ...values.shards.tls, ...pgTlsValues(tls, shards, (certificates) => ({ certificates })) },
    };
  return values;
}

/** The umbrella's values and the operator's facts for a spec, with the same issued certificates. */
async function inputs(spec: Spec, name: string, gatewayApi = false) {
  const app = parseApp(spec, name, 'prod');
  const base = operatorFacts(gatewayApi, spec);
  const tls = await appTls(app, base);
  const facts: ObservedFacts = tls ? { ...base, tls } : base;
  return { app, facts, values: withTls(stackValues(spec), app, tls) };
}

/** The umbrella rendered for a spec beside desiredState() for the same app and issued certificates. */
async function stackParity(spec: Spec, name: string, gatewayApi = false) {
  const { app, facts, values } = await inputs(spec, name, gatewayApi);
  const report = parity({
    chart: 'stack',
    release: name,
    namespace: 'prod',
    values,
    apiVersions: gatewayApi ? [GATEWAY_API] : [],
    operator: desiredState(app, facts),
    exclusions: exclusions(spec, name),
  });
  return { report, facts, values };
}

/**
 * What differs by design, as each tier chart's parity test lists it (the tier's README says why at
 * length): the `helm test` hooks; the role Services that only the operator keeps on the primary,
 * because it moves a role label (and publishes the read endpoints) on failover; the credentials the
 * charts keep on uninstall; and a consumer that only the operator's queue-depth autoscaler wakes.
 */
function exclusions(spec: Spec, release: string): Exclusion[] {
  const hook = (object: string): Exclusion => ({ object, onlyIn: 'chart', reason: 'a `helm test` hook' });
  const kept = (secret: string) => keptSecretExclusion(secret, 'kept with the retained volumes');
  const out: Exclusion[] = [];
  if (spec.web) out.push(hook(`Pod/${release}-web-test`));
  if (spec.cache) {
    out.push(
      {
        object: `Service/${release}-cache`,
        path: 'spec.selector',
        reason: 'no role label without the operator: the chart selects the recorded primary pod by name',
      },
      {
        object: `Service/${release}-cache-replicas`,
        path: 'spec.selector',
        reason: 'a selector cannot exclude the primary: the chart reaches every node',
      },
      hook(`Pod/${release}-cache-test`),
      hook(`NetworkPolicy/${release}-allow-cache-test`),
      ...heldCachePrimaryExclusion(parseApp({ cache: spec.cache }, release, 'prod')),
    );
  }
  if (spec.database) {
    out.push(...pgClusterExclusions(`${release}-db`), hook(`Pod/${release}-db-test`));
    const app = parseApp({ database: spec.database }, release, 'prod');
    out.push(...selfFenceExclusion(databaseCluster(app, { gatewayApi: false })));
    out.push(hook(`NetworkPolicy/${release}-allow-database-test`));
    if ((spec.database.deletionPolicy ?? 'Retain') === 'Retain') out.push(kept(`${release}-db-credentials`));
  }
  if (spec.shards) {
    const app = parseApp({ shards: spec.shards }, release, 'prod');
    out.push(...shardNames(shardMap(app, { gatewayApi: false })).flatMap((n) => pgClusterExclusions(n)));
    out.push(...shardClusters(app, { gatewayApi: false }).flatMap(selfFenceExclusion));
    out.push(hook(`Pod/${release}-shards-test`), hook(`NetworkPolicy/${release}-allow-shards-test`));
    if ((spec.shards.deletionPolicy ?? 'Retain') === 'Retain')
      out.push(kept(`${release}-shards-credentials`));
  }
  if (spec.queue) {
    out.push(kept(`${release}-mq-credentials`));
    out.push(hook(`Pod/${release}-mq-test`), hook(`NetworkPolicy/${release}-allow-queue-test`));
  }
  if (spec.consumers?.length) {
    out.push(hook(`Pod/${release}-consumers-test`), hook(`NetworkPolicy/${release}-allow-consumers-test`));
    for (const c of spec.consumers.filter((c) => c.autoscaling && !c.autoscaling.minReplicas)) {
      out.push({
        object: `Deployment/${release}-${c.name}`,
        path: 'spec.replicas',
        reason:
          'the operator starts it at its minimum (0) and wakes it on queue depth; nothing would without it (or KEDA), so the chart runs 1',
      });
    }
  }
  if (spec.edgeCache) out.push(hook(`Pod/${release}-edge-test`));
  return out;
}

const samples = validCorpus()
  .filter((c) => c.object.kind === 'ScalableApp')
  .map((c) => ({
    file: c.file,
    name: c.object.metadata.name,
    spec: c.object.spec as Spec,
  }));

/** The tier charts the umbrella depends on, by directory. */
const tierCharts = (chartMeta('stack').dependencies ?? [])
  .map((d) => d.repository!.replace('file://../', ''))
  .filter((d) => d !== 'scalableapp-lib');

beforeAll(() => {
  // A tier chart is packaged into the umbrella with its own dependencies, so those come first.
  for (const chart of tierCharts) buildDependencies(chart);
  buildDependencies('stack');
});

describe('charts/stack renders what the operator builds for each sample ScalableApp', () => {
  it('covers every sample', () => {
    expect(samples.map((s) => s.file)).toContain('12-full-stack.yaml');
    expect(samples.length).toBe(readdirSync(new URL('../../manifests/samples/', import.meta.url)).length);
  });

  it.each(samples)('$file', async ({ name, spec }) => {
    const { report } = await stackParity(spec, name, spec.web?.expose?.type === 'Gateway');
    expect(report.differences).toEqual([]);
    expect(report.compared).toEqual(expect.arrayContaining([`Secret/${name}-connection`]));
  });

  it('the comparison sees a difference (so agreeing above means something)', async () => {
    const spec: Spec = { web: { image: 'shop:1' }, cache: {} };
    const { app, facts, values } = await inputs(spec, 'shop');
    const report = parity({
      chart: 'stack',
      release: 'shop',
      namespace: 'prod',
      values,
      operator: desiredState(app, { ...facts, cachePassword: steadyCachePassword('other') }),
      exclusions: exclusions(spec, 'shop'),
    });
    expect(report.differences).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Secret\/shop-connection: data.CACHE_URL: chart /)]),
    );
  });
});

describe('charts/stack with TLS on some tiers only', () => {
  it.each<[string, Spec]>([
    [
      "the cache alone serves TLS: rediss:// and CACHE_CA_FILE, the app's CA made for it and mounted",
      {
        web: { image: 'shop:1', sessions: 'cache' },
        cache: {},
        database: { tls: { enabled: false } },
        queue: { queues: [{ name: 'jobs' }], tls: { enabled: false } },
        consumers: [{ name: 'worker', image: 'w:1', queue: 'jobs' }],
      },
    ],
    [
      "the queue alone serves TLS: amqps:// and QUEUE_CA_FILE, the app's CA made for it and mounted in the web and consumer pods",
      {
        web: { image: 'shop:1', sessions: 'cache' },
        cache: { tls: { enabled: false } },
        database: { tls: { enabled: false } },
        queue: { queues: [{ name: 'jobs' }] },
        consumers: [{ name: 'worker', image: 'w:1', queue: 'jobs' }],
      },
    ],
    [
      'the queue alone serves TLS, consumers autoscaled: the CA still mounted in the consumer pods',
      {
        queue: { replicas: 1, queues: [{ name: 'jobs' }, { name: 'mail' }] },
        consumers: [
          { name: 'worker', image: 'w:1', queue: 'jobs', autoscaling: { minReplicas: 1, maxReplicas: 3 } },
          { name: 'mailer', image: 'm:1', queue: 'mail', replicas: 2 },
        ],
      },
    ],
    [
      'the queue plaintext beside a cache with TLS: amqp://, no QUEUE_CA_FILE, the CA still mounted',
      {
        web: { image: 'shop:1', sessions: 'cache' },
        cache: {},
        queue: { queues: [{ name: 'jobs' }], tls: { enabled: false } },
        consumers: [{ name: 'worker', image: 'w:1', queue: 'jobs' }],
      },
    ],
    [
      'the cache plaintext beside a database with TLS: redis://, no CACHE_CA_FILE, the CA still mounted',
      { web: { image: 'shop:1', sessions: 'cache' }, cache: { tls: { enabled: false } }, database: {} },
    ],
    [
      'no tier serves TLS: no CA, no mount',
      {
        web: { image: 'shop:1' },
        cache: { tls: { enabled: false } },
        database: { tls: { enabled: false } },
        queue: { queues: [{ name: 'jobs' }], tls: { enabled: false } },
        consumers: [{ name: 'worker', image: 'w:1', queue: 'jobs' }],
      },
    ],
  ])('%s', async (_title, spec) => {
    const { report, facts, values } = await stackParity(spec, 'shop');
    expect(report.differences).toEqual([]);
    const tls = facts.tls !== undefined;
    expect(report.compared.includes('ConfigMap/shop-ca-cert')).toBe(tls);
    // What parity compared, said directly: every app pod mounts the CA exactly when a tier serves TLS.
    const objects = renderChart('stack', { release: 'shop', namespace: 'prod', values });
    const appPods = podSpecs(objects).filter(
      ([name]) => name.startsWith('Deployment/') && name !== 'Deployment/shop-edge',
    );
    expect(appPods.length).toBeGreaterThan(0);
    for (const [name, pod] of appPods)
      expect([name, pod.volumes?.some((v) => v.configMap?.name === 'shop-ca-cert') ?? false]).toEqual([
        name,
        tls,
      ]);
    const connection = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === 'shop-connection',
    ) as any;
    const queueCa = connection.data.QUEUE_CA_FILE;
    expect(queueCa === undefined ? undefined : Buffer.from(queueCa, 'base64').toString()).toBe(
      spec.queue && spec.queue.tls?.enabled !== false ? '/etc/scalableapp/ca/ca.crt' : undefined,
    );
  });
});

describe("charts/stack tells the consumers about the queue's TLS", () => {
  const testPod = (values: Values) =>
    podSpecs(renderChart('stack', { release: 'shop', namespace: 'prod', values })).find(
      ([name]) => name === 'Pod/shop-consumers-test',
    )![1].containers[0]!;
  const spec = (tls: boolean): Spec => ({
    queue: { image: 'registry.example/rabbitmq:4.1', queues: [{ name: 'jobs' }], tls: { enabled: tls } },
    consumers: [{ name: 'worker', image: 'w:1', queue: 'jobs' }],
  });

  it("with TLS their helm test asks over openssl s_client, in the queue's image unless one is given", () => {
    const test = testPod(stackValues(spec(true)));
    expect(test.image).toBe('registry.example/rabbitmq:4.1');
    expect(test.command![2]).toContain('-verify_hostname shop-mq.prod.svc');
    const given = { ...stackValues(spec(true)), consumersChart: { test: { image: 'toolbox:1' } } };
    expect(testPod(given).image).toBe('toolbox:1');
  });

  it('without TLS over nc, in busybox', () => {
    const test = testPod(stackValues(spec(false)));
    expect(test.image).toBe('busybox:1.37');
    expect(test.command![2]).toContain('nc -w 5 shop-mq.prod.svc 15672');
  });
});

describe("charts/stack hands the spec's monitoring to every tier that serves metrics", () => {
  const spec: Spec = {
    web: { image: 'shop:1', replicas: 1 },
    cache: { replicas: 1 },
    database: { replicas: 1 },
    shards: { count: 1, key: 'tenant_id', replicasPerShard: 0 },
    queue: { replicas: 1, queues: [{ name: 'orders' }] },
    edgeCache: { replicas: 1 },
    monitoring: {
      enabled: true,
      scrapers: TWO_SCRAPERS,
      exporterImages: {
        postgres: 'registry.example.com/postgres-exporter:1',
        cache: 'registry.example.com/redis-exporter:1',
        edgeCache: 'registry.example.com/nginx-exporter:1',
      },
      resources: { requests: { cpu: '20m' }, limits: { cpu: 1, memory: '96Mi' } },
    },
  };

  it('renders what the operator builds with it: exporters, their logins, annotations and scraper rules', async () => {
    const { report } = await stackParity(spec, 'shop');
    expect(report.differences).toEqual([]);
    // Every server pod with its exporter (the queue's broker serves its own endpoint).
    const exporters = Object.fromEntries(
      podSpecs(
        renderChart('stack', { release: 'shop', namespace: 'prod', values: stackValues(spec) }),
      ).flatMap(([name, pod]) =>
        pod.containers.filter((c) => c.name === 'metrics').map((c) => [name, c.image]),
      ),
    );
    expect(exporters).toEqual({
      'StatefulSet/shop-cache': 'registry.example.com/redis-exporter:1',
      'StatefulSet/shop-db': 'registry.example.com/postgres-exporter:1',
      'StatefulSet/shop-shard-0': 'registry.example.com/postgres-exporter:1',
      'Deployment/shop-edge': 'registry.example.com/nginx-exporter:1',
    });
  });

  it("wins over a tier's own monitoring where it says something, and leaves the rest", () => {
    const values = stackValues(spec);
    values.database.monitoring = { enabled: false, resources: { limits: { memory: '200Mi' } } };
    values.cache.monitoring = { resources: { limits: { memory: '77Mi' } } };
    const { resources: _r, ...withoutResources } = spec.monitoring!;
    const objects = renderChart('stack', {
      release: 'shop',
      namespace: 'prod',
      values: { ...values, monitoring: withoutResources },
    });
    const metrics = (name: string) =>
      podSpecs(objects)
        .find(([n]) => n === name)![1]
        .containers.find((c) => c.name === 'metrics');
    // enabled at the top turns the database's on; its own resources stand, the top gives none.
    expect(metrics('StatefulSet/shop-db')?.resources?.limits?.memory).toBe('200Mi');
    expect(metrics('StatefulSet/shop-cache')?.resources?.limits?.memory).toBe('77Mi');
  });

  it('without it, a tier keeps its own monitoring', () => {
    const values = stackValues({ ...spec, monitoring: { enabled: false } });
    values.database.monitoring = { enabled: true };
    const monitored = podSpecs(renderChart('stack', { release: 'shop', namespace: 'prod', values }))
      .filter(([, pod]) => pod.containers.some((c) => c.name === 'metrics'))
      .map(([name]) => name);
    expect(monitored).toEqual(['StatefulSet/shop-db']);
  });

  it('refuses podMonitors, which only the operator makes, naming the field', () => {
    const r = templateChart('stack', {
      release: 'shop',
      namespace: 'prod',
      values: {
        ...stackValues(spec),
        monitoring: { ...spec.monitoring, podMonitors: { labels: { a: 'b' } } },
      },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/monitoring.*podMonitors/);
  });
});

const full = samples.find((s) => s.file === '12-full-stack.yaml')!;

/** The certificates a render holds, as the operator's facts: the CA's Secret and every server's. */
function renderedTls(objects: any[]): TlsFacts {
  const pair = (o: any) => ({
    cert: Buffer.from(o.data['tls.crt'], 'base64').toString(),
    key: Buffer.from(o.data['tls.key'], 'base64').toString(),
  });
  const tls = objects.filter((o) => o.kind === 'Secret' && o.type === 'kubernetes.io/tls');
  const ca = tls.find((o) => o.metadata.name.endsWith('-ca'));
  return {
    ca: pair(ca),
    servers: Object.fromEntries(tls.filter((o) => o !== ca).map((o) => [o.metadata.name, pair(o)])),
  };
}

describe('charts/stack generates each password once', () => {
  const secretData = (objects: any[], name: string): Record<string, string> =>
    Object.fromEntries(
      Object.entries(objects.find((o) => o.kind === 'Secret' && o.metadata.name === name).data).map(
        ([k, v]) => [k, Buffer.from(v as string, 'base64').toString()],
      ),
    );

  it('the tiers and the connection Secret hold the same generated passwords', () => {
    const objects = renderChart('stack', {
      release: 'millions',
      namespace: 'prod',
      values: stackValues(full.spec, false),
    });
    const connection = secretData(objects, 'millions-connection');
    const cacheAuth = secretData(objects, 'millions-cache-auth');
    const cache = cacheAuth.password!;
    const db = secretData(objects, 'millions-db-credentials');
    const shards = secretData(objects, 'millions-shards-credentials');
    const mq = secretData(objects, 'millions-mq-credentials');
    for (const generated of [cache, db['app-password'], shards['app-password'], mq.username, mq.password])
      expect(generated).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(connection.CACHE_URL).toBe(`rediss://:${cache}@millions-cache.prod.svc:6379/0`);
    expect(connection.CACHE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    expect(connection.SESSION_STORE_URL).toBe(connection.CACHE_URL);
    expect(connection.DATABASE_URL).toBe(
      `postgresql://app:${db['app-password']}@millions-db-rw.prod.svc:5432/app?sslmode=verify-full&sslrootcert=/etc/scalableapp/ca/ca.crt`,
    );
    expect(connection.SHARDS_PASSWORD).toBe(shards['app-password']);
    expect(connection.QUEUE_URL).toBe(`amqps://${mq.username}:${mq.password}@millions-mq.prod.svc:5672/%2F`);
    expect(connection.QUEUE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');

    // The pods that mount the Secret carry the digest the operator computes for the same logins.
    const facts: ObservedFacts = {
      gatewayApi: false,
      cachePassword: steadyCachePassword(cache),
      cacheLogins: {
        operator: cacheAuth['operator-password']!,
        replication: cacheAuth['replication-password']!,
      },
      dbCredentials: {
        superuser: db['superuser-password']!,
        replication: db['replication-password']!,
        app: db['app-password']!,
      },
      shardCredentials: { superuser: '', replication: '', app: shards['app-password']! },
      queueCredentials: {
        username: mq.username!,
        password: mq.password!,
        monitoringUsername: '',
        monitoringPassword: '',
        erlangCookie: '',
      },
      tls: renderedTls(objects),
    };
    const operator = desiredState(parseApp(full.spec, 'millions', 'prod'), facts);
    const hash = (list: any[], name: string) =>
      list.find((o) => o.kind === 'Deployment' && o.metadata.name === name).spec.template.metadata
        .annotations['scalableapp.io/connection-hash'];
    for (const pods of ['millions-web', 'millions-mailer', 'millions-photo-processor'])
      expect([pods, hash(objects, pods)]).toEqual([pods, hash(operator, pods)]);
  });

  it('generates one CA for the database, every shard, the cache and the queue, and signs each server certificate with it', () => {
    const objects = renderChart('stack', {
      release: 'millions',
      namespace: 'prod',
      values: stackValues(full.spec, false),
    });
    const tls = renderedTls(objects);
    const ca = new X509Certificate(tls.ca.cert);
    expect(ca.ca).toBe(true);
    const app = parseApp(full.spec, 'millions', 'prod');
    const servers = [
      ...[databaseCluster(app, { gatewayApi: false }), ...shardClusters(app, { gatewayApi: false })].map(
        (c) => ({ secret: `${c.name}-tls`, names: pgServerNames(c) }),
      ),
      { secret: 'millions-cache-tls', names: cacheServerNames(app) },
      { secret: 'millions-mq-tls', names: mqServerNames(app) },
    ];
    expect(Object.keys(tls.servers).sort()).toEqual(servers.map((s) => s.secret).sort());
    for (const s of servers) {
      const cert = new X509Certificate(tls.servers[s.secret]!.cert);
      expect([s.secret, cert.checkIssued(ca) && cert.verify(ca.publicKey)]).toEqual([s.secret, true]);
      expect(certDnsNames(cert)).toEqual([...s.names].sort());
      expect(secretData(objects, s.secret)['ca.crt']).toBe(tls.ca.cert);
    }
  });

  it('reads a tier given an existing Secret from it, and says when it cannot (helm template sees no cluster)', () => {
    const values = stackValues({ web: { image: 'x' }, cache: {} }, false);
    values.cache = { auth: { existingSecret: 'shop-cache-login' } };
    const r = templateChart('stack', { release: 'shop', namespace: 'prod', values });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(
      'cache.auth.existingSecret: Secret "shop-cache-login" with key "password" is not readable in prod',
    );
  });

  it('renders one connection Secret and the app-wide policies once', () => {
    const objects = renderChart('stack', {
      release: 'millions',
      namespace: 'prod',
      values: stackValues(full.spec),
    });
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    for (const once of [
      'Secret/millions-connection',
      'Secret/millions-ca',
      'ConfigMap/millions-ca-cert',
      'NetworkPolicy/millions-default-deny',
      'NetworkPolicy/millions-allow-dns',
    ])
      expect(names.filter((n) => n === once)).toEqual([once]);
  });

  it('every pod it renders, the helm test pods included, passes the restricted Pod Security Standard', () => {
    const objects = renderChart('stack', {
      release: 'millions',
      namespace: 'prod',
      values: stackValues(full.spec),
    });
    const pods = podSpecs(objects);
    expect(pods.length).toBeGreaterThan(5);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });
});

describe('tools/install-stack.sh', () => {
  it.each(samples)('installs the tiers $file declares', ({ spec }) => {
    const dir = mkdtempSync(join(tmpdir(), 'scalableapp-spec-'));
    try {
      writeFileSync(join(dir, 'values.yaml'), stringify(spec));
      const script = new URL('../../tools/install-stack.sh', import.meta.url).pathname;
      const r = spawnSync('bash', [script, '--tiers', join(dir, 'values.yaml')], { encoding: 'utf8' });
      expect([r.status, r.stderr]).toEqual([0, '']);
      const declared = Object.entries(declaredTiers(spec))
        .filter(([, on]) => on)
        .map(([t]) => t);
      expect(r.stdout.trim().split('\n').sort()).toEqual(declared.sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('charts/stack wires the tiers before they render', () => {
  /** Every template helm runs for the umbrella, named as helm names them (stack/charts/<tier>/...). */
  function executedTemplates(): string[] {
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => {
        const p = join(dir, f);
        return statSync(p).isDirectory() ? walk(p) : [p];
      });
    const templates = (dir: string, prefix: string) =>
      walk(join(dir, 'templates'))
        .map((f) => `${prefix}/templates/${relative(join(dir, 'templates'), f)}`)
        .filter((n) => !n.split('/').pop()!.startsWith('_'));
    const deps = (
      (chartMeta('stack').dependencies ?? []) as { name: string; alias?: string; repository?: string }[]
    ).filter((d) => d.name !== 'scalableapp-lib');
    return [
      ...templates(chartPath('stack'), 'stack'),
      ...deps.flatMap((d) =>
        templates(chartPath(d.repository!.replace('file://../', '')), `stack/charts/${d.alias ?? d.name}`),
      ),
    ];
  }

  it("runs the wiring template first, by helm's order (deepest path first, then by name, descending)", () => {
    // helm's pkg/engine/engine.go: sortTemplates = sort.Reverse(byPathLen); files named _* only define.
    const depth = (n: string) => n.split('/').length;
    const order = executedTemplates().sort((a, b) => depth(b) - depth(a) || (a < b ? 1 : a > b ? -1 : 0));
    expect(order[0]).toBe('stack/templates/wiring/before/the/tier/charts.yaml');
    expect(order.length).toBeGreaterThan(20);
  });
});

describe("charts/stack refuses what the spec's cross-tier rules refuse", () => {
  const rootRules = (
    (z.toJSONSchema(specSchema, { target: 'draft-7', io: 'input' }) as any)[
      'x-kubernetes-validations'
    ] as CelRule[]
  )
    // A transition rule needs the release's previous state: checked on upgrade (e2e/charts-stack.test.ts).
    .filter((r) => !r.rule.includes('oldSelf'));

  const broken: Record<string, { values: Values; field: string }> = {
    'spec must declare at least one tier (web, cache, database, shards, queue, consumers or edgeCache)': {
      values: {},
      field: 'tiers',
    },
    'web.sessions is cache but there is no cache tier: add spec.cache or set sessions to none': {
      values: stackValues({ web: { image: 'x', sessions: 'cache' } }),
      field: 'web.sessions',
    },
    'edgeCache fronts the web tier: add spec.web': {
      values: stackValues({ edgeCache: {} }),
      field: 'edgeCache',
    },
    'consumers need a queue tier: add spec.queue': {
      values: stackValues({ consumers: [{ name: 'w', image: 'w:1', queue: 'jobs' }] }),
      field: 'consumers',
    },
    'every consumers[].queue must name a queue declared in spec.queue.queues': {
      values: stackValues({
        queue: { queues: [{ name: 'jobs' }] },
        consumers: [
          { name: 'w', image: 'w:1', queue: 'jobs' },
          { name: 'v', image: 'v:1', queue: 'mail' },
        ],
      }),
      field: 'consumers',
    },
  };

  it('has a case for every rule it can check', () => {
    expect(Object.keys(broken).sort()).toEqual(rootRules.map((r) => r.message).sort());
  });

  it.each(Object.entries(broken))('%s', (message, { values, field }) => {
    const r = templateChart('stack', { release: 'shop', namespace: 'prod', values });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(`${field}: ${message}`);
  });

  it('refuses a tier the values configure but do not install, instead of leaving it out', () => {
    const values = { ...stackValues({ web: { image: 'x' } }), cache: { replicas: 1 } };
    const r = templateChart('stack', { release: 'shop', namespace: 'prod', values });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('tiers.cache: the values configure cache, so set tiers.cache=true');
  });
});
