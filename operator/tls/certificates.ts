// An app's own certificate authority and the server certificates it signs (ADR 0023). Issuing is
// the only impure step of TLS: random keys and the clock. Everything else — which names a server
// certificate holds, which Secrets carry them, how the servers are configured — is a pure function
// of the spec and of what this module issued.
//
// tsyringe, under @peculiar/x509, needs the Reflect metadata polyfill before it loads.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** ECDSA P-256: small, fast to make, and read by OpenSSL (Postgres, Valkey) and Erlang alike. */
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

const DAY_MS = 24 * 3600 * 1000;
/** The CA outlives many server certificates; replacing it is a new trust root for every client. */
export const CA_VALIDITY_DAYS = 3650;
/** Server certificates are short-lived, like cert-manager's and Let's Encrypt's defaults. */
export const SERVER_VALIDITY_DAYS = 90;
/** A server certificate is replaced once it has less than this left: a third of its life. */
export const RENEW_BEFORE_DAYS = 30;
/** Issued an hour in the past, so a node whose clock lags a little does not see a future certificate. */
const BACKDATE_MS = 3600 * 1000;

/** A positive 128-bit serial (RFC 5280: at most 20 octets, positive, unpredictable). */
const serial = () => {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  b[0]! |= 0x01;
  return b.toString('hex');
};

/** CN is at most 64 characters; names are the SANs' business. */
const commonName = (name: string) => `CN=${name.slice(0, 64).replace(/[,+"\\<>;=]/g, '-')}`;

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function signingKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

/** A new self-signed CA that may sign server certificates and nothing under them. */
export async function issueCa(name: string, now: Date): Promise<KeyPair> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: commonName(name),
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

/**
 * What a server certificate may be used for besides serving: `clientAuth` also lets the server show
 * it as a client, which a peer that asks for one checks (Erlang's distribution over TLS, where each
 * broker is the other's client: without it the peer refuses with invalid_ext_key_usage).
 */
export type CertUse = { readonly clientAuth?: boolean };

const extendedUsages = (use: CertUse) =>
  use.clientAuth
    ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
    : [x509.ExtendedKeyUsage.serverAuth];

/** A server certificate for `dnsNames` (the first also its CN), signed by `ca`. */
export async function issueServerCert(
  ca: KeyPair,
  dnsNames: readonly string[],
  now: Date,
  use: CertUse = {},
): Promise<KeyPair> {
  if (dnsNames.length === 0) throw new Error('a server certificate needs at least one DNS name');
  const issuer = new x509.X509Certificate(ca.cert);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: commonName(dnsNames[0]!),
    issuer: issuer.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + SERVER_VALIDITY_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: await signingKey(ca.key),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(extendedUsages(use), false),
      new x509.SubjectAlternativeNameExtension(dnsNames.map((value) => ({ type: 'dns' as const, value }))),
      await x509.AuthorityKeyIdentifierExtension.create(issuer, false),
    ],
  });
  return { cert: cert.toString('pem'), key: await privateKeyPem(keys.privateKey) };
}

/** The DNS names of a certificate's subjectAltName, sorted. */
export function certDnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4))
    .sort();
}

const keyMatches = (cert: X509Certificate, key: string) => {
  try {
    return cert.checkPrivateKey(createPrivateKey(key));
  } catch {
    return false;
  }
};

/**
 * Why a CA cannot be kept (unreadable, not a CA, its key not its own, expired), or undefined: a CA
 * is kept as long as it is valid, since replacing it makes every client's copy of it wrong.
 */
export function caProblem(ca: KeyPair, now: Date): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ca.cert);
  } catch {
    return 'not a certificate';
  }
  if (!cert.ca) return 'not a CA';
  if (!keyMatches(cert, ca.key)) return 'its key does not match';
  if (cert.validToDate.getTime() <= now.getTime()) return 'expired';
  return undefined;
}

/**
 * Why a server certificate must be issued again, or undefined when it can stay: signed by `ca`, for
 * exactly `dnsNames`, with its own key, and more than RENEW_BEFORE_DAYS left.
 */
export function serverCertProblem(
  pair: KeyPair,
  ca: KeyPair,
  dnsNames: readonly string[],
  now: Date,
  use: CertUse = {},
): string | undefined {
  let cert: X509Certificate;
  let issuer: X509Certificate;
  try {
    cert = new X509Certificate(pair.cert);
    issuer = new X509Certificate(ca.cert);
  } catch {
    return 'not a certificate';
  }
  if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return 'not signed by the CA';
  if (!keyMatches(cert, pair.key)) return 'its key does not match';
  if (certDnsNames(cert).join(',') !== [...dnsNames].sort().join(',')) return 'other names';
  if ([...(cert.keyUsage ?? [])].sort().join(',') !== [...extendedUsages(use)].sort().join(','))
    return 'other uses';
  if (cert.validToDate.getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS) return 'expires soon';
  if (cert.validFromDate.getTime() > now.getTime()) return 'not valid yet';
  return undefined;
}
