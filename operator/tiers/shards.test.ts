import { TEST_TLS } from './testdata/facts.ts';
import type { V1ConfigMap, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { databaseObjects } from './database.ts';
import type { ObservedFacts } from './objects.ts';
import {
  RESHARD_DRAINED,
  hotShardName,
  shardCluster,
  shardEntries,
  shardMap,
  shardNames,
  shardObjects,
} from './shards.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';
import { RESHARD_VERIFIED_ANNOTATION } from '../sharding/shard-map.ts';

const credentials = { superuser: 'su', replication: 'repl', app: 'app pw' };
const facts: ObservedFacts = { gatewayApi: false, shardCredentials: credentials, tls: TEST_TLS };
const spec = (count: number, dedicated: string[] = []) => ({
  shards: { count, key: 'user_id', replicasPerShard: 1, dedicated: dedicated.map((key) => ({ key })) },
});
const app = parseApp(spec(2, ['celebrity-42']));
const of = <T>(kind: string, objects = shardObjects(app, facts)) =>
  objects.filter((o) => o.kind === kind) as unknown as T[];

describe('shard objects', () => {
  it('runs one Postgres cluster per hash shard and per hot key, each selecting only its own pods', () => {
    const sets = of<V1StatefulSet>('StatefulSet');
    const hot = hotShardName(app, 'celebrity-42');
    expect(sets.map((s) => s.metadata!.name).sort()).toEqual(['shop-shard-0', 'shop-shard-1', hot].sort());
    const selectors = sets.map((s) => JSON.stringify(s.spec!.selector.matchLabels));
    expect(new Set(selectors).size).toBe(3);
    for (const s of sets) {
      expect(s.spec!.replicas).toBe(2);
      expect(restrictedViolations(s.spec!.template.spec!)).toEqual([]);
      expect(s.spec!.persistentVolumeClaimRetentionPolicy).toEqual({
        whenDeleted: 'Retain',
        whenScaled: 'Retain',
      });
      expect(s.spec!.template.metadata!.labels).toMatchObject(s.spec!.selector.matchLabels!);
      // One login for every shard.
      expect(s.spec!.template.spec!.volumes).toContainEqual(
        expect.objectContaining({ secret: { secretName: 'shop-shards-credentials', defaultMode: 0o400 } }),
      );
    }
    // One login for every shard; a certificate for each (its names are its own Services).
    expect(of<{ metadata: { name: string } }>('Secret').map((s) => s.metadata.name)).toEqual([
      'shop-shards-credentials',
      'shop-shard-0-tls',
      'shop-shard-1-tls',
      'shop-shard-hot-edf725b1-tls',
    ]);
  });

  it("is the database tier's builders under other names, not a copy of them", () => {
    const db = parseApp({ database: { replicas: 1, synchronousReplicas: 0 } });
    const dbSts = databaseObjects(db, { gatewayApi: false, dbCredentials: credentials, tls: TEST_TLS }).find(
      (o) => o.kind === 'StatefulSet',
    ) as unknown as V1StatefulSet;
    const shard = of<V1StatefulSet>('StatefulSet').find((s) => s.metadata!.name === 'shop-shard-0')!;
    const container = (s: V1StatefulSet) => s.spec!.template.spec!.containers[0]!;
    expect(container(shard).command).toEqual(container(dbSts).command);
    expect(container(shard).readinessProbe).toEqual(container(dbSts).readinessProbe);
    expect(shard.spec!.template.spec!.securityContext).toEqual(dbSts.spec!.template.spec!.securityContext);
  });

  it('gives every shard a headless, a read-write and a read-only Service', () => {
    const names = of<V1Service>('Service').map((s) => s.metadata!.name);
    for (const shard of ['shop-shard-0', 'shop-shard-1']) {
      expect(names).toEqual(expect.arrayContaining([`${shard}-headless`, `${shard}-rw`, `${shard}-ro`]));
    }
    const rw = of<V1Service>('Service').find((s) => s.metadata!.name === 'shop-shard-1-rw')!;
    expect(rw.spec!.selector).toMatchObject({
      'scalableapp.io/shard': 'shop-shard-1',
      'scalableapp.io/role': 'primary',
    });
  });

  it('names a hot shard by a digest of its key: reordering the list moves no data', () => {
    const a = parseApp(spec(2, ['a', 'b']));
    const b = parseApp(spec(2, ['b', 'a']));
    expect(shardNames(shardMap(a, facts))).toEqual(shardNames(shardMap(b, facts)));
    expect(hotShardName(a, 'a')).toMatch(/^shop-shard-hot-[0-9a-f]{8}$/);
  });

  it('publishes the map at version 1 and hands the app a login and where to find the map', () => {
    const cm = of<V1ConfigMap>('ConfigMap').find((c) => c.metadata!.name === 'shop-shard-map')!;
    const map = JSON.parse(cm.data!['shard-map.json']!);
    expect(map).toMatchObject({ version: 1, key: 'user_id', virtualNodes: 128 });
    expect(map.pending).toBeUndefined();
    expect(map.shards.find((s: { name: string }) => s.name === 'shop-shard-0')).toMatchObject({
      host: 'shop-shard-0-rw.prod.svc',
      port: 5432,
    });
    expect(map.dedicated).toEqual([{ key: 'celebrity-42', shard: hotShardName(app, 'celebrity-42') }]);
    expect(JSON.stringify(cm)).not.toContain('app pw');
    expect(shardEntries(app, facts)).toMatchObject({
      SHARD_MAP_CONFIGMAP: 'shop-shard-map',
      SHARD_KEY: 'user_id',
      SHARDS_USER: 'app',
      SHARDS_PASSWORD: 'app pw',
    });
  });
});

describe("each shard's replication and failover (spec.shards)", () => {
  const hot = hotShardName(app, 'celebrity-42');
  const tuned = parseApp({
    shards: {
      count: 2,
      key: 'user_id',
      replicasPerShard: 2,
      synchronousReplicas: 1,
      failover: { enabled: false, delaySeconds: 30 },
      dedicated: [{ key: 'celebrity-42' }],
    },
  });
  const conf = (a: typeof app, shard: string) =>
    of<V1ConfigMap>('ConfigMap', shardObjects(a, facts)).find((c) => c.metadata!.name === `${shard}-config`)!
      .data!['postgresql.conf']!;
  const fences = (a: typeof app) =>
    of<V1StatefulSet>('StatefulSet', shardObjects(a, facts)).map((s) =>
      s.spec!.template.spec!.containers[0]!.env!.some((e) => e.name === 'FENCE_AFTER_SECONDS'),
    );

  it('is asynchronous by default, and every shard, hash or hot, waits for ANY k of its own instances when asked', () => {
    for (const shard of ['shop-shard-0', hot]) {
      expect(conf(app, shard)).toContain("synchronous_standby_names = ''");
      expect(conf(tuned, shard)).toContain(
        `synchronous_standby_names = 'ANY 1 ("${shard}-0", "${shard}-1", "${shard}-2")'`,
      );
    }
  });

  it("hands each shard's cluster the failover settings: on by default (the primary fences itself when cut off), off when asked", () => {
    for (const shard of ['shop-shard-1', hot]) {
      expect(shardCluster(app, shard, facts).spec).toMatchObject({
        synchronousReplicas: 0,
        failover: { enabled: true, delaySeconds: 5 },
      });
      expect(shardCluster(tuned, shard, facts).spec).toMatchObject({
        synchronousReplicas: 1,
        failover: { enabled: false, delaySeconds: 30 },
      });
    }
    expect(fences(app)).toEqual([true, true, true]);
    expect(fences(tuned)).toEqual([false, false, false]);
  });
});

describe('resharding', () => {
  const v1 = shardMap(parseApp(spec(2)), facts);
  const grown = parseApp(spec(3));

  it('publishes a new ring as pending, runs its new shard, and routes by the old one', () => {
    const next = shardMap(grown, { ...facts, shardMap: v1 });
    expect(next.version).toBe(1);
    expect(next.pending?.version).toBe(2);
    expect(shardNames(next)).toEqual(['shop-shard-0', 'shop-shard-1', 'shop-shard-2']);
  });

  it('flips only when the mover verified exactly the pending version', () => {
    const pending = shardMap(grown, { ...facts, shardMap: v1 });
    const annotated = (v: string) => ({
      ...grown,
      metadata: { ...grown.metadata, annotations: { [RESHARD_VERIFIED_ANNOTATION]: v } },
    });
    expect(shardMap(annotated('1'), { ...facts, shardMap: pending }).version).toBe(1);
    const flipped = shardMap(annotated('2'), { ...facts, shardMap: pending });
    expect(flipped.version).toBe(2);
    expect(flipped.pending).toBeUndefined();
    expect(shardMap(annotated('2'), { ...facts, shardMap: flipped })).toEqual(flipped); // stable
  });

  it('keeps a shard a flip retired until its drain is confirmed at the routed version', () => {
    const two = shardMap(parseApp(spec(2)), facts);
    const seen = {
      ...facts,
      shardMap: two,
      shardStatefulSets: ['shop-shard-0', 'shop-shard-1', 'shop-shard-2'],
    };
    const app2 = parseApp(spec(2));
    expect(shardNames(two, app2, seen)).toContain('shop-shard-2');
    const drained = (v: string) => ({
      ...app2,
      metadata: { ...app2.metadata, annotations: { [RESHARD_DRAINED]: v } },
    });
    expect(shardNames(two, drained(String(two.version + 1)), seen)).toContain('shop-shard-2');
    expect(shardNames(two, drained(String(two.version)), seen)).not.toContain('shop-shard-2');
  });

  it('publishes a lost map again above every version status showed', () => {
    expect(shardMap(parseApp(spec(2)), { ...facts, shardVersionFloor: 7 }).version).toBe(8);
  });

  it('keeps a shard being removed running until the flip', () => {
    const three = shardMap(parseApp(spec(3)), facts);
    const shrinking = shardMap(parseApp(spec(2)), { ...facts, shardMap: three });
    expect(shrinking.pending?.shards.map((s) => s.name)).not.toContain('shop-shard-2');
    expect(shardNames(shrinking)).toContain('shop-shard-2');
  });
});
