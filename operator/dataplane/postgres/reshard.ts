// The data mover for resharding (docs/adr/0007-resharding.md): moves the rows of one table whose
// owner differs between the routed ring and the pending one. Each phase is safe to re-run:
//
//   copy    every key that moves is made identical on its new shard: rows missing or different
//           there are written, rows its source no longer has are removed (a re-run writes nothing;
//           a run after more writes on the source copies exactly the delta);
//   fence   a trigger on every shard refuses app writes of keys the new ring places elsewhere;
//   verify  for every moving key, row count and a checksum (md5 of the rows' text, in byte order)
//           are equal on both sides, and no copy is left whose key its source no longer has;
//   delete  after the caller flipped routing to the new ring: every row a shard holds for a key
//           the new ring sends elsewhere is deleted there.
//
// Keys are hashed by their Postgres text form (`key::text`), which is what an app hashes when it
// routes by the same value as a string (an integer 42 -> "42"). Sessions are set to fixed text
// formats (UTC, ISO dates) so a row reads as the same text on every shard. Tables must have a
// primary key and the same columns on every shard.
import { escapeIdentifier, escapeLiteral, type ClientBase } from 'pg';
import { HashRing, type RingSpec } from '../../sharding/ring.ts';

/** A connection to each shard's primary, by shard name. */
export type ShardClients = Readonly<Record<string, ClientBase>>;

export type TableRef = {
  /** The table, optionally schema-qualified: `events` or `app.events`. */
  table: string;
  /** The sharding key column. */
  keyColumn: string;
  /** Keys per round trip. Default 1000. */
  batchSize?: number;
};

export type MovePlan = TableRef & {
  /** The ring rows are routed by now. */
  from: RingSpec;
  /** The ring they move to. */
  to: RingSpec;
  clients: ShardClients;
};

export type CopyResult = {
  /** Distinct keys read on the shards that own them now. */
  keys: number;
  /** Keys whose shard changes. */
  movedKeys: number;
  /** Rows of moved keys read on their sources. */
  rowsRead: number;
  /** Rows inserted or replaced (changed) on their new shard (0 when the copy was already complete). */
  rowsWritten: number;
  /** Rows removed from a new shard because their source no longer has them. */
  staleRowsDeleted: number;
  /** Moved keys and rows by `source>target`. */
  routes: Record<string, { keys: number; rows: number }>;
};

export type KeyMismatch = {
  key: string;
  from: string;
  to: string;
  source: { rows: number; md5: string } | null;
  target: { rows: number; md5: string } | null;
};

export type VerifyResult = {
  ok: boolean;
  movedKeys: number;
  sourceRows: number;
  targetRows: number;
  /** How many keys differ; the first 100 are in `mismatches`. */
  mismatchedKeys: number;
  mismatches: KeyMismatch[];
  /** Keys on a shard that neither ring sends there (left by an abandoned move): `delete` removes them. */
  strayKeys: number;
};

export type DeleteResult = {
  keysDeleted: number;
  rowsDeleted: number;
  /** Rows deleted from each shard. */
  byShard: Record<string, number>;
};

type Column = { name: string; type: string; pk: boolean; generated: boolean };
type Sum = { rows: number; md5: string };

/** What the SQL of one table needs, checked to be the same on every shard. */
class Table {
  readonly ref: string;
  readonly key: string;
  /** `$1` (a text[] of keys) as an array of the key column's type, for index lookups. */
  readonly keysParam: string;
  readonly columns: Column[];
  readonly batchSize: number;

  private constructor(t: TableRef, columns: Column[]) {
    this.ref = t.table.split('.').map(escapeIdentifier).join('.');
    this.key = escapeIdentifier(t.keyColumn);
    const key = columns.find((c) => c.name === t.keyColumn);
    if (!key) throw new Error(`${t.table} has no column ${t.keyColumn}`);
    if (!columns.some((c) => c.pk))
      throw new Error(`${t.table} has no primary key: copies could not be idempotent`);
    this.keysParam = `$1::text[]::${key.type}[]`;
    this.columns = columns;
    this.batchSize = t.batchSize ?? 1000;
  }

  static async load(t: TableRef, clients: [string, ClientBase][]): Promise<Table> {
    const described = await Promise.all(
      clients.map(async ([shard, c]) => {
        const { rows } = await c.query<Column>(
          `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
                  a.attnum = ANY(i.indkey) AS pk, a.attgenerated <> '' AS generated
             FROM pg_attribute a
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum`,
          [t.table],
        );
        if (rows.length === 0) throw new Error(`shard ${shard} has no table ${t.table}`);
        return [
          shard,
          rows.map((r) => ({ name: r.name, type: r.type, pk: !!r.pk, generated: r.generated })),
        ] as const;
      }),
    );
    const [first, columns] = described[0]!;
    for (const [shard, other] of described) {
      if (JSON.stringify(other) !== JSON.stringify(columns)) {
        throw new Error(
          `${t.table} differs between shards ${first} and ${shard}: ` +
            `${JSON.stringify(columns)} vs ${JSON.stringify(other)}`,
        );
      }
    }
    return new Table(t, columns);
  }

  /** Per key: how many rows, and the md5 of their text sorted bytewise. */
  async sums(c: ClientBase, keys: string[]): Promise<Map<string, Sum>> {
    const { rows } = await c.query<{ k: string; n: number; md5: string }>(
      `SELECT t.${this.key}::text AS k, count(*)::int AS n,
              md5(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C")) AS md5
         FROM ${this.ref} t WHERE t.${this.key} = ANY(${this.keysParam}) GROUP BY 1`,
      [keys],
    );
    return new Map(rows.map((r) => [r.k, { rows: r.n, md5: r.md5 }]));
  }

  /** Which of `keys` have rows. */
  async present(c: ClientBase, keys: string[]): Promise<Set<string>> {
    const { rows } = await c.query<{ k: string }>(
      `SELECT DISTINCT t.${this.key}::text AS k FROM ${this.ref} t WHERE t.${this.key} = ANY(${this.keysParam})`,
      [keys],
    );
    return new Set(rows.map((r) => r.k));
  }

  /** The rows of `keys` as a JSON array (text: it goes back to Postgres untouched). */
  async read(c: ClientBase, keys: string[]): Promise<{ json: string; rows: number }> {
    const { rows } = await c.query<{ json: string; n: number }>(
      `SELECT coalesce(json_agg(t), '[]')::text AS json, count(*)::int AS n
         FROM ${this.ref} t WHERE t.${this.key} = ANY(${this.keysParam})`,
      [keys],
    );
    return { json: rows[0]!.json, rows: rows[0]!.n };
  }

  /**
   * Makes the rows of `keys` on this shard exactly those in `json`: deletes the rows that are not
   * there as they are (changed, or gone from the source), then inserts what is missing. Rows already
   * identical are not touched, so a re-run writes nothing. An update in place is not used: identity
   * columns GENERATED ALWAYS refuse it. One transaction: a crash leaves a key as it was.
   */
  async sync(c: ClientBase, keys: string[], json: string): Promise<{ written: number; deleted: number }> {
    const pk = this.columns.filter((x) => x.pk).map((x) => escapeIdentifier(x.name));
    const insertable = this.columns.filter((x) => !x.generated).map((x) => escapeIdentifier(x.name));
    const src = (param: string) =>
      `WITH src AS (SELECT * FROM json_populate_recordset(NULL::${this.ref}, ${param}::json))`;
    const samePk = pk.map((n) => `src.${n} = t.${n}`).join(' AND ');
    await c.query('BEGIN');
    try {
      const gone = await c.query<{ replaced: boolean }>(
        `${src('$2')}
         DELETE FROM ${this.ref} t WHERE t.${this.key} = ANY(${this.keysParam})
            AND NOT EXISTS (SELECT 1 FROM src WHERE ${samePk} AND ROW(src.*)::text = ROW(t.*)::text)
         RETURNING EXISTS (SELECT 1 FROM src WHERE ${samePk}) AS replaced`,
        [keys, json],
      );
      const put = await c.query(
        `${src('$1')}
         INSERT INTO ${this.ref} (${insertable.join(', ')}) OVERRIDING SYSTEM VALUE
         SELECT ${insertable.join(', ')} FROM src ON CONFLICT (${pk.join(', ')}) DO NOTHING`,
        [json],
      );
      await c.query('COMMIT');
      return { written: put.rowCount ?? 0, deleted: gone.rows.filter((r) => !r.replaced).length };
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  async delete(c: ClientBase, keys: string[]): Promise<number> {
    const r = await c.query(`DELETE FROM ${this.ref} t WHERE t.${this.key} = ANY(${this.keysParam})`, [keys]);
    return r.rowCount ?? 0;
  }

  /**
   * Calls `fn` with the distinct keys of the shard, a batch at a time, from a cursor WITH HOLD: it
   * outlives each batch's own statements and transactions, and is closed however `fn` ends.
   */
  async forEachKeyBatch(c: ClientBase, fn: (keys: string[]) => Promise<void>): Promise<void> {
    const cursor = 'scalableapp_reshard_keys';
    await c.query(
      `DECLARE ${cursor} NO SCROLL CURSOR WITH HOLD FOR SELECT DISTINCT ${this.key}::text AS k FROM ${this.ref}`,
    );
    try {
      for (;;) {
        const { rows } = await c.query<{ k: string }>(`FETCH ${this.batchSize} FROM ${cursor}`);
        if (rows.length === 0) return;
        await fn(rows.map((r) => r.k));
      }
    } finally {
      // On a connection that died this fails too; the error worth reporting is the first one.
      await c.query(`CLOSE ${cursor}`).catch(() => {});
    }
  }
}

/**
 * Text formats fixed, so that a row is the same text on every shard whatever the server defaults;
 * and the session marked as the mover's, which the fence lets through.
 */
async function fixedFormats(c: ClientBase): Promise<void> {
  await c.query(
    `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
     SET extra_float_digits = 1; SET bytea_output = 'hex'; SET ${MOVER_SETTING} = 'on'`,
  );
}

function shardsOf(...rings: RingSpec[]): string[] {
  return [...new Set(rings.flatMap((r) => [...r.shards, ...r.dedicated.map((d) => d.shard)]))].sort();
}

async function connect(t: TableRef, clients: ShardClients, shards: string[]) {
  const missing = shards.filter((s) => !clients[s]);
  if (missing.length) throw new Error(`no connection to shard(s) ${missing.join(', ')}`);
  const list = shards.map((s) => [s, clients[s]!] as [string, ClientBase]);
  await Promise.all(list.map(([, c]) => fixedFormats(c)));
  return { table: await Table.load(t, list), client: (s: string) => clients[s]! };
}

/** Groups the items by a key. */
function groupBy<T>(items: T[], by: (x: T) => string | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const x of items) {
    const k = by(x);
    if (k === undefined) continue;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(x);
  }
  return groups;
}

/**
 * Copies the moving keys' rows to their new shards (see the top of this file). Writes go to the new
 * shards only; nothing is deleted from a source. Only while `to` is pending: after the flip and the
 * delete, the new shards' rows have no source any more and would look stale (a move that looks done
 * is refused; operator/reshard-main.ts takes both rings from the published map, which has none pending then).
 */
export async function copyMovedRows(plan: MovePlan): Promise<CopyResult> {
  const [from, to] = [new HashRing(plan.from), new HashRing(plan.to)];
  const { table, client } = await connect(plan, plan.clients, shardsOf(plan.from, plan.to));
  const result: CopyResult = {
    keys: 0,
    movedKeys: 0,
    rowsRead: 0,
    rowsWritten: 0,
    staleRowsDeleted: 0,
    routes: {},
  };
  for (const source of shardsOf(plan.from)) {
    await table.forEachKeyBatch(client(source), async (keys) => {
      const owned = keys.filter((k) => from.shardFor(k) === source);
      result.keys += owned.length;
      const moving = groupBy(owned, (k) => (to.shardFor(k) === source ? undefined : to.shardFor(k)));
      for (const [target, batch] of moving) {
        const { json, rows } = await table.read(client(source), batch);
        const { written, deleted } = await table.sync(client(target), batch, json);
        const route = (result.routes[`${source}>${target}`] ??= { keys: 0, rows: 0 });
        route.keys += batch.length;
        route.rows += rows;
        result.movedKeys += batch.length;
        result.rowsRead += rows;
        result.rowsWritten += written;
        result.staleRowsDeleted += deleted;
      }
    });
  }
  // Keys copied earlier whose rows the source has since lost entirely: the pass above never sees them.
  await forEachCopy(plan, table, client, async (source, target, keys) => {
    const kept = await table.present(client(source), keys);
    const gone = keys.filter((k) => !kept.has(k));
    if (gone.length && result.movedKeys === 0) {
      throw new Error(
        `${source} holds none of the keys that move, yet ${target} holds copies of them: this move looks ` +
          'done (flipped and deleted); refusing to remove those rows as stale',
      );
    }
    if (gone.length) result.staleRowsDeleted += await table.delete(client(target), gone);
  });
  return result;
}

/**
 * Calls `fn(source, target, keys)` with the keys a shard holds as copies for the new ring: keys the
 * new ring sends to it that the routed ring sends elsewhere.
 */
async function forEachCopy(
  plan: MovePlan,
  table: Table,
  client: (s: string) => ClientBase,
  fn: (source: string, target: string, keys: string[]) => Promise<void>,
  strays?: (n: number) => void,
): Promise<void> {
  const [from, to] = [new HashRing(plan.from), new HashRing(plan.to)];
  for (const target of shardsOf(plan.to)) {
    await table.forEachKeyBatch(client(target), async (keys) => {
      const foreign = keys.filter((k) => from.shardFor(k) !== target);
      strays?.(foreign.filter((k) => to.shardFor(k) !== target).length);
      const copies = foreign.filter((k) => to.shardFor(k) === target);
      for (const [source, batch] of groupBy(copies, (k) => from.shardFor(k))) await fn(source, target, batch);
    });
  }
}

/**
 * Checks that every moving key has the same rows on its new shard as on its source, and that no
 * copy outlived its source. Only `ok` allows the flip; it holds only while writes are fenced.
 */
export async function verifyMovedRows(plan: MovePlan): Promise<VerifyResult> {
  const [from, to] = [new HashRing(plan.from), new HashRing(plan.to)];
  const { table, client } = await connect(plan, plan.clients, shardsOf(plan.from, plan.to));
  const result: VerifyResult = {
    ok: false,
    movedKeys: 0,
    sourceRows: 0,
    targetRows: 0,
    mismatchedKeys: 0,
    mismatches: [],
    strayKeys: 0,
  };
  const mismatch = (m: KeyMismatch) => {
    result.mismatchedKeys++;
    if (result.mismatches.length < 100) result.mismatches.push(m);
  };
  for (const source of shardsOf(plan.from)) {
    await table.forEachKeyBatch(client(source), async (keys) => {
      const owned = keys.filter((k) => from.shardFor(k) === source);
      const moving = groupBy(owned, (k) => (to.shardFor(k) === source ? undefined : to.shardFor(k)));
      for (const [target, batch] of moving) {
        const [a, b] = await Promise.all([
          table.sums(client(source), batch),
          table.sums(client(target), batch),
        ]);
        result.movedKeys += batch.length;
        for (const key of batch) {
          const [s, t] = [a.get(key) ?? null, b.get(key) ?? null];
          result.sourceRows += s?.rows ?? 0;
          result.targetRows += t?.rows ?? 0;
          if (s?.rows !== t?.rows || s?.md5 !== t?.md5)
            mismatch({ key, from: source, to: target, source: s, target: t });
        }
      }
    });
  }
  await forEachCopy(
    plan,
    table,
    client,
    async (source, target, keys) => {
      const kept = await table.present(client(source), keys);
      for (const key of keys.filter((k) => !kept.has(k))) {
        const t = (await table.sums(client(target), [key])).get(key) ?? null;
        result.targetRows += t?.rows ?? 0;
        mismatch({ key, from: source, to: target, source: null, target: t });
      }
    },
    (n) => (result.strayKeys += n),
  );
  result.ok = result.mismatchedKeys === 0;
  return result;
}

/**
 * After routing flipped to `ring`: deletes from every shard the rows of keys `ring` sends to another
 * shard (the moved rows, and strays of an abandoned move). Every shard in `clients` is drained,
 * including shards `ring` no longer has.
 */
export async function deleteMovedRows(
  plan: TableRef & { ring: RingSpec; clients: ShardClients },
): Promise<DeleteResult> {
  const ring = new HashRing(plan.ring);
  const shards = Object.keys(plan.clients).sort();
  const { table, client } = await connect(plan, plan.clients, shards);
  const result: DeleteResult = { keysDeleted: 0, rowsDeleted: 0, byShard: {} };
  for (const shard of shards) {
    let deleted = 0;
    await table.forEachKeyBatch(client(shard), async (keys) => {
      const elsewhere = keys.filter((k) => ring.shardFor(k) !== shard);
      if (elsewhere.length === 0) return;
      deleted += await table.delete(client(shard), elsewhere);
      result.keysDeleted += elsewhere.length;
    });
    result.byShard[shard] = deleted;
    result.rowsDeleted += deleted;
  }
  return result;
}

/** The SQLSTATE a fenced write fails with: the key lives elsewhere now, or will once routing flips. */
export const FENCED_SQLSTATE = 'SAMOV';
const MOVER_SETTING = 'scalableapp.reshard_mover';
const FENCE_TRIGGER = 'scalableapp_reshard_fence';

/**
 * The ring in SQL, for the fence: the same hash and lookup as ring.ts (points as bit(64), which
 * compare as unsigned integers; ties by owner name in byte order).
 */
const FENCE_SQL = `
CREATE TABLE IF NOT EXISTS scalableapp_reshard_ring (
  point bit(64) NOT NULL, owner text COLLATE "C" NOT NULL, PRIMARY KEY (point, owner));
CREATE TABLE IF NOT EXISTS scalableapp_reshard_hot (key text PRIMARY KEY, owner text NOT NULL);
CREATE OR REPLACE FUNCTION scalableapp_ring_owner(k text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT owner FROM scalableapp_reshard_hot WHERE key = k),
    (SELECT owner FROM scalableapp_reshard_ring
      WHERE point >= ('x' || encode(substring(sha256(convert_to(k, 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)
      ORDER BY point, owner LIMIT 1),
    (SELECT owner FROM scalableapp_reshard_ring ORDER BY point, owner LIMIT 1))
$$;
CREATE OR REPLACE FUNCTION scalableapp_reshard_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text;
  owner text;
BEGIN
  IF current_setting('${MOVER_SETTING}', true) = 'on' THEN RETURN coalesce(NEW, OLD); END IF;
  -- TG_ARGV: this shard's name, the key column.
  FOR i IN 1..2 LOOP
    k := NULL;
    IF i = 1 AND TG_OP <> 'INSERT' THEN EXECUTE format('SELECT ($1).%I::text', TG_ARGV[1]) USING OLD INTO k; END IF;
    IF i = 2 AND TG_OP <> 'DELETE' THEN EXECUTE format('SELECT ($1).%I::text', TG_ARGV[1]) USING NEW INTO k; END IF;
    IF k IS NOT NULL THEN
      owner := scalableapp_ring_owner(k);
      IF owner <> TG_ARGV[0] THEN
        RAISE EXCEPTION 'key % moves to shard %: write it there once the shard map routes it there', k, owner
          USING ERRCODE = '${FENCED_SQLSTATE}';
      END IF;
    END IF;
  END LOOP;
  RETURN coalesce(NEW, OLD);
END
$$;`;

/**
 * Fences writes for the move (docs/adr/0007-resharding.md): on every shard of both rings, a trigger
 * refuses any write (insert, update, delete) of a key that `to` does not place on that shard, with
 * SQLSTATE SAMOV. Keys that stay are written as before; a moving key cannot change on its old
 * shard any more, also when the writer routes by a stale map, so what verify checks stays true.
 * The mover's own sessions pass. Re-running replaces the fence (e.g. with a newer pending ring).
 */
export async function fenceMovedKeys(plan: MovePlan): Promise<{ shards: string[] }> {
  const to = new HashRing(plan.to);
  const owners = to.points().map((p) => [p.toString(16).padStart(16, '0'), to.shardForHash(p)] as const);
  const shards = shardsOf(plan.from, plan.to);
  const { table, client } = await connect(plan, plan.clients, shards);
  await Promise.all(
    shards.map(async (shard) => {
      const c = client(shard);
      await c.query('BEGIN');
      try {
        await c.query(FENCE_SQL);
        await c.query('TRUNCATE scalableapp_reshard_ring, scalableapp_reshard_hot');
        await c.query(
          `INSERT INTO scalableapp_reshard_ring SELECT ('x' || p)::bit(64), o FROM unnest($1::text[], $2::text[]) AS x(p, o)`,
          [owners.map(([p]) => p), owners.map(([, o]) => o)],
        );
        await c.query('INSERT INTO scalableapp_reshard_hot SELECT * FROM unnest($1::text[], $2::text[])', [
          plan.to.dedicated.map((d) => d.key),
          plan.to.dedicated.map((d) => d.shard),
        ]);
        await c.query(`DROP TRIGGER IF EXISTS ${FENCE_TRIGGER} ON ${table.ref}`);
        await c.query(
          `CREATE TRIGGER ${FENCE_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE ON ${table.ref}
             FOR EACH ROW EXECUTE FUNCTION scalableapp_reshard_fence(${escapeLiteral(shard)}, ${escapeLiteral(plan.keyColumn)})`,
        );
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw new Error(`fencing ${shard} failed`, { cause: err });
      }
    }),
  );
  return { shards };
}

/** Removes the fence from the table on every shard in `clients`. */
export async function liftFence(plan: TableRef & { clients: ShardClients }): Promise<{ shards: string[] }> {
  const shards = Object.keys(plan.clients).sort();
  const { table, client } = await connect(plan, plan.clients, shards);
  for (const shard of shards)
    await client(shard).query(`DROP TRIGGER IF EXISTS ${FENCE_TRIGGER} ON ${table.ref}`);
  return { shards };
}
