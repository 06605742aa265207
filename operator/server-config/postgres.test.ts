import {
  LOCAL_SUPERUSER_MAP,
  hbaConfig,
  identConfig,
  postgresConfig,
  synchronousStandbyNames,
} from './postgres.ts';

/** The settings of a postgresql.conf text, as Postgres reads `name = value` lines. */
function settings(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) m.set(match[1]!, match[2]!);
  }
  return m;
}

describe('synchronousStandbyNames', () => {
  it('is empty for asynchronous replication', () => {
    expect(synchronousStandbyNames(0, ['db-0', 'db-1'])).toBe('');
  });

  it('is ANY k over every name, double-quoted because pod names have dashes', () => {
    expect(synchronousStandbyNames(1, ['db-0', 'db-1', 'db-2'])).toBe('ANY 1 ("db-0", "db-1", "db-2")');
    expect(synchronousStandbyNames(2, ['db-0', 'db-1', 'db-2'])).toBe('ANY 2 ("db-0", "db-1", "db-2")');
  });

  it('refuses a k that the standbys could never satisfy: commits would hang', () => {
    // One of the names is the primary itself, which never acknowledges.
    expect(() => synchronousStandbyNames(3, ['db-0', 'db-1', 'db-2'])).toThrow(/ANY 3 needs more than 3/);
    expect(() => synchronousStandbyNames(1, ['db-0'])).toThrow(RangeError);
  });

  it('refuses names that would break out of the quoting, duplicates, and bad k', () => {
    expect(() => synchronousStandbyNames(1, ['db-0', 'a", "b'])).toThrow(/bad standby name/);
    expect(() => synchronousStandbyNames(1, ['db-0', 'db-0'])).toThrow(/duplicate/);
    expect(() => synchronousStandbyNames(-1, ['db-0', 'db-1'])).toThrow(RangeError);
    expect(() => synchronousStandbyNames(1.5, ['db-0', 'db-1'])).toThrow(RangeError);
  });
});

describe('postgresConfig', () => {
  it('configures streaming replication that pg_rewind can work with', () => {
    const s = settings(postgresConfig({ port: 5432 }));
    expect(s.get('port')).toBe('5432');
    expect(s.get('listen_addresses')).toBe("'*'");
    expect(s.get('wal_level')).toBe('replica');
    expect(s.get('hot_standby')).toBe('on');
    expect(s.get('wal_log_hints')).toBe('on');
    expect(s.get('max_wal_senders')).toBe('10');
    expect(s.get('wal_keep_size')).toBe('1024');
    expect(s.get('recovery_target_timeline')).toBe("'latest'");
    expect(s.get('password_encryption')).toBe("'scram-sha-256'");
  });

  it('is asynchronous unless given ANY k', () => {
    expect(settings(postgresConfig({ port: 5432 })).get('synchronous_standby_names')).toBe("''");
    const sync = settings(
      postgresConfig({ port: 5432, synchronousStandbyNames: synchronousStandbyNames(1, ['a', 'b', 'c']) }),
    );
    expect(sync.get('synchronous_standby_names')).toBe(`'ANY 1 ("a", "b", "c")'`);
    expect(sync.get('synchronous_commit')).toBe('on');
  });

  it('accepts only what synchronousStandbyNames produces', () => {
    expect(() => postgresConfig({ port: 5432, synchronousStandbyNames: "a'; fsync = off; '" })).toThrow(
      /must come from synchronousStandbyNames/,
    );
  });

  it('takes its knobs and checks them', () => {
    const s = settings(
      postgresConfig({
        port: 6000,
        listenAddresses: '127.0.0.1',
        maxWalSenders: 4,
        walKeepSizeMb: 64,
        maxConnections: 20,
      }),
    );
    expect([s.get('port'), s.get('listen_addresses'), s.get('max_wal_senders')]).toEqual([
      '6000',
      "'127.0.0.1'",
      '4',
    ]);
    expect([s.get('wal_keep_size'), s.get('max_connections')]).toEqual(['64', '20']);
    expect(() => postgresConfig({ port: 0 })).toThrow(/bad port/);
    expect(() => postgresConfig({ port: 5432, maxWalSenders: 0 })).toThrow(/maxWalSenders/);
    expect(() => postgresConfig({ port: 5432, listenAddresses: "*'\nfsync = off" })).toThrow(/line breaks/);
  });

  it('names no data directory, hba file or socket directory: the start script decides those', () => {
    const s = settings(postgresConfig({ port: 5432 }));
    for (const key of ['data_directory', 'hba_file', 'unix_socket_directories', 'primary_conninfo']) {
      expect(s.has(key)).toBe(false);
    }
  });
});

describe('hbaConfig', () => {
  const hba = (cidr: string | string[] = '10.0.0.0/8') =>
    hbaConfig({ cidr, appUsers: ['app'], appDatabase: 'appdb' });
  const rules = (text: string) =>
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(/\s+/));

  it('lets exactly three roles in, each by SCRAM, from the CIDR', () => {
    const host = rules(hba()).filter((r) => r[0] === 'host');
    expect(host).toEqual([
      ['host', 'replication', 'replicator', '10.0.0.0/8', 'scram-sha-256'],
      ['host', 'all', 'postgres', '10.0.0.0/8', 'scram-sha-256'],
      ['host', 'appdb', 'app', '10.0.0.0/8', 'scram-sha-256'],
    ]);
  });

  it('names every login of the app in its rules, and refuses an app without one', () => {
    const host = rules(hbaConfig({ cidr: '10.0.0.0/8', appUsers: ['app', 'app_alt'], appDatabase: 'appdb' }));
    expect(host.filter((r) => r[1] === 'appdb')).toEqual([
      ['local', 'appdb', 'app,app_alt', 'scram-sha-256'],
      ['host', 'appdb', 'app,app_alt', '10.0.0.0/8', 'scram-sha-256'],
    ]);
    expect(() => hbaConfig({ cidr: '10.0.0.0/8', appUsers: [], appDatabase: 'appdb' })).toThrow(
      /at least one/,
    );
  });

  it('fenced: the app is let in nowhere, the replication role and the superuser as before', () => {
    const fenced = rules(
      hbaConfig({ cidr: '10.0.0.0/8', appUsers: ['app'], appDatabase: 'appdb', fenced: true }),
    );
    expect(fenced.filter((r) => r.includes('app'))).toEqual([]);
    expect(fenced).toEqual(rules(hba()).filter((r) => !r.includes('app')));
  });

  it('never trusts: every rule asks for a password, but the superuser’s on the container’s own socket, which asks the kernel who connects', () => {
    const all = rules(hba(['10.0.0.0/8', 'fd00::/8']));
    const peer = all.filter((r) => r.at(-1) !== 'scram-sha-256');
    expect(peer).toEqual([['local', 'all', 'postgres', 'peer', `map=${LOCAL_SUPERUSER_MAP}`]]);
    expect(all.filter((r) => r[0] !== 'local').every((r) => r.at(-1) === 'scram-sha-256')).toBe(true);
  });

  it('maps whichever user the container runs as to the superuser, and no one else', () => {
    expect(
      identConfig()
        .split('\n')
        .filter((l) => l && !l.startsWith('#')),
    ).toEqual([`${LOCAL_SUPERUSER_MAP} /^.*$ postgres`]);
  });

  it('repeats the host rules per CIDR', () => {
    const host = rules(hba(['10.0.0.0/8', 'fd00::/8'])).filter((r) => r[0] === 'host');
    expect(host.map((r) => r[3])).toEqual([
      '10.0.0.0/8',
      '10.0.0.0/8',
      '10.0.0.0/8',
      'fd00::/8',
      'fd00::/8',
      'fd00::/8',
    ]);
  });

  it('refuses names and CIDRs that would need quoting or inject a rule', () => {
    expect(() => hbaConfig({ cidr: '10.0.0.0/8', appUsers: ['app all'], appDatabase: 'x' })).toThrow(
      /plain identifier/,
    );
    expect(() => hbaConfig({ cidr: '0.0.0.0/0 trust', appUsers: ['app'], appDatabase: 'x' })).toThrow(
      /bad CIDR/,
    );
    expect(() => hbaConfig({ cidr: [], appUsers: ['app'], appDatabase: 'x' })).toThrow(/at least one/);
  });
});
