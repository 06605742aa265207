import { cacheAuthInclude } from '../server-config/cache.ts';
import type { V1ConfigMap, V1Secret, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { cacheConfigHash, cacheEntries, cacheObjects } from './cache.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';

const facts = {
  gatewayApi: false,
  cachePassword: 'pw-1',
  cacheLogins: { operator: 'op-pw-1', replication: 'repl-pw-1' },
};
const app = parseApp({
  web: { image: 'x', sessions: 'cache' },
  cache: { replicas: 2, resources: { limits: { memory: '256Mi' } } },
});
const byKind = <T>(kind: string, name?: string) =>
  cacheObjects(app, facts, 'h').find(
    (o) => o.kind === kind && (!name || o.metadata.name === name),
  ) as unknown as T;

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
    const secret = byKind<V1Secret>('Secret');
    const decoded = Object.fromEntries(
      Object.entries(secret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
    expect(decoded).toEqual({
      password: 'pw-1',
      'operator-password': 'op-pw-1',
      'replication-password': 'repl-pw-1',
      'auth.conf': cacheAuthInclude({ app: 'pw-1', operator: 'op-pw-1', replication: 'repl-pw-1' }),
    });
    expect(decoded['auth.conf']).toMatch(/^user default on #[0-9a-f]{64} .* -@admin -@dangerous$/m);
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

  it('tells the app its cache and session store, with the password URL-encoded', () => {
    const e = cacheEntries(app, { ...facts, cachePassword: 'a/b' });
    expect(e.CACHE_URL).toBe('redis://:a%2Fb@shop-cache.prod.svc:6379/0');
    expect(e.SESSION_STORE_URL).toBe(e.CACHE_URL);
    expect(cacheEntries(parseApp({ cache: {} }), facts).SESSION_STORE).toBeUndefined();
  });

  it('refuses to build without a password (the controller must provide one)', () => {
    expect(() => cacheObjects(app, { gatewayApi: false }, 'h')).toThrow('cache password');
  });
});
