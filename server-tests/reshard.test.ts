// The data mover against REAL Postgres: three standalone servers on loopback (each instance script
// started as its own primary), 20,000 rows routed by a 2-shard ring, moved to the 3-shard ring the
// operator would publish as pending, verified, flipped, deleted; then back to 2 shards, draining
// the removed one. What the ADR promises is checked here: a crashed copy re-runs without duplicates,
// writes made during the copy are caught by verify and carried by a second copy, every row ends on
// exactly the shard the new ring names, and the data set is the same before and after.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from 'pg';
import {
  copyMovedRows,
  deleteMovedRows,
  FENCED_SQLSTATE,
  fenceMovedKeys,
  liftFence,
  verifyMovedRows,
  type MovePlan,
  type ShardClients,
} from '../operator/dataplane/postgres/reshard.ts';
import { HashRing, movedRanges, type RingSpec } from '../operator/sharding/ring.ts';
import {
  nextShardMap,
  ringSpec,
  serializeShardMap,
  type DesiredShardMap,
  type ShardMap,
} from '../operator/sharding/shard-map.ts';
import { APP_USER, CREDENTIALS, LocalCluster } from './support/postgres-local-cluster.ts';

const NAMES = ['shop-shard-0', 'shop-shard-1', 'shop-shard-2'];
const USERS = 5000;
const ROWS_PER_USER = 4;
let cluster: LocalCluster;
const clients: Record<string, Client> = {};

beforeAll(async () => {
  cluster = await LocalCluster.create({ names: NAMES });
  // Each instance is the recorded primary of its own: three independent servers, one per shard.
  await Promise.all(cluster.instances.map((i) => i.start(i)));
  for (const i of cluster.instances) {
    clients[i.name] = await i.connect();
    // The key is not the primary key (a user has many rows); an identity column, a generated column
    // and a json column (no equality operator) are what a generic copy most easily gets wrong.
    await clients[i.name]!.query(`CREATE TABLE events (
      id bigint GENERATED ALWAYS AS IDENTITY,
      user_id bigint NOT NULL,
      seq int NOT NULL,
      body text NOT NULL,
      body_length int GENERATED ALWAYS AS (length(body)) STORED,
      amount numeric(12, 2),
      at timestamptz,
      tags text[],
      meta json,
      PRIMARY KEY (user_id, seq))`);
    await clients[i.name]!.query('CREATE INDEX ON events (user_id)');
  }
}, 180_000);

afterAll(async () => {
  await Promise.all(Object.values(clients).map((c) => c.end().catch(() => {})));
  await cluster?.destroy();
});

/** The map the operator would compute for `count` hash shards of this cluster. */
function desired(count: number): DesiredShardMap {
  return {
    key: 'user_id',
    virtualNodes: 128,
    shards: cluster.instances.slice(0, count).map((i) => ({
      name: i.name,
      host: i.node.host,
      port: i.node.port,
      database: 'app',
    })),
    dedicated: [],
  };
}

const only = (names: string[]): ShardClients => Object.fromEntries(names.map((n) => [n, clients[n]!]));
const count = async (shard: string, where = 'true') =>
  (await clients[shard]!.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE ${where}`))
    .rows[0]!.n;

/** Every row of every shard as text (identity values included), with the shard it is on. */
async function everyRow(): Promise<{ shard: string; user: string; text: string }[]> {
  const all = await Promise.all(
    NAMES.map(async (shard) => {
      const { rows } = await clients[shard]!.query<{ user_id: string; t: string }>(
        'SELECT user_id::text, t::text AS t FROM events t',
      );
      return rows.map((r) => ({ shard, user: r.user_id, text: r.t }));
    }),
  );
  return all.flat();
}

/** Row count and a digest of the data set: the rows on the shard `ring` sends their key to. */
async function dataSet(ring: RingSpec): Promise<{ rows: number; sha256: string }> {
  const r = new HashRing(ring);
  const texts = (await everyRow())
    .filter((x) => r.shardFor(x.user) === x.shard)
    .map((x) => x.text)
    .sort();
  return { rows: texts.length, sha256: createHash('sha256').update(texts.join('\n')).digest('hex') };
}

/**
 * The shards' clients, but `shard`'s is a connection of its own that dies at its `n`th query (mid
 * transaction when `n` lands there): a mover that crashes while copying. The server rolls back
 * what the dead connection had not committed.
 */
async function crashingAt(shard: string, n: number): Promise<ShardClients> {
  const own = await cluster.get(shard).connect();
  let calls = 0;
  const crashing = new Proxy(own, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (...args: unknown[]) => {
        if (++calls >= n) {
          await target.end();
          throw new Error('the mover died');
        }
        return (target.query as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { ...only(NAMES), [shard]: crashing };
}

const execFileAsync = promisify(execFile);

let v1: ShardMap;
let v2: ShardMap;

describe('2 -> 3 shards', () => {
  it('copies the moving keys (surviving a crash), verifies, catches writes made meanwhile, flips, deletes', async () => {
    v1 = nextShardMap(undefined, desired(2), { flip: false });
    v2 = nextShardMap(v1, desired(3), { flip: false });
    const [from, to] = [ringSpec(v1), ringSpec(v2.pending!)];
    expect(v2.pending?.version).toBe(2);

    // 20,000 rows, each on the shard the routed ring names for its user.
    const ring = new HashRing(from);
    const users = Array.from({ length: USERS }, (_, i) => 1_000_000 + i * 7);
    for (const shard of from.shards) {
      await clients[shard]!.query(
        `INSERT INTO events (user_id, seq, body, amount, at, tags, meta)
           SELECT u, s, 'event ' || u || '/' || s, (u % 1000) * s / 7.0,
                  timestamptz '2026-01-01 00:00:00+00' + (u % 100000) * interval '1 minute' + s * interval '1 ms',
                  ARRAY['tag-' || s, 'user'], json_build_object('u', u, 's', s)
             FROM unnest($1::bigint[]) u, generate_series(1, ${ROWS_PER_USER}) s`,
        [users.filter((u) => ring.shardFor(String(u)) === shard)],
      );
    }
    const before = await dataSet(from);
    expect(before.rows).toBe(USERS * ROWS_PER_USER);
    const plan: MovePlan = {
      table: 'events',
      keyColumn: 'user_id',
      from,
      to,
      clients: only(NAMES),
      batchSize: 500,
    };

    // A first run dies in its third write to the new shard, after two were committed: the set-up
    // takes 2 queries, each write 4 (BEGIN, DELETE, INSERT, COMMIT); it dies at the third INSERT.
    const crashing = await crashingAt('shop-shard-2', 2 + 4 * 2 + 3);
    await expect(copyMovedRows({ ...plan, clients: crashing })).rejects.toThrow(/the mover died/);
    const partial = await count('shop-shard-2');
    expect(partial).toBeGreaterThan(0);

    const copied = await copyMovedRows(plan);
    const movedRows = copied.movedKeys * ROWS_PER_USER;
    expect(copied.keys).toBe(USERS);
    expect(copied.rowsRead).toBe(movedRows);
    // What the crashed run wrote is not written again, nor duplicated.
    expect(copied.rowsWritten).toBe(movedRows - partial);
    expect(await count('shop-shard-2')).toBe(movedRows);
    expect(Object.keys(copied.routes).sort()).toEqual([
      'shop-shard-0>shop-shard-2',
      'shop-shard-1>shop-shard-2',
    ]);
    // About a third moves: the new shard's share of the ring (movedRanges, exact), within 5 binomial
    // standard deviations over 5,000 keys; and that share is within ±30 % of 1/3 (ring.test.ts).
    const share = movedRanges(from, to).fraction;
    const fraction = copied.movedKeys / USERS;
    expect(Math.abs(fraction - share)).toBeLessThan(5 * Math.sqrt((share * (1 - share)) / USERS));
    expect(Math.abs(fraction * 3 - 1)).toBeLessThan(0.3);

    const again = await copyMovedRows(plan);
    expect([again.movedKeys, again.rowsWritten, again.staleRowsDeleted]).toEqual([copied.movedKeys, 0, 0]);
    const verified = await verifyMovedRows(plan);
    expect(verified).toMatchObject({
      ok: true,
      mismatchedKeys: 0,
      strayKeys: 0,
      movedKeys: copied.movedKeys,
    });
    expect([verified.sourceRows, verified.targetRows]).toEqual([movedRows, movedRows]);

    // Writes by the app between the copy and the fence: a changed row, a user whose rows were all
    // deleted, a new row; and a write to a key that does not move, which changes nothing here.
    const newShard = (u: number) => new HashRing(to).shardFor(String(u));
    const [changed, emptied, grown] = users.filter((u) => newShard(u) === 'shop-shard-2');
    const staying = users.find((u) => newShard(u) !== 'shop-shard-2')!;
    // The app's own connections (fresh each query), not the mover's, which the fence lets through.
    const on = (u: number) => cluster.get(ring.shardFor(String(u)));
    await on(changed!).query(
      `UPDATE events SET body = 'changed', meta = '{"x": 1}' WHERE user_id = $1 AND seq = 2`,
      [changed],
    );
    await on(emptied!).query('DELETE FROM events WHERE user_id = $1', [emptied]);
    await on(grown!).query(`INSERT INTO events (user_id, seq, body) VALUES ($1, 99, 'late')`, [grown]);
    await on(staying).query(`UPDATE events SET body = 'unmoved change' WHERE user_id = $1`, [staying]);
    const stale = await verifyMovedRows(plan);
    expect(stale.ok).toBe(false);
    expect(stale.mismatches.map((m) => [m.key, m.source?.rows ?? 0, m.target?.rows ?? 0]).sort()).toEqual(
      [
        [String(changed), 4, 4],
        [String(grown), 5, 4],
        [String(emptied), 0, 4],
      ].sort(),
    );

    // The fence: from now on a moving key cannot be written on its old shard, whatever map the writer
    // has (a user the new ring places on shard-2 cannot even be created on the old one); keys that
    // stay are written as usual. The fence's ring, in SQL, is the ring of ring.ts.
    expect(await fenceMovedKeys(plan)).toEqual({ shards: NAMES });
    const inSql = await clients['shop-shard-0']!.query<{ k: string; owner: string }>(
      'SELECT k, scalableapp_ring_owner(k) AS owner FROM unnest($1::text[]) k',
      [users.map(String)],
    );
    expect(inSql.rows.filter((r) => r.owner !== newShard(Number(r.k)))).toEqual([]);
    const fenced = { code: FENCED_SQLSTATE };
    await expect(
      on(grown!).query(`UPDATE events SET body = 'too late' WHERE user_id = $1`, [grown]),
    ).rejects.toMatchObject(fenced);
    await expect(
      on(changed!).query('DELETE FROM events WHERE user_id = $1', [changed]),
    ).rejects.toMatchObject(fenced);
    let newcomer = users[USERS - 1]! + 1;
    while (newShard(newcomer) !== 'shop-shard-2') newcomer++;
    await expect(
      on(newcomer).query(`INSERT INTO events (user_id, seq, body) VALUES ($1, 1, 'new')`, [newcomer]),
    ).rejects.toMatchObject(fenced);
    await on(staying).query(`UPDATE events SET body = 'changed while fenced' WHERE user_id = $1`, [staying]);

    // In the fence: copy the delta, verify, flip.
    const writesDuringCopy = await dataSet(from);
    const delta = await copyMovedRows(plan);
    expect([delta.rowsWritten, delta.staleRowsDeleted]).toEqual([2, 4]);
    expect(await verifyMovedRows(plan)).toMatchObject({ ok: true, mismatchedKeys: 0 });

    // The CLI agrees, reading the published map and the app's credentials from the environment.
    const mapFile = join(cluster.root, 'shard-map.json');
    await writeFile(mapFile, serializeShardMap(v2));
    const cli = await execFileAsync(
      process.execPath,
      [
        new URL('../operator/reshard-main.ts', import.meta.url).pathname,
        'verify',
        '--map',
        mapFile,
        '--table',
        'events',
      ],
      { env: { ...process.env, SHARDS_USER: APP_USER, SHARDS_PASSWORD: CREDENTIALS.app } },
    );
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: true, movedKeys: copied.movedKeys - 1 });
    expect(cli.stderr).toContain('scalableapp.io/reshard-verified=2');

    const v3 = nextShardMap(v2, desired(3), { flip: true });
    expect([v3.version, v3.pending]).toEqual([2, undefined]);
    const deleted = await deleteMovedRows({ ...plan, ring: ringSpec(v3), clients: only(NAMES) });
    expect(deleted.rowsDeleted).toBe(await count('shop-shard-2'));
    expect(deleted.byShard['shop-shard-2']).toBe(0);

    // Every row on exactly the shard the new ring names; the same data set as before the move.
    const newRing = new HashRing(ringSpec(v3));
    const rows = await everyRow();
    expect(rows.filter((r) => newRing.shardFor(r.user) !== r.shard)).toEqual([]);
    expect(await dataSet(ringSpec(v3))).toEqual(writesDuringCopy);
    expect(writesDuringCopy.rows).toBe(before.rows - 4 + 1);

    // A copy run again by mistake with the old rings would find every moved row without its source.
    await expect(copyMovedRows(plan)).rejects.toThrow(/this move looks done/);
    expect(await dataSet(ringSpec(v3))).toEqual(writesDuringCopy);

    // Routed by the new map, a moved key is written on its new shard; a writer still holding the old
    // map is refused until the fence is lifted (when every app routes by the new ring).
    const moved = cluster.get('shop-shard-2');
    await moved.query(`UPDATE events SET body = 'after the flip' WHERE user_id = $1 AND seq = 1`, [grown]);
    await expect(
      on(grown!).query(`INSERT INTO events (user_id, seq, body) VALUES ($1, 7, 'stale map')`, [grown]),
    ).rejects.toMatchObject(fenced);
    expect(await liftFence({ ...plan, clients: only(NAMES) })).toEqual({ shards: NAMES });
    for (const shard of NAMES) {
      const triggers = await cluster
        .get(shard)
        .query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal",
        );
      expect([shard, triggers[0]!.n]).toEqual([shard, 0]);
    }
    v2 = v3;
  }, 180_000);
});

describe('3 -> 2 shards', () => {
  it('moves a removed shard out entirely; delete drains it though the new ring no longer names it', async () => {
    const shrinking = nextShardMap(v2, desired(2), { flip: false });
    const [from, to] = [ringSpec(shrinking), ringSpec(shrinking.pending!)];
    const before = await dataSet(from);
    const onRemoved = await count('shop-shard-2');
    const plan: MovePlan = { table: 'events', keyColumn: 'user_id', from, to, clients: only(NAMES) };

    const copied = await copyMovedRows(plan);
    expect(copied.rowsWritten).toBe(onRemoved);
    expect(Object.keys(copied.routes).every((r) => r.startsWith('shop-shard-2>'))).toBe(true);
    expect((await verifyMovedRows(plan)).ok).toBe(true);

    const flipped = nextShardMap(shrinking, desired(2), { flip: true });
    const deleted = await deleteMovedRows({ ...plan, ring: ringSpec(flipped), clients: only(NAMES) });
    expect(deleted.byShard).toEqual({ 'shop-shard-0': 0, 'shop-shard-1': 0, 'shop-shard-2': onRemoved });
    expect(await count('shop-shard-2')).toBe(0);
    expect(await dataSet(ringSpec(flipped))).toEqual(before);
  }, 120_000);
});

describe("the mover's command line", () => {
  it('waits for a shard that is away for a moment instead of failing the phase', async () => {
    const mapFile = join(cluster.root, 'shard-map-now.json');
    await writeFile(mapFile, serializeShardMap(v2));
    const away = cluster.get('shop-shard-0');
    await away.stop();
    const cli = execFileAsync(
      process.execPath,
      [
        new URL('../operator/reshard-main.ts', import.meta.url).pathname,
        'unfence',
        '--map',
        mapFile,
        '--table',
        'events',
      ],
      { env: { ...process.env, SHARDS_USER: APP_USER, SHARDS_PASSWORD: CREDENTIALS.app } },
    );
    await new Promise((r) => setTimeout(r, 3000));
    await away.start(away);
    const { stdout, stderr } = await cli;
    expect(stderr).toContain('shard shop-shard-0 not reachable yet (ECONNREFUSED); trying again');
    expect(JSON.parse(stdout).shards).toContain('shop-shard-0');
  }, 120_000);
});
