import type { V1ConfigMap, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { childName, selectorLabels, tierLabels } from './labels.ts';
import type { Child, ObservedFacts } from './objects.ts';
import { CA_FILE } from './tls.ts';
import {
  appLoginOf,
  pgClusterObjects,
  pgConfigHash,
  pgConfigMap,
  pgCredentialsSecret,
  pgPrimary,
  pgReadEndpoints,
  pgStatefulSet,
  pgUrl,
  type PgCluster,
} from './postgres-cluster.ts';
import { pgInstanceNames } from './postgres-instances.ts';

export {
  APP_DATABASE,
  APP_USER,
  LAST_FAILOVER_REASON,
  LAST_FAILOVER_TIME,
  PG_PORT,
  POSTGRES_UID,
  type DatabaseCredentials,
} from './postgres-cluster.ts';

export const DATABASE = 'database';

export const dbName = (app: ScalableApp) => childName(app, 'db');
export const dbHeadless = (app: ScalableApp) => `${dbName(app)}-headless`;
export const dbWriteService = (app: ScalableApp) => `${dbName(app)}-rw`;
export const dbReadService = (app: ScalableApp) => `${dbName(app)}-ro`;
export const dbCredentialsName = (app: ScalableApp) => `${dbName(app)}-credentials`;
export const dbConfigName = (app: ScalableApp) => `${dbName(app)}-config`;

/** The database tier as one Postgres cluster: the shape every builder of postgres-cluster.ts takes. */
export function databaseCluster(app: ScalableApp, facts: ObservedFacts): PgCluster {
  const db = app.spec.database!;
  return {
    app,
    name: dbName(app),
    component: DATABASE,
    labels: tierLabels(app, DATABASE),
    selector: selectorLabels(app, DATABASE),
    spec: db,
    credentialsName: dbCredentialsName(app),
    tls: facts.tls,
    facts: {
      ...(facts.dbPrimary ? { primary: facts.dbPrimary } : {}),
      ...(facts.dbLastFailover ? { lastFailover: facts.dbLastFailover } : {}),
      ...(facts.dbPods ? { pods: facts.dbPods } : {}),
      ...(facts.dbBackups ? { backups: facts.dbBackups } : {}),
    },
  };
}

export const dbPrimary = (app: ScalableApp, facts: ObservedFacts) => pgPrimary(databaseCluster(app, facts));
export const instanceNames = (app: ScalableApp) =>
  pgInstanceNames(databaseCluster(app, { gatewayApi: false }));
export const dbConfigMap = (app: ScalableApp, facts: ObservedFacts): V1ConfigMap & Child =>
  pgConfigMap(databaseCluster(app, facts));
export const dbConfigHash = (app: ScalableApp, facts: ObservedFacts) =>
  pgConfigHash(databaseCluster(app, facts));
export const dbStatefulSet = (app: ScalableApp, facts: ObservedFacts): V1StatefulSet & Child =>
  pgStatefulSet(databaseCluster(app, facts));
export const dbReadEndpoints = (app: ScalableApp, facts: ObservedFacts): Child =>
  pgReadEndpoints(databaseCluster(app, facts));
export const dbCredentialsSecret = (app: ScalableApp, facts: ObservedFacts): V1Secret & Child =>
  pgCredentialsSecret(app, dbCredentialsName(app), tierLabels(app, DATABASE), facts.dbCredentials);

export function databaseObjects(app: ScalableApp, facts: ObservedFacts): Child[] {
  if (!app.spec.database) return [];
  return [dbCredentialsSecret(app, facts), ...pgClusterObjects(databaseCluster(app, facts))];
}

/** The read-write and read-only URLs the app receives. */
export function databaseEntries(app: ScalableApp, facts: ObservedFacts): Record<string, string> {
  if (!app.spec.database || !facts.dbCredentials) return {};
  const login = appLoginOf(facts.dbCredentials);
  const ca = app.spec.database.tls.enabled ? CA_FILE : undefined;
  return {
    DATABASE_URL: pgUrl(app, dbWriteService(app), login, ca),
    DATABASE_READ_URL: pgUrl(app, dbReadService(app), login, ca),
  };
}
