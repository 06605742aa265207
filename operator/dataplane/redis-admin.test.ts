import { parseInfo, roleFromInfo } from './redis-admin.ts';

// Captured from redis-server 7.0.15 (abridged to the lines that matter, CRLF as on the wire).
const info = (...lines: string[]) => ['# Replication', ...lines, ''].join('\r\n');

const PRIMARY = info(
  'role:master',
  'connected_slaves:1',
  'slave0:ip=127.0.0.1,port=16380,state=online,offset=50,lag=0',
  'master_replid:c419d1fba4efb8f6ebd682f1a890412b62477683',
  'master_repl_offset:50',
  'second_repl_offset:-1',
);

/** A replica whose primary just died: ROLE would report its offset as -1 here. */
const REPLICA_OF_DEAD_PRIMARY = info(
  'role:slave',
  'master_host:127.0.0.1',
  'master_port:16379',
  'master_link_status:down',
  'master_last_io_seconds_ago:-1',
  'slave_read_repl_offset:87',
  'slave_repl_offset:87',
  'master_link_down_since_seconds:1',
  'master_repl_offset:87',
);

describe('parseInfo', () => {
  it('maps fields to values, splitting at the first colon only', () => {
    const f = parseInfo(PRIMARY);
    expect(f.get('slave0')).toBe('ip=127.0.0.1,port=16380,state=online,offset=50,lag=0');
    expect(f.get('role')).toBe('master');
    expect(f.has('# Replication')).toBe(false);
  });
});

describe('roleFromInfo', () => {
  it('reads a primary and the offset of its stream', () => {
    expect(roleFromInfo(PRIMARY)).toEqual({ role: 'master', offset: 50 });
  });

  it('keeps a replica offset while the link to its primary is down', () => {
    expect(roleFromInfo(REPLICA_OF_DEAD_PRIMARY)).toEqual({
      role: 'slave',
      offset: 87,
      primary: { host: '127.0.0.1', port: 16379 },
      linkUp: false,
    });
  });

  it('reports the link up once the replica is in sync', () => {
    const text = REPLICA_OF_DEAD_PRIMARY.replace('master_link_status:down', 'master_link_status:up');
    expect(roleFromInfo(text).linkUp).toBe(true);
  });

  it('refuses what it cannot read rather than guessing', () => {
    expect(() => roleFromInfo(info('role:sentinel'))).toThrow(/unknown role "sentinel"/);
    expect(() => roleFromInfo(info('role:master'))).toThrow(/no numeric master_repl_offset/);
  });
});
