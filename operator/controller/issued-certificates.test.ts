// What the controller keeps and what it issues again: the informer's cache and the apiserver are
// fakes holding Secrets; the certificates are real (operator/tls/certificates.ts).
import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { ApiError } from '../kube/client.ts';
import { issueCa, issueServerCert, type KeyPair } from '../tls/certificates.ts';
import { issuedCertificates } from './issued-certificates.ts';
import type { TierContext } from './tier-module.ts';

const NOW = new Date('2026-12-05T12:00:00Z');
const DAY = 24 * 3600 * 1000;
const app = parseApp({ database: {} }, 'shop', 'prod');
const DB = { secret: 'shop-db-tls', dnsNames: ['shop-db-rw.prod.svc', '*.shop-db-headless.prod.svc'] };
const SHARD = { secret: 'shop-shard-0-tls', dnsNames: ['shop-shard-0-rw.prod.svc'] };

const secret = (name: string, pair: KeyPair): V1Secret => ({
  metadata: { name, namespace: 'prod' },
  data: {
    'tls.crt': Buffer.from(pair.cert).toString('base64'),
    'tls.key': Buffer.from(pair.key).toString('base64'),
  },
});

/** A context whose cache holds `cached` and whose apiserver holds `live`, counting the reads of the latter. */
function context(cached: V1Secret[], live: V1Secret[] = cached, now = NOW) {
  const reads: string[] = [];
  const byName = (list: V1Secret[], name: string) => list.find((s) => s.metadata?.name === name);
  const ctx = {
    now: () => now,
    children: {
      get: (_kind: string, _ns: string, name: string) => byName(cached, name) as KubernetesObject | undefined,
    },
    kube: {
      get: async (path: string) => {
        const name = path.split('/').pop()!;
        reads.push(name);
        const s = byName(live, name);
        if (!s) throw new ApiError('GET', path, 404, { reason: 'NotFound' });
        return s;
      },
    },
  } as unknown as Pick<TierContext, 'kube' | 'children' | 'now'>;
  return { ctx, reads };
}

describe('issuedCertificates', () => {
  let ca: KeyPair;
  let db: KeyPair;
  beforeAll(async () => {
    ca = await issueCa('prod/shop ScalableApp CA', NOW);
    db = await issueServerCert(ca, DB.dnsNames, NOW);
  });

  it('issues a CA and a certificate when none exists, after asking the apiserver and not only the cache', async () => {
    const { ctx, reads } = context([]);
    const tls = await issuedCertificates(ctx, app, undefined, [DB]);
    expect(reads).toEqual(['shop-ca', 'shop-db-tls']);
    expect(tls.ca.cert).toMatch(/BEGIN CERTIFICATE/);
    expect(tls.servers['shop-db-tls']!.cert).toMatch(/BEGIN CERTIFICATE/);
  });

  it('keeps what fits, exactly, without a read from the apiserver', async () => {
    const { ctx, reads } = context([secret('shop-ca', ca), secret('shop-db-tls', db)]);
    expect(await issuedCertificates(ctx, app, undefined, [DB])).toEqual({
      ca,
      servers: { 'shop-db-tls': db },
    });
    expect(reads).toEqual([]);
  });

  it('reads the apiserver when the cache lags a renewal it made, and keeps that one', async () => {
    const renewed = await issueServerCert(ca, DB.dnsNames, new Date(NOW.getTime() + 61 * DAY));
    const later = new Date(NOW.getTime() + 62 * DAY);
    const { ctx, reads } = context(
      [secret('shop-ca', ca), secret('shop-db-tls', db)],
      [secret('shop-ca', ca), secret('shop-db-tls', renewed)],
      later,
    );
    const tls = await issuedCertificates(ctx, app, undefined, [DB]);
    expect(tls.servers['shop-db-tls']).toEqual(renewed);
    expect(reads).toEqual(['shop-db-tls']);
  });

  it('renews a certificate with less than 30 days left, with the same CA', async () => {
    const later = new Date(NOW.getTime() + 61 * DAY);
    const { ctx } = context([secret('shop-ca', ca), secret('shop-db-tls', db)], undefined, later);
    const tls = await issuedCertificates(ctx, app, undefined, [DB]);
    expect(tls.ca).toEqual(ca);
    expect(tls.servers['shop-db-tls']!.cert).not.toBe(db.cert);
  });

  it('issues every server certificate again when the CA is gone: the old ones chain to nothing clients trust', async () => {
    const { ctx } = context([secret('shop-db-tls', db)]);
    const tls = await issuedCertificates(ctx, app, undefined, [DB]);
    expect(tls.ca.cert).not.toBe(ca.cert);
    expect(tls.servers['shop-db-tls']!.cert).not.toBe(db.cert);
  });

  it("shares one CA between tiers: a later tier adds its certificates to an earlier tier's", async () => {
    const { ctx, reads } = context([]);
    const first = await issuedCertificates(ctx, app, undefined, [DB]);
    const both = await issuedCertificates(ctx, app, first, [SHARD]);
    expect(both.ca).toEqual(first.ca);
    expect(Object.keys(both.servers)).toEqual(['shop-db-tls', 'shop-shard-0-tls']);
    expect(reads.filter((r) => r === 'shop-ca')).toHaveLength(1);
  });
});
