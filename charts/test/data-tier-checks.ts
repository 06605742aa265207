// What the tests of the data tier charts (shards, queue; the database chart's could use them too)
// share: the parity exclusions of a Postgres cluster without the operator, the spec's rules checked
// by rendering or, for rules on changes, by the templates' text, and generated secrets kept out of
// every object but their Secret.
import { volumeSizeMessage } from '../../operator/api/common.ts';
import { readFileSync } from 'node:fs';
import { CHART_SCHEMAS, tierCelRules } from '../../tools/generate-chart-schemas.ts';
import { chartPath, renderChart, templateChart, type RenderedObject } from './helm.ts';
import { testMonitoringRules, type Exclusion } from './parity.ts';
import { podSpecs } from './tier-chart-checks.ts';
import { EXPORTER_RESOURCES } from '../../operator/api/platform.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import type { ScalableApp, ScalableAppInput } from '../../operator/api/scalable-app.ts';
import {
  CACHE_HOLD_KEY,
  cacheConfigName,
  cacheServerNames,
  cacheTls,
  cacheTlsSecretName,
  restartedPrimaryWaits,
} from '../../operator/tiers/cache.ts';
import {
  pgServerNames,
  pgTlsSecretName,
  selfFencing,
  type DatabaseCredentials,
  type PgCluster,
} from '../../operator/tiers/postgres-cluster.ts';
import type { ObservedFacts, TlsFacts } from '../../operator/tiers/objects.ts';
import { databaseCluster } from '../../operator/tiers/database.ts';
import { mqServerNames, mqTlsSecretName, queueTls } from '../../operator/tiers/queue.ts';
import { shardClusters } from '../../operator/tiers/shards.ts';
import { caConfigMapName, usesTls } from '../../operator/tiers/tls.ts';
import { certDnsNames, issueCa, issueServerCert, type KeyPair } from '../../operator/tls/certificates.ts';
import { X509Certificate, createPrivateKey } from 'node:crypto';

/** What differs by design for one Postgres cluster (`<name>-rw`, `<name>-ro`) without the operator. */
export const pgClusterExclusions = (cluster: string): Exclusion[] => [
  {
    object: `Service/${cluster}-rw`,
    path: 'spec.selector',
    reason:
      'without the operator no role label moves: the chart selects the recorded primary by its statefulset.kubernetes.io/pod-name label',
  },
  {
    object: `Service/${cluster}-ro`,
    path: 'spec.selector',
    reason:
      'the operator publishes the read-only endpoints itself (no selector); the chart selects every instance, the primary included',
  },
  {
    object: `EndpointSlice/${cluster}-ro`,
    onlyIn: 'operator',
    reason: 'the ready replicas as the operator observes them; nothing publishes it without the operator',
  },
];

/**
 * The self-fence's setting (ready.sh), on the operator's StatefulSet of a cluster that fences: a
 * primary fences itself when cut off only where an operator may promote another instance and lifts
 * the fence; the charts have no failover. Empty for a cluster that does not fence.
 */
export const selfFenceExclusion = (c: PgCluster): Exclusion[] =>
  selfFencing(c)
    ? [
        {
          object: `StatefulSet/${c.name}`,
          // By name: the TLS variables follow it, so the two sides' lists differ from it on.
          path: 'spec.template.spec.containers[0].env[name=FENCE_AFTER_SECONDS]',
          reason:
            'FENCE_AFTER_SECONDS: without an operator nothing is promoted beside a cut-off primary and nothing would lift its fence',
        },
      ]
    : [];

/**
 * The record key that makes a restarted cache primary wait for the operator (operator/tiers/cache.ts):
 * the charts have no failover, and a primary waiting there would wait for ever. None without replicas.
 */
export const heldCachePrimaryExclusion = (app: ScalableApp): Exclusion[] =>
  restartedPrimaryWaits(app)
    ? [
        {
          object: `ConfigMap/${cacheConfigName(app)}`,
          path: `data.${CACHE_HOLD_KEY}`,
          reason:
            'without an operator nothing would promote a replica while a restarted primary waited: the chart never holds it',
        },
      ]
    : [];

/** The chart values that give a Postgres chart the passwords the operator generated. */
export const pgAuthValues = (c: DatabaseCredentials) => ({
  superuserPassword: c.superuser,
  replicationPassword: c.replication,
  appPassword: c.app,
  ...(c.monitor ? { monitorPassword: c.monitor } : {}),
});

/** The spec's monitoring as a Postgres chart (database, shards) takes it: the fields a cluster uses. */
export const pgMonitoringValues = (m: NonNullable<ScalableAppInput['spec']>['monitoring'] & object) => {
  const { podMonitors: _podMonitors, exporterImages, ...rest } = m;
  return {
    ...rest,
    ...(exporterImages?.postgres ? { exporterImages: { postgres: exporterImages.postgres } } : {}),
  };
};

/** The `helm.sh/resource-policy: keep` annotation on a Secret whose data outlives the release. */
export const keptSecretExclusion = (secret: string, why: string): Exclusion => ({
  object: `Secret/${secret}`,
  path: 'metadata.annotations',
  reason: `helm.sh/resource-policy: keep — ${why} (the operator has no uninstall)`,
});

/** Fails when any of `values` appears in a rendered object other than a Secret. */
export function expectOnlyInSecrets(objects: readonly RenderedObject[], values: readonly string[]): void {
  const elsewhere = JSON.stringify(objects.filter((o) => o.kind !== 'Secret'));
  for (const v of values) expect(elsewhere).not.toContain(v);
}

export type TierRules = Record<string, { field: string; values?: Record<string, unknown> }>;

/**
 * Like testCelRules (parity.ts), for tiers with rules on changes (CEL `oldSelf`): those need the
 * live release, which the chart reads with `lookup` on upgrade and a cluster test breaks; here a
 * case without `values` checks that one of `templates` (paths under charts/) says the rule with its
 * field. Defines the tests inside the caller's describe.
 */
/**
 * The cases of a volume's rules (operator/api/common.ts `storage`): a zero size fails at render; the
 * rules on changes (oldSelf) need the live release, checked on upgrade with `lookup`.
 */
export const brokenStorageRules = (): TierRules => ({
  [volumeSizeMessage]: { field: 'storage.size', values: { storage: { size: 0 } } },
  'size may grow but never shrink: a volume cannot give back space its data may use': {
    field: 'storage.size',
  },
  'storageClassName is immutable: existing volumes cannot move to another storage class': {
    field: 'storage.storageClassName',
  },
});

export function testTierRules(
  chart: string,
  base: Record<string, unknown>,
  rules: TierRules,
  templates: readonly string[],
): void {
  it(`every CEL rule of the ${chart} tier has a case`, () => {
    const entry = CHART_SCHEMAS.find((s) => s.chart === chart)!;
    expect(Object.keys(rules).sort()).toEqual(
      [...new Set(tierCelRules(entry).map((r) => r.rule.message))].sort(),
    );
  });

  it.each(Object.entries(rules))('%s', (message, { field, values }) => {
    if (values) {
      const r = templateChart(chart, { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
      expect(r.ok).toBe(false);
      expect(r.stderr).toContain(`${field}: ${message}`);
    } else {
      const text = templates.map((t) => readFileSync(chartPath(t), 'utf8')).join('\n');
      expect(text).toContain(`${field}: ${message}`);
    }
  });
}

/**
 * What a Postgres chart (database, shards) does with `monitoring` that parity cannot show: the
 * operator's rules on monitoring.resources and monitoring.scrapers refused (checked only with
 * monitoring on, as in the spec), the monitor password generated only with monitoring and kept out
 * of every object but the Secret, a given one that would break the exporter's DSN refused, and
 * restricted pods with the exporter beside each server. `secret` is the credentials Secret's name;
 * `base` the values every render needs. Defines the tests inside the caller's describe.
 */
export function testPgMonitoring(
  chart: 'database' | 'shards',
  base: Record<string, unknown>,
  secret: string,
) {
  const render = (values: Record<string, unknown>) =>
    renderChart(chart, { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
  const secretData = (objects: readonly RenderedObject[]) =>
    Object.fromEntries(
      Object.entries(
        (objects.find((o) => o.kind === 'Secret' && o.metadata.name === secret)!.data ?? {}) as Record<
          string,
          string
        >,
      ).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );

  testMonitoringRules(chart, base, EXPORTER_RESOURCES.memoryFloor);

  it('the schema refuses a monitor password with a space (postgres_exporter 0.11 would not start)', () => {
    const r = templateChart(chart, {
      release: 'shop',
      namespace: 'prod',
      values: { ...base, monitoring: { enabled: true }, auth: { monitorPassword: 'two words' } },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('/auth/monitorPassword');
  });

  it('generates the monitor password only with monitoring, and admits the role only then', () => {
    const off = render({});
    expect(secretData(off)['monitor-password']).toBeUndefined();
    expect(JSON.stringify(off)).not.toMatch(/host(ssl)? postgres monitor/);
    const on = render({ monitoring: { enabled: true } });
    const data = secretData(on);
    expect(Object.keys(data).sort()).toEqual([
      'app-password',
      'monitor-password',
      'replication-password',
      'superuser-password',
    ]);
    expect(data['monitor-password']).toMatch(/^[A-Za-z0-9]{32}$/);
    for (const map of on.filter((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-config'))) {
      const hba = map.data as Record<string, string>;
      for (const file of ['pg_hba.conf', 'pg_hba.fenced.conf']) {
        // hostssl: TLS is on by default.
        expect(hba[file]).toContain('hostssl postgres monitor 127.0.0.1/32 scram-sha-256\n');
      }
      expect(hba['exporter-queries.yaml']).toContain('pg_instance:');
    }
  });

  it('never writes the monitor password into anything but the Secret', () => {
    expectOnlyInSecrets(
      render({ monitoring: { enabled: true }, auth: { monitorPassword: 'M0nit0r-S3cret' } }),
      ['M0nit0r-S3cret'],
    );
  });

  it('with monitoring, every pod passes the restricted Pod Security Standard, the exporter included', () => {
    const objects = render({ monitoring: { enabled: true } });
    const pods = podSpecs(objects);
    for (const [name, spec] of pods) {
      if (name.startsWith('StatefulSet/'))
        expect(spec.containers.map((c) => c.name)).toEqual(['postgres', 'metrics']);
      expect([name, restrictedViolations(spec)]).toEqual([name, []]);
    }
  });
}

/** The CA of every test app: issuing one takes a moment, and parity needs only identical inputs. */
let testCa: Promise<KeyPair> | undefined;

/** A server certificate the operator issues: its Secret's name and the DNS names it holds. */
export interface TlsServer {
  readonly secret: string;
  readonly names: readonly string[];
}

/** A Postgres cluster as a TLS server (`<cluster>-tls`, pgServerNames). */
export const pgTlsServer = (c: PgCluster): TlsServer => ({
  secret: pgTlsSecretName(c),
  names: pgServerNames(c),
});

/** The cache as a TLS server (`<app>-cache-tls`, cacheServerNames), as the cache tier module issues it. */
export const cacheTlsServer = (app: ScalableApp): TlsServer => ({
  secret: cacheTlsSecretName(app),
  names: cacheServerNames(app),
});

/** The broker as a TLS server (`<app>-mq-tls`, mqServerNames), as the queue tier module issues it. */
export const queueTlsServer = (app: ScalableApp): TlsServer => ({
  secret: mqTlsSecretName(app),
  names: mqServerNames(app),
});

/**
 * Certificates as the operator's controller issues them (operator/tls/certificates.ts), for the
 * servers given (Postgres clusters are turned into theirs): one CA, a server certificate per server
 * for its names. The operator side gets them as facts.tls, the chart side as values (pgTlsValues,
 * cacheTlsValues), as both get passwords.
 */
export async function issuedTls(servers: readonly (PgCluster | TlsServer)[]): Promise<TlsFacts> {
  const now = new Date();
  testCa ??= issueCa('charts/test ScalableApp CA', now);
  const ca = await testCa;
  const issued = Object.fromEntries(
    await Promise.all(
      servers
        .map((s) => ('secret' in s ? s : pgTlsServer(s)))
        .map(async (s) => [s.secret, await issueServerCert(ca, [...s.names], now)] as const),
    ),
  );
  return { ca, servers: issued };
}

/** The chart values that give a one-server chart the certificates the operator issued (its `tls`). */
const serverTlsValues = (tls: TlsFacts, server: TlsServer) => ({
  ca: tls.ca,
  certificate: tls.servers[server.secret]!,
});

/** The cache chart's `tls` values for the certificates the operator issued. */
export const cacheTlsValues = (tls: TlsFacts, app: ScalableApp) => serverTlsValues(tls, cacheTlsServer(app));

/** The queue chart's `tls` values for the certificates the operator issued. */
export const queueTlsValues = (tls: TlsFacts, app: ScalableApp) => serverTlsValues(tls, queueTlsServer(app));

/** The chart values that give a Postgres chart the certificates the operator issued. */
export const pgTlsValues = (
  tls: TlsFacts,
  clusters: readonly PgCluster[],
  certificates: (byCluster: Record<string, KeyPair>) => Record<string, unknown>,
) => ({
  ca: tls.ca,
  ...certificates(Object.fromEntries(clusters.map((c) => [c.name, tls.servers[pgTlsSecretName(c)]!]))),
});

/**
 * That parity compared the TLS objects of an app's Postgres `clusters` (the CA's Secret and
 * ConfigMap, a server certificate per cluster) with TLS on, and that neither side had any with it off.
 */
export function expectTlsCompared(compared: string[], app: string, clusters: string[], on: boolean) {
  const objects = [`Secret/${app}-ca`, `ConfigMap/${app}-ca-cert`, ...clusters.map((c) => `Secret/${c}-tls`)];
  if (on) expect(compared).toEqual(expect.arrayContaining(objects));
  else for (const o of objects) expect(compared).not.toContain(o);
}

/**
 * The certificates the operator would issue for an app's tiers that serve TLS (the database's,
 * every shard's, the cache's, the broker's), or undefined when none does.
 */
export async function appTls(app: ScalableApp, facts: ObservedFacts): Promise<TlsFacts | undefined> {
  if (!usesTls(app)) return undefined;
  return issuedTls([
    ...(app.spec.database?.tls.enabled ? [databaseCluster(app, facts)] : []),
    ...(app.spec.shards?.tls.enabled ? shardClusters(app, facts) : []),
    ...(cacheTls(app) ? [cacheTlsServer(app)] : []),
    ...(queueTls(app) ? [queueTlsServer(app)] : []),
  ]);
}

/**
 * The `ca` values of a web or consumers chart for an app whose data tiers or queue serve TLS: the CA's
 * ConfigMap to mount, as the operator mounts it, and its certificate for the connection hash.
 */
export const caValues = (app: ScalableApp, tls: TlsFacts | undefined) =>
  tls && usesTls(app) ? { ca: { configMapName: caConfigMapName(app), cert: tls.ca.cert } } : {};

/**
 * What a Postgres chart (database, shards) does with `tls` that parity, which gives both sides the
 * same certificates, cannot show: with nothing given it generates a CA and, per cluster, a server
 * certificate that CA signed for exactly the operator's names (pgServerNames), each Secret's ca.crt
 * and the ConfigMap's being that CA; with tls.enabled false it renders no TLS object and nothing
 * that names one; with tls.existingSecret it mounts that Secret and renders no key of its own.
 * `clusters` are the operator's clusters for the release shop in prod and `base`. Defines the tests
 * inside the caller's describe.
 */
export function testPgTls(
  chart: 'database' | 'shards',
  base: Record<string, unknown>,
  clusters: PgCluster[],
) {
  const render = (values: Record<string, unknown> = {}) =>
    renderChart(chart, { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
  const find = (objects: readonly RenderedObject[], kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name) as
      (RenderedObject & { data: Record<string, string> }) | undefined;
  const decoded = (s: { data: Record<string, string> }, key: string) =>
    Buffer.from(s.data[key]!, 'base64').toString();

  it('generates a CA and, for each cluster, a certificate it signed for exactly the names clients use', () => {
    expectGeneratedTls(render(), 'shop', clusters.map(pgTlsServer));
  });

  it('with tls.enabled false renders no TLS object, no ssl setting, no hostssl line and no mount', () => {
    const objects = render({ tls: { enabled: false } });
    // Names only: a failure must not print a key.
    expect(
      objects.filter((o) => o.kind === 'Secret' && !isPasswordSecret(o)).map((o) => o.metadata.name),
    ).toEqual([]);
    expect(find(objects, 'ConfigMap', 'shop-ca-cert')).toBeUndefined();
    const text = JSON.stringify(
      objects.filter((o) => !(o.kind === 'ConfigMap' && o.metadata.name.endsWith('-config'))),
    );
    for (const word of ['/tls', 'TLS_CA_FILE', 'sslmode=require']) expect(text).not.toContain(word);
    for (const c of clusters) {
      const config = find(objects, 'ConfigMap', `${c.name}-config`)!.data;
      expect(config['postgresql.conf']).not.toContain('ssl');
      expect(config['pg_hba.conf']).not.toContain('hostssl');
    }
  });

  it('with tls.existingSecret mounts that Secret, renders no key of its own and takes the CA from ca.cert', () => {
    const given = new X509Certificate(decodedCa(render()));
    const objects = render({ tls: { existingSecret: 'shop-pg-cert', ca: { cert: given.toString() } } });
    // Names only: a failure must not print a key.
    expect(
      objects.filter((o) => o.kind === 'Secret' && !isPasswordSecret(o)).map((o) => o.metadata.name),
    ).toEqual([]);
    expect(find(objects, 'ConfigMap', 'shop-ca-cert')!.data['ca.crt']).toBe(given.toString());
    for (const [, pod] of podSpecs(objects).filter(([n]) => n.startsWith('StatefulSet/')))
      expect(pod.volumes).toContainEqual({
        name: 'tls',
        secret: { secretName: 'shop-pg-cert', defaultMode: 0o440 },
      });
    const refused = templateChart(chart, {
      release: 'shop',
      namespace: 'prod',
      values: { ...base, tls: { existingSecret: 'shop-pg-cert' } },
    });
    expect(refused.ok).toBe(false);
    expect(refused.stderr).toContain(
      'tls.existingSecret: Secret "shop-pg-cert" with key "ca.crt" is not readable',
    );
  });

  const decodedCa = (objects: readonly RenderedObject[]) =>
    decoded(find(objects, 'Secret', 'shop-ca')!, 'tls.crt');
}

/**
 * What a chart generates with nothing given: the app's CA (`<app>-ca`, its key matching, and its
 * certificate alone in `<app>-ca-cert`) and, per server, a certificate that CA signed for exactly the
 * names the operator's holds, with its key and the CA as ca.crt. Names only in failures, never a key.
 */
export function expectGeneratedTls(objects: readonly RenderedObject[], app: string, servers: TlsServer[]) {
  const find = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name) as
      (RenderedObject & { type?: string; data: Record<string, string> }) | undefined;
  const decoded = (s: { data: Record<string, string> }, key: string) =>
    Buffer.from(s.data[key]!, 'base64').toString();
  const caSecret = find('Secret', `${app}-ca`)!;
  expect(caSecret.type).toBe('kubernetes.io/tls');
  const ca = new X509Certificate(decoded(caSecret, 'tls.crt'));
  expect(ca.ca).toBe(true);
  expect(ca.checkPrivateKey(createPrivateKey(decoded(caSecret, 'tls.key')))).toBe(true);
  expect(find('ConfigMap', `${app}-ca-cert`)!.data['ca.crt']).toBe(ca.toString());
  for (const s of servers) {
    const secret = find('Secret', s.secret)!;
    expect([s.secret, secret.type]).toEqual([s.secret, 'kubernetes.io/tls']);
    const cert = new X509Certificate(decoded(secret, 'tls.crt'));
    expect([s.secret, cert.checkIssued(ca), cert.verify(ca.publicKey)]).toEqual([s.secret, true, true]);
    expect(certDnsNames(cert)).toEqual([...s.names].sort());
    expect(cert.checkPrivateKey(createPrivateKey(decoded(secret, 'tls.key')))).toBe(true);
    expect(decoded(secret, 'ca.crt')).toBe(ca.toString());
  }
}

/**
 * What a chart with one TLS server (cache, queue) does with the certificate it is not to make: with
 * tls.existingSecret it mounts that Secret in `server`'s pods, renders no key of its own and fills
 * the CA's ConfigMap from tls.ca.cert (refusing without one, as `helm template` reads no Secret);
 * with tls.appWide false it leaves the CA objects to another chart and still signs its own
 * `ownSecret`. `base` holds the values every render needs. Defines the tests inside the caller's
 * describe; names only in failures, never a key.
 */
export function testOneServerTlsSources(
  chart: 'cache' | 'queue',
  base: Record<string, unknown>,
  { server, ownSecret }: { server: string; ownSecret: string },
) {
  const render = (values: Record<string, unknown> = {}) =>
    renderChart(chart, { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
  const caCertOf = (objects: readonly RenderedObject[]) =>
    (
      objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'shop-ca-cert')!.data as Record<
        string,
        string
      >
    )['ca.crt'];
  const existing = `${ownSecret}-given`;

  it('with tls.existingSecret mounts that Secret, renders no key of its own and takes the CA from ca.cert', () => {
    const caCert = caCertOf(render());
    const objects = render({ tls: { existingSecret: existing, ca: { cert: caCert } } });
    expect(
      objects.filter((o) => o.kind === 'Secret' && !isPasswordSecret(o)).map((o) => o.metadata.name),
    ).toEqual([]);
    expect(caCertOf(objects)).toBe(caCert);
    expect(podSpecs(objects).find(([n]) => n === server)![1].volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: existing, defaultMode: 0o440 },
    });
    const refused = templateChart(chart, {
      release: 'shop',
      namespace: 'prod',
      values: { ...base, tls: { existingSecret: existing } },
    });
    expect(refused.ok).toBe(false);
    expect(refused.stderr).toContain(
      `tls.existingSecret: Secret "${existing}" with key "ca.crt" is not readable`,
    );
  });

  it('with tls.appWide false leaves the CA objects to another chart and still signs its own certificate', () => {
    const names = render({ tls: { appWide: false } }).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names).not.toContain('Secret/shop-ca');
    expect(names).not.toContain('ConfigMap/shop-ca-cert');
    expect(names).toContain(`Secret/${ownSecret}`);
  });
}

/** A Secret of passwords: not one of the certificates' (type kubernetes.io/tls, see testPgTls). */
export const isPasswordSecret = (o: RenderedObject) =>
  o.kind === 'Secret' && (o as { type?: string }).type !== 'kubernetes.io/tls';
