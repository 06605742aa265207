import type { ScalableApp } from '../api/scalable-app.ts';
import type { TlsFacts } from '../tiers/objects.ts';
import { TLS_KEYS, caSecretName } from '../tiers/tls.ts';
import {
  caProblem,
  issueCa,
  issueServerCert,
  serverCertProblem,
  type CertUse,
  type KeyPair,
} from '../tls/certificates.ts';
import { liveSecretValues } from './generated-secrets.ts';
import type { TierContext } from './tier-module.ts';

/** A server certificate a tier needs: the Secret that carries it and the names it must hold. */
export interface ServerCertRequest {
  readonly secret: string;
  readonly dnsNames: readonly string[];
  /** Besides serving, what the certificate is for (the brokers also show it as clients). */
  readonly use?: CertUse;
}

const pairOf = ([cert, key]: (string | undefined)[]): KeyPair | undefined =>
  cert && key ? { cert, key } : undefined;

/**
 * The app's CA and the server certificates `requests` ask for, added to what earlier tiers gathered
 * (so the database and the shards share one CA). Each is read back from its Secret and kept while it
 * fits — the CA while it is valid, a server certificate while the CA signed it for exactly these
 * names and it has more than 30 days left — and issued otherwise. A new CA makes every server
 * certificate fit no more, so they are all issued again with it.
 */
export async function issuedCertificates(
  ctx: Pick<TierContext, 'kube' | 'children' | 'now'>,
  app: ScalableApp,
  earlier: TlsFacts | undefined,
  requests: readonly ServerCertRequest[],
): Promise<TlsFacts> {
  const ns = app.metadata.namespace ?? '';
  const now = ctx.now();
  const keys = [TLS_KEYS.cert, TLS_KEYS.key];
  let ca = earlier?.ca;
  if (!ca) {
    const fits = (v: (string | undefined)[]) => {
      const pair = pairOf(v);
      return !!pair && caProblem(pair, now) === undefined;
    };
    const live = await liveSecretValues(ctx, ns, caSecretName(app), keys, fits);
    ca = fits(live) ? pairOf(live)! : await issueCa(`${ns}/${app.metadata.name} ScalableApp CA`, now);
  }
  const servers: Record<string, KeyPair> = { ...earlier?.servers };
  for (const r of requests) {
    const fits = (v: (string | undefined)[]) => {
      const pair = pairOf(v);
      return !!pair && serverCertProblem(pair, ca, r.dnsNames, now, r.use) === undefined;
    };
    const live = await liveSecretValues(ctx, ns, r.secret, keys, fits);
    servers[r.secret] = fits(live) ? pairOf(live)! : await issueServerCert(ca, r.dnsNames, now, r.use);
  }
  return { ca, servers };
}
