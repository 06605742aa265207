// The shard map: the versioned document the operator publishes in the ConfigMap `<app>-shard-map`
// (data key `shard-map.json`) and apps route by (router.ts). It names the ring (virtual nodes, hot
// keys, the hash), and where every shard's primary is. While data is being moved to a new ring, that
// ring is published beside the active one as `pending`; routing follows the active ring until the
// flip (docs/adr/0007-resharding.md).
//
// `shards` lists every shard with its endpoint; `dedicated` says which of them hold one hot key each.
// The ring is made of the shards that no hot key names.
import { z } from 'zod';
import { RING_HASH, sameRing, type RingSpec } from './ring.ts';

/** The ConfigMap data key, and the file name where the ConfigMap is mounted. */
export const SHARD_MAP_KEY = 'shard-map.json';
/** Set by whoever verified a copy to the pending ring, to that ring's version: the operator then flips. */
export const RESHARD_VERIFIED_ANNOTATION = 'scalableapp.io/reshard-verified';

const shardEndpoint = z.object({
  /** The shard's name, also the name of its Postgres cluster. */
  name: z.string().min(1),
  /** The primary's host (the shard's read-write Service). */
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  database: z.string().min(1),
  /** The shard's read-only Service. */
  readHost: z.string().min(1).optional(),
});

const layoutFields = {
  virtualNodes: z.number().int().min(1).max(1024),
  shards: z.array(shardEndpoint).min(1),
  dedicated: z.array(z.object({ key: z.string().min(1), shard: z.string().min(1) })),
};

function checkLayout(l: ShardLayout, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message });
  const names = new Set<string>();
  l.shards.forEach((s, i) => {
    if (names.has(s.name)) issue(['shards', i, 'name'], `shard ${s.name} is listed twice`);
    names.add(s.name);
  });
  const keys = new Set<string>();
  l.dedicated.forEach((d, i) => {
    if (keys.has(d.key)) issue(['dedicated', i, 'key'], `hot key ${d.key} is listed twice`);
    keys.add(d.key);
    if (!names.has(d.shard)) {
      issue(['dedicated', i, 'shard'], `hot key ${d.key} names shard ${d.shard}, which is not in shards`);
    }
  });
  if (ringShards(l).length === 0) issue(['shards'], 'every shard is dedicated to a hot key: no ring');
}

const pendingLayout = z
  .object({ version: z.number().int().min(1), ...layoutFields })
  .superRefine(checkLayout);

const shardMapSchema = z
  .object({
    version: z.number().int().min(1),
    /** The sharding column. */
    key: z.string().min(1),
    hash: z.literal(RING_HASH, { error: `unsupported hash: this router implements ${RING_HASH}` }),
    ...layoutFields,
    pending: pendingLayout.optional(),
  })
  .superRefine(checkLayout)
  .superRefine((m, ctx) => {
    if (m.pending && m.pending.version <= m.version) {
      ctx.addIssue({
        code: 'custom',
        path: ['pending', 'version'],
        message: `the pending ring's version (${m.pending.version}) must be above the active one's (${m.version})`,
      });
    }
  });

export type ShardEndpoint = z.output<typeof shardEndpoint>;
/** A ring and where its shards are: the active part of a map, or its pending one. */
export type ShardLayout = {
  virtualNodes: number;
  shards: ShardEndpoint[];
  dedicated: { key: string; shard: string }[];
};
export type VersionedLayout = ShardLayout & { version: number };
export type ShardMap = z.output<typeof shardMapSchema>;
/** What the operator computes from the spec: the map without its versions and the (fixed) hash. */
export type DesiredShardMap = Omit<ShardMap, 'version' | 'pending' | 'hash'>;

/** Parses and checks a shard map; the error names every offending field. */
export function parseShardMap(text: string): ShardMap {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`the shard map is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return checked(json);
}

/** The map, or undefined when the text is not a valid one. */
export function safeParseShardMap(text: string): ShardMap | undefined {
  try {
    return parseShardMap(text);
  } catch {
    return undefined;
  }
}

function checked(map: unknown): ShardMap {
  const parsed = shardMapSchema.safeParse(map);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid shard map: ${issues.join('; ')}`);
  }
  return normalize(parsed.data);
}

/** The text the operator publishes: fields in a fixed order, so equal maps are equal texts. */
export function serializeShardMap(map: ShardMap): string {
  return `${JSON.stringify(normalize(map), null, 2)}\n`;
}

/** The shards of a layout that form the ring: those no hot key names. */
function ringShards(l: ShardLayout): ShardEndpoint[] {
  const hot = new Set(l.dedicated.map((d) => d.shard));
  return l.shards.filter((s) => !hot.has(s.name));
}

/** The ring of a layout (a map's active ring, or its pending one). */
export function ringSpec(l: ShardLayout): RingSpec {
  return {
    shards: ringShards(l).map((s) => s.name),
    virtualNodes: l.virtualNodes,
    dedicated: l.dedicated.map((d) => ({ key: d.key, shard: d.shard })),
  };
}

/**
 * The map to publish next, from the one published (if any) and the ring the spec asks for:
 * - none published: version 1, the desired ring, no pending;
 * - `opts.flip` (the pending ring's copy was verified) makes the pending ring the active one, with
 *   its version; this happens first, so a spec changed since the copy began becomes the next pending;
 * - desired ring = active ring: the active ring stays; a pending ring is kept (a copy may be under
 *   way; dropping it would let a later pending reuse its version, and a stale verification of the
 *   dropped ring would flip an unverified one), unless it equals the active ring;
 * - desired ring = pending ring: both stay, versions unchanged;
 * - otherwise the desired ring becomes the pending one, with a version above every version issued
 *   (the active one's and a replaced pending one's), so a verification never applies to another ring.
 * Endpoints (host, port, database, readHost) are taken from `desired` for every shard it names, in
 * place and without a version change: they say where a shard is, not which keys it holds.
 * Throws when the sharding key changes or the result would not be a valid map.
 */
export function nextShardMap(
  previous: ShardMap | undefined,
  desired: DesiredShardMap,
  opts: { flip: boolean },
): ShardMap {
  const want: ShardLayout = {
    virtualNodes: desired.virtualNodes,
    shards: desired.shards,
    dedicated: desired.dedicated,
  };
  const common = { key: desired.key, hash: RING_HASH };
  // Checked, so a desired ring that cannot route (a shard named twice) is never published.
  if (!previous) return checked({ version: 1, ...common, ...want });
  if (previous.key !== desired.key) {
    throw new Error(
      `the sharding key cannot change (from ${previous.key} to ${desired.key}): every row would have to move`,
    );
  }
  let active: VersionedLayout = previous;
  let pending: VersionedLayout | undefined = previous.pending;
  if (opts.flip && pending) [active, pending] = [pending, undefined];
  if (pending && sameRing(ringSpec(pending), ringSpec(active))) pending = undefined;
  const wantRing = ringSpec(want);
  if (!sameRing(wantRing, ringSpec(active)) && !(pending && sameRing(wantRing, ringSpec(pending)))) {
    pending = { version: Math.max(active.version, pending?.version ?? 0) + 1, ...want };
  }
  return checked({
    ...common,
    ...withEndpoints(active, want),
    pending: pending && withEndpoints(pending, want),
  });
}

/** The layout with the endpoint of every shard that `from` names taken from `from`. */
function withEndpoints(l: VersionedLayout, from: ShardLayout): VersionedLayout {
  const byName = new Map(from.shards.map((e) => [e.name, e]));
  return { ...l, shards: l.shards.map((e) => byName.get(e.name) ?? e) };
}

function normalizeLayout(l: VersionedLayout): VersionedLayout {
  return {
    version: l.version,
    virtualNodes: l.virtualNodes,
    shards: l.shards.map((e) => ({
      name: e.name,
      host: e.host,
      port: e.port,
      database: e.database,
      ...(e.readHost !== undefined ? { readHost: e.readHost } : {}),
    })),
    dedicated: l.dedicated.map((d) => ({ key: d.key, shard: d.shard })),
  };
}

/** Fixed field order, no undefined fields. */
function normalize(m: ShardMap): ShardMap {
  const { version, virtualNodes, shards, dedicated } = normalizeLayout(m);
  return {
    version,
    key: m.key,
    hash: m.hash,
    virtualNodes,
    shards,
    dedicated,
    ...(m.pending ? { pending: normalizeLayout(m.pending) } : {}),
  };
}
