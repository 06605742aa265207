import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { spec as specSchema } from './spec.ts';
import { scalableAppCrd } from './crd.ts';
import { celFailures, specErrors } from './testdata/validate.ts';
import { invalidCorpus, namesField, validCorpus } from './testdata/corpus.ts';
import type { CelRule } from './meta.ts';
import { appNameRule, scalableApp } from './scalable-app.ts';

const crd = scalableAppCrd();
const specJson = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec as Parameters<
  typeof celFailures
>[0];
const errorsFor = specErrors;

/** Paths the apiserver would name for an app of this name and spec, the root rule included. */
function appErrorsFor(name: string, spec: unknown): string[] {
  const parsed = scalableApp.safeParse({
    apiVersion: 'scalableapp.io/v1alpha1',
    kind: 'ScalableApp',
    metadata: { name },
    spec,
  });
  const zodPaths = parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.'));
  const root = { 'x-kubernetes-validations': [appNameRule] };
  const cel = parsed.success
    ? celFailures(root, { metadata: { name }, spec: parsed.data.spec }, undefined, '').map((f) => f.path)
    : [];
  return [...zodPaths, ...cel];
}

describe('valid corpus (manifests/samples)', () => {
  const valid = validCorpus();
  it('has at least 10 samples, from a web tier alone to the full stack', () => {
    expect(valid.length).toBeGreaterThanOrEqual(10);
    expect(valid.some((v) => Object.keys(v.object.spec).join() === 'web')).toBe(true);
    const full = valid.find((v) => v.file.includes('full-stack'));
    expect(Object.keys(full!.object.spec)).toEqual(
      expect.arrayContaining(['web', 'cache', 'database', 'shards', 'queue', 'consumers', 'edgeCache']),
    );
  });
  it.each(valid.map((v) => [v.file, v.object] as const))('%s is accepted', (_file, object) => {
    expect(object.apiVersion).toBe('scalableapp.io/v1alpha1');
    expect(errorsFor(object.spec)).toEqual([]);
  });
});

describe('invalid corpus (testdata/invalid.yaml)', () => {
  const invalid = invalidCorpus();
  it('has at least 40 cases with unique names', () => {
    expect(invalid.length).toBeGreaterThanOrEqual(40);
    expect(new Set(invalid.map((c) => c.name)).size).toBe(invalid.length);
  });
  it.each(invalid.map((c) => [c.name, c] as const))('%s is rejected naming its field', (_name, c) => {
    if (c.appName) {
      expect(errorsFor(c.spec)).toEqual([]); // only the name is wrong
      expect(appErrorsFor(c.appName, c.spec).filter((p) => namesField(p, c.field))).not.toEqual([]);
    } else if (c.update) {
      expect(errorsFor(c.spec)).toEqual([]); // the starting point must itself be valid
      expect(errorsFor(c.update, c.spec).filter((p) => namesField(p, c.field))).not.toEqual([]);
    } else {
      expect(errorsFor(c.spec).filter((p) => namesField(p, c.field))).not.toEqual([]);
    }
  });
});

describe('names', () => {
  const hot = { shards: { count: 2, key: 'user_id', dedicated: [{ key: 'celebrity-42' }] } };
  it.each([
    ['shop', { web: { image: 'nginx' } }, []],
    ['a'.repeat(43), { web: { image: 'nginx' } }, []],
    ['a'.repeat(44), { web: { image: 'nginx' } }, ['metadata.name']],
    ['a'.repeat(33), hot, []],
    // The root CEL rule and the schema both name it (the CRD reports it once, at metadata.name).
    ['a'.repeat(34), hot, ['metadata.name']],
    ['shop-2', { web: { image: 'nginx' } }, []],
    ['2shop', { web: { image: 'nginx' } }, ['metadata.name']],
  ])('an app named %s', (name, spec, errors) => {
    expect([...new Set(appErrorsFor(name, spec).map((p) => p.replace(/^\./, '')))]).toEqual(errors);
  });

  it('the root rule alone refuses a long name with hot keys (the CEL path of the same bound)', () => {
    const root = { 'x-kubernetes-validations': [appNameRule] };
    const spec = specSchema.parse(hot);
    expect(celFailures(root, { metadata: { name: 'a'.repeat(34) }, spec }, undefined, '')).toHaveLength(1);
    expect(celFailures(root, { metadata: { name: 'a'.repeat(33) }, spec }, undefined, '')).toEqual([]);
  });

  it('refuses two hot keys whose shards would share a name, which CEL cannot see (the operator says InvalidSpec)', () => {
    // Found by a birthday search: both keys' SHA-256 begin 7afebf6a.
    const r = specSchema.safeParse({
      shards: {
        count: 2,
        key: 'user_id',
        dedicated: [{ key: 'celebrity-46110' }, { key: 'celebrity-86322' }],
      },
    });
    expect(r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'shards.dedicated.1.key: hot keys "celebrity-46110" and "celebrity-86322" would share the shard name shard-hot-7afebf6a: rename one',
    ]);
  });

  it('image references: what the kubelet pulls is accepted, what it cannot parse is not', () => {
    const ok = [
      'nginx',
      'nginx:1.29-alpine',
      'localhost/scalableapp/toolbox:bookworm-e9be820a195a',
      'registry.example.com:5000/team/app_v2:2026.12',
      `busybox@sha256:${'a'.repeat(64)}`,
      `ghcr.io/o/r:v1@sha256:${'0'.repeat(64)}`,
    ];
    const bad = ['shop/Web', 'shop:', 'shop:1.0!', 'shop//web', '-shop', 'shop@sha256:abc', 'a b'];
    for (const image of ok) expect(errorsFor({ web: { image } })).toEqual([]);
    for (const image of bad)
      expect([image, errorsFor({ web: { image } })]).toEqual([image, ['spec.web.image']]);
  });
});

describe('Postgres images', () => {
  it.each([
    ['postgres:17', '17', true],
    ['postgres:17.2-bookworm', '17', true],
    ['registry.example.com:5000/pg:17', '17', true],
    ['postgres:latest', '17', true],
    ['postgres', '17', true],
    [`postgres:17@sha256:${'a'.repeat(64)}`, '17', true],
    ['postgres:16', '17', false],
    ['postgres:16.4-bookworm', '17', false],
    ['registry.example.com:5000/pg:170', '17', false],
  ])('%s with version %s is accepted: %s', (image, version, ok) => {
    for (const spec of [
      { database: { image, version } },
      { shards: { count: 1, key: 'k', image, version } },
    ]) {
      const tier = Object.keys(spec)[0]!;
      // The schema's refusal (InvalidSpec in the operator); CEL cannot afford this one (see database.ts).
      expect(errorsFor(spec)).toEqual(ok ? [] : [`spec.${tier}.image`]);
    }
  });
});

describe('volumes', () => {
  it.each([
    ['1Gi', '2Gi'],
    ['1Gi', '1024Mi'],
    ['1000Mi', '1Gi'],
    [1073741824, '1Gi'],
  ])('may grow or keep their size: %s to %s', (from, to) => {
    for (const tier of ['database', 'shards', 'queue'] as const) {
      const at = (size: string | number) => ({
        [tier]: {
          storage: { size },
          ...(tier === 'shards' ? { count: 2, key: 'user_id' } : {}),
          ...(tier === 'queue' ? { queues: [{ name: 'q' }] } : {}),
        },
      });
      expect(errorsFor(at(to), at(from))).toEqual([]);
    }
  });
});

describe('CEL rules', () => {
  const allRules: string[] = [];
  JSON.stringify(specJson, (k, v) => {
    if (k === 'x-kubernetes-validations') allRules.push(...(v as CelRule[]).map((r) => r.rule));
    return v;
  });

  it('every rule is broken by at least one invalid case (no rule goes untested)', () => {
    const broken = new Set<string>();
    for (const c of invalidCorpus()) {
      const parsed = specSchema.safeParse(c.update ?? c.spec);
      const old = c.update ? specSchema.parse(c.spec) : undefined;
      for (const f of celFailures(
        specJson,
        parsed.success ? parsed.data : (c.update ?? c.spec),
        old,
        'spec',
        parsed.success,
      )) {
        if (f.rule) broken.add(f.rule);
      }
    }
    expect(allRules.filter((r) => !broken.has(r))).toEqual([]);
  });

  it('every rule has a message that names what is allowed', () => {
    JSON.stringify(specJson, (k, v) => {
      if (k === 'x-kubernetes-validations') {
        for (const r of v as CelRule[]) expect(r.message.length).toBeGreaterThan(15);
      }
      return v;
    });
  });

  const web = { image: 'nginx' };
  it.each([
    [{ web: { ...web, autoscaling: { minReplicas: 3, maxReplicas: 3 } } }, []],
    [
      { web: { ...web, autoscaling: { minReplicas: 4, maxReplicas: 3 } } },
      ['spec.web.autoscaling.minReplicas'],
    ],
  ])('autoscaling: min == max is allowed, min > max is not (%j)', (spec, errors) => {
    expect(errorsFor(spec)).toEqual(errors);
  });

  it.each([
    [1, true],
    [2, false],
    [3, true],
    [4, false],
    [5, true],
    [7, true],
  ])('queue replicas %i allowed: %s (quorum queues need a majority)', (replicas, ok) => {
    const errors = errorsFor({ queue: { replicas, queues: [{ name: 'q' }] } });
    expect(errors.length === 0).toBe(ok);
  });

  it('exposure: each type accepts exactly its own settings', () => {
    expect(errorsFor({ web: { ...web, expose: { type: 'LoadBalancer' } } })).toEqual([]);
    expect(
      errorsFor({ web: { ...web, expose: { type: 'Ingress', host: 'a.example.com', tlsSecretName: 't' } } }),
    ).toEqual([]);
    expect(
      errorsFor({
        web: { ...web, expose: { type: 'Gateway', host: 'a.example.com', gateway: { name: 'g' } } },
      }),
    ).toEqual([]);
    expect(
      errorsFor({
        web: {
          ...web,
          expose: { type: 'Gateway', host: 'a.example.com', gateway: { name: 'g' }, tlsSecretName: 't' },
        },
      }),
    ).toEqual(['spec.web.expose.tlsSecretName']);
  });

  it('transition rules allow edits that keep the fixed fields', () => {
    const before = {
      shards: { count: 2, key: 'user_id', storage: { size: '1Gi', storageClassName: 'standard' } },
    };
    const after = {
      shards: { count: 3, key: 'user_id', storage: { size: '2Gi', storageClassName: 'standard' } },
    };
    expect(errorsFor(after, before)).toEqual([]);
    expect(
      errorsFor({ database: { version: '17', replicas: 1 } }, { database: { version: '17', replicas: 2 } }),
    ).toEqual([]);
  });

  it.each([
    [
      'database',
      'replicas',
      (k: number, n: number) => ({ database: { replicas: n, synchronousReplicas: k } }),
    ],
    [
      'shards',
      'replicasPerShard',
      (k: number, n: number) => ({
        shards: { count: 2, key: 'user_id', replicasPerShard: n, synchronousReplicas: k },
      }),
    ],
  ] as const)(
    '%s: synchronousReplicas at most %s, refused by CEL and the schema alike naming the field',
    (tier, replicas, at) => {
      const message = `synchronousReplicas must be <= ${replicas}`;
      expect(errorsFor(at(2, 2))).toEqual([]);
      expect(errorsFor(at(0, 0))).toEqual([]);
      // The apiserver's refusal (CEL), on the spec as the apiserver defaults it.
      expect(celFailures(specJson, at(3, 2), undefined, 'spec')).toEqual([
        expect.objectContaining({ path: `spec.${tier}.synchronousReplicas`, message }),
      ]);
      // The operator's (InvalidSpec), with the same message.
      expect(
        specSchema.safeParse(at(3, 2)).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      ).toEqual([`${tier}.synchronousReplicas: ${message}`]);
    },
  );

  it('a consumer may only consume a declared queue', () => {
    const queue = { queues: [{ name: 'a' }, { name: 'b' }] };
    expect(errorsFor({ queue, consumers: [{ name: 'x', image: 'w', queue: 'b' }] })).toEqual([]);
    expect(errorsFor({ queue, consumers: [{ name: 'x', image: 'w', queue: 'c' }] })).toEqual([
      'spec.consumers',
    ]);
  });
});

describe('defaults', () => {
  it('a web tier alone gets safe, documented defaults', () => {
    const s = specSchema.parse({ web: { image: 'nginx' } });
    expect(s.web).toEqual({
      image: 'nginx',
      port: 8080,
      replicas: 2,
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
      expose: { type: 'ClusterIP' },
      healthCheck: { path: '/healthz', periodSeconds: 10, failureThreshold: 3 },
      sessions: 'none',
      env: [],
    });
    expect(s.topology).toEqual({
      spreadAcrossZones: true,
      zoneKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'DoNotSchedule',
    });
    expect(s.database).toBeUndefined();
  });

  it('data is retained and failover is on by default; replication is asynchronous unless asked', () => {
    const s = specSchema.parse({ database: {} });
    expect(s.database).toMatchObject({
      version: '17',
      replicas: 2,
      deletionPolicy: 'Retain',
      synchronousReplicas: 0,
      failover: { enabled: true, delaySeconds: 5 },
      storage: { size: '10Gi' },
    });
  });

  it('each shard, like the database, fails over by default and replicates asynchronously unless asked', () => {
    const s = specSchema.parse({ shards: { count: 2, key: 'user_id' } });
    expect(s.shards).toMatchObject({
      replicasPerShard: 1,
      synchronousReplicas: 0,
      failover: { enabled: true, delaySeconds: 5 },
    });
    const shards = (specJson.properties!.shards as { properties: Record<string, { default?: unknown }> })
      .properties;
    expect(shards.synchronousReplicas!.default).toBe(0);
    expect(shards.failover!.default).toEqual({ enabled: true, delaySeconds: 5 });
    expect(errorsFor({ shards: { count: 2, key: 'user_id', failover: { delaySeconds: 0 } } })).toEqual([]);
    expect(errorsFor({ shards: { count: 2, key: 'user_id', failover: { delaySeconds: 3600 } } })).toEqual([]);
  });

  it('cache and queue defaults', () => {
    const s = specSchema.parse({
      cache: {},
      queue: { queues: [{ name: 'q' }] },
      consumers: [{ name: 'c', image: 'w', queue: 'q', autoscaling: { maxReplicas: 4 } }],
    });
    expect(s.cache).toMatchObject({
      replicas: 2,
      memoryHeadroomPercent: 20,
      evictionPolicy: 'allkeys-lru',
      defaultTTLSeconds: 300,
      resources: { limits: { memory: '256Mi' } },
    });
    expect(s.queue?.replicas).toBe(3);
    expect(s.consumers?.[0]?.autoscaling).toEqual({
      minReplicas: 0,
      maxReplicas: 4,
      messagesPerReplica: 100,
      cooldownSeconds: 300,
      pollIntervalSeconds: 2,
      scaleDownStabilizationSeconds: 60,
    });
  });

  it('merges a partial resources override with the defaults, quantity by quantity', () => {
    const s = specSchema.parse({
      web: { image: 'x', resources: { limits: { memory: '1Gi' } } },
      cache: { resources: { requests: { cpu: '300m' } } },
      database: { resources: { requests: {}, limits: { cpu: 2 } } },
    });
    // Only the limit given: the default requests stay (samples 05 and 11 once lost their CPU request).
    expect(s.web?.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '1Gi' },
    });
    expect(s.cache?.resources).toEqual({
      requests: { cpu: '300m', memory: '256Mi' },
      limits: { memory: '256Mi' },
    });
    expect(s.database?.resources).toEqual({
      requests: { cpu: '250m', memory: '512Mi' },
      limits: { cpu: 2, memory: '1Gi' },
    });
  });

  it('refuses a request above its limit in the schema too, naming the field (the consumers have no CEL rule)', () => {
    const issues = (spec: unknown) =>
      specSchema.safeParse(spec).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    const queue = { queues: [{ name: 'q' }] };
    expect(
      issues({
        queue,
        consumers: [{ name: 'c', image: 'w', queue: 'q', resources: { limits: { memory: '64Mi' } } }],
      }),
    ).toEqual([
      'consumers.0.resources.requests.memory: requests.memory must not exceed limits.memory (a limit given alone is compared with the default request)',
    ]);
    expect(
      issues({ web: { image: 'x', resources: { requests: { cpu: '1.5' }, limits: { cpu: '1500m' } } } }),
    ).toEqual([]);
    expect(
      issues({ web: { image: 'x', resources: { requests: { cpu: '1501m' }, limits: { cpu: 1.5 } } } }),
    ).toEqual(['web.resources.limits.cpu: Invalid input']);
  });

  it('the CRD defaults each quantity, so the apiserver merges as the operator does', () => {
    const resources = (specJson.properties!.web as { properties: Record<string, Record<string, unknown>> })
      .properties.resources as {
      default?: unknown;
      properties: Record<string, { default?: unknown; properties: Record<string, { default?: unknown }> }>;
    };
    expect(resources.default).toEqual({});
    expect(resources.properties.requests!.default).toEqual({});
    expect(resources.properties.requests!.properties.cpu!.default).toBe('100m');
    expect(resources.properties.limits!.properties.memory!.default).toBe('256Mi');
    expect(resources.properties.limits!.properties.cpu!.default).toBeUndefined();
  });

  it('the CRD carries the same defaults, so the apiserver stores what the operator assumes', () => {
    const web = (specJson.properties!.web as { properties: Record<string, { default?: unknown }> })
      .properties;
    expect(web.port!.default).toBe(8080);
    expect(web.replicas!.default).toBe(2);
    const db = (specJson.properties!.database as { properties: Record<string, { default?: unknown }> })
      .properties;
    expect(db.deletionPolicy!.default).toBe('Retain');
  });
});

describe('the generated CRD', () => {
  it('describes every field, so kubectl explain is useful', () => {
    const undocumented: string[] = [];
    const walk = (node: Record<string, unknown>, path: string) => {
      if (!node.description && path !== 'status') undocumented.push(path);
      for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>))
        walk(v, `${path}.${k}`);
      if (node.items) walk(node.items as Record<string, unknown>, `${path}[]`);
    };
    const root = crd.spec.versions[0]!.schema.openAPIV3Schema.properties;
    walk(root.spec as Record<string, unknown>, 'spec');
    walk(root.status as Record<string, unknown>, 'status');
    expect(undocumented).toEqual([]);
  });

  it('is structural: no unions except int-or-string, no additionalProperties: false', () => {
    const text = JSON.stringify(crd);
    expect(text).not.toContain('"additionalProperties":false');
    expect(text).not.toContain('oneOf');
    expect(text).not.toContain('propertyNames');
  });

  it('is checked in and up to date (run `npm run generate` after changing operator/api)', () => {
    const onDisk = readFileSync(new URL(`../../crds/${crd.metadata.name}.yaml`, import.meta.url), 'utf8');
    expect(onDisk).toContain(stringify(crd, { lineWidth: 0 }));
  });
});
