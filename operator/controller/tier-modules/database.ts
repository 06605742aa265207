import {
  DATABASE,
  PG_PORT,
  databaseCluster,
  databaseObjects,
  dbCredentialsName,
  dbName,
  dbPrimary,
  dbReadService,
  dbWriteService,
} from '../../tiers/database.ts';
import { selectorLabels } from '../../tiers/labels.ts';
import { pgCredentials } from '../generated-secrets.ts';
import { noDecisions, type TierModule } from '../tier-module.ts';
import { diagnosed, podsOf, primaryReplicaReadiness, readyReplicas } from '../tier-status.ts';
import { issuedCertificates } from '../issued-certificates.ts';
import { clusterFacts, decidePgClusters, pgCertificateRequests, pgRoles, rotateLogins } from './postgres.ts';

/** The Postgres primary with read replicas, failed over and switched over by the operator. */
export const databaseTier: TierModule = {
  tier: 'database',
  present: (app) => app.spec.database !== undefined,
  async gather(ctx, app, facts) {
    const ns = app.metadata.namespace ?? '';
    const credentials = await pgCredentials(ctx, ns, dbCredentialsName(app));
    const cluster = databaseCluster(app, facts);
    const db = clusterFacts(ctx, ns, cluster);
    const requests = pgCertificateRequests(cluster);
    const tls = requests.length ? { tls: await issuedCertificates(ctx, app, facts.tls, requests) } : {};
    return {
      facts: {
        ...tls,
        ...(db.lastFailover ? { dbLastFailover: db.lastFailover } : {}),
        dbCredentials: credentials,
        dbPods: db.pods ?? [],
        ...(db.primary ? { dbPrimary: db.primary } : {}),
        ...(db.backups ? { dbBackups: db.backups } : {}),
      },
    };
  },
  async decide(ctx, app, facts) {
    const primaries = ctx.databasePrimary;
    const decided = primaries
      ? await decidePgClusters(ctx, facts, [
          {
            name: dbName(app),
            decide: (f) => primaries.decide(app, f),
            moved: (f, primary, lastFailover) => ({ ...f, dbPrimary: primary, dbLastFailover: lastFailover }),
          },
        ])
      : noDecisions(facts);
    // With the primary just decided: a rotation's steps run on it.
    return rotateLogins(ctx, app, decided, {
      secret: dbCredentialsName(app),
      credentials: (f) => f.dbCredentials,
      clusters: (f) => [databaseCluster(app, f)],
      withCredentials: (f, dbCredentials) => ({ ...f, dbCredentials }),
    });
  },
  objects: (app, facts) => databaseObjects(app, facts),
  retainedSecrets: (app) => (app.spec.database?.deletionPolicy === 'Retain' ? [dbCredentialsName(app)] : []),
  roles: (app, facts) => pgRoles([databaseCluster(app, facts)]),
  readiness(app, children, facts, now) {
    const ns = app.metadata.namespace ?? '';
    return diagnosed(
      primaryReplicaReadiness(children, ns, dbName(app), dbPrimary(app, facts)),
      podsOf(children, ns, selectorLabels(app, DATABASE)),
      now,
    );
  },
  endpoints: (app) => ({
    databaseWrite: `${dbWriteService(app)}.${app.metadata.namespace}.svc:${PG_PORT}`,
    databaseRead: `${dbReadService(app)}.${app.metadata.namespace}.svc:${PG_PORT}`,
  }),
  status(app, facts, children) {
    const primary = dbPrimary(app, facts);
    return {
      database: {
        primary,
        readyReplicas: readyReplicas(children, app.metadata.namespace ?? '', dbName(app), primary),
        ...(facts.dbLastFailover
          ? { lastFailoverTime: facts.dbLastFailover.time, lastFailoverReason: facts.dbLastFailover.reason }
          : {}),
      },
    };
  },
  forget: (ctx, key) => {
    ctx.databasePrimary?.forget(key);
    ctx.appLogins?.forget(key);
    ctx.serverPasswords?.forget(key);
  },
};
