// The database chart renders the operator's database tier: for each input set, `helm template` of
// charts/database and databaseObjects() + networkPolicies() for a ScalableApp of the same name,
// namespace and spec.database agree object by object, except where the chart has no operator to
// move the primary or publish the read-only endpoints (the exclusions below, each with its reason).
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { databaseCluster, databaseObjects, type DatabaseCredentials } from '../../operator/tiers/database.ts';
import {
  expectTlsCompared,
  issuedTls,
  pgMonitoringValues,
  pgTlsValues,
  selfFenceExclusion,
} from './data-tier-checks.ts';
import { caObjects } from '../../operator/tiers/tls.ts';
import type { TlsFacts } from '../../operator/tiers/objects.ts';
import { networkPolicies } from '../../operator/tiers/network-policies.ts';
import { renderChart } from './helm.ts';
import { parity, type Exclusion, TWO_SCRAPERS } from './parity.ts';
import { appWideExclusions } from './tier-chart-checks.ts';

type Spec = NonNullable<ScalableAppInput['spec']>;

interface InputSet {
  readonly title: string;
  readonly release: string;
  readonly namespace: string;
  readonly database: NonNullable<Spec['database']>;
  readonly topology?: Spec['topology'];
  /** The operator's recorded primary; the chart's `primary` value. */
  readonly primary?: string;
  readonly credentials: DatabaseCredentials;
  readonly appWide?: boolean;
  /** spec.monitoring: what the database uses of it is the chart's `monitoring`. */
  readonly monitoring?: Spec['monitoring'];
}

const INPUT_SETS: InputSet[] = [
  {
    title: 'the defaults',
    release: 'shop',
    namespace: 'prod',
    database: {},
    credentials: { superuser: 'su-secret', replication: 'repl-secret', app: 'app-secret' },
  },
  {
    title: 'every field set: another version and image, synchronous replicas, a moved primary',
    release: 'shop',
    namespace: 'prod',
    database: {
      version: '16',
      image: 'registry.example/postgres:16.4-bookworm',
      replicas: 4,
      synchronousReplicas: 2,
      deletionPolicy: 'Delete',
      storage: { size: '20Gi', storageClassName: 'fast-ssd' },
      resources: { requests: { cpu: 2, memory: '2Gi' }, limits: { cpu: '4', memory: 4294967296 } },
      failover: { enabled: false, delaySeconds: 120 },
      allowedClients: [
        { podSelector: { matchLabels: { app: 'reporting' } } },
        {
          podSelector: { matchLabels: { app: 'etl', 'team.example.com/owner': 'data' } },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'analytics' } },
        },
      ],
    },
    topology: {
      spreadAcrossZones: true,
      zoneKey: 'example.com/rack-zone',
      whenUnsatisfiable: 'ScheduleAnyway',
    },
    primary: 'shop-db-3',
    credentials: { superuser: 'a', replication: 'b', app: 'c' },
  },
  {
    title:
      'odd values: no replicas, no spread, numeric sizes, passwords that need escaping, no app-wide policies',
    release: 'my-shop-2',
    namespace: 'team-a-staging',
    database: {
      replicas: 0,
      storage: { size: 10737418240 },
      resources: { requests: { memory: 536870912 } },
    },
    topology: {
      spreadAcrossZones: false,
      zoneKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'DoNotSchedule',
    },
    credentials: { superuser: `p:a\\s's "w" <&> ü`, replication: 'x'.repeat(200), app: '%40 @ / ?' },
    appWide: false,
  },
  {
    title: 'monitoring with its defaults: the exporter, its queries and login, the default scrapers',
    release: 'shop',
    namespace: 'prod',
    database: {},
    monitoring: { enabled: true },
    credentials: {
      superuser: 'su-secret',
      replication: 'repl-secret',
      app: 'app-secret',
      monitor: 'mon-secret',
    },
  },
  {
    title: 'monitoring with everything given: an exporter image, its resources, two scrapers, failover off',
    release: 'storefront',
    namespace: 'retail-eu',
    database: {
      replicas: 1,
      failover: { enabled: false, delaySeconds: 5 },
      allowedClients: [{ podSelector: { matchLabels: { app: 'reporting' } } }],
    },
    monitoring: {
      enabled: true,
      scrapers: TWO_SCRAPERS,
      exporterImages: { postgres: 'registry.example.com/postgres-exporter:v0.15.0' },
      resources: { requests: { cpu: '50m' }, limits: { cpu: 1, memory: '128Mi' } },
    },
    topology: { spreadAcrossZones: false },
    credentials: { superuser: 'a', replication: 'b', app: 'c', monitor: `m"o\\n&<i>tor` },
  },
  {
    title: 'TLS off: plaintext, no certificates, no CA',
    release: 'shop',
    namespace: 'prod',
    database: { tls: { enabled: false } },
    credentials: { superuser: 'su-secret', replication: 'repl-secret', app: 'app-secret' },
  },
  {
    title: 'TLS off with monitoring: the exporter connects in plaintext, its role admitted by host lines',
    release: 'shop',
    namespace: 'prod',
    database: { replicas: 1, tls: { enabled: false } },
    monitoring: { enabled: true },
    credentials: { superuser: 'a', replication: 'b', app: 'c', monitor: 'd' },
  },
  {
    title: 'monitoring with no scrapers: the exporter runs, no one is admitted to it',
    release: 'shop',
    namespace: 'prod',
    database: { replicas: 0 },
    monitoring: { enabled: true, scrapers: [] },
    credentials: { superuser: 'pw-1', replication: 'pw-2', app: 'pw-3', monitor: 'pw-4' },
  },
];

const tlsOn = (s: InputSet) => s.database.tls?.enabled ?? true;

/** The certificates the operator would have issued for the set (none with TLS off). */
async function issued(s: InputSet): Promise<TlsFacts | undefined> {
  if (!tlsOn(s)) return undefined;
  const { app, facts } = operatorInputs(s);
  return issuedTls([databaseCluster(app, facts)]);
}

const values = (s: InputSet, tls?: TlsFacts) => ({
  ...s.database,
  ...(tls
    ? {
        tls: {
          ...s.database.tls,
          ...pgTlsValues(tls, [databaseCluster(operatorInputs(s).app, operatorInputs(s).facts)], (c) => ({
            certificate: c[`${s.release}-db`],
          })),
        },
      }
    : {}),
  ...(s.topology ? { platform: { topology: s.topology } } : {}),
  ...(s.primary ? { primary: s.primary } : {}),
  ...(s.appWide === undefined ? {} : { networkPolicies: { appWide: s.appWide } }),
  ...(s.monitoring ? { monitoring: pgMonitoringValues(s.monitoring) } : {}),
  auth: {
    superuserPassword: s.credentials.superuser,
    replicationPassword: s.credentials.replication,
    appPassword: s.credentials.app,
    ...(s.credentials.monitor ? { monitorPassword: s.credentials.monitor } : {}),
  },
});

function operatorInputs(s: InputSet, tls?: TlsFacts) {
  const app = parseApp(
    {
      database: s.database,
      ...(s.topology ? { topology: s.topology } : {}),
      ...(s.monitoring ? { monitoring: s.monitoring } : {}),
    },
    s.release,
    s.namespace,
  );
  const facts = {
    gatewayApi: false,
    dbCredentials: s.credentials,
    ...(s.primary ? { dbPrimary: s.primary } : {}),
    ...(tls ? { tls } : {}),
  };
  return { app, facts };
}

function operatorObjects(s: InputSet, tls?: TlsFacts) {
  const { app, facts } = operatorInputs(s, tls);
  // The app's CA comes from desiredState (caObjects), beside the tier's own objects.
  return [...databaseObjects(app, facts), ...caObjects(app, facts), ...networkPolicies(app)];
}

function exclusions(s: InputSet): Exclusion[] {
  const db = `${s.release}-db`;
  const retained = (s.database.deletionPolicy ?? 'Retain') === 'Retain';
  const { app, facts } = operatorInputs(s);
  return [
    ...selfFenceExclusion(databaseCluster(app, facts)),
    {
      object: `Service/${db}-rw`,
      path: 'spec.selector',
      reason:
        'without the operator no role label moves: the chart selects the recorded primary by its statefulset.kubernetes.io/pod-name label',
    },
    {
      object: `Service/${db}-ro`,
      path: 'spec.selector',
      reason:
        'the operator publishes the read-only endpoints itself (no selector); the chart selects every instance, the primary included',
    },
    {
      object: `EndpointSlice/${db}-ro`,
      onlyIn: 'operator',
      reason: 'the ready replicas as the operator observes them; nothing publishes it without the operator',
    },
    {
      object: `Pod/${db}-test`,
      onlyIn: 'chart',
      reason: 'the helm test hook',
    },
    {
      object: `NetworkPolicy/${s.release}-allow-database-test`,
      onlyIn: 'chart',
      reason: 'the helm test hook that lets the test pod reach the instances while it runs',
    },
    ...(retained
      ? [
          {
            object: `Secret/${db}-credentials`,
            path: 'metadata.annotations',
            reason:
              'helm.sh/resource-policy: keep — retained volumes stay usable only with their passwords (the operator has no uninstall)',
          },
        ]
      : []),
    ...(s.appWide === false ? appWideExclusions(s.release) : []),
  ];
}

describe.each(INPUT_SETS)('charts/database with $title', (s) => {
  const render = { chart: 'database', release: s.release, namespace: s.namespace, values: values(s) };
  const rendered = () => renderChart('database', render);
  const find = (kind: string, name: string) =>
    rendered().find((o) => o.kind === kind && o.metadata.name === name) as any;
  const db = `${s.release}-db`;
  const primary = s.primary ?? `${db}-0`;
  const selector = { 'app.kubernetes.io/instance': s.release, 'app.kubernetes.io/component': 'database' };

  it('renders the objects the operator builds', async () => {
    const tls = await issued(s);
    const inputs = { values: values(s, tls), operator: operatorObjects(s, tls), exclusions: exclusions(s) };
    const report = parity({ ...render, ...inputs });
    expect(report.differences).toEqual([]);
    expectTlsCompared(report.compared, s.release, [db], tls !== undefined);
    expect(report.compared).toEqual(
      expect.arrayContaining([
        `ConfigMap/${db}-config`,
        `Secret/${db}-credentials`,
        `StatefulSet/${db}`,
        `Service/${db}-headless`,
        `Service/${db}-rw`,
        `Service/${db}-ro`,
        `PodDisruptionBudget/${db}`,
        `NetworkPolicy/${s.release}-allow-database-ingress`,
        `NetworkPolicy/${s.release}-allow-database-egress`,
      ]),
    );
  });

  it('routes writes to the recorded primary and reads to every instance (what the exclusions stand for)', () => {
    expect(find('Service', `${db}-rw`).spec.selector).toEqual({
      ...selector,
      'statefulset.kubernetes.io/pod-name': primary,
    });
    expect(find('Service', `${db}-ro`).spec.selector).toEqual(selector);
    expect(find('ConfigMap', `${db}-config`).data.primary).toBe(primary);
  });

  it('keeps the credentials Secret on uninstall exactly when the volumes are retained', () => {
    const retained = (s.database.deletionPolicy ?? 'Retain') === 'Retain';
    expect(find('Secret', `${db}-credentials`).metadata.annotations).toEqual(
      retained ? { 'helm.sh/resource-policy': 'keep' } : undefined,
    );
    expect(find('StatefulSet', db).spec.persistentVolumeClaimRetentionPolicy.whenDeleted).toBe(
      retained ? 'Retain' : 'Delete',
    );
  });
});
