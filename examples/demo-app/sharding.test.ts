// Routing a key to its shard with the operator's own map and router, as the pods do: the map here is
// the one the operator publishes for the full-stack sample (shardMap), serialised as in the ConfigMap.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { jest } from '@jest/globals';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { ShardRouter } from '../../operator/sharding/router.ts';
import { serializeShardMap } from '../../operator/sharding/shard-map.ts';
import type { ObservedFacts } from '../../operator/tiers/objects.ts';
import { hotShardName, shardMap } from '../../operator/tiers/shards.ts';
import { serverConfig } from './config.ts';
import { TierError } from './http.ts';
import { checkShardKey, MAX_KEY_LENGTH, Shards, shardTableDdl, shardTarget } from './sharding.ts';
import { createLogger } from './log.ts';

const sample = parse(
  readFileSync(new URL('../../manifests/samples/12-full-stack.yaml', import.meta.url), 'utf8'),
);
// Named `shop` like the examples of docs/sharding.md: 4 hash shards, celebrity-42 on a shard of its own.
const app = parseApp(sample.spec, 'shop', 'prod');
const facts: ObservedFacts = {
  gatewayApi: false,
  shardCredentials: { superuser: 'su', replication: 'rep', app: 'shard-pw' },
};
const mapText = serializeShardMap(shardMap(app, facts));
const router = ShardRouter.fromJson(mapText);
const login = { user: 'app', password: 'shard-pw', sslmode: 'disable' as const };

describe('routing a key to its shard', () => {
  it('sends keys where docs/sharding.md says they go', () => {
    const shardOf = (key: string) => router.route(key).shard;
    expect(['user-1', 'user-2', 'user-42', '42', ''].map(shardOf)).toEqual([
      'shop-shard-1',
      'shop-shard-3',
      'shop-shard-0',
      'shop-shard-3',
      'shop-shard-2',
    ]);
    expect(shardOf('celebrity-42')).toBe(hotShardName(app, 'celebrity-42'));
  });

  it("connects to the shard's primary, or its read-only Service for replica reads, with the shard login", () => {
    const route = router.route('user-42');
    expect(shardTarget(route, login)).toEqual({
      host: 'shop-shard-0-rw.prod.svc',
      port: 5432,
      database: 'app',
      user: 'app',
      password: 'shard-pw',
      sslmode: 'disable',
      ssl: false,
    });
    expect(shardTarget(route, login, true).host).toBe('shop-shard-0-ro.prod.svc');
    expect(shardTarget(route, { ...login, sslmode: 'require' }).ssl).toEqual({ rejectUnauthorized: false });
  });

  it('falls back to the primary for replica reads when the map names no read-only Service', () => {
    const { readHost: _none, ...route } = router.route('user-1');
    expect(shardTarget(route, login, true).host).toBe('shop-shard-1-rw.prod.svc');
  });

  it('names the sharding column as the map does, quoted, so operator/reshard-main.ts can move the rows', () => {
    expect(shardTableDdl('user_id')).toMatch(
      /^CREATE TABLE IF NOT EXISTS demo_shard_items \(\s+"user_id" text PRIMARY KEY,/,
    );
    expect(shardTableDdl('odd"name')).toContain('"odd""name" text PRIMARY KEY');
  });

  it('accepts keys of 1..256 printable characters', () => {
    expect(checkShardKey('user-42')).toBe('user-42');
    expect(checkShardKey('ü/ß €')).toBe('ü/ß €');
    for (const bad of ['', 'x'.repeat(MAX_KEY_LENGTH + 1), 'a\nb', 'nul\u0000'])
      expect(() => checkShardKey(bad)).toThrow(TierError);
  });
});

describe('Shards, before any connection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-shards-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const log = createLogger('test', []);
  const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  afterAll(() => write.mockRestore());

  const shardsAt = (path: string) =>
    new Shards(
      serverConfig({
        SHARD_MAP_PATH: path,
        SHARDS_USER: 'app',
        SHARDS_PASSWORD: 'pw',
        SHARD_MAP_RELOAD_MS: '100',
      }).shards!,
      log,
      ['pw'],
    );

  it('reads the mounted map (the file, or the directory it is mounted at)', async () => {
    writeFileSync(join(dir, 'shard-map.json'), mapText);
    for (const path of [join(dir, 'shard-map.json'), dir]) {
      const s = shardsAt(path);
      expect((await s.router()).route('user-42').shard).toBe('shop-shard-0');
      await s.close();
    }
  });

  it('answers 503 while the map file is missing, and routes once it appears', async () => {
    const path = join(dir, 'later.json');
    const s = shardsAt(path);
    await expect(s.router()).rejects.toMatchObject({ tier: 'shards', status: 503 });
    writeFileSync(path, mapText);
    expect((await s.router()).version).toBe(1);
    await s.close();
  });
});
