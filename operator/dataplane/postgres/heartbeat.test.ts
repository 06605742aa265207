import { PrimaryHeartbeats, type HeartbeatSession, type HeartbeatTarget } from './heartbeat.ts';

/** A fake server per host: its fence, whether it answers, and what it was asked. */
class FakeServers {
  fenced = new Map<string, string>();
  down = new Set<string>();
  queries: string[] = [];
  open = 0;
  connect = async (t: HeartbeatTarget): Promise<HeartbeatSession> => {
    if (this.down.has(t.host)) throw new Error('connect timeout');
    this.open += 1;
    let ended = false;
    return {
      query: async (sql) => {
        if (ended || this.down.has(t.host)) throw new Error('connection lost');
        this.queries.push(`${t.host}: ${sql.split(' ').slice(0, 3).join(' ')}`);
        if (sql.startsWith('SELECT coalesce')) return { rows: [{ fenced: this.fenced.get(t.host) ?? '' }] };
        if (sql.startsWith('ALTER SYSTEM RESET')) this.fenced.delete(t.host);
        return { rows: [] };
      },
      end: async () => {
        if (!ended) this.open -= 1;
        ended = true;
      },
    };
  };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never: ${what}`);
}

const target = (host: string): HeartbeatTarget => ({ host, port: 5432, password: 'pw' });

describe('PrimaryHeartbeats', () => {
  let beats: PrimaryHeartbeats;
  afterEach(() => beats.stop());

  it('asks the primary every period over one session, and lifts its self-fence with the reason said', async () => {
    const servers = new FakeServers();
    const lifted: string[] = [];
    servers.fenced.set('10.0.0.1', 'no standby report and no operator heartbeat for 11s');
    beats = new PrimaryHeartbeats({
      periodMs: 10,
      connect: servers.connect,
      onLifted: (key, reason) => lifted.push(`${key}: ${reason}`),
    });
    beats.keep('ns/app/db', target('10.0.0.1'));
    await until('three beats', () => servers.queries.filter((q) => q.includes('coalesce')).length >= 3);
    expect(lifted).toEqual(['ns/app/db: no standby report and no operator heartbeat for 11s']);
    expect(servers.fenced.size).toBe(0);
    expect(servers.queries).toContain('10.0.0.1: ALTER SYSTEM RESET');
    expect(servers.open).toBe(1);
  });

  it('reconnects after the server went away, and follows the record to a new primary only', async () => {
    const servers = new FakeServers();
    beats = new PrimaryHeartbeats({ periodMs: 10, connect: servers.connect });
    beats.keep('ns/app/db', target('10.0.0.1'));
    await until('a beat', () => servers.queries.length > 0);
    servers.down.add('10.0.0.1');
    await new Promise((r) => setTimeout(r, 40));
    expect(servers.open).toBe(0);
    servers.down.clear();
    const before = servers.queries.length;
    await until('beats again', () => servers.queries.length > before);
    // Promoted elsewhere: the old primary is asked nothing more (its fence must stay).
    servers.fenced.set('10.0.0.1', 'cut off');
    beats.keep('ns/app/db', target('10.0.0.2'));
    servers.queries = [];
    await until('beats to the new one', () => servers.queries.length >= 2);
    expect(servers.queries.every((q) => q.startsWith('10.0.0.2'))).toBe(true);
    expect(servers.fenced.get('10.0.0.1')).toBe('cut off');
    expect(servers.open).toBe(1);
  });

  it('stops an app’s heartbeats when it is forgotten, and every one on stop', async () => {
    const servers = new FakeServers();
    beats = new PrimaryHeartbeats({ periodMs: 10, connect: servers.connect });
    beats.keep('ns/a/db', target('10.0.0.1'));
    beats.keep('ns/a/db-shard-0', target('10.0.0.2'));
    beats.keep('ns/ab/db', target('10.0.0.3'));
    await until('three sessions', () => servers.open === 3);
    beats.forget('ns/a/');
    expect(beats.keys()).toEqual(['ns/ab/db']);
    beats.keep('ns/ab/db', undefined);
    expect(beats.keys()).toEqual([]);
    await until('sessions closed', () => servers.open === 0);
  });
});
