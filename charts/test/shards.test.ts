// What the shards chart does that parity cannot show: the login it generates or is given, the spec's
// rules it enforces with `fail`, and restricted pods everywhere, the helm test's included. The rules
// on changes (the ring, the key, the version, the storage class) need the live release:
// e2e/charts-shards.test.ts breaks them. The Postgres texts every shard runs are the library's
// generated copies (charts/test/chart-files.test.ts).
import { IMAGE_MAJOR_MESSAGE, POSTGRES_RESOURCES } from '../../operator/api/database.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { renderChart, templateChart } from './helm.ts';
import { isPasswordSecret } from './data-tier-checks.ts';
import { podSpecs } from './tier-chart-checks.ts';
import {
  brokenStorageRules,
  testPgMonitoring,
  testPgTls,
  expectOnlyInSecrets,
  testTierRules,
} from './data-tier-checks.ts';
import { brokenAllowedClients, brokenResourceRules } from './parity.ts';
import { shardClusters } from '../../operator/tiers/shards.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';

const base = { count: 2, key: 'user_id' };
const render = (values: object) => renderChart('shards', { release: 'shop', namespace: 'prod', values });
const failure = (values: object) => {
  const r = templateChart('shards', { release: 'shop', namespace: 'prod', values: { ...base, ...values } });
  expect(r.ok).toBe(false);
  return r.stderr;
};
const decode = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('credentials', () => {
  const secretOf = (objects: ReturnType<typeof render>) =>
    objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'shop-shards-credentials') as any;

  it('generates three different 32-character passwords for all shards when none is given', () => {
    const objects = render(base);
    expect(objects.filter(isPasswordSecret).map((o) => o.metadata.name)).toEqual(['shop-shards-credentials']);
    const passwords = Object.values(secretOf(objects).data as Record<string, string>).map(decode);
    for (const p of passwords) expect(p).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(new Set(passwords).size).toBe(3);
  });

  it('with existingSecret creates no Secret, and every shard and the test mount the one named', () => {
    const objects = render({ ...base, auth: { existingSecret: 'vault-synced-shards' } });
    expect(objects.filter(isPasswordSecret)).toEqual([]);
    const sets = objects.filter((o) => o.kind === 'StatefulSet') as any[];
    expect(sets).toHaveLength(2);
    for (const s of sets) {
      expect(s.spec.template.spec.volumes.find((v: any) => v.name === 'credentials').secret.secretName).toBe(
        'vault-synced-shards',
      );
    }
    const test = objects.find((o) => o.kind === 'Pod') as any;
    expect(test.spec.containers[0].env).toEqual([
      {
        name: 'PGPASSWORD',
        valueFrom: { secretKeyRef: { name: 'vault-synced-shards', key: 'app-password' } },
      },
    ]);
  });

  it('never writes a password into anything but the Secret', () => {
    const passwords = {
      superuserPassword: 'Sup3r-S3cret',
      replicationPassword: 'R3pl-S3cret',
      appPassword: 'App-S3cret',
    };
    expectOnlyInSecrets(render({ ...base, auth: passwords }), Object.values(passwords));
  });
});

describe("the spec's rules the schema cannot say", () => {
  // The CEL rules of spec.shards on changes (oldSelf) are checked on upgrade against the live
  // release (lookup), which e2e/charts-shards.test.ts does on the cluster; the others at render.
  testTierRules(
    'shards',
    base,
    {
      'synchronousReplicas must be <= replicasPerShard': {
        field: 'synchronousReplicas',
        values: { replicasPerShard: 1, synchronousReplicas: 2 },
      },
      'key is immutable: changing the sharding key would move every row': { field: 'key' },
      'version is immutable: a Postgres major upgrade needs a migration': { field: 'version' },
      ...brokenStorageRules(),
      ...brokenAllowedClients(),
      ...brokenResourceRules((resources) => ({ resources }), POSTGRES_RESOURCES.memoryFloor),
    },
    [
      'shards/templates/_shards.tpl',
      'scalableapp-lib/templates/_postgres.tpl',
      'scalableapp-lib/templates/_resources.tpl',
    ],
  );

  // Not a CEL rule (the apiserver's cost budget cannot afford it): the operator's schema and the chart.
  it('refuses an image whose tag names another Postgres major than version', () => {
    const r = templateChart('shards', {
      release: 'shop',
      namespace: 'prod',
      values: { ...base, version: '17', image: 'postgres:16.4-bookworm' },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(`image: ${IMAGE_MAJOR_MESSAGE}`);
  });

  it('refuses a hot key listed twice, as the spec (a list keyed by key) cannot hold it', () => {
    expect(failure({ dedicated: [{ key: 'a' }, { key: 'b' }, { key: 'a' }] })).toContain(
      'dedicated[2].key: hot key "a" is listed twice',
    );
  });

  it('refuses a primary that is no instance of its shard, and a primary of a shard that does not exist', () => {
    expect(failure({ replicasPerShard: 1, primaries: { 'shop-shard-1': 'shop-shard-1-2' } })).toContain(
      'primaries.shop-shard-1: "shop-shard-1-2" is not an instance of this database (shop-shard-1-0, shop-shard-1-1)',
    );
    expect(failure({ primaries: { 'shop-shard-7': 'shop-shard-7-0' } })).toContain(
      'primaries.shop-shard-7: there is no shard shop-shard-7 (shop-shard-0, shop-shard-1)',
    );
  });

  it.each([
    [{ count: 0 }, '/count'],
    [{ count: 65 }, '/count'],
    [{ key: 'user-id' }, '/key'],
    [{ virtualNodes: 0 }, '/virtualNodes'],
    [{ replicasPerShard: 6 }, '/replicasPerShard'],
    [{ replicasPerShard: 5, synchronousReplicas: 6 }, '/synchronousReplicas'],
    [{ failover: { delaySeconds: -1 } }, '/failover/delaySeconds'],
    [{ dedicated: [{ key: '' }] }, '/dedicated/0/key'],
    [{ version: '13' }, '/version'],
    [{ auth: { appPassword: 'two\nlines' } }, '/auth/appPassword'],
    [{ primaries: { 'shop-shard-0': 'Shop-Shard-0-0' } }, '/primaries/shop-shard-0'],
    // Helm's validator names the key but reports it at another path (seen with helm 4.3.1).
    [{ primaries: { 'Shop-Shard-0': 'shop-shard-0-0' } }, "invalid propertyName 'Shop-Shard-0'"],
  ])('the schema rejects %j naming %s', (values, field) => {
    expect(failure(values)).toContain(field);
  });

  it('the schema requires count and key, which have no default', () => {
    const r = templateChart('shards', { release: 'shop', namespace: 'prod', values: {} });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain("missing properties 'count', 'key'");
  });
});

describe('pods', () => {
  it('pass the restricted Pod Security Standard, the helm test pod included', () => {
    const objects = render({ ...base, count: 1, dedicated: [{ key: 'hot' }] });
    const pods = podSpecs(objects);
    expect(pods.map(([name]) => name).sort()).toEqual([
      'Pod/shop-shards-test',
      'StatefulSet/shop-shard-0',
      expect.stringMatching(/^StatefulSet\/shop-shard-hot-[0-9a-f]{8}$/),
    ]);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });

  it('the test pod checks every shard, a client from outside the app let in by a test-only policy', () => {
    const objects = render({ ...base, count: 3 });
    const pod = objects.find((o) => o.kind === 'Pod') as any;
    expect(pod.spec.containers[0].command[2]).toContain(
      'for cluster in shop-shard-0 shop-shard-1 shop-shard-2; do',
    );
    expect(pod.metadata.labels['app.kubernetes.io/part-of']).toBeUndefined();
    const policy = objects.find((o) => o.metadata.name === 'shop-allow-shards-test') as any;
    expect(policy.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(policy.spec.podSelector.matchLabels).toEqual({
      'app.kubernetes.io/instance': 'shop',
      'app.kubernetes.io/component': 'shard',
    });
    expect(policy.spec.ingress[0].from[0].podSelector.matchLabels).toEqual({
      'app.kubernetes.io/instance': 'shop',
      'app.kubernetes.io/component': 'shard-test',
    });
  });
});

describe('monitoring', () => {
  testPgMonitoring('shards', base, 'shop-shards-credentials');
});

describe('tls', () => {
  // One CA for every shard, a certificate of its own for each, a hot key's shard included.
  const shards = { ...base, dedicated: [{ key: 'celebrity-42' }] };
  testPgTls('shards', shards, shardClusters(parseApp({ shards }, 'shop', 'prod'), { gatewayApi: false }));

  it('refuses a certificate given for a shard that does not exist', () => {
    expect(failure({ tls: { certificates: { 'shop-shard-9': {} } } })).toContain(
      'tls.certificates.shop-shard-9: there is no shard shop-shard-9',
    );
  });
});
