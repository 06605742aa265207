// The app's CA and its server certificates, checked by Node's own X.509 parser and by a real TLS
// handshake on loopback: what a client verifying with `ca` and a name (libpq's verify-full) accepts.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  RENEW_BEFORE_DAYS,
  SERVER_VALIDITY_DAYS,
  caProblem,
  certDnsNames,
  issueCa,
  issueServerCert,
  serverCertProblem,
  type KeyPair,
} from './certificates.ts';

const NOW = new Date('2026-12-05T12:00:00Z');
const DAY = 24 * 3600 * 1000;
const NAMES = ['shop-db-rw.prod.svc', 'shop-db-ro.prod.svc', '*.shop-db-headless.prod.svc'];

let ca: KeyPair;
let server: KeyPair;
beforeAll(async () => {
  ca = await issueCa('prod/shop ScalableApp CA', NOW);
  server = await issueServerCert(ca, NAMES, NOW);
});

/** Whether a TLS client trusting only `trusted` accepts `pair` served for the name `servername`. */
async function handshake(pair: KeyPair, trusted: string, servername: string): Promise<string> {
  const srv: Server = createServer({ cert: pair.cert, key: pair.key }, (s) => s.end());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      const c = connect({ host: '127.0.0.1', port, ca: trusted, servername }, () => {
        c.end();
        resolve('accepted');
      });
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
  } finally {
    srv.close();
  }
}

describe('the app CA', () => {
  it('is a CA that signs one level of server certificates, valid for ten years from an hour ago', () => {
    const c = new X509Certificate(ca.cert);
    expect(c.ca).toBe(true);
    expect(c.subject).toBe('CN=prod/shop ScalableApp CA');
    expect(c.validFromDate.getTime()).toBe(NOW.getTime() - 3600 * 1000);
    expect(c.validToDate.getTime()).toBe(NOW.getTime() + 3650 * DAY);
    expect(caProblem(ca, NOW)).toBeUndefined();
  });

  it('is kept until it expires, and never with a key that is not its own', async () => {
    expect(caProblem(ca, new Date(NOW.getTime() + 3651 * DAY))).toBe('expired');
    const other = await issueCa('other', NOW);
    expect(caProblem({ cert: ca.cert, key: other.key }, NOW)).toBe('its key does not match');
    expect(caProblem(server, NOW)).toBe('not a CA');
    expect(caProblem({ cert: 'garbage', key: ca.key }, NOW)).toBe('not a certificate');
  });
});

describe('a server certificate', () => {
  it('holds exactly the names asked for, for serverAuth, for 90 days', () => {
    const c = new X509Certificate(server.cert);
    expect(certDnsNames(c)).toEqual([...NAMES].sort());
    expect(c.ca).toBe(false);
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(c.validToDate.getTime()).toBe(NOW.getTime() + SERVER_VALIDITY_DAYS * DAY);
    expect(c.checkIssued(new X509Certificate(ca.cert))).toBe(true);
  });

  it('is accepted by a client that trusts the CA and checks the name, a pod name through the wildcard too', async () => {
    expect(await handshake(server, ca.cert, 'shop-db-rw.prod.svc')).toBe('accepted');
    expect(await handshake(server, ca.cert, 'shop-db-1.shop-db-headless.prod.svc')).toBe('accepted');
  });

  it('is refused for another name, and by a client that trusts another CA', async () => {
    expect(await handshake(server, ca.cert, 'shop-cache.prod.svc')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const other = await issueCa('other', NOW);
    expect(await handshake(server, other.cert, 'shop-db-rw.prod.svc')).toBe(
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
  });

  it('is kept while it fits, and issued again when its names, its CA or its time say so', async () => {
    expect(serverCertProblem(server, ca, [...NAMES].reverse(), NOW)).toBeUndefined();
    expect(serverCertProblem(server, ca, NAMES.slice(1), NOW)).toBe('other names');
    const other = await issueCa('other', NOW);
    expect(serverCertProblem(server, other, NAMES, NOW)).toBe('not signed by the CA');
    expect(serverCertProblem({ cert: server.cert, key: other.key }, ca, NAMES, NOW)).toBe(
      'its key does not match',
    );
    // Renewed once less than 30 days are left: after 60 of its 90 days.
    const renewAt = SERVER_VALIDITY_DAYS - RENEW_BEFORE_DAYS;
    expect(
      serverCertProblem(server, ca, NAMES, new Date(NOW.getTime() + (renewAt - 1) * DAY)),
    ).toBeUndefined();
    expect(serverCertProblem(server, ca, NAMES, new Date(NOW.getTime() + (renewAt + 1) * DAY))).toBe(
      'expires soon',
    );
  });

  it('is for client use too when asked (the brokers show theirs to each other), and issued again when that changes', async () => {
    const both = await issueServerCert(ca, NAMES, NOW, { clientAuth: true });
    expect(new X509Certificate(both.cert).keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(serverCertProblem(both, ca, NAMES, NOW, { clientAuth: true })).toBeUndefined();
    expect(serverCertProblem(server, ca, NAMES, NOW, { clientAuth: true })).toBe('other uses');
    expect(serverCertProblem(both, ca, NAMES, NOW)).toBe('other uses');
  });

  it('gets a new key and serial each time it is issued', async () => {
    const again = await issueServerCert(ca, NAMES, NOW);
    expect(again.key).not.toBe(server.key);
    expect(new X509Certificate(again.cert).serialNumber).not.toBe(
      new X509Certificate(server.cert).serialNumber,
    );
  });
});
