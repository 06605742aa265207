// charts/web renders what the operator builds for spec.web (plus the app-wide NetworkPolicies and
// the connection Secret it stands in for), for several input sets; and it enforces the spec's CEL
// rules and the restricted Pod Security Standard.
import { AUTOSCALING_CPU_MESSAGE, HOST_IP_MESSAGE, WEB_RESOURCES } from '../../operator/api/web.ts';
import { injectedEnvMessage } from '../../operator/api/common.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableApp, ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { connectionEntries, connectionHash, connectionSecret } from '../../operator/tiers/connection.ts';
import { NO_FACTS, steadyCachePassword, type ObservedFacts } from '../../operator/tiers/objects.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import {
  brokenResourceRules,
  parity,
  testCelRules,
  tierObjects,
  type BrokenRules,
  type Exclusion,
} from './parity.ts';
import { podSpecs, renderChart, templateChart } from './helm.ts';
import { appTls, caValues } from './data-tier-checks.ts';

type Spec = ScalableAppInput['spec'];
type Web = NonNullable<Spec['web']>;

const GATEWAY_API = 'gateway.networking.k8s.io/v1/HTTPRoute';
const testPod = (release: string): Exclusion => ({
  object: `Pod/${release}-web-test`,
  onlyIn: 'chart',
  reason: 'the `helm test` hook; the operator reports readiness in status instead',
});

interface Case {
  name: string;
  release?: string;
  namespace?: string;
  /** The ScalableApp spec (the operator's input); its `web` is the chart's values. */
  spec: Spec & { web: Web };
  /** Chart-only values, for what the operator knows from the rest of the spec or the cluster. */
  chartOnly?: Record<string, unknown> | ((app: ScalableApp, facts: ObservedFacts) => Record<string, unknown>);
  facts?: ObservedFacts;
  exclusions?: (release: string) => Exclusion[];
}

const cases: Case[] = [
  { name: 'defaults (an image only)', spec: { web: { image: 'registry.example/shop:1.4.2' } } },
  {
    name: 'a maximal spec: autoscaling, numeric quantities, Ingress with TLS through an edge cache, env, topology',
    release: 'storefront',
    namespace: 'retail-eu',
    spec: {
      web: {
        image:
          'registry.example/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
        port: 9090,
        replicas: 5,
        autoscaling: { minReplicas: 3, maxReplicas: 40, targetCPUUtilizationPercentage: 55 },
        resources: { requests: { cpu: 2, memory: '1.5Gi' }, limits: { cpu: '4', memory: 4294967296 } },
        expose: {
          type: 'Ingress',
          host: 'shop.example.com',
          tlsSecretName: 'shop-tls',
          ingressClassName: 'nginx',
        },
        healthCheck: { path: '/ready', livenessPath: '/alive', periodSeconds: 3, failureThreshold: 7 },
        env: [
          { name: 'FEATURE_FLAGS', value: 'a,b' },
          { name: 'API_KEY', secretKeyRef: { name: 'shop-api', key: 'key' } },
        ],
      },
      edgeCache: { pathPrefix: '/assets' },
      topology: { zoneKey: 'example.com/rack', whenUnsatisfiable: 'ScheduleAnyway' },
    },
    chartOnly: { edgeCache: { pathPrefix: '/assets' } },
  },
  {
    name: 'Gateway exposure where the cluster serves the Gateway API',
    spec: {
      web: {
        image: 'shop:2',
        expose: { type: 'Gateway', host: '*.shop.example.com', gateway: { name: 'public', namespace: 'gw' } },
        autoscaling: { maxReplicas: 4 },
      },
    },
    facts: { gatewayApi: true },
  },
  {
    name: 'Gateway exposure where the Gateway API is not served (no route on either side)',
    spec: {
      web: { image: 'shop:2', expose: { type: 'Gateway', host: 'shop.example.com', gateway: { name: 'g' } } },
    },
  },
  {
    name: 'odd values: LoadBalancer, zero replicas, no zone spread, an explicitly empty resources, empty env value',
    release: 'a',
    namespace: 'x',
    spec: {
      web: {
        image: 'x',
        replicas: 0,
        resources: {},
        expose: { type: 'LoadBalancer' },
        env: [
          { name: 'EMPTY', value: '' },
          { name: 'HTML', value: '<b>&amp;</b>' },
        ],
      },
      topology: { spreadAcrossZones: false },
    },
  },
  {
    name: 'sessions in a cache tier with TLS off: redis:// URLs, no CA',
    spec: {
      web: { image: 'shop:3', sessions: 'cache' },
      cache: { tls: { enabled: false } },
    },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('pw'),
      cacheLogins: { operator: 'op', replication: 'repl' },
    },
  },
  {
    name: "sessions in a cache tier (TLS, the default, its only TLS tier): rediss:// URLs, CACHE_CA_FILE, the app's CA mounted and hashed (escaping <, >, &)",
    spec: {
      web: { image: 'shop:3', sessions: 'cache' },
      cache: { defaultTTLSeconds: 0 },
    },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('p&ss<w>rd"1'),
      cacheLogins: { operator: 'op', replication: 'repl' },
    },
  },
  {
    name: "a database and shards with TLS (the default): verify-full URLs, the app's CA mounted and in the hash",
    spec: { web: { image: 'shop:5' }, database: {}, shards: { count: 2, key: 'user_id' } },
    facts: {
      gatewayApi: false,
      dbCredentials: { superuser: 'su', replication: 'repl', app: 'db pw/1' },
      shardCredentials: { superuser: 'su', replication: 'repl', app: 'shards-pw' },
    },
    chartOnly: { shardMap: { configMapName: 'shop-shard-map' } },
  },
  {
    name: 'a database with TLS off: a plaintext URL, no CA',
    spec: { web: { image: 'shop:5' }, database: { tls: { enabled: false } } },
    facts: { gatewayApi: false, dbCredentials: { superuser: 'su', replication: 'repl', app: 'db-pw' } },
  },
  {
    name: "an existing connection Secret (the operator's) with TLS, its hash (the CA's too) given",
    spec: { web: { image: 'shop:6' }, database: {} },
    facts: { gatewayApi: false, dbCredentials: { superuser: 'su', replication: 'repl', app: 'db-pw' } },
    chartOnly: (app, facts) => ({
      connection: {
        secretName: 'shop-connection',
        hash: connectionHash(connectionSecret(app, facts), facts.tls!.ca.cert),
      },
    }),
    exclusions: () => [
      {
        object: 'Secret/shop-connection',
        onlyIn: 'operator',
        reason: 'with connection.secretName the Secret exists already (the chart only reads it)',
      },
    ],
  },
  {
    name: "an existing connection Secret (the operator's), its hash given",
    spec: { web: { image: 'shop:4' } },
    chartOnly: (app, facts) => ({
      connection: { secretName: 'shop-connection', hash: connectionHash(connectionSecret(app, facts)) },
    }),
    exclusions: () => [
      {
        object: 'Secret/shop-connection',
        onlyIn: 'operator',
        reason: 'with connection.secretName the Secret exists already (the chart only reads it)',
      },
    ],
  },
];

describe('charts/web renders what the operator builds for spec.web', () => {
  it.each(cases)('$name', async (c) => {
    const release = c.release ?? 'shop';
    const namespace = c.namespace ?? 'prod';
    const given = c.facts ?? NO_FACTS;
    const app = parseApp(c.spec, release, namespace);
    const tls = await appTls(app, given);
    const facts: ObservedFacts = tls ? { ...given, tls } : given;
    const chartOnly = typeof c.chartOnly === 'function' ? c.chartOnly(app, facts) : c.chartOnly;
    const values: Record<string, unknown> = { ...c.spec.web, ...caValues(app, tls), ...chartOnly };
    if (c.spec.topology) values.platform = { topology: c.spec.topology };
    // What the other tiers put in the connection Secret reaches a lone web chart as entries.
    const { SCALABLEAPP_NAME: _name, WEB_URL: _url, ...others } = connectionEntries(app, facts);
    // (beside a connection the case gives: with secretName the chart reads none of them).
    if (Object.keys(others).length) values.connection = { entries: others, ...(chartOnly?.connection ?? {}) };
    const report = parity({
      chart: 'web',
      release,
      namespace,
      values,
      apiVersions: facts.gatewayApi ? [GATEWAY_API] : [],
      operator: tierObjects(desiredState(app, facts), ['web', 'network', 'connection']),
      exclusions: [testPod(release), ...(c.exclusions?.(release) ?? [])],
    });
    expect(report.differences).toEqual([]);
    expect(report.compared).toEqual(expect.arrayContaining([`Deployment/${release}-web`]));
  });

  it('the comparison sees a difference (so agreeing above means something)', () => {
    const app = parseApp({ web: { image: 'shop:1' } });
    const report = parity({
      chart: 'web',
      release: 'shop',
      namespace: 'prod',
      values: { image: 'shop:1', port: 8081 },
      operator: tierObjects(desiredState(app, NO_FACTS), ['web', 'network', 'connection']),
      exclusions: [testPod('shop')],
    });
    expect(report.differences).toEqual(
      expect.arrayContaining([
        'Deployment/shop-web: spec.template.spec.containers[0].ports[0].containerPort: chart 8081 ≠ operator 8080',
        'NetworkPolicy/shop-allow-web-ingress: spec.ingress[0].ports[0].port: chart 8081 ≠ operator 8080',
      ]),
    );
  });
});

describe('charts/web enforces what the schema cannot say', () => {
  // Each CEL rule of spec.web (operator/api/web.ts), broken once: the chart must fail naming the field.
  const broken: BrokenRules = {
    'minReplicas must be <= maxReplicas': {
      values: { autoscaling: { minReplicas: 5, maxReplicas: 4 } },
      field: 'autoscaling.minReplicas',
    },
    'host is required when type is Ingress or Gateway': {
      values: { expose: { type: 'Ingress' } },
      field: 'expose.host',
    },
    'gateway may only be set when type is Gateway': {
      values: { expose: { type: 'Ingress', host: 'a.b', gateway: { name: 'g' } } },
      field: 'expose.gateway',
    },
    'gateway is required when type is Gateway': {
      values: { expose: { type: 'Gateway', host: 'a.b' } },
      field: 'expose.gateway',
    },
    'tlsSecretName may only be set when type is Ingress': {
      values: { expose: { type: 'Gateway', host: 'a.b', gateway: { name: 'g' }, tlsSecretName: 't' } },
      field: 'expose.tlsSecretName',
    },
    'ingressClassName may only be set when type is Ingress': {
      values: { expose: { type: 'LoadBalancer', ingressClassName: 'c' } },
      field: 'expose.ingressClassName',
    },
    'host may only be set when type is Ingress or Gateway': {
      values: { expose: { type: 'ClusterIP', host: 'a.b' } },
      field: 'expose.host',
    },
    'set exactly one of value or secretKeyRef': {
      values: {
        env: [
          { name: 'OK', value: '1' },
          { name: 'BOTH', value: 'x', secretKeyRef: { name: 's', key: 'k' } },
        ],
      },
      field: 'env[1]',
    },
    [injectedEnvMessage]: {
      values: {
        env: [
          { name: 'OK', value: '1' },
          { name: 'DATABASE_URL', value: 'postgres://elsewhere/db' },
        ],
      },
      field: 'env[1].name',
    },
    [HOST_IP_MESSAGE]: { values: { expose: { type: 'Ingress', host: '10.1.2.3' } }, field: 'expose.host' },
    [AUTOSCALING_CPU_MESSAGE]: {
      values: { autoscaling: { maxReplicas: 4 }, resources: { requests: { cpu: 0 } } },
      field: 'resources.requests.cpu',
    },
    ...brokenResourceRules((resources) => ({ resources }), WEB_RESOURCES.memoryFloor),
  };

  testCelRules('web', { image: 'x' }, broken);

  it('sessions in the cache need the cache tier: a session store among the connection entries', () => {
    const r = templateChart('web', {
      release: 'shop',
      namespace: 'prod',
      values: { image: 'x', sessions: 'cache' },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('sessions: web.sessions is cache but there is no cache tier');
    const withStore = {
      image: 'x',
      sessions: 'cache',
      connection: { entries: { SESSION_STORE_URL: 'redis://c:6379/0' } },
    };
    expect(templateChart('web', { release: 'shop', namespace: 'prod', values: withStore }).ok).toBe(true);
  });

  it('every pod it renders, the helm test pod included, passes the restricted Pod Security Standard', () => {
    const objects = renderChart('web', { release: 'shop', namespace: 'prod', values: { image: 'x' } });
    const pods = podSpecs(objects);
    expect(pods.map(([name]) => name).sort()).toEqual(['Deployment/shop-web', 'Pod/shop-web-test']);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });
});
