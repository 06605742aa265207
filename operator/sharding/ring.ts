// The consistent-hash ring that maps a sharding-key value to a shard. It is specified exactly, so an
// app in any language can route without this code (docs/sharding.md has a reference in Python):
//
//   hash(text)  = the first 8 bytes of SHA-256 over the UTF-8 bytes of text, read as an unsigned
//                 big-endian 64-bit integer;
//   points      = hash(`${shard}#${v}`) for every ring shard name and v = 0 .. virtualNodes-1
//                 (v in decimal, no padding), sorted ascending; equal hashes (never seen in
//                 practice) are ordered by shard name, compared as UTF-8 bytes;
//   shardFor(k) = the dedicated shard when k is exactly a dedicated (hot) key, else the owner of the
//                 first point >= hash(k), wrapping to the first point past the largest.
//
// Points depend on shard names only, not on their order or count: adding a shard adds its points and
// takes keys only from the arcs they split, which is what keeps movement near 1/(N+1) on N -> N+1.
import { Buffer } from 'node:buffer';
import { hash } from 'node:crypto';

/** The identifier of the hash above, as the shard map names it. */
export const RING_HASH = 'sha256-64be';

export interface RingSpec {
  /** Names of the hash shards; their order does not matter. */
  readonly shards: readonly string[];
  readonly virtualNodes: number;
  /** Hot keys, each matched exactly (before the ring) and sent to its own shard. */
  readonly dedicated: readonly { readonly key: string; readonly shard: string }[];
}

const TWO_64 = 1n << 64n;

function digest(text: string): Buffer {
  return hash('sha256', text, 'buffer');
}

/** The ring hash of a text (a key, or a point's `${shard}#${v}`) as an unsigned 64-bit integer. */
export function ringHash(text: string): bigint {
  return digest(text).readBigUInt64BE(0);
}

export class HashRing {
  readonly spec: RingSpec;
  /** The points, sorted, as high and low 32-bit halves: a lookup compares numbers, not bigints. */
  readonly #hi: Uint32Array;
  readonly #lo: Uint32Array;
  /** Index into spec.shards of each point's owner. */
  readonly #owner: Uint32Array;
  readonly #dedicated: ReadonlyMap<string, string>;

  constructor(spec: RingSpec) {
    checkSpec(spec);
    this.spec = {
      shards: [...spec.shards],
      virtualNodes: spec.virtualNodes,
      dedicated: spec.dedicated.map((d) => ({ key: d.key, shard: d.shard })),
    };
    const names = this.spec.shards;
    const n = names.length * spec.virtualNodes;
    const hi = new Uint32Array(n);
    const lo = new Uint32Array(n);
    const owner = new Uint32Array(n);
    let i = 0;
    for (let s = 0; s < names.length; s++) {
      for (let v = 0; v < spec.virtualNodes; v++, i++) {
        const d = digest(`${names[s]}#${v}`);
        hi[i] = d.readUInt32BE(0);
        lo[i] = d.readUInt32BE(4);
        owner[i] = s;
      }
    }
    const utf8 = names.map((name) => Buffer.from(name, 'utf8'));
    const order = Array.from({ length: n }, (_, k) => k).sort(
      (a, b) => hi[a]! - hi[b]! || lo[a]! - lo[b]! || Buffer.compare(utf8[owner[a]!]!, utf8[owner[b]!]!),
    );
    this.#hi = Uint32Array.from(order, (k) => hi[k]!);
    this.#lo = Uint32Array.from(order, (k) => lo[k]!);
    this.#owner = Uint32Array.from(order, (k) => owner[k]!);
    this.#dedicated = new Map(spec.dedicated.map((d) => [d.key, d.shard]));
  }

  /** The shard that holds `key`. */
  shardFor(key: string): string {
    const dedicated = this.#dedicated.get(key);
    if (dedicated !== undefined) return dedicated;
    const d = digest(key);
    return this.#ownerAt(d.readUInt32BE(0), d.readUInt32BE(4));
  }

  /**
   * The ring shard that owns a hash (dedicated keys are not consulted). For callers that hash many
   * keys once and look them up in several rings.
   */
  shardForHash(h: bigint): string {
    return this.#ownerAt(Number(h >> 32n), Number(h & 0xffffffffn));
  }

  /** The exact fraction of the hash space each ring shard owns (dedicated keys aside). */
  shares(): ReadonlyMap<string, number> {
    const owned = new Map<string, bigint>(this.spec.shards.map((s) => [s, 0n]));
    const points = this.points();
    points.forEach((p, i) => {
      const name = this.spec.shards[this.#owner[i]!]!;
      owned.set(name, owned.get(name)! + arcBefore(points, i));
    });
    return new Map([...owned].map(([s, n]) => [s, fraction(n)]));
  }

  /** The points in ring order, as unsigned 64-bit integers. */
  points(): bigint[] {
    return Array.from(this.#hi, (h, i) => (BigInt(h) << 32n) | BigInt(this.#lo[i]!));
  }

  /** The owner of the first point >= (hi, lo), wrapping: a lower-bound binary search. */
  #ownerAt(hi: number, lo: number): string {
    const H = this.#hi;
    const L = this.#lo;
    let a = 0;
    let b = H.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (H[m]! < hi || (H[m] === hi && L[m]! < lo)) a = m + 1;
      else b = m;
    }
    return this.spec.shards[this.#owner[a === H.length ? 0 : a]!]!;
  }
}

function checkSpec(spec: RingSpec): void {
  if (spec.shards.length === 0) throw new Error('a ring needs at least one shard');
  const seen = new Set<string>();
  for (const s of spec.shards) {
    if (typeof s !== 'string' || s === '') throw new Error(`bad shard name ${JSON.stringify(s)}`);
    if (seen.has(s)) throw new Error(`shard ${JSON.stringify(s)} is named twice in the ring`);
    seen.add(s);
  }
  if (!Number.isInteger(spec.virtualNodes) || spec.virtualNodes < 1) {
    throw new Error(`virtualNodes must be an integer >= 1, got ${spec.virtualNodes}`);
  }
  const keys = new Set<string>();
  for (const d of spec.dedicated) {
    if (typeof d.shard !== 'string' || d.shard === '') {
      throw new Error(`the hot key ${JSON.stringify(d.key)} has no shard`);
    }
    if (keys.has(d.key)) throw new Error(`the hot key ${JSON.stringify(d.key)} is dedicated twice`);
    keys.add(d.key);
  }
}

/** How many hashes point i owns: those in (previous point, point i], wrapping past 2^64 - 1. */
function arcBefore(points: readonly bigint[], i: number): bigint {
  return i === 0 ? points[0]! + TWO_64 - points[points.length - 1]! : points[i]! - points[i - 1]!;
}

function fraction(hashes: bigint): number {
  return Number(hashes) / Number(TWO_64);
}

/** Whether two specs route every key the same way (shard order aside). */
export function sameRing(a: RingSpec, b: RingSpec): boolean {
  const set = (xs: readonly string[]) => [...xs].sort().join('\0');
  const hot = (r: RingSpec) => set(r.dedicated.map((d) => `${d.key}\0${d.shard}`));
  return (
    a.virtualNodes === b.virtualNodes &&
    a.shards.length === b.shards.length &&
    set(a.shards) === set(b.shards) &&
    a.dedicated.length === b.dedicated.length &&
    hot(a) === hot(b)
  );
}

/**
 * Number of ring arcs (key ranges) whose owner differs between two rings, and the fraction of the
 * hash space they cover. An arc is a maximal stretch of hash space that moves from one shard to one
 * other shard (two adjacent stretches with different sources or targets count as two). Dedicated keys
 * are single keys, not ranges: `keys` lists those whose shard differs (a hot key added or removed, or
 * given another shard).
 */
export function movedRanges(
  from: RingSpec,
  to: RingSpec,
): { ranges: number; fraction: number; keys: string[] } {
  const [a, b] = [new HashRing(from), new HashRing(to)];
  const bounds = [...new Set([...a.points(), ...b.points()])].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  // Each bound closes the elementary arc (previous bound, bound]; both rings give it one owner.
  const arcs = bounds.map((h, i) => ({
    move: `${a.shardForHash(h)}\0${b.shardForHash(h)}`,
    moved: a.shardForHash(h) !== b.shardForHash(h),
    size: arcBefore(bounds, i),
  }));
  let ranges = 0;
  let movedHashes = 0n;
  arcs.forEach((arc, i) => {
    if (!arc.moved) return;
    movedHashes += arc.size;
    if (i === 0 || arcs[i - 1]!.move !== arc.move) ranges++;
  });
  // The last and the first arc touch across zero: one range when they make the same move.
  const [first, last] = [arcs[0]!, arcs[arcs.length - 1]!];
  if (ranges > 1 && first.moved && last.move === first.move) ranges--;
  const hotKeys = new Set([...from.dedicated, ...to.dedicated].map((d) => d.key));
  return {
    ranges,
    fraction: fraction(movedHashes),
    keys: [...hotKeys].filter((k) => a.shardFor(k) !== b.shardFor(k)).sort(),
  };
}
