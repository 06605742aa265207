import { contentHash } from './content-hash.ts';
import type { V1ConfigMap, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { hbaConfig, postgresConfig, synchronousStandbyNames } from '../dataplane/postgres/config.ts';
import { instanceStartScript } from '../dataplane/postgres/instance-script.ts';
import { ANNOTATION, childName, selectorLabels, tierLabels } from './labels.ts';
import { restrictedContainerSecurity, restrictedPodBase, tmpMount, tmpVolume } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';
import { zoneSpread } from './topology.ts';
import { disruptionBudget } from './disruption-budget.ts';
import { dataTierService } from './data-tier-services.ts';
import type { Child, ObservedFacts } from './objects.ts';

export const DATABASE = 'database';
export const PG_PORT = 5432;
/** The uid of the `postgres` user in the official image: initdb needs a user it can look up. */
export const POSTGRES_UID = 999;
export const APP_USER = 'app';
export const APP_DATABASE = 'app';
export const LAST_FAILOVER_TIME = 'scalableapp.io/last-failover-time';
export const LAST_FAILOVER_REASON = 'scalableapp.io/last-failover-reason';

type Database = NonNullable<ScalableApp['spec']['database']>;

export const dbName = (app: ScalableApp) => childName(app, 'db');
export const dbHeadless = (app: ScalableApp) => `${dbName(app)}-headless`;
export const dbWriteService = (app: ScalableApp) => `${dbName(app)}-rw`;
export const dbReadService = (app: ScalableApp) => `${dbName(app)}-ro`;
export const dbCredentialsName = (app: ScalableApp) => `${dbName(app)}-credentials`;
export const dbConfigName = (app: ScalableApp) => `${dbName(app)}-config`;
export const dbPrimary = (app: ScalableApp, facts: ObservedFacts) => facts.dbPrimary ?? `${dbName(app)}-0`;

/** The generated passwords: read back from their Secret, or generated once by the controller. */
export interface DatabaseCredentials {
  readonly superuser: string;
  readonly replication: string;
  readonly app: string;
}

function meta(app: ScalableApp, name: string) {
  return { name, namespace: app.metadata.namespace, labels: tierLabels(app, DATABASE) };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export function dbCredentialsSecret(app: ScalableApp, facts: ObservedFacts): V1Secret & Child {
  const c = facts.dbCredentials;
  if (!c) throw new Error('database credentials not generated: the controller must provide them');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: meta(app, dbCredentialsName(app)),
    data: {
      'superuser-password': b64(c.superuser),
      'replication-password': b64(c.replication),
      'app-password': b64(c.app),
    },
  };
}

/** Every instance's pod name, whether or not its pod exists right now. */
export function instanceNames(app: ScalableApp): string[] {
  return Array.from({ length: 1 + app.spec.database!.replicas }, (_, i) => `${dbName(app)}-${i}`);
}

export function dbConfigMap(app: ScalableApp, facts: ObservedFacts): V1ConfigMap & Child {
  const db: Database = app.spec.database!;
  const primary = dbPrimary(app, facts);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      ...meta(app, dbConfigName(app)),
      // The record of the last failover lives beside the primary's, so status can always tell it.
      ...(facts.dbLastFailover
        ? {
            annotations: {
              [LAST_FAILOVER_TIME]: facts.dbLastFailover.time,
              [LAST_FAILOVER_REASON]: facts.dbLastFailover.reason,
            },
          }
        : {}),
    },
    data: {
      'postgresql.conf': postgresConfig({
        port: PG_PORT,
        maxWalSenders: 10,
        // ANY k over every instance's name: the primary never connects as a standby, so listing it
        // is harmless, and the text (and the pods) need not change when the primary moves.
        synchronousStandbyNames: synchronousStandbyNames(db.synchronousReplicas, instanceNames(app)),
      }),
      'pg_hba.conf': hbaConfig({ appUser: APP_USER, appDatabase: APP_DATABASE, cidr: '0.0.0.0/0' }),
      'start.sh': instanceStartScript({ appUser: APP_USER, appDatabase: APP_DATABASE }),
      primary,
    },
  };
}

/** Restart the servers when their configuration changes, but not when only the primary moves. */
export function dbConfigHash(app: ScalableApp, facts: ObservedFacts): string {
  const { primary: _p, ...rest } = dbConfigMap(app, facts).data ?? {};
  return contentHash(rest);
}

export function dbStatefulSet(app: ScalableApp, facts: ObservedFacts): V1StatefulSet & Child {
  const db: Database = app.spec.database!;
  const selector = selectorLabels(app, DATABASE);
  const spread = zoneSpread(app, selector);
  const image = db.image ?? `postgres:${db.version}`;
  const base = restrictedPodBase();
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(app, dbName(app)),
    spec: {
      replicas: 1 + db.replicas,
      serviceName: dbHeadless(app),
      podManagementPolicy: 'OrderedReady',
      selector: { matchLabels: selector },
      // Data is precious: claims outlive the StatefulSet unless the user chose Delete.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: db.deletionPolicy, whenScaled: 'Retain' },
      template: {
        metadata: {
          labels: tierLabels(app, DATABASE),
          annotations: { [ANNOTATION.configHash]: dbConfigHash(app, facts) },
        },
        spec: {
          ...base,
          securityContext: {
            ...base.securityContext,
            runAsUser: POSTGRES_UID,
            runAsGroup: POSTGRES_UID,
            fsGroup: POSTGRES_UID,
          },
          // A primary needs time to checkpoint cleanly on shutdown.
          terminationGracePeriodSeconds: 60,
          containers: [
            {
              name: 'postgres',
              image,
              command: ['sh', '/config/start.sh'],
              env: [
                { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
                { name: 'PGPORT', value: String(PG_PORT) },
                { name: 'INSTANCE_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                // Read when the container starts: a pod that was primary and restarts after a
                // failover starts as a standby of the new one (pg_rewind), never as a second primary.
                {
                  name: 'PRIMARY_NAME',
                  valueFrom: { configMapKeyRef: { name: dbConfigName(app), key: 'primary' } },
                },
                {
                  name: 'PRIMARY_HOST',
                  value: `$(PRIMARY_NAME).${dbHeadless(app)}.${app.metadata.namespace}.svc`,
                },
                { name: 'PRIMARY_PORT', value: String(PG_PORT) },
                { name: 'CREDENTIALS_DIR', value: '/credentials' },
                { name: 'CONFIG_DIR', value: '/config' },
              ],
              ports: [{ name: 'postgres', containerPort: PG_PORT, protocol: 'TCP' }],
              resources: resourceRequirements(db.resources),
              readinessProbe: {
                exec: { command: ['pg_isready', '-h', '127.0.0.1', '-p', String(PG_PORT)] },
                periodSeconds: 5,
              },
              livenessProbe: {
                exec: { command: ['pg_isready', '-h', '127.0.0.1', '-p', String(PG_PORT)] },
                periodSeconds: 10,
                failureThreshold: 6,
                initialDelaySeconds: 30,
              },
              securityContext: restrictedContainerSecurity(),
              volumeMounts: [
                { name: 'data', mountPath: '/var/lib/postgresql/data' },
                { name: 'config', mountPath: '/config', readOnly: true },
                { name: 'credentials', mountPath: '/credentials', readOnly: true },
                { name: 'run', mountPath: '/var/run/postgresql' },
                tmpMount,
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name: dbConfigName(app) } },
            { name: 'credentials', secret: { secretName: dbCredentialsName(app), defaultMode: 0o400 } },
            { name: 'run', emptyDir: {} },
            tmpVolume,
          ],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels: tierLabels(app, DATABASE) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(db.storage.storageClassName ? { storageClassName: db.storage.storageClassName } : {}),
            resources: { requests: { storage: String(db.storage.size) } },
          },
        },
      ],
    },
  };
}

const ready = (p: V1Pod) =>
  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/**
 * The read-only Service has no selector: the operator publishes its endpoints — the ready replicas,
 * or the primary when no replica is ready — so the app's read URL never points at nothing.
 */
export function dbReadEndpoints(app: ScalableApp, facts: ObservedFacts): Child {
  const primary = dbPrimary(app, facts);
  const pods = (facts.dbPods ?? []).filter((p) => ready(p) && p.status?.podIP);
  const replicas = pods.filter((p) => p.metadata?.name !== primary);
  const chosen = replicas.length ? replicas : pods.filter((p) => p.metadata?.name === primary);
  const name = dbReadService(app);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      ...meta(app, name),
      labels: {
        ...tierLabels(app, DATABASE),
        'kubernetes.io/service-name': name,
        'endpointslice.kubernetes.io/managed-by': 'scalableapp-operator',
      },
    },
    addressType: 'IPv4',
    ports: [{ name: 'postgres', port: PG_PORT, protocol: 'TCP' }],
    endpoints: chosen
      .map((p) => ({
        addresses: [p.status!.podIP!],
        conditions: { ready: true },
        targetRef: { kind: 'Pod', name: p.metadata!.name!, namespace: app.metadata.namespace },
        ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
      }))
      .sort((a, b) => a.targetRef.name.localeCompare(b.targetRef.name)),
  };
}

export function databaseObjects(app: ScalableApp, facts: ObservedFacts): Child[] {
  if (!app.spec.database) return [];
  const port = { name: 'postgres', port: PG_PORT };
  return [
    dbCredentialsSecret(app, facts),
    dbConfigMap(app, facts),
    dataTierService(app, DATABASE, dbHeadless(app), 'headless', port),
    dataTierService(app, DATABASE, dbWriteService(app), 'primary', port),
    dataTierService(app, DATABASE, dbReadService(app), 'none', port),
    dbReadEndpoints(app, facts),
    dbStatefulSet(app, facts),
    disruptionBudget(app, DATABASE, dbName(app)),
  ];
}

/** The read-write and read-only URLs the app receives. */
export function databaseEntries(app: ScalableApp, facts: ObservedFacts): Record<string, string> {
  if (!app.spec.database || !facts.dbCredentials) return {};
  const pw = encodeURIComponent(facts.dbCredentials.app);
  const url = (svc: string) =>
    `postgresql://${APP_USER}:${pw}@${svc}.${app.metadata.namespace}.svc:${PG_PORT}/${APP_DATABASE}`;
  return { DATABASE_URL: url(dbWriteService(app)), DATABASE_READ_URL: url(dbReadService(app)) };
}
