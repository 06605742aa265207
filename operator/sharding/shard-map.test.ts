import { RING_HASH, sameRing } from './ring.ts';
import {
  nextShardMap,
  parseShardMap,
  ringSpec,
  safeParseShardMap,
  serializeShardMap,
  type DesiredShardMap,
  type ShardLayout,
  type ShardMap,
} from './shard-map.ts';

const endpoint = (name: string, host = `${name}-rw.ns.svc`) => ({
  name,
  host,
  port: 5432,
  database: 'app',
  readHost: `${name}-ro.ns.svc`,
});

/** What the operator would compute for `count` hash shards and some hot keys. */
function desired(count: number, hot: string[] = [], o: { virtualNodes?: number; host?: string } = {}) {
  const names = Array.from({ length: count }, (_, i) => `shop-shard-${i}`);
  const hotNames = hot.map((k) => `shop-shard-hot-${k}`);
  return {
    key: 'user_id',
    virtualNodes: o.virtualNodes ?? 128,
    shards: [...names, ...hotNames].map((n) => endpoint(n, o.host)),
    dedicated: hot.map((key) => ({ key, shard: `shop-shard-hot-${key}` })),
  } satisfies DesiredShardMap;
}

const step = (prev: ShardMap | undefined, want: DesiredShardMap, flip = false) =>
  nextShardMap(prev, want, { flip });
const ringNames = (l: ShardLayout) => ringSpec(l).shards;

describe('parseShardMap', () => {
  const valid = step(undefined, desired(2, ['celebrity-42']));
  const text = serializeShardMap(valid);
  /** A copy of the valid map, changed (wrongly typed values cast `as never`), to parse. */
  const broken = (change: (m: ShardMap) => void) => {
    const m = JSON.parse(text) as ShardMap;
    change(m);
    return () => parseShardMap(JSON.stringify(m));
  };

  it('reads what serializeShardMap writes, field for field', () => {
    expect(parseShardMap(text)).toEqual(valid);
    expect(serializeShardMap(parseShardMap(text))).toBe(text);
    expect(Object.keys(valid)).toEqual(['version', 'key', 'hash', 'virtualNodes', 'shards', 'dedicated']);
    expect(valid.hash).toBe(RING_HASH);
  });

  it('ignores fields it does not know, so an older router reads a newer map', () => {
    const m = {
      ...JSON.parse(text),
      comment: 'x',
      shards: JSON.parse(text).shards.map((s: object) => ({ ...s, zone: 'a' })),
    };
    expect(parseShardMap(JSON.stringify(m))).toEqual(valid);
  });

  it('names the offending field', () => {
    expect(() => parseShardMap('{')).toThrow(/the shard map is not JSON/);
    expect(broken((m) => (m.shards[1]!.port = '5432' as never))).toThrow(
      /invalid shard map: shards\.1\.port: /,
    );
    expect(broken((m) => (m.shards[0]!.port = 70000))).toThrow(/shards\.0\.port/);
    expect(broken((m) => Reflect.deleteProperty(m, 'version'))).toThrow(/version: /);
    expect(broken((m) => (m.version = 0))).toThrow(/version: /);
    expect(broken((m) => (m.hash = 'md5' as never))).toThrow(
      /hash: unsupported hash: this router implements sha256-64be/,
    );
    expect(broken((m) => (m.shards[1]!.name = m.shards[0]!.name))).toThrow(
      /shards\.1\.name: shard shop-shard-0 is listed twice/,
    );
    expect(broken((m) => m.dedicated.push({ ...m.dedicated[0]! }))).toThrow(
      /dedicated\.1\.key: hot key celebrity-42 is listed twice/,
    );
    expect(broken((m) => (m.dedicated[0]!.shard = 'nowhere'))).toThrow(
      /dedicated\.0\.shard: hot key celebrity-42 names shard nowhere, which is not in shards/,
    );
    expect(broken((m) => (m.shards = []))).toThrow(/shards: /);
    expect(
      broken((m) => {
        m.shards = [m.shards[2]!];
      }),
    ).toThrow(/every shard is dedicated to a hot key: no ring/);
    expect(broken((m) => (m.pending = { ...m, version: 1 }))).toThrow(
      /pending\.version: the pending ring's version \(1\) must be above the active one's \(1\)/,
    );
    expect(
      broken(
        (m) => (m.pending = { version: 2, virtualNodes: 8, shards: [{ name: 'x' } as never], dedicated: [] }),
      ),
    ).toThrow(/pending\.shards\.0\.host/);
  });

  it('safeParseShardMap returns undefined instead of throwing', () => {
    expect(safeParseShardMap('not json')).toBeUndefined();
    expect(safeParseShardMap('{}')).toBeUndefined();
    expect(safeParseShardMap(text)).toEqual(valid);
  });
});

describe('nextShardMap', () => {
  const v1 = step(undefined, desired(2));

  it('first publication: version 1, the desired ring, no pending (flip or not)', () => {
    expect(v1).toMatchObject({ version: 1, key: 'user_id', hash: RING_HASH, virtualNodes: 128 });
    expect(v1.pending).toBeUndefined();
    expect(ringNames(v1)).toEqual(['shop-shard-0', 'shop-shard-1']);
    expect(step(undefined, desired(2), true)).toEqual(v1);
  });

  it('the same ring again changes nothing', () => {
    expect(step(v1, desired(2))).toEqual(v1);
    const reordered = { ...desired(2), shards: [...desired(2).shards].reverse() };
    expect(step(v1, reordered)).toEqual(v1);
  });

  it('endpoint changes that keep the ring are made in place, without a new version', () => {
    const moved = step(v1, desired(2, [], { host: 'elsewhere' }));
    expect(moved.version).toBe(1);
    expect(moved.pending).toBeUndefined();
    expect(moved.shards.map((s) => s.host)).toEqual(['elsewhere', 'elsewhere']);
    const noRead = desired(2);
    delete (noRead.shards[0] as { readHost?: string }).readHost;
    expect(step(v1, noRead).shards[0]).toEqual({
      name: 'shop-shard-0',
      host: 'shop-shard-0-rw.ns.svc',
      port: 5432,
      database: 'app',
    });
  });

  it('a new ring waits as pending, one version up; asking again keeps that version', () => {
    const v2 = step(v1, desired(3));
    expect(v2.version).toBe(1);
    expect(ringNames(v2)).toEqual(['shop-shard-0', 'shop-shard-1']);
    expect(v2.pending?.version).toBe(2);
    expect(ringNames(v2.pending!)).toEqual(['shop-shard-0', 'shop-shard-1', 'shop-shard-2']);
    expect(step(v2, desired(3))).toEqual(v2);
  });

  it('virtual nodes and hot keys are part of the ring: changing them makes a pending ring too', () => {
    expect(step(v1, desired(2, [], { virtualNodes: 256 })).pending).toMatchObject({
      version: 2,
      virtualNodes: 256,
    });
    const hot = step(v1, desired(2, ['celebrity-42']));
    expect(hot.pending?.dedicated).toEqual([{ key: 'celebrity-42', shard: 'shop-shard-hot-celebrity-42' }]);
    const flipped = step(hot, desired(2, ['celebrity-42']), true);
    expect(step(flipped, desired(2)).pending).toMatchObject({ version: 3, dedicated: [] });
  });

  it('endpoints of pending and active shards are updated in place while a ring is pending', () => {
    const v2 = step(v1, desired(3));
    const moved = step(v2, desired(3, [], { host: 'elsewhere' }));
    expect(moved.version).toBe(1);
    expect(moved.pending?.version).toBe(2);
    expect([...moved.shards, ...moved.pending!.shards].every((s) => s.host === 'elsewhere')).toBe(true);
  });

  it('a different ring replaces the pending one with a higher version', () => {
    const v2 = step(v1, desired(3));
    const v3 = step(v2, desired(4));
    expect(v3.version).toBe(1);
    expect(v3.pending?.version).toBe(3);
    expect(ringNames(v3.pending!)).toHaveLength(4);
  });

  it('flip: the pending ring becomes the active one, with its version', () => {
    const v2 = step(v1, desired(3));
    const flipped = step(v2, desired(3), true);
    expect(flipped.version).toBe(2);
    expect(flipped.pending).toBeUndefined();
    expect(ringNames(flipped)).toEqual(['shop-shard-0', 'shop-shard-1', 'shop-shard-2']);
    // Asked again (the annotation is still there, nothing is pending): nothing changes.
    expect(step(flipped, desired(3), true)).toEqual(flipped);
  });

  it('flip first, then the spec: a spec changed since the copy began becomes the next pending', () => {
    const v2 = step(v1, desired(3));
    const next = step(v2, desired(4), true);
    expect(next.version).toBe(2);
    expect(ringNames(next)).toHaveLength(3);
    expect(next.pending?.version).toBe(3);
    expect(ringNames(next.pending!)).toHaveLength(4);
  });

  it('back to the active ring while a ring is pending: the pending one stays (its version must not be reused)', () => {
    const v2 = step(v1, desired(3));
    expect(step(v2, desired(2))).toEqual(v2);
  });

  it('a pending ring equal to the active one (written by hand) is dropped', () => {
    const same: ShardMap = {
      ...v1,
      pending: { version: 5, virtualNodes: 128, shards: v1.shards, dedicated: [] },
    };
    expect(step(same, desired(2))).toEqual(v1);
  });

  it('refuses to change the sharding key, and never publishes an invalid map', () => {
    expect(() => step(v1, { ...desired(2), key: 'tenant_id' })).toThrow(
      /sharding key cannot change \(from user_id to tenant_id\)/,
    );
    const twice = desired(2);
    twice.shards.push(twice.shards[0]!);
    expect(() => step(undefined, twice)).toThrow(/is listed twice/);
    expect(() => step(v1, twice)).toThrow(/is listed twice/);
  });

  it('over a long walk of spec changes and flips, a version never names two rings and routing only moves on a flip', () => {
    // A seeded walk (same every run): counts, hot keys, virtual nodes, hosts, verified flips.
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ringByVersion = new Map<number, ReturnType<typeof ringSpec>>();
    const remember = (version: number, ring: ReturnType<typeof ringSpec>) => {
      const known = ringByVersion.get(version);
      if (known) expect(sameRing(known, ring)).toBe(true);
      ringByVersion.set(version, ring);
    };
    let map: ShardMap | undefined;
    let flips = 0;
    for (let i = 0; i < 2000; i++) {
      const want = desired(
        1 + rand(4),
        ['a', 'b', 'c'].filter(() => rand(3) === 0),
        {
          virtualNodes: rand(5) === 0 ? 64 : 128,
          host: `h${rand(3)}`,
        },
      );
      const flip = rand(3) === 0;
      const next = step(map, want, flip);
      expect(parseShardMap(serializeShardMap(next))).toEqual(next);
      remember(next.version, ringSpec(next));
      if (next.pending) remember(next.pending.version, ringSpec(next.pending));
      if (map) {
        const flipped = flip && map.pending !== undefined;
        if (flipped) flips++;
        // The active ring changes only by a flip, and then to the ring that was pending.
        expect(sameRing(ringSpec(next), ringSpec(flipped ? map.pending! : map))).toBe(true);
        expect(next.version).toBe(flipped ? map.pending!.version : map.version);
      }
      // What the spec asks for is routed by, or pending.
      const wantRing = ringSpec(want);
      expect(
        sameRing(wantRing, ringSpec(next)) || (!!next.pending && sameRing(wantRing, ringSpec(next.pending))),
      ).toBe(true);
      // Every shard the spec names is where the spec says.
      const hosts = new Map(want.shards.map((s) => [s.name, s.host]));
      for (const s of [...next.shards, ...(next.pending?.shards ?? [])]) {
        if (hosts.has(s.name)) expect(s.host).toBe(hosts.get(s.name));
      }
      map = next;
    }
    expect(flips).toBeGreaterThan(100);
    expect(ringByVersion.size).toBeGreaterThan(100);
  });
});
