import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashRing } from './ring.ts';
import { ShardRouter, watchShardMap, type ShardRouter as Router } from './router.ts';
import {
  nextShardMap,
  ringSpec,
  serializeShardMap,
  type DesiredShardMap,
  type ShardMap,
} from './shard-map.ts';

function desired(count: number): DesiredShardMap {
  const names = [...Array.from({ length: count }, (_, i) => `shop-shard-${i}`), 'shop-shard-hot-a'];
  return {
    key: 'user_id',
    virtualNodes: 128,
    shards: names.map((name, i) => ({
      name,
      host: `${name}-rw.shop.svc`,
      port: 5432 + i,
      database: 'app',
      ...(name.endsWith('-0') ? {} : { readHost: `${name}-ro.shop.svc` }),
    })),
    dedicated: [{ key: 'celebrity-42', shard: 'shop-shard-hot-a' }],
  };
}

const v1 = nextShardMap(undefined, desired(2), { flip: false });
/** v1 routed, v2 (three hash shards) pending. */
const resharding = nextShardMap(v1, desired(3), { flip: false });
const keys = Array.from({ length: 5000 }, (_, i) => `user-${i}`);

describe('ShardRouter', () => {
  it('routes every key by the ring of the map, with the address of its shard', () => {
    const router = new ShardRouter(v1);
    const ring = new HashRing(ringSpec(v1));
    for (const key of keys) {
      const r = router.route(key);
      expect(r.shard).toBe(ring.shardFor(key));
      const e = v1.shards.find((s) => s.name === r.shard)!;
      expect(r).toEqual({
        shard: e.name,
        host: e.host,
        port: e.port,
        database: 'app',
        readHost: e.readHost,
        version: 1,
      });
    }
    expect(new Set(keys.map((k) => router.route(k).shard))).toEqual(
      new Set(['shop-shard-0', 'shop-shard-1']),
    );
    expect(router.version).toBe(1);
    expect(router.pendingRoute('user-1')).toBeUndefined();
  });

  it('sends a hot key to its dedicated shard', () => {
    expect(new ShardRouter(v1).route('celebrity-42')).toEqual({
      shard: 'shop-shard-hot-a',
      host: 'shop-shard-hot-a-rw.shop.svc',
      port: 5434,
      database: 'app',
      readHost: 'shop-shard-hot-a-ro.shop.svc',
      version: 1,
    });
  });

  it('while resharding: routes by the active ring, and tells where a key is going by the pending one', () => {
    const router = new ShardRouter(resharding);
    const before = new ShardRouter(v1);
    const pending = new HashRing(ringSpec(resharding.pending!));
    let moving = 0;
    for (const key of keys) {
      expect(router.route(key)).toEqual(before.route(key));
      const p = router.pendingRoute(key)!;
      expect(p.shard).toBe(pending.shardFor(key));
      expect(p.version).toBe(2);
      if (p.shard !== router.route(key).shard) {
        moving++;
        expect(p.shard).toBe('shop-shard-2');
      }
    }
    expect(moving).toBeGreaterThan(0);
    expect(router.pendingRoute('celebrity-42')?.shard).toBe('shop-shard-hot-a');
  });

  it('builds a postgresql URL with percent-encoded credentials, to the primary or the read Service', () => {
    const router = new ShardRouter(v1);
    const credentials = { user: 'app', password: `p@ss:w/rd?#%'"` };
    const key = keys.find((k) => router.route(k).shard === 'shop-shard-1')!;
    const url = new URL(router.url(key, credentials));
    expect(url.protocol).toBe('postgresql:');
    expect(decodeURIComponent(url.username)).toBe('app');
    expect(decodeURIComponent(url.password)).toBe(credentials.password);
    expect([url.hostname, url.port, url.pathname]).toEqual(['shop-shard-1-rw.shop.svc', '5433', '/app']);
    expect(new URL(router.url(key, credentials, { read: true })).hostname).toBe('shop-shard-1-ro.shop.svc');
    // TLS as the connection Secret says, in libpq's parameters.
    const tls = new URL(
      router.url(key, { ...credentials, sslmode: 'verify-full', sslrootcert: '/etc/scalableapp/ca/ca.crt' }),
    );
    expect(Object.fromEntries(tls.searchParams)).toEqual({
      sslmode: 'verify-full',
      sslrootcert: '/etc/scalableapp/ca/ca.crt',
    });
    expect(url.search).toBe('');
    // shard-0 has no read Service in this map: reads go to its primary.
    const zero = keys.find((k) => router.route(k).shard === 'shop-shard-0')!;
    expect(new URL(router.url(zero, credentials, { read: true })).hostname).toBe('shop-shard-0-rw.shop.svc');
  });

  it('reads ConfigMap data, and says what is wrong with a bad one', () => {
    expect(ShardRouter.fromConfigMapData({ 'shard-map.json': serializeShardMap(v1) }).map).toEqual(v1);
    expect(() => ShardRouter.fromConfigMapData({})).toThrow(/has no shard-map.json key/);
    expect(() => ShardRouter.fromConfigMapData({ 'shard-map.json': '{"version":1}' })).toThrow(
      /invalid shard map: key: .*; hash: /,
    );
  });
});

describe('mounted ConfigMap files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shard-map-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Lays out a ConfigMap volume as the kubelet does: the data in a timestamped directory, `..data`
   * linking to it, and `shard-map.json` linking through `..data`; an update writes a new directory
   * and renames a new `..data` link over the old one, so readers see the old or the new file whole.
   */
  let generation = 0;
  async function publish(text: string): Promise<void> {
    const stamp = `..2026_01_01_00_00_0${generation++}.${process.pid}`;
    await mkdir(join(dir, stamp));
    await writeFile(join(dir, stamp, 'shard-map.json'), text);
    await symlink(stamp, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await symlink('..data/shard-map.json', join(dir, 'shard-map.json')).catch((err) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }

  it('fromFile reads the file, or the directory it is mounted at', async () => {
    await publish(serializeShardMap(v1));
    expect((await ShardRouter.fromFile(join(dir, 'shard-map.json'))).map).toEqual(v1);
    expect((await ShardRouter.fromFile(dir)).map).toEqual(v1);
    await expect(ShardRouter.fromFile(join(dir, 'missing.json'))).rejects.toThrow(/ENOENT/);
  });

  it('watchShardMap swaps the router when the kubelet swaps the file, and keeps the last good one', async () => {
    await publish(serializeShardMap(v1));
    const seen: Router[] = [];
    const errors: Error[] = [];
    const watch = await watchShardMap(join(dir, 'shard-map.json'), (r) => seen.push(r), {
      intervalMs: 0,
      onError: (e) => errors.push(e),
    });
    try {
      expect(watch.router.version).toBe(1);
      expect(await watch.check()).toBe(false);

      await publish(serializeShardMap(resharding));
      expect(await watch.check()).toBe(true);
      expect(seen.map((r) => [r.version, r.map.pending?.version])).toEqual([[1, 2]]);
      expect(watch.router).toBe(seen[0]);
      expect(await watch.check()).toBe(false);

      const flipped: ShardMap = nextShardMap(resharding, desired(3), { flip: true });
      await publish('{"version": "broken"');
      expect(await watch.check()).toBe(false);
      expect(await watch.check()).toBe(false);
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/not JSON/)]);
      expect(watch.router.version).toBe(1);

      await publish(serializeShardMap(flipped));
      expect(await watch.check()).toBe(true);
      expect(watch.router.version).toBe(2);
      expect(watch.router.pendingRoute('user-1')).toBeUndefined();
      expect(seen).toHaveLength(2);
    } finally {
      watch.close();
    }
  });
});
