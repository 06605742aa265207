import type { PgNode, PgState, PostgresAdmin } from './admin.ts';
import { decidePostgresFailover, standbysRequired, switchover } from './failover.ts';

type FakeNode = {
  up: boolean;
  role: 'primary' | 'replica';
  lsn: bigint;
  primary?: string;
  fenced?: boolean;
  /** Answers ping but fails to report its state. */
  brokenState?: boolean;
  failsFollow?: boolean;
  failsDetach?: boolean;
  /** A replica whose position advances by this much on every state() read. */
  catchUpBy?: bigint;
};

/** Postgres instances in memory, behaving like pgAdmin's servers for what failover touches. */
class FakePostgres implements PostgresAdmin {
  readonly nodes: PgNode[] = [];
  readonly state_ = new Map<string, FakeNode>();
  readonly calls: string[] = [];

  add(name: string, s: FakeNode): PgNode {
    const node = { name, host: `${name}.db`, port: 5432 };
    this.nodes.push(node);
    this.state_.set(name, s);
    return node;
  }

  get(name: string): FakeNode {
    return this.state_.get(name)!;
  }

  #reach(n: PgNode): FakeNode {
    const s = this.state_.get(n.name);
    if (!s?.up) throw new Error(`${n.name} unreachable`);
    return s;
  }

  async ping(n: PgNode): Promise<boolean> {
    this.calls.push(`ping ${n.name}`);
    return !!this.state_.get(n.name)?.up;
  }

  async state(n: PgNode): Promise<PgState> {
    this.calls.push(`state ${n.name}`);
    const s = this.#reach(n);
    if (s.brokenState) throw new Error('state failed');
    if (s.catchUpBy) s.lsn += s.catchUpBy;
    return { role: s.role, lsn: s.lsn };
  }

  async promote(n: PgNode): Promise<void> {
    this.calls.push(`promote ${n.name}`);
    const s = this.#reach(n);
    s.role = 'primary';
    s.fenced = false;
    delete s.primary;
  }

  async follow(n: PgNode, primary: PgNode): Promise<void> {
    this.calls.push(`follow ${n.name} ${primary.name}`);
    const s = this.#reach(n);
    if (s.failsFollow || s.role === 'primary') throw new Error('cannot follow');
    s.primary = primary.name;
  }

  async detach(n: PgNode): Promise<void> {
    this.calls.push(`detach ${n.name}`);
    const s = this.#reach(n);
    if (s.failsDetach) throw new Error('cannot detach');
    delete s.primary;
  }

  async fence(n: PgNode): Promise<void> {
    this.calls.push(`fence ${n.name}`);
    this.#reach(n).fenced = true;
  }

  /** Reachable primaries that take writes. */
  writable(): string[] {
    return [...this.state_].filter(([, s]) => s.up && s.role === 'primary' && !s.fenced).map(([n]) => n);
  }

  mutations(): string[] {
    return this.calls.filter((c) => /^(promote|follow|fence|detach)/.test(c));
  }
}

/** A lost primary db-0 and standbys at the given positions. */
function lostPrimary(lsns: Record<string, number>) {
  const admin = new FakePostgres();
  const primary = admin.add('db-0', { up: false, role: 'primary', lsn: 1000n });
  for (const [name, lsn] of Object.entries(lsns)) {
    admin.add(name, { up: true, role: 'replica', lsn: BigInt(lsn), primary: 'db-0' });
  }
  return { admin, primary };
}

const async = { synchronousReplicas: 0 };
const names = (ns: PgNode[]) => ns.map((n) => n.name);

describe('standbysRequired', () => {
  it('is N − k + 1 with ANY k, so one holder of every acknowledged commit is among them', () => {
    expect(standbysRequired(3, 1)).toBe(3);
    expect(standbysRequired(3, 2)).toBe(2);
    expect(standbysRequired(3, 3)).toBe(1);
    expect(standbysRequired(2, 1)).toBe(2);
  });

  it('is one when asynchronous: the best we can do', () => {
    expect(standbysRequired(3, 0)).toBe(1);
  });

  it('refuses a k larger than the standbys or not a count', () => {
    expect(() => standbysRequired(2, 3)).toThrow(RangeError);
    expect(() => standbysRequired(2, -1)).toThrow(RangeError);
  });
});

describe('decidePostgresFailover', () => {
  it('changes nothing while the primary answers', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 900 });
    admin.get('db-0').up = true;
    expect(await decidePostgresFailover(admin.nodes, primary, admin, async)).toEqual({ kind: 'none' });
    expect(admin.calls).toEqual(['ping db-0']);
  });

  it('promotes the standby with the most WAL and points the others at it', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 900, 'db-2': 990, 'db-3': 950 });
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d).toMatchObject({ kind: 'promoted', newPrimary: { name: 'db-2' }, fenced: false });
    if (d.kind !== 'promoted') throw new Error('not promoted');
    expect(names(d.followers).sort()).toEqual(['db-1', 'db-3']);
    expect(admin.writable()).toEqual(['db-2']);
    expect([admin.get('db-1').primary, admin.get('db-3').primary]).toEqual(['db-2', 'db-2']);
  });

  it('breaks LSN ties by the lowest name, whatever the order of the nodes', async () => {
    const { admin, primary } = lostPrimary({ 'db-2': 990, 'db-1': 990, 'db-3': 10 });
    const d = await decidePostgresFailover([...admin.nodes].reverse(), primary, admin, async);
    expect(d).toMatchObject({ kind: 'promoted', newPrimary: { name: 'db-1' } });
  });

  it('compares LSNs as numbers, not as text', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 9, 'db-2': 10 });
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d).toMatchObject({ newPrimary: { name: 'db-2' } });
  });

  it('fences the old primary and detaches each standby before reading its position and promoting', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 900 });
    await decidePostgresFailover(admin.nodes, primary, admin, async);
    const order = admin.calls.filter((c) => /^(fence|detach|state|promote)/.test(c));
    expect(order).toEqual(['fence db-0', 'detach db-1', 'state db-1', 'promote db-1']);
  });

  it('leaves no standby receiving from an old primary out of our reach: nothing it acknowledges is missing from the one promoted', async () => {
    // ANY 1 of 2: the old primary, cut off from us but not from its standbys, or force-deleted with
    // its container still running, acknowledges whatever one standby flushes. Each standby stops
    // receiving before its position is read, so the position is final and no commit is acknowledged
    // after it; the one not promoted follows the new primary.
    const { admin, primary } = lostPrimary({ 'db-1': 900, 'db-2': 950 });
    const d = await decidePostgresFailover(admin.nodes, primary, admin, { synchronousReplicas: 1 });
    expect(d).toMatchObject({
      kind: 'promoted',
      newPrimary: { name: 'db-2' },
      followers: [{ name: 'db-1' }],
    });
    const detached = (name: string) => admin.calls.indexOf(`detach ${name}`);
    for (const name of ['db-1', 'db-2']) {
      expect(detached(name)).toBeGreaterThan(-1);
      expect(detached(name)).toBeLessThan(admin.calls.indexOf(`state ${name}`));
    }
    expect(admin.get('db-1').primary).toBe('db-2');
  });

  it('counts a standby that cannot be detached as not answering: it may still acknowledge for the old primary', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 900, 'db-2': 990 });
    admin.get('db-2').failsDetach = true;
    const d = await decidePostgresFailover(admin.nodes, primary, admin, { synchronousReplicas: 1 });
    expect(d).toMatchObject({ kind: 'refused', reason: expect.stringContaining('1 of 2 standbys answer') });
    expect(admin.calls).not.toContain('state db-2');
    expect(admin.mutations().filter((c) => c.startsWith('promote'))).toEqual([]);
  });

  it('reports a fence that took: the old primary was reachable after all, and takes no writes', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 900 });
    // Answers the fence but not the ping (a ping that timed out).
    admin.get('db-0').up = true;
    const ping = admin.ping.bind(admin);
    admin.ping = async (n) => n.name !== 'db-0' && ping(n);
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d).toMatchObject({ kind: 'promoted', newPrimary: { name: 'db-1' }, fenced: true });
    expect(admin.writable()).toEqual(['db-1']);
  });

  it('ignores standbys that do not answer or cannot report their position', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 100, 'db-2': 900, 'db-3': 800 });
    admin.get('db-2').up = false;
    admin.get('db-3').brokenState = true;
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d).toMatchObject({ kind: 'promoted', newPrimary: { name: 'db-1' }, followers: [] });
    expect(admin.calls.filter((c) => /^(promote|follow)/.test(c))).toEqual(['promote db-1']);
  });

  it('refuses when no standby answers', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 100 });
    admin.get('db-1').up = false;
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d).toMatchObject({ kind: 'refused', reason: expect.stringContaining('0 of 1 standbys answer') });
    expect(admin.mutations()).toEqual([]);
  });

  it('leaves a standby that failed to follow out of the followers', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 200, 'db-2': 100, 'db-3': 100 });
    admin.get('db-3').failsFollow = true;
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d.kind === 'promoted' && names(d.followers)).toEqual(['db-2']);
  });

  it('fails with the cause when the promotion fails', async () => {
    const { admin, primary } = lostPrimary({ 'db-1': 100 });
    admin.promote = async () => {
      throw new Error('still in recovery');
    };
    await expect(decidePostgresFailover(admin.nodes, primary, admin, async)).rejects.toMatchObject({
      message: 'failover: promoting db-1 failed',
      cause: new Error('still in recovery'),
    });
  });

  it('picks the same node again when retried after an interrupted failover', async () => {
    // The first attempt promoted db-2, which then took writes, but stopped before moving db-1.
    const { admin, primary } = lostPrimary({ 'db-1': 500, 'db-2': 500 });
    await admin.promote(admin.nodes[2]!);
    admin.get('db-2').lsn = 600n;
    const d = await decidePostgresFailover(admin.nodes, primary, admin, async);
    expect(d).toMatchObject({
      kind: 'promoted',
      newPrimary: { name: 'db-2' },
      followers: [{ name: 'db-1' }],
    });
    expect(admin.writable()).toEqual(['db-2']);
  });

  describe('synchronous (ANY k)', () => {
    it('refuses when fewer than N − k + 1 standbys answer: an acknowledged commit may be on none of them', async () => {
      // ANY 1 over 3 standbys: a commit acknowledged by db-3 alone would be lost by promoting db-1.
      const { admin, primary } = lostPrimary({ 'db-1': 900, 'db-2': 900, 'db-3': 990 });
      admin.get('db-3').up = false;
      const d = await decidePostgresFailover(admin.nodes, primary, admin, { synchronousReplicas: 1 });
      expect(d).toEqual({
        kind: 'refused',
        reason:
          'db-0 does not answer, and 2 of 3 standbys answer where ANY 1 of 3 standbys needs 3 to be sure ' +
          'no acknowledged commit is lost',
      });
      // Nothing touched, not even the fence: a primary that only seemed lost stays writable.
      expect(admin.mutations()).toEqual([]);
    });

    it('promotes once N − k + 1 answer, the most advanced of them', async () => {
      const { admin, primary } = lostPrimary({ 'db-1': 900, 'db-2': 990, 'db-3': 950 });
      admin.get('db-3').up = false;
      const d = await decidePostgresFailover(admin.nodes, primary, admin, { synchronousReplicas: 2 });
      expect(d).toMatchObject({
        kind: 'promoted',
        newPrimary: { name: 'db-2' },
        followers: [{ name: 'db-1' }],
      });
    });

    it('counts only standbys that reported a position', async () => {
      const { admin, primary } = lostPrimary({ 'db-1': 900, 'db-2': 990 });
      admin.get('db-2').brokenState = true;
      const d = await decidePostgresFailover(admin.nodes, primary, admin, { synchronousReplicas: 1 });
      expect(d).toMatchObject({ kind: 'refused', reason: expect.stringContaining('1 of 2 standbys answer') });
      // Both stay detached: the next pass detaches them again, or, with the old primary back, the
      // operator points them at it (database-primary.ts: a standby with no upstream follows).
      expect(admin.mutations()).toEqual(['fence db-0', 'detach db-1', 'detach db-2']);
    });

    it('refuses when given fewer nodes than k standbys: the count must include every instance', async () => {
      const { admin, primary } = lostPrimary({ 'db-1': 900 });
      const d = await decidePostgresFailover(admin.nodes, primary, admin, { synchronousReplicas: 2 });
      expect(d).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/pass every instance/) });
      expect(admin.mutations()).toEqual([]);
    });
  });
});

describe('switchover', () => {
  function healthy() {
    const admin = new FakePostgres();
    const primary = admin.add('db-0', { up: true, role: 'primary', lsn: 1000n });
    const target = admin.add('db-1', {
      up: true,
      role: 'replica',
      lsn: 970n,
      primary: 'db-0',
      catchUpBy: 10n,
    });
    admin.add('db-2', { up: true, role: 'replica', lsn: 1000n, primary: 'db-0' });
    return { admin, primary, target };
  }
  const fast = { pollMs: 1 };

  it('fences, waits for the target to have all the WAL, promotes it, moves the other standbys', async () => {
    const { admin, primary, target } = healthy();
    const r = await switchover(admin.nodes, primary, target, admin, fast);
    expect(r).toEqual({ newPrimary: target, followers: [admin.nodes[2]], restartAsStandby: primary });
    const promoted = admin.calls.indexOf('promote db-1');
    expect(admin.calls.indexOf('fence db-0')).toBeLessThan(promoted);
    // Promoted only after the target's position reached the fenced primary's.
    expect(admin.get('db-1').lsn).toBeGreaterThanOrEqual(1000n);
    expect(admin.calls.filter((c) => c === 'state db-1').length).toBeGreaterThan(2);
    expect(admin.writable()).toEqual(['db-1']);
    expect(admin.get('db-2').primary).toBe('db-1');
    // The old primary is fenced until its restart makes it a standby.
    expect(admin.get('db-0').fenced).toBe(true);
  });

  it('gives up when the target does not catch up, and lifts the fence', async () => {
    const { admin, primary, target } = healthy();
    admin.get('db-1').catchUpBy = 0n;
    await expect(
      switchover(admin.nodes, primary, target, admin, { pollMs: 1, catchUpTimeoutMs: 20 }),
    ).rejects.toMatchObject({
      message: 'switchover to db-1 aborted (the fence was lifted)',
      cause: expect.objectContaining({
        message: expect.stringContaining('did not receive the WAL up to 1000'),
      }),
    });
    expect(admin.writable()).toEqual(['db-0']);
    expect(admin.calls).not.toContain('promote db-1');
  });

  it('changes nothing when the target is not a reachable standby', async () => {
    const { admin, primary, target } = healthy();
    admin.get('db-1').up = false;
    await expect(switchover(admin.nodes, primary, target, admin, fast)).rejects.toThrow(
      /db-1 does not report its state/,
    );
    admin.get('db-1').up = true;
    admin.get('db-1').role = 'primary';
    await expect(switchover(admin.nodes, primary, target, admin, fast)).rejects.toThrow(
      /db-1 is not a standby/,
    );
    expect(admin.mutations()).toEqual([]);
  });

  it('changes nothing when the primary cannot be fenced', async () => {
    const { admin, primary, target } = healthy();
    admin.get('db-0').up = false;
    await expect(switchover(admin.nodes, primary, target, admin, fast)).rejects.toThrow(
      /fencing db-0 failed; nothing changed/,
    );
    expect(admin.calls).not.toContain('promote db-1');
  });

  it('refuses a switchover to the primary itself or to a stranger', async () => {
    const { admin, primary } = healthy();
    await expect(switchover(admin.nodes, primary, primary, admin)).rejects.toThrow(/already is the primary/);
    const stranger = { name: 'db-9', host: 'x', port: 5432 };
    await expect(switchover(admin.nodes, primary, stranger, admin)).rejects.toThrow(/not an instance/);
    expect(admin.calls).toEqual([]);
  });
});
