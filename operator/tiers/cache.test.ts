import { cacheAuthInclude } from '../server-config/cache.ts';
import type { V1ConfigMap, V1Secret, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheConfigHash, cacheEntries, cacheObjects, startScriptText } from './cache.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';
import { TEST_TLS } from './testdata/facts.ts';
import { steadyCachePassword } from './objects.ts';
import { expectServerCertificate } from './testdata/server-tls.ts';

const facts = {
  gatewayApi: false,
  cachePassword: steadyCachePassword('pw-1'),
  cacheLogins: { operator: 'op-pw-1', replication: 'repl-pw-1' },
  tls: TEST_TLS,
};
const app = parseApp({
  web: { image: 'x', sessions: 'cache' },
  cache: { replicas: 2, resources: { limits: { memory: '256Mi' } } },
});
const byKind = <T>(kind: string, name?: string) =>
  cacheObjects(app, facts, 'h').find(
    (o) => o.kind === kind && (!name || o.metadata.name === name),
  ) as unknown as T;
/** A Secret's values as text. */
const decoded = (secret: V1Secret) =>
  Object.fromEntries(Object.entries(secret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

describe('cache tier objects', () => {
  it('runs 1 + replicas servers whose pods pass the restricted Pod Security Standard', () => {
    const sts = byKind<V1StatefulSet>('StatefulSet');
    expect(sts.spec!.replicas).toBe(3);
    expect(restrictedViolations(sts.spec!.template.spec!)).toEqual([]);
  });

  it('never puts a password in the ConfigMap, the pod spec or the start command', () => {
    const sts = byKind<V1StatefulSet>('StatefulSet');
    const cm = byKind<V1ConfigMap>('ConfigMap');
    for (const pw of ['pw-1', 'op-pw-1', 'repl-pw-1']) {
      expect(JSON.stringify(sts)).not.toContain(pw);
      expect(JSON.stringify(cm)).not.toContain(pw);
    }
    expect(cm.data!['cache.conf']).toContain('include "/auth/auth.conf"');
    const values = decoded(byKind<V1Secret>('Secret'));
    expect(values).toEqual({
      password: 'pw-1',
      'current-password': 'pw-1',
      'operator-password': 'op-pw-1',
      'replication-password': 'repl-pw-1',
      'auth.conf': cacheAuthInclude({ app: 'pw-1', operator: 'op-pw-1', replication: 'repl-pw-1' }),
    });
    expect(values['auth.conf']).toMatch(/^user default on #[0-9a-f]{64} .* -@admin -@dangerous$/m);
  });

  it('selects the primary and the replicas by the role label the operator sets', () => {
    expect(byKind<V1Service>('Service', 'shop-cache').spec!.selector).toMatchObject({
      'scalableapp.io/role': 'primary',
    });
    expect(byKind<V1Service>('Service', 'shop-cache-replicas').spec!.selector).toMatchObject({
      'scalableapp.io/role': 'replica',
    });
    expect(byKind<V1Service>('Service', 'shop-cache-headless').spec!.clusterIP).toBe('None');
  });

  it("rotates the app's password: the Secret keeps what the user asked, the record, and both passwords in auth.conf; the URLs name the current one", () => {
    const rotating = {
      ...facts,
      cachePassword: { wanted: 'pw-2', current: 'pw-2', retiring: 'pw-1' },
    };
    const objects = cacheObjects(app, rotating, cacheConfigHash(app, rotating));
    const secret = objects.find(
      (o) => o.kind === 'Secret' && o.metadata.name === 'shop-cache-auth',
    ) as V1Secret;
    const values = decoded(secret);
    expect(values).toMatchObject({
      password: 'pw-2',
      'current-password': 'pw-2',
      'retiring-password': 'pw-1',
    });
    expect(values['auth.conf']).toBe(
      cacheAuthInclude({ app: 'pw-2', retiringApp: 'pw-1', operator: 'op-pw-1', replication: 'repl-pw-1' }),
    );
    expect(cacheEntries(app, rotating).CACHE_URL).toContain(':pw-2@');
    // Passwords change at run time: the servers are not restarted for them.
    expect(cacheConfigHash(app, rotating)).toBe(cacheConfigHash(app, facts));
    // A new password asked for, not yet switched to: the URLs and the servers keep the current one.
    const asked = { ...facts, cachePassword: { wanted: 'pw-3', current: 'pw-1' } };
    expect(cacheEntries(app, asked).CACHE_URL).toContain(':pw-1@');
    const askedSecret = cacheObjects(app, asked, 'h').find((o) => o.kind === 'Secret') as V1Secret;
    expect(decoded(askedSecret)).toMatchObject({ password: 'pw-3', 'current-password': 'pw-1' });
  });

  it('records the primary in the ConfigMap; moving it does not restart the servers', () => {
    expect(byKind<V1ConfigMap>('ConfigMap').data!.primary).toBe('shop-cache-0');
    expect(cacheConfigHash(app, { ...facts, cachePrimary: 'shop-cache-2' })).toBe(
      cacheConfigHash(app, facts),
    );
    const other = parseApp({
      cache: { replicas: 2, evictionPolicy: 'noeviction', resources: { limits: { memory: '256Mi' } } },
    });
    expect(cacheConfigHash(other, facts)).not.toBe(cacheConfigHash(app, facts));
  });

  it('records the pod seen serving as primary beside it, and makes the servers wait for the operator only with replicas', () => {
    const cm = (f: typeof facts & { cachePrimaryUid?: string }) =>
      cacheObjects(app, f, 'h').find((o) => o.kind === 'ConfigMap') as V1ConfigMap;
    expect(cm(facts).data).not.toHaveProperty('primaryUid');
    expect(cm({ ...facts, cachePrimaryUid: 'u-1' }).data!.primaryUid).toBe('u-1');
    expect(cacheConfigHash(app, { ...facts, cachePrimaryUid: 'u-1' })).toBe(cacheConfigHash(app, facts));
    expect(cm(facts).data!.holdRestartedPrimary).toBe('true');
    const sts = (a: typeof app) =>
      cacheObjects(a, facts, 'h').find((o) => o.kind === 'StatefulSet') as V1StatefulSet;
    expect(sts(app).spec!.template.spec!.containers[0]!.env).toEqual([
      { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
    ]);
    // Alone, a restarted primary has nobody to wait for: it starts as a primary, empty. Going to or
    // from no replicas restarts no server: the key is a record, outside the config hash.
    const single = parseApp({ cache: { replicas: 0, resources: { limits: { memory: '256Mi' } } } });
    const singleCm = cacheObjects(single, facts, 'h').find((o) => o.kind === 'ConfigMap') as V1ConfigMap;
    expect(singleCm.data).not.toHaveProperty('holdRestartedPrimary');
    expect(cacheConfigHash(single, facts)).toBe(cacheConfigHash(app, facts));
  });

  it('tells the app its cache and session store, with the password URL-encoded', () => {
    const e = cacheEntries(app, { ...facts, cachePassword: steadyCachePassword('a/b') });
    // TLS by default: rediss://, with the CA the app's pods find at CACHE_CA_FILE.
    expect(e.CACHE_URL).toBe('rediss://:a%2Fb@shop-cache.prod.svc:6379/0');
    expect(e.CACHE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    expect(e.SESSION_STORE_URL).toBe(e.CACHE_URL);
    expect(cacheEntries(parseApp({ cache: {} }), facts).SESSION_STORE).toBeUndefined();
    const plain = cacheEntries(parseApp({ cache: { tls: { enabled: false } } }), facts);
    expect(plain.CACHE_URL).toBe('redis://:pw-1@shop-cache.prod.svc:6379/0');
    expect(plain.CACHE_CA_FILE).toBeUndefined();
  });

  it('serves TLS only, replicates over TLS, and reloads a renewed certificate from its readiness probe', () => {
    const conf = byKind<V1ConfigMap>('ConfigMap').data!;
    expect(conf['cache.conf']).toContain(
      [
        'port 0',
        'tls-port 6379',
        'tls-cert-file "/tls/tls.crt"',
        'tls-key-file "/tls/tls.key"',
        'tls-ca-cert-file "/tls/ca.crt"',
        'tls-auth-clients no',
        'tls-replication yes',
      ].join('\n'),
    );
    expect(conf['ready.sh']).toContain('--tls --cacert /tls/ca.crt');
    expect(conf['ready.sh']).toContain('CONFIG SET tls-cert-file /tls/tls.crt tls-key-file /tls/tls.key');
    expectServerCertificate(
      byKind<V1Secret>('Secret', 'shop-cache-tls'),
      byKind<V1StatefulSet>('StatefulSet').spec!.template.spec!,
      'shop-cache-tls',
    );
    // Off: the plaintext port, no certificate.
    const plainApp = parseApp({ cache: { tls: { enabled: false } } });
    const plain = cacheObjects(plainApp, facts, 'h');
    const plainConf = (plain.find((o) => o.kind === 'ConfigMap') as unknown as V1ConfigMap).data!;
    expect(plainConf['cache.conf']).toContain('port 6379');
    expect(plainConf['cache.conf']).not.toContain('tls');
    expect(plainConf['ready.sh']).not.toContain('tls');
    expect(plain.some((o) => o.metadata.name === 'shop-cache-tls')).toBe(false);
  });

  it('refuses to build without a password (the controller must provide one)', () => {
    expect(() => cacheObjects(app, { gatewayApi: false }, 'h')).toThrow('cache password');
  });
});

// The start script run by sh, with its /config and /data in a temp dir and a server binary that
// prints the arguments it was started with.
describe('the cache start script', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cache-start-'));
    for (const d of ['config', 'data', 'bin']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'bin', 'redis-server'), '#!/bin/sh\necho "$*"\n', { mode: 0o755 });
    writeFileSync(join(dir, 'config', 'primary'), 'shop-cache-0');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const start = (pod: string, env: Record<string, string> = {}) => {
    const script = startScriptText('shop-cache-headless.prod.svc')
      .replaceAll('/config/', `${dir}/config/`)
      .replaceAll('/data/', `${dir}/data/`);
    return execFileSync('sh', ['-c', script], {
      env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, HOSTNAME: pod, ...env },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  };
  const conf = () => `${dir}/config/cache.conf`;
  const held = () => `${conf()} --replicaof 127.0.0.1 1`;
  const record = (key: string, value: string) => writeFileSync(join(dir, 'config', key), value);
  /** The operator's record: hold a restarted primary. */
  const withOperator = (uid: string) => {
    record('holdRestartedPrimary', 'true');
    return { POD_UID: uid };
  };

  it('starts a replica as a replica of the recorded primary, by its stable name', () => {
    expect(start('shop-cache-1', withOperator('u-1'))).toBe(
      `${conf()} --replicaof shop-cache-0.shop-cache-headless.prod.svc 6379`,
    );
  });

  it('starts the recorded primary as a primary the first time, and held once its container restarts', () => {
    expect(start('shop-cache-0', withOperator('u-0'))).toBe(conf());
    expect(start('shop-cache-0', withOperator('u-0'))).toBe(held());
  });

  it('holds a replica promoted at run time once its container restarts: its marker is from its first start', () => {
    expect(start('shop-cache-1', withOperator('u-1'))).toMatch(/--replicaof shop-cache-0\./);
    record('primary', 'shop-cache-1'); // promoted by the operator, the record follows
    record('primaryUid', 'u-1');
    expect(start('shop-cache-1', withOperator('u-1'))).toBe(held());
  });

  it("holds a new pod of the recorded primary's name, and starts the one the record names", () => {
    record('primaryUid', 'u-0');
    expect(start('shop-cache-0', withOperator('u-new'))).toBe(held());
    rmSync(join(dir, 'data', '.started'), { force: true }); // a new pod: a new emptyDir
    expect(start('shop-cache-0', withOperator('u-0'))).toBe(conf());
  });

  it('never holds without the record asking it to (the charts, a cache without replicas)', () => {
    record('primaryUid', 'u-0');
    expect(start('shop-cache-0')).toBe(conf());
    expect(start('shop-cache-0', { POD_UID: 'u-new' })).toBe(conf());
    expect(start('shop-cache-0')).toBe(conf());
  });
});
