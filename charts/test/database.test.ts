// What the database chart does that parity cannot show: the passwords it generates or is given, the
// spec's rules it enforces with `fail`, and restricted pods everywhere, the helm test's included.
// The server texts it runs are the library's generated copies (charts/test/chart-files.test.ts).
import { IMAGE_MAJOR_MESSAGE, POSTGRES_RESOURCES } from '../../operator/api/database.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { renderChart, templateChart } from './helm.ts';
import { isPasswordSecret } from './data-tier-checks.ts';
import { brokenStorageRules, testPgMonitoring, testPgTls, testTierRules } from './data-tier-checks.ts';
import { databaseCluster } from '../../operator/tiers/database.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { podSpecs } from './tier-chart-checks.ts';
import { brokenAllowedClients, brokenResourceRules } from './parity.ts';

const render = (values: object, release = 'shop') =>
  renderChart('database', { release, namespace: 'prod', values });
const failure = (values: object) => {
  const r = templateChart('database', { release: 'shop', namespace: 'prod', values });
  expect(r.ok).toBe(false);
  return r.stderr;
};
const decode = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('credentials', () => {
  const secretOf = (objects: ReturnType<typeof render>) =>
    objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'shop-db-credentials') as any;

  it('generates three different 32-character passwords when none is given', () => {
    const data = secretOf(render({})).data as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual(['app-password', 'replication-password', 'superuser-password']);
    const passwords = Object.values(data).map(decode);
    for (const p of passwords) expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(new Set(passwords).size).toBe(3);
  });

  it('uses a given password and generates only the others', () => {
    const data = secretOf(render({ auth: { appPassword: 'given:one' } })).data;
    expect(decode(data['app-password'])).toBe('given:one');
    expect(decode(data['superuser-password'])).toMatch(/^[A-Za-z0-9]{32}$/);
  });

  it('with existingSecret creates no Secret and mounts and tests with the one named', () => {
    const objects = render({ auth: { existingSecret: 'vault-synced-pg' } });
    expect(objects.filter(isPasswordSecret)).toEqual([]);
    const sts = objects.find((o) => o.kind === 'StatefulSet') as any;
    expect(sts.spec.template.spec.volumes.find((v: any) => v.name === 'credentials').secret.secretName).toBe(
      'vault-synced-pg',
    );
    const test = objects.find((o) => o.kind === 'Pod') as any;
    expect(test.spec.containers[0].env).toEqual([
      { name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: 'vault-synced-pg', key: 'app-password' } } },
    ]);
  });

  it('never writes a password into anything but the Secret', () => {
    const objects = render({
      auth: {
        superuserPassword: 'Sup3r-S3cret',
        replicationPassword: 'R3pl-S3cret',
        appPassword: 'App-S3cret',
      },
    });
    const elsewhere = JSON.stringify(objects.filter((o) => o.kind !== 'Secret'));
    for (const p of ['Sup3r-S3cret', 'R3pl-S3cret', 'App-S3cret']) expect(elsewhere).not.toContain(p);
  });
});

describe("the spec's rules the schema cannot say", () => {
  // Each CEL rule of spec.database (operator/api/database.ts), broken once: the chart fails naming
  // the field. Rules on changes (oldSelf) need the live release: the chart checks them on upgrade
  // with `lookup`, which e2e/charts-database.test.ts breaks on the cluster; here only their text.
  testTierRules(
    'database',
    {},
    {
      'synchronousReplicas must be <= replicas': {
        field: 'synchronousReplicas',
        values: { replicas: 1, synchronousReplicas: 2 },
      },
      'version is immutable: a Postgres major upgrade needs a migration': { field: 'version' },
      ...brokenStorageRules(),
      ...brokenAllowedClients(),
      ...brokenResourceRules((resources) => ({ resources }), POSTGRES_RESOURCES.memoryFloor),
    },
    ['scalableapp-lib/templates/_postgres.tpl', 'scalableapp-lib/templates/_resources.tpl'],
  );

  // Not a CEL rule (the apiserver's cost budget cannot afford it): the operator's schema and the chart.
  it('refuses an image whose tag names another Postgres major than version', () => {
    const r = templateChart('database', {
      release: 'shop',
      namespace: 'prod',
      values: { ...{}, version: '17', image: 'postgres:16.4-bookworm' },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(`image: ${IMAGE_MAJOR_MESSAGE}`);
  });

  it('refuses a primary that is no instance, naming the instances', () => {
    expect(failure({ replicas: 1, primary: 'shop-db-2' })).toContain(
      'primary: "shop-db-2" is not an instance of this database (shop-db-0, shop-db-1)',
    );
  });

  it.each([
    [{ replicas: 10 }, '/replicas'],
    [{ version: '13' }, '/version'],
    [{ deletionPolicy: 'Keep' }, '/deletionPolicy'],
    [{ auth: { appPassword: 'two\nlines' } }, '/auth/appPassword'],
    [{ primary: 'Shop_DB_0' }, '/primary'],
    [{ storage: { size: '10 GB' } }, '/storage/size'],
  ])('the schema rejects %j naming %s', (values, field) => {
    expect(failure(values)).toContain(field);
  });
});

describe('pods', () => {
  it('pass the restricted Pod Security Standard, the helm test pod included', () => {
    const objects = render({ replicas: 1 });
    const pods = podSpecs(objects);
    expect(pods.map(([name]) => name).sort()).toEqual(['Pod/shop-db-test', 'StatefulSet/shop-db']);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });

  it('the test pod is a client from outside the app, let in by a test-only policy', () => {
    const objects = render({});
    const pod = objects.find((o) => o.kind === 'Pod') as any;
    const policy = objects.find(
      (o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'shop-allow-database-test',
    ) as any;
    expect(pod.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(policy.metadata.annotations['helm.sh/hook']).toBe('test');
    // The app's default deny selects part-of; the test pod is not part of the app.
    expect(pod.metadata.labels['app.kubernetes.io/part-of']).toBeUndefined();
    expect(policy.spec.ingress[0].from[0].podSelector.matchLabels).toEqual({
      'app.kubernetes.io/instance': pod.metadata.labels['app.kubernetes.io/instance'],
      'app.kubernetes.io/component': pod.metadata.labels['app.kubernetes.io/component'],
    });
  });
});

describe('monitoring', () => {
  testPgMonitoring('database', {}, 'shop-db-credentials');
});

describe('tls', () => {
  testPgTls('database', {}, [
    databaseCluster(parseApp({ database: {} }, 'shop', 'prod'), { gatewayApi: false }),
  ]);
});
