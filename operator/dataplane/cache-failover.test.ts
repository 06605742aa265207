import { decideFailover, rejoin } from './cache-failover.ts';
import type { CacheAdmin, CacheNode, CacheRole } from './redis-admin.ts';

type FakeState = {
  up: boolean;
  role: 'master' | 'slave';
  offset: number;
  primary?: string;
  /** Answers PING but fails INFO. */
  brokenInfo?: boolean;
  /** Acknowledges REPLICAOF but ignores it (a node that is not what it claims to be). */
  ignoresReplicaOf?: boolean;
  failsReplicaOf?: boolean;
};

/** Cache nodes in memory, behaving like Redis for what failover touches; every call is recorded. */
class FakeCacheAdmin implements CacheAdmin {
  readonly state = new Map<string, FakeState>();
  readonly nodes: CacheNode[] = [];
  readonly calls: string[] = [];

  add(name: string, s: FakeState): CacheNode {
    const node = { name, host: `${name}.cache`, port: 6379 };
    this.state.set(name, s);
    this.nodes.push(node);
    return node;
  }

  #reach(n: CacheNode): FakeState {
    const s = this.state.get(n.name);
    if (!s?.up) throw new Error(`${n.name} unreachable`);
    return s;
  }

  async ping(n: CacheNode): Promise<boolean> {
    this.calls.push(`ping ${n.name}`);
    return !!this.state.get(n.name)?.up;
  }

  async role(n: CacheNode): Promise<CacheRole> {
    this.calls.push(`role ${n.name}`);
    const s = this.#reach(n);
    if (s.brokenInfo) throw new Error('INFO failed');
    if (s.role === 'master') return { role: 'master', offset: s.offset };
    const p = this.nodes.find((x) => x.name === s.primary)!;
    const linkUp = !!this.state.get(p.name)?.up;
    return { role: 'slave', offset: s.offset, primary: { host: p.host, port: p.port }, linkUp };
  }

  async promote(n: CacheNode): Promise<void> {
    this.calls.push(`promote ${n.name}`);
    const s = this.#reach(n);
    s.role = 'master';
    delete s.primary;
  }

  async follow(n: CacheNode, primary: CacheNode): Promise<void> {
    this.calls.push(`follow ${n.name} ${primary.name}`);
    const s = this.#reach(n);
    if (s.failsReplicaOf) throw new Error('REPLICAOF failed');
    if (s.ignoresReplicaOf) return;
    s.role = 'slave';
    s.primary = primary.name;
  }

  masters(): string[] {
    return [...this.state].filter(([, s]) => s.up && s.role === 'master').map(([name]) => name);
  }
}

/** A primary that is down and three replicas following it, at the given offsets. */
function clusterWithLostPrimary(offsets: Record<string, number>) {
  const admin = new FakeCacheAdmin();
  const primary = admin.add('cache-0', { up: false, role: 'master', offset: 500 });
  for (const [name, offset] of Object.entries(offsets)) {
    admin.add(name, { up: true, role: 'slave', offset, primary: 'cache-0' });
  }
  return { admin, primary };
}

const names = (ns: CacheNode[]) => ns.map((n) => n.name);

describe('decideFailover', () => {
  it('changes nothing while the primary answers', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100 });
    admin.state.get('cache-0')!.up = true;
    expect(await decideFailover(admin.nodes, primary, admin)).toBeUndefined();
    expect(admin.calls).toEqual(['ping cache-0']);
  });

  it('promotes the replica with the highest offset and points the others at it', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100, 'cache-2': 150, 'cache-3': 120 });
    const result = await decideFailover(admin.nodes, primary, admin);
    expect(result?.newPrimary.name).toBe('cache-2');
    expect(names(result!.followers).sort()).toEqual(['cache-1', 'cache-3']);
    expect(admin.masters()).toEqual(['cache-2']);
    expect(admin.state.get('cache-1')!.primary).toBe('cache-2');
    expect(admin.state.get('cache-3')!.primary).toBe('cache-2');
  });

  it('breaks offset ties by the lowest name, whatever the order of the nodes', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-2': 150, 'cache-1': 150, 'cache-3': 90 });
    const result = await decideFailover([...admin.nodes].reverse(), primary, admin);
    expect(result?.newPrimary.name).toBe('cache-1');
  });

  it('ignores unreachable replicas and those whose role cannot be read', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100, 'cache-2': 900, 'cache-3': 800 });
    admin.state.get('cache-2')!.up = false;
    admin.state.get('cache-3')!.brokenInfo = true;
    const result = await decideFailover(admin.nodes, primary, admin);
    expect(result?.newPrimary.name).toBe('cache-1');
    expect(result?.followers).toEqual([]);
    expect(admin.calls.filter((c) => /^(promote|follow)/.test(c))).toEqual(['promote cache-1']);
  });

  it('does nothing when no replica answers', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100 });
    admin.state.get('cache-1')!.up = false;
    expect(await decideFailover(admin.nodes, primary, admin)).toBeUndefined();
    expect(admin.calls.some((c) => c.startsWith('promote'))).toBe(false);
  });

  it('leaves a replica that failed to follow out of the followers', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 200, 'cache-2': 100, 'cache-3': 100 });
    admin.state.get('cache-3')!.failsReplicaOf = true;
    const result = await decideFailover(admin.nodes, primary, admin);
    expect(names(result!.followers)).toEqual(['cache-2']);
  });

  it('fails with the cause when the promotion fails', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100 });
    admin.promote = async () => {
      throw new Error('READONLY');
    };
    await expect(decideFailover(admin.nodes, primary, admin)).rejects.toMatchObject({
      message: 'failover: promoting cache-1 failed',
      cause: new Error('READONLY'),
    });
  });

  it('picks the same node again when retried after an interrupted failover', async () => {
    // The first attempt promoted cache-2, which then took writes, but crashed before moving cache-1.
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100, 'cache-2': 100 });
    await admin.promote(admin.nodes[2]!);
    admin.state.get('cache-2')!.offset = 130;
    const result = await decideFailover(admin.nodes, primary, admin);
    expect(result?.newPrimary.name).toBe('cache-2');
    expect(admin.masters()).toEqual(['cache-2']);
  });
});

describe('rejoin', () => {
  it('turns the returning old primary into a replica: never two primaries', async () => {
    const { admin, primary } = clusterWithLostPrimary({ 'cache-1': 100, 'cache-2': 50 });
    const { newPrimary } = (await decideFailover(admin.nodes, primary, admin))!;
    // The old primary restarts from its config: a primary again.
    admin.state.set('cache-0', { up: true, role: 'master', offset: 0 });
    expect(admin.masters().sort()).toEqual(['cache-0', 'cache-1']);

    const role = await rejoin(primary, newPrimary, admin);
    expect(role).toMatchObject({ role: 'slave', primary: { host: 'cache-1.cache', port: 6379 } });
    expect(admin.masters()).toEqual(['cache-1']);
  });

  it('fails when the node still is not a replica of the primary afterwards', async () => {
    const admin = new FakeCacheAdmin();
    const old = admin.add('cache-0', { up: true, role: 'master', offset: 0, ignoresReplicaOf: true });
    const current = admin.add('cache-1', { up: true, role: 'master', offset: 10 });
    await expect(rejoin(old, current, admin)).rejects.toThrow(/reports master, not a replica of cache-1/);
  });

  it('fails when the node follows another primary', async () => {
    const admin = new FakeCacheAdmin();
    admin.add('cache-2', { up: true, role: 'master', offset: 0 });
    const old = admin.add('cache-0', {
      ...{ up: true, role: 'slave', offset: 0, primary: 'cache-2' },
      ignoresReplicaOf: true,
    });
    const current = admin.add('cache-1', { up: true, role: 'master', offset: 10 });
    await expect(rejoin(old, current, admin)).rejects.toThrow(/of cache-2\.cache:6379, not a replica/);
  });

  it('fails with the cause when the node is unreachable', async () => {
    const admin = new FakeCacheAdmin();
    const old = admin.add('cache-0', { up: false, role: 'master', offset: 0 });
    const current = admin.add('cache-1', { up: true, role: 'master', offset: 10 });
    await expect(rejoin(old, current, admin)).rejects.toMatchObject({
      message: 'rejoin: cache-0 could not be made a replica of cache-1',
      cause: new Error('cache-0 unreachable'),
    });
  });

  it('refuses to make the primary follow itself', async () => {
    const admin = new FakeCacheAdmin();
    const current = admin.add('cache-1', { up: true, role: 'master', offset: 10 });
    await expect(rejoin(current, current, admin)).rejects.toThrow(/is the primary itself/);
    expect(admin.calls).toEqual([]);
  });
});
