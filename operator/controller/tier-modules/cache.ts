import type { V1ConfigMap } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import {
  CACHE,
  CACHE_PORT,
  CACHE_PASSWORD_KEYS,
  CACHE_PRIMARY_UID_KEY,
  cacheAuthName,
  cacheConfigHash,
  cacheConfigName,
  cacheHost,
  cacheName,
  cacheObjects,
  cachePrimary,
  cacheReplicasName,
  cacheServerNames,
  cacheTls,
  cacheTlsSecretName,
} from '../../tiers/cache.ts';
import { issuedCertificates } from '../issued-certificates.ts';
import { selectorLabels } from '../../tiers/labels.ts';
import type { ObservedFacts } from '../../tiers/objects.ts';
import { generatedSecret } from '../generated-secrets.ts';
import { noDecisions, type TierModule } from '../tier-module.ts';
import {
  diagnosed,
  podsOf,
  primaryReplicaReadiness,
  readyReplicas,
  type ChildLookup,
} from '../tier-status.ts';

/** The Redis-protocol cache: a primary and replicas, failed over by the operator (cache-primary.ts). */
export const cacheTier: TierModule = {
  tier: 'cache',
  present: (app) => app.spec.cache !== undefined,
  async gather(ctx, app, earlier) {
    const ns = app.metadata.namespace ?? '';
    const k = CACHE_PASSWORD_KEYS;
    const [password, operator, replication, monitor] = await generatedSecret(ctx, ns, cacheAuthName(app), [
      k.app,
      k.operator,
      k.replication,
      k.monitor,
    ]);
    const record = (ctx.children.get('ConfigMap', ns, cacheConfigName(app)) as V1ConfigMap | undefined)?.data;
    const primary = record?.primary;
    const primaryUid = record?.[CACHE_PRIMARY_UID_KEY];
    const tls = cacheTls(app)
      ? {
          tls: await issuedCertificates(ctx, app, earlier.tls, [
            { secret: cacheTlsSecretName(app), dnsNames: cacheServerNames(app) },
          ]),
        }
      : {};
    return {
      facts: {
        ...tls,
        cachePassword: password!,
        cacheLogins: { operator: operator!, replication: replication!, monitor: monitor! },
        ...(primary ? { cachePrimary: primary } : {}),
        ...(primaryUid ? { cachePrimaryUid: primaryUid } : {}),
      },
    };
  },
  async decide(ctx, app, facts) {
    if (!ctx.cachePrimary) return noDecisions(facts);
    const d = await ctx.cachePrimary.decide(app, facts);
    const cluster = cacheName(app);
    if (d.kind === 'refused')
      return { ...noDecisions(facts), refused: [{ cluster, reason: d.reason }], recheckMs: d.recheckMs };
    // Not refused: a refusal announced before is over (the next one is announced again).
    const settled = (f: ObservedFacts) => ({ ...noDecisions(f), settled: [cluster] });
    if (d.kind === 'wait') return { ...settled(facts), recheckMs: d.recheckMs };
    // The record names the pod seen serving as the primary: the start script holds any other. A
    // primary kept but not seen yet keeps the UID on record; a new one drops its predecessor's.
    const uid = d.primaryUid ?? (d.kind === 'failover' ? undefined : facts.cachePrimaryUid);
    const { cachePrimaryUid: _recorded, ...rest } = facts;
    const next = { ...rest, ...(uid ? { cachePrimaryUid: uid } : {}) };
    if (d.kind !== 'failover') return settled(next);
    return {
      ...settled({ ...next, cachePrimary: d.primary }),
      moved: [
        {
          cluster,
          from: d.previous,
          to: d.primary,
          reason: d.reason,
          what: 'cache failover',
          event: { type: 'Warning', reason: 'CacheFailover' },
        },
      ],
    };
  },
  objects: (app, facts) => cacheObjects(app, facts, cacheConfigHash(app, facts)),
  roles: (app, facts) => [{ selector: selectorLabels(app, CACHE), primary: cachePrimary(app, facts) }],
  readiness: (app, children, facts, now) =>
    diagnosed(
      cacheReadiness(app, children, facts),
      podsOf(children, app.metadata.namespace ?? '', selectorLabels(app, CACHE)),
      now,
    ),
  endpoints: (app) => ({
    cache: `${cacheHost(app, cacheName(app))}:${CACHE_PORT}`,
    cacheReplicas: `${cacheHost(app, cacheReplicasName(app))}:${CACHE_PORT}`,
  }),
  status: (app, facts, children) => ({ cache: cacheStatus(app, facts, children) }),
  forget: (ctx, key) => ctx.cachePrimary?.forget(key),
};

export const cacheReadiness = (app: ScalableApp, children: ChildLookup, facts: ObservedFacts) =>
  primaryReplicaReadiness(children, app.metadata.namespace ?? '', cacheName(app), cachePrimary(app, facts));

export function cacheStatus(
  app: ScalableApp,
  facts: ObservedFacts,
  children: ChildLookup,
): { primary: string; readyReplicas: number } {
  const primary = cachePrimary(app, facts);
  return {
    primary,
    readyReplicas: readyReplicas(children, app.metadata.namespace ?? '', cacheName(app), primary),
  };
}
