import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import {
  CACHE,
  CACHE_PORT,
  CACHE_APP_RECORD_KEYS,
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
import { nodesOf } from '../cache-primary.ts';
import { appRotationScope, rotationDecisions } from './rotation-decisions.ts';
import { noDecisions, type Decisions, type TierContext, type TierModule } from '../tier-module.ts';
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
    const {
      values: [password, operator, replication, monitor],
      records: [current, retiring],
    } = await generatedSecret(
      ctx,
      ns,
      cacheAuthName(app),
      [k.app, k.operator, k.replication, k.monitor],
      // The rotation's record (the operator writes it).
      [CACHE_APP_RECORD_KEYS.current, CACHE_APP_RECORD_KEYS.retiring],
    );
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
        // Before the first record, the servers have `password`: nothing to rotate.
        cachePassword: {
          wanted: password!,
          current: current ?? password!,
          ...(retiring ? { retiring } : {}),
        },
        cacheLogins: { operator: operator!, replication: replication!, monitor: monitor! },
        ...(primary ? { cachePrimary: primary } : {}),
        ...(primaryUid ? { cachePrimaryUid: primaryUid } : {}),
      },
    };
  },
  async decide(ctx, app, facts) {
    return rotateCachePassword(ctx, app, await decideCachePrimary(ctx, app, facts));
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
  forget: (ctx, key) => {
    ctx.cachePrimary?.forget(key);
    ctx.cachePasswords?.forget(key);
  },
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

/** The cache primary's decision this pass (cache-primary.ts): kept, moved, waited for or refused. */
async function decideCachePrimary(
  ctx: TierContext,
  app: ScalableApp,
  facts: ObservedFacts,
): Promise<Decisions> {
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
}

/** The next step of a rotation of the app's cache password (cache-password-rotation.ts). */
async function rotateCachePassword(ctx: TierContext, app: ScalableApp, d: Decisions): Promise<Decisions> {
  const rotation = ctx.cachePasswords;
  const password = d.facts.cachePassword;
  if (!rotation || !password) return d;
  const ns = app.metadata.namespace ?? '';
  const secret = cacheAuthName(app);
  // Asked only when a server is to be given a list: a steady pass computes no config hash.
  let hash: string | undefined;
  return rotationDecisions(
    d,
    secret,
    () =>
      rotation.step({
        ...appRotationScope(ctx, app, d.facts, secret),
        password,
        pods: ctx.children.select('Pod', ns, selectorLabels(app, CACHE)) as V1Pod[],
        configHash: () => (hash ??= cacheConfigHash(app, d.facts)),
        node: nodesOf(app, d.facts),
        operatorPassword: d.facts.cacheLogins?.operator,
      }),
    (facts, cachePassword) => ({ ...facts, cachePassword }),
  );
}
