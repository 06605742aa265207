import { createHash } from 'node:crypto';
import {
  cacheAuthInclude,
  cacheServerConfig,
  maxMemoryBytes,
  quantityBytes,
  replicaOfArgs,
  type CacheServerOptions,
} from './cache.ts';

const options: CacheServerOptions = {
  port: 6379,
  maxMemoryBytes: 214748364,
  evictionPolicy: 'allkeys-lru',
  minReplicasToWrite: 1,
  maxReplicaLagSeconds: 10,
  dir: '/data',
  authFile: '/etc/cache-auth/auth.conf',
};

/** The directives of a redis.conf as name -> argument text (the last one wins, as in Redis). */
function directives(conf: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of conf.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name = '', ...args] = line.split(' ');
    out.set(name, args.join(' '));
  }
  return out;
}

describe('quantityBytes', () => {
  it.each([
    ['256Mi', 268435456n],
    ['1Gi', 1073741824n],
    ['1G', 1000000000n],
    ['1.5Ki', 1536n],
    ['128974848', 128974848n],
    [129e6, 129000000n],
    ['1e3', 1000n],
    // Kubernetes rounds a fractional byte count up.
    ['100m', 1n],
  ])('%s is %s bytes', (q, bytes) => {
    expect(quantityBytes(q)).toBe(bytes);
  });

  it('is undefined for text that is not a quantity', () => {
    expect(quantityBytes('lots')).toBeUndefined();
    expect(quantityBytes('12MB')).toBeUndefined();
  });
});

describe('maxMemoryBytes', () => {
  it('keeps the headroom free: 256Mi with 20% headroom is floor(268435456 × 0.8)', () => {
    expect(maxMemoryBytes('256Mi', 20)).toBe(214748364);
  });

  it('is exact where floating point is not', () => {
    // 0.7 × 100 = 70.00000000000001 in doubles; the exact answer is 70.
    expect(maxMemoryBytes('100', 30)).toBe(70);
    expect(maxMemoryBytes('1Gi', 5)).toBe(1020054732);
    expect(maxMemoryBytes(1e9, 90)).toBe(100000000);
  });

  it('names the field when the limit is missing or unparsable', () => {
    expect(() => maxMemoryBytes(undefined, 20)).toThrow(/cache\.resources\.limits\.memory is required/);
    expect(() => maxMemoryBytes('', 20)).toThrow(/cache\.resources\.limits\.memory is required/);
    expect(() => maxMemoryBytes('a lot', 20)).toThrow(/cache\.resources\.limits\.memory is not a quantity/);
  });

  it('refuses a limit that leaves nothing, because maxmemory 0 would mean unlimited', () => {
    expect(() => maxMemoryBytes('1', 20)).toThrow(/leaves no memory/);
    expect(() => maxMemoryBytes('-1Gi', 20)).toThrow(/leaves no memory/);
  });

  it('refuses a headroom outside [0, 100)', () => {
    expect(() => maxMemoryBytes('1Gi', 100)).toThrow(/memoryHeadroomPercent/);
    expect(() => maxMemoryBytes('1Gi', 12.5)).toThrow(/memoryHeadroomPercent/);
  });
});

describe('cacheServerConfig', () => {
  it('configures memory, eviction, replication safety and no persistence', () => {
    const d = directives(cacheServerConfig(options));
    expect(Object.fromEntries(d)).toEqual({
      port: '6379',
      bind: '* -::*',
      'protected-mode': 'yes',
      daemonize: 'no',
      supervised: 'no',
      logfile: '""',
      dir: '"/data"',
      maxmemory: '214748364',
      'maxmemory-policy': 'allkeys-lru',
      appendonly: 'no',
      save: '""',
      'min-replicas-to-write': '1',
      'min-replicas-max-lag': '10',
      'repl-diskless-sync': 'yes',
      'repl-diskless-sync-delay': '0',
      'replica-read-only': 'yes',
      'replica-serve-stale-data': 'yes',
      include: '"/etc/cache-auth/auth.conf"',
    });
  });

  it('includes the auth file last, so it has the final word on the password', () => {
    const lines = cacheServerConfig(options).trim().split('\n');
    expect(lines.at(-1)).toBe('include "/etc/cache-auth/auth.conf"');
  });

  it('binds where told', () => {
    expect(directives(cacheServerConfig({ ...options, bind: '127.0.0.1' })).get('bind')).toBe('127.0.0.1');
    expect(() => cacheServerConfig({ ...options, bind: '0.0.0.0\nrequirepass x' })).toThrow(/bad bind/);
  });

  it('refuses what Redis would misread', () => {
    expect(() => cacheServerConfig({ ...options, evictionPolicy: 'lru' })).toThrow(/eviction policy/);
    expect(() => cacheServerConfig({ ...options, maxMemoryBytes: 0 })).toThrow(/maxmemory/);
    expect(() => cacheServerConfig({ ...options, dir: '/data\nsave 1 1' })).toThrow(/line breaks/);
    expect(() => cacheServerConfig({ ...options, authFile: '' })).toThrow(/authFile is required/);
    expect(() => cacheServerConfig({ ...options, minReplicasToWrite: -1 })).toThrow(/minReplicasToWrite/);
  });

  it('quotes paths so spaces and quotes stay one argument', () => {
    const d = directives(cacheServerConfig({ ...options, dir: '/my "data"\\x' }));
    expect(d.get('dir')).toBe('"/my \\"data\\"\\\\x"');
  });
});

describe('cacheAuthInclude', () => {
  const sha = (p: string) => createHash('sha256').update(p).digest('hex');
  const passwords = { app: 'a"pp', operator: 'op pw', replication: 're"pl' };

  it('defines the three users by their passwords’ hashes, and how a replica logs in to its primary', () => {
    expect(cacheAuthInclude(passwords)).toBe(
      [
        `user default on #${sha('a"pp')} ~* &* +@all -@admin -@dangerous`,
        `user scalableapp-operator on #${sha('op pw')} +ping +info +replicaof +config|set +acl|setuser`,
        `user replication on #${sha('re"pl')} +psync +replconf +ping`,
        'masteruser replication',
        'masterauth "re\\"pl"',
        '',
      ].join('\n'),
    );
    // Only the replication password is in the file, and only because masterauth needs it.
    expect(cacheAuthInclude(passwords)).not.toContain('a"pp');
    expect(cacheAuthInclude(passwords)).not.toContain('op pw');
  });

  it("lists the app's retiring password beside the current one while a rotation rolls, and a repeat once", () => {
    const rotating = cacheAuthInclude({ ...passwords, app: 'new', retiringApp: 'old' });
    expect(rotating).toMatch(new RegExp(`^user default on #${sha('new')} #${sha('old')} ~\\* `, 'm'));
    expect(cacheAuthInclude({ ...passwords, app: 'same', retiringApp: 'same' })).toMatch(
      new RegExp(`^user default on #${sha('same')} ~\\* `, 'm'),
    );
  });

  it('refuses an empty password or one that would inject a directive', () => {
    expect(() => cacheAuthInclude({ ...passwords, app: '' })).toThrow(/app password must not be empty/);
    expect(() => cacheAuthInclude({ ...passwords, replication: 'x\nuser evil on nopass +@all' })).toThrow(
      /line breaks/,
    );
  });
});

describe('replicaOfArgs', () => {
  it('are the command-line form of the replicaof directive', () => {
    expect(replicaOfArgs('shop-cache-0.shop-cache', 6379)).toEqual([
      '--replicaof',
      'shop-cache-0.shop-cache',
      '6379',
    ]);
  });

  it('refuses a host that would split into more arguments', () => {
    expect(() => replicaOfArgs('a b', 6379)).toThrow(/bad primary host/);
    expect(() => replicaOfArgs('a', 0)).toThrow(/bad port/);
  });
});
