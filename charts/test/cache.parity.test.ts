// charts/cache renders what the operator builds for spec.cache (plus the app-wide NetworkPolicies and,
// with TLS, the app's CA), for several input sets; maxmemory is computed from the same quantities to
// the same byte; the certificates it makes itself are the operator's kind; and the chart enforces the
// spec's CEL rules and the restricted Pod Security Standard.
import { cacheAuthInclude } from '../../operator/server-config/cache.ts';
import { CACHE_RESOURCES } from '../../operator/api/cache.ts';
import { EXPORTER_RESOURCES } from '../../operator/api/platform.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { maxMemoryBytes } from '../../operator/server-config/cache.ts';
import {
  steadyCachePassword,
  type CacheAppPassword,
  type ObservedFacts,
} from '../../operator/tiers/objects.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import {
  brokenAllowedClients,
  brokenResourceRules,
  testMonitoringRules,
  parity,
  testCelRules,
  tierObjects,
  type BrokenRules,
  type Exclusion,
  TWO_SCRAPERS,
} from './parity.ts';
import { podSpecs, renderChart, templateChart } from './helm.ts';
import {
  cacheTlsServer,
  cacheTlsValues,
  expectGeneratedTls,
  expectTlsCompared,
  heldCachePrimaryExclusion,
  isPasswordSecret,
  issuedTls,
  testOneServerTlsSources,
} from './data-tier-checks.ts';
import { cacheTls } from '../../operator/tiers/cache.ts';

type Spec = ScalableAppInput['spec'];
type Cache = NonNullable<Spec['cache']>;

/** What differs by design in every input set (charts/cache/README.md says why at length). */
const byDesign = (release: string): Exclusion[] => [
  {
    object: `Service/${release}-cache`,
    path: 'spec.selector',
    reason:
      'the operator selects its role label, which it moves on failover; without it the chart selects the primary pod by name (statefulset.kubernetes.io/pod-name)',
  },
  {
    object: `Service/${release}-cache-replicas`,
    path: 'spec.selector',
    reason:
      'no role label without the operator, and a selector cannot exclude the primary: the chart reaches every node',
  },
  { object: `Pod/${release}-cache-test`, onlyIn: 'chart', reason: 'the `helm test` hook' },
  {
    object: `NetworkPolicy/${release}-allow-cache-test`,
    onlyIn: 'chart',
    reason: 'a `helm test` hook that admits the test pod to the cache while the test runs',
  },
];

interface Case {
  name: string;
  release?: string;
  namespace?: string;
  spec: Spec & { cache: Cache };
  /** The passwords the operator generated (its Secret) and the primary it recorded. */
  facts: ObservedFacts & {
    cachePassword: CacheAppPassword;
    cacheLogins: { operator: string; replication: string; monitor?: string };
  };
  existingSecret?: string;
}

const cases: Case[] = [
  {
    name: 'defaults (the password is the only input)',
    spec: { cache: {} },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('Zr0bnK4oZQ3lq8Xx'),
      cacheLogins: { operator: 'Op0bnK4oZQ3lq8Xx', replication: 'Re0bnK4oZQ3lq8Xx' },
    },
  },
  {
    name: 'a maximal spec: Redis image, five replicas, numeric quantities, a loss window, a moved primary, topology',
    release: 'storefront',
    namespace: 'retail-eu',
    spec: {
      cache: {
        image: 'redis:7.2-alpine',
        replicas: 5,
        resources: { requests: { cpu: 1, memory: '1Gi' }, limits: { cpu: '2', memory: 1073741824 } },
        memoryHeadroomPercent: 35,
        evictionPolicy: 'volatile-ttl',
        defaultTTLSeconds: 90,
        minReplicasToWrite: 2,
        maxReplicaLagSeconds: 30,
        allowedClients: [
          { podSelector: { matchLabels: { app: 'reporting' } } },
          {
            podSelector: { matchLabels: { app: 'etl', 'team.example.com/owner': 'data' } },
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'analytics' } },
          },
        ],
      },
      topology: { zoneKey: 'example.com/rack', whenUnsatisfiable: 'ScheduleAnyway' },
    },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('long-password-1234567890'),
      cacheLogins: { operator: 'operator-password-123', replication: 'replication-password-456' },
      cachePrimary: 'storefront-cache-3',
    },
  },
  {
    name: 'odd values: no replicas, a decimal limit, 90% headroom, a password that needs quoting, no zone spread',
    release: 'c',
    namespace: 'n',
    spec: {
      cache: { replicas: 0, resources: { limits: { memory: '0.5Gi' } }, memoryHeadroomPercent: 90 },
      topology: { spreadAcrossZones: false },
    },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('a"b\\c d&<e>\'f$(g)'),
      cacheLogins: { operator: 'ü "o" \\ p', replication: 'r"e\\p l&<>' },
    },
  },
  {
    name: 'monitoring with defaults: the exporter, its login, the scrape annotations, the default scrapers',
    spec: { cache: { replicas: 1 }, monitoring: { enabled: true } },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('Zr0bnK4oZQ3lq8Xx'),
      cacheLogins: {
        operator: 'Op0bnK4oZQ3lq8Xx',
        replication: 'Re0bnK4oZQ3lq8Xx',
        monitor: 'Mo0bnK4oZQ3lq8Xx',
      },
    },
  },
  {
    name: 'monitoring, everything given: an exporter image, its resources, two scrapers, a password that needs quoting',
    release: 'storefront',
    namespace: 'retail-eu',
    spec: {
      cache: { replicas: 2, allowedClients: [{ podSelector: { matchLabels: { app: 'reporting' } } }] },
      monitoring: {
        enabled: true,
        scrapers: TWO_SCRAPERS,
        exporterImages: { cache: 'registry.example.com/redis_exporter:v1.45.0' },
        resources: { requests: { cpu: '50m' }, limits: { cpu: 1, memory: '128Mi' } },
      },
      topology: { spreadAcrossZones: false },
    },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('long-password-1234567890'),
      cacheLogins: {
        operator: 'operator-password-123',
        replication: 'replication-password-456',
        monitor: 'm"o\\n i&<t>or',
      },
    },
  },
  {
    name: 'monitoring with no scrapers: the exporter runs, no one is admitted to it',
    spec: { cache: {}, monitoring: { enabled: true, scrapers: [] } },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('pw-1'),
      cacheLogins: { operator: 'pw-2', replication: 'pw-3', monitor: 'pw-4' },
    },
  },
  {
    name: 'TLS off: the plaintext port, no certificate, no CA, redis:// for the exporter',
    spec: { cache: { replicas: 1, tls: { enabled: false } }, monitoring: { enabled: true } },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('pw-1'),
      cacheLogins: { operator: 'pw-2', replication: 'pw-3', monitor: 'pw-4' },
    },
  },
  {
    name: 'TLS off, no replicas, defaults otherwise',
    release: 'c',
    namespace: 'n',
    spec: { cache: { replicas: 0, tls: { enabled: false } } },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('pw-1'),
      cacheLogins: { operator: 'pw-2', replication: 'pw-3' },
    },
  },
  {
    name: "an existing auth Secret (the operator's layout)",
    spec: { cache: { replicas: 1, evictionPolicy: 'noeviction' } },
    facts: {
      gatewayApi: false,
      cachePassword: steadyCachePassword('unused-by-the-chart'),
      cacheLogins: { operator: 'unused', replication: 'unused-too' },
    },
    existingSecret: 'shop-cache-auth',
  },
];

describe('charts/cache renders what the operator builds for spec.cache', () => {
  it.each(cases)('$name', async (c) => {
    const release = c.release ?? 'shop';
    const namespace = c.namespace ?? 'prod';
    const app = parseApp(c.spec, release, namespace);
    // The certificates the operator would have issued, given to the chart too (TLS is on by default).
    const tls = cacheTls(app) ? await issuedTls([cacheTlsServer(app)]) : undefined;
    const facts: ObservedFacts = tls ? { ...c.facts, tls } : c.facts;
    const values: Record<string, unknown> = {
      ...c.spec.cache,
      ...(tls ? { tls: { ...c.spec.cache.tls, ...cacheTlsValues(tls, app) } } : {}),
      auth: c.existingSecret
        ? { existingSecret: c.existingSecret }
        : {
            password: c.facts.cachePassword.current,
            operatorPassword: c.facts.cacheLogins.operator,
            replicationPassword: c.facts.cacheLogins.replication,
            ...(c.facts.cacheLogins.monitor ? { monitorPassword: c.facts.cacheLogins.monitor } : {}),
          },
      ...(c.facts.cachePrimary ? { primary: c.facts.cachePrimary } : {}),
    };
    // The spec's monitoring as the cache chart takes it: the fields the cache uses.
    if (c.spec.monitoring) {
      const { podMonitors: _podMonitors, exporterImages, ...rest } = c.spec.monitoring;
      values.monitoring = {
        ...rest,
        ...(exporterImages?.cache ? { exporterImages: { cache: exporterImages.cache } } : {}),
      };
    }
    if (c.spec.topology) values.platform = { topology: c.spec.topology };
    const report = parity({
      chart: 'cache',
      release,
      namespace,
      values,
      // The app's CA is the tls component's (caObjects): the cache chart stands in for it alone.
      operator: tierObjects(desiredState(app, facts), ['cache', 'network', 'tls']),
      exclusions: [
        ...byDesign(release),
        ...heldCachePrimaryExclusion(app),
        ...(c.existingSecret
          ? [
              {
                object: `Secret/${c.existingSecret}`,
                onlyIn: 'operator' as const,
                reason: 'with auth.existingSecret the Secret exists already (the chart only mounts it)',
              },
            ]
          : []),
      ],
    });
    expect(report.differences).toEqual([]);
    expect(report.compared).toEqual(
      expect.arrayContaining([`StatefulSet/${release}-cache`, `ConfigMap/${release}-cache-config`]),
    );
    expectTlsCompared(report.compared, release, [`${release}-cache`], tls !== undefined);
  });

  it('the comparison sees a difference (so agreeing above means something)', () => {
    const facts = {
      gatewayApi: false,
      cachePassword: steadyCachePassword('pw'),
      cacheLogins: { operator: 'op', replication: 'repl' },
    };
    const report = parity({
      chart: 'cache',
      release: 'shop',
      namespace: 'prod',
      values: { auth: { password: 'other' }, evictionPolicy: 'allkeys-lfu', tls: { enabled: false } },
      operator: tierObjects(desiredState(parseApp({ cache: { tls: { enabled: false } } }), facts), [
        'cache',
        'network',
      ]),
      exclusions: byDesign('shop'),
    });
    expect(report.differences).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^ConfigMap\/shop-cache-config: data\.cache\.conf: chart ".*allkeys-lfu.*" ≠ operator/,
        ),
        expect.stringMatching(/^Secret\/shop-cache-auth: data\.password: chart "b3RoZXI=" ≠ operator "cHc="/),
        expect.stringMatching(
          /^StatefulSet\/shop-cache: spec\.template\.metadata\.annotations\.scalableapp\.io\/config-hash/,
        ),
      ]),
    );
  });

  it('selects the primary without the operator: by pod name, the recorded primary by default pod 0', () => {
    const selectorOf = (values: Record<string, unknown>) =>
      renderChart('cache', {
        release: 'shop',
        namespace: 'prod',
        values: { auth: { password: 'pw' }, ...values },
      }).find((o) => o.kind === 'Service' && o.metadata.name === 'shop-cache')!.spec as {
        selector: Record<string, string>;
      };
    expect(selectorOf({}).selector['statefulset.kubernetes.io/pod-name']).toBe('shop-cache-0');
    expect(selectorOf({ primary: 'shop-cache-2' }).selector['statefulset.kubernetes.io/pod-name']).toBe(
      'shop-cache-2',
    );
  });
});

describe('maxmemory: the chart computes the operator’s bytes', () => {
  const maxmemoryOf = (memory: string | number, headroom: number) => {
    const r = templateChart('cache', {
      release: 'shop',
      namespace: 'prod',
      values: {
        auth: { password: 'pw' },
        // A zero request: below every limit tried here, so only maxmemory is judged.
        resources: { requests: { memory: 0 }, limits: { memory } },
        memoryHeadroomPercent: headroom,
      },
    });
    if (!r.ok) return { error: r.stderr };
    return { bytes: Number(/maxmemory (\d+)/.exec(r.stdout)![1]) };
  };

  it.each<[string | number, number]>([
    ['256Mi', 20],
    ['1Gi', 5],
    ['1.5Gi', 33],
    ['0.75Ti', 10],
    ['512M', 20],
    ['100000k', 7],
    ['1e9', 20],
    ['2.5e8', 21],
    ['1.2345678901G', 13],
    ['123456789', 90],
    [268435457, 20],
    ['1Pi', 50],
  ])('%s with %d%% headroom', (memory, headroom) => {
    expect(maxmemoryOf(memory, headroom)).toEqual({ bytes: maxMemoryBytes(memory, headroom) });
  });

  it.each<[string | number, number, string]>([
    ['1', 20, 'leaves no memory after 20% headroom'],
    ['100m', 5, 'leaves no memory after 5% headroom'],
    ['8Ei', 20, 'is too large'],
  ])('%s with %d%% headroom fails in the operator (%s) and in the chart', (memory, headroom, message) => {
    expect(() => maxMemoryBytes(memory, headroom)).toThrow(message);
    // The chart refuses it before computing maxmemory, as the CRD does: a byte quantity between the
    // floor and 1Pi (the operator's function keeps its own checks for any other caller).
    expect(maxmemoryOf(memory, headroom).error).toMatch(/resources[./]limits[./]memory/);
  });
});

describe('charts/cache enforces what the schema cannot say', () => {
  const broken: BrokenRules = {
    'minReplicasToWrite must be <= replicas, or the primary could never accept a write': {
      values: { replicas: 1, minReplicasToWrite: 2 },
      field: 'minReplicasToWrite',
    },
    'a volatile-* evictionPolicy evicts only keys with a TTL: set defaultTTLSeconds > 0 or use an allkeys-* policy':
      { values: { evictionPolicy: 'volatile-lru', defaultTTLSeconds: 0 }, field: 'evictionPolicy' },
    ...brokenAllowedClients(),
    ...brokenResourceRules((resources) => ({ resources }), CACHE_RESOURCES.memoryFloor),
  };

  testCelRules('cache', { auth: { password: 'pw' } }, broken);

  it('refuses a primary that is not one of its pods', () => {
    const r = templateChart('cache', {
      release: 'shop',
      namespace: 'prod',
      values: { auth: { password: 'pw' }, replicas: 1, primary: 'shop-cache-2' },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(
      'primary: shop-cache-2 is not a pod of this cache (shop-cache-0, shop-cache-1)',
    );
  });

  it('generates a password when none is given, and never puts it in the ConfigMap or the pod spec', () => {
    const render = () => renderChart('cache', { release: 'shop', namespace: 'prod', values: {} });
    const passwordOf = (objects: ReturnType<typeof render>) =>
      Buffer.from(
        (
          objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'shop-cache-auth')!.data as Record<
            string,
            string
          >
        ).password!,
        'base64',
      ).toString();
    const first = render();
    const password = passwordOf(first);
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    // `helm template` cannot read back the installed Secret, so each render draws a new one.
    expect(passwordOf(render())).not.toBe(password);
    for (const o of first.filter((x) => x.kind !== 'Secret'))
      expect(JSON.stringify(o)).not.toContain(password);
    // The other two logins likewise, each its own; auth.conf is cacheAuthInclude() of the three.
    const data = Object.fromEntries(
      Object.entries(
        first.find((o) => o.kind === 'Secret' && o.metadata.name === 'shop-cache-auth')!.data as Record<
          string,
          string
        >,
      ).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
    const logins = { operator: data['operator-password']!, replication: data['replication-password']! };
    expect(new Set([password, logins.operator, logins.replication]).size).toBe(3);
    for (const p of Object.values(logins)) expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(data['auth.conf']).toBe(cacheAuthInclude({ app: password, ...logins }));
  });

  testMonitoringRules('cache', { auth: { password: 'pw' } }, EXPORTER_RESOURCES.memoryFloor);

  it('generates the monitor password only with monitoring, and puts it in auth.conf as cacheAuthInclude() does', () => {
    const secretOf = (monitoring: boolean) =>
      Object.fromEntries(
        Object.entries(
          renderChart('cache', {
            release: 'shop',
            namespace: 'prod',
            values: { auth: { password: 'pw' }, monitoring: { enabled: monitoring } },
          }).find((o) => o.kind === 'Secret' && o.metadata.name === 'shop-cache-auth')!.data as Record<
            string,
            string
          >,
        ).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      );
    expect(secretOf(false)['monitor-password']).toBeUndefined();
    expect(secretOf(false)['auth.conf']).not.toContain('user monitor');
    const data = secretOf(true);
    const monitor = data['monitor-password']!;
    expect(monitor).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(data['auth.conf']).toBe(
      cacheAuthInclude({
        app: 'pw',
        operator: data['operator-password']!,
        replication: data['replication-password']!,
        monitor,
      }),
    );
  });

  it('every pod it renders, the helm test pod included, passes the restricted Pod Security Standard', () => {
    const objects = renderChart('cache', {
      release: 'shop',
      namespace: 'prod',
      values: { auth: { password: 'pw' }, monitoring: { enabled: true } },
    });
    const pods = podSpecs(objects);
    // With monitoring, so the exporter container is judged too.
    expect(JSON.stringify(objects)).toContain('"name":"metrics"');
    expect(pods.map(([name]) => name).sort()).toEqual(['Pod/shop-cache-test', 'StatefulSet/shop-cache']);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });
});

describe('charts/cache serves TLS as the operator does, with certificates of its own', () => {
  const render = (values: Record<string, unknown> = {}) =>
    renderChart('cache', {
      release: 'shop',
      namespace: 'prod',
      values: { auth: { password: 'pw' }, ...values },
    });
  const app = parseApp({ cache: {} }, 'shop', 'prod');
  const pod = (objects: ReturnType<typeof render>, name: string) =>
    podSpecs(objects).find(([n]) => n === name)![1];

  it("generates the app's CA and a certificate it signed for exactly the cache's names (cacheServerNames)", () => {
    expectGeneratedTls(render(), 'shop', [cacheTlsServer(app)]);
  });

  it('has its helm test pod speak TLS, checking the chain against the mounted CA and the Service name', () => {
    const test = pod(render(), 'Pod/shop-cache-test');
    expect(test.containers[0]!.command!.join(' ')).toContain(
      '"$cli" --tls --cacert /etc/scalableapp/ca/ca.crt -h shop-cache.prod.svc -p 6379 PING',
    );
    expect(test.volumes).toEqual([{ name: 'ca', configMap: { name: 'shop-ca-cert' } }]);
    expect(test.containers[0]!.volumeMounts).toContainEqual({
      name: 'ca',
      mountPath: '/etc/scalableapp/ca',
      readOnly: true,
    });
  });

  it('with tls.enabled false renders no TLS object, no TLS setting and no mount', () => {
    const objects = render({ tls: { enabled: false }, monitoring: { enabled: true } });
    // Names only: a failure must not print a key.
    expect(
      objects.filter((o) => o.kind === 'Secret' && !isPasswordSecret(o)).map((o) => o.metadata.name),
    ).toEqual([]);
    expect(objects.filter((o) => o.kind === 'ConfigMap').map((o) => o.metadata.name)).toEqual([
      'shop-cache-config',
    ]);
    const text = JSON.stringify(objects);
    for (const word of ['/tls', 'tls-', '--tls', 'rediss://', 'ca.crt']) expect(text).not.toContain(word);
    expect(text).toContain('port 6379');
  });

  testOneServerTlsSources(
    'cache',
    { auth: { password: 'pw' } },
    {
      server: 'StatefulSet/shop-cache',
      ownSecret: 'shop-cache-tls',
    },
  );
});
