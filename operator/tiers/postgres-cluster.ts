import { isContainerReady } from '../kube/pods.ts';
import type { V1ConfigMap, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { postgresImage } from '../api/database.ts';
import type { PostgresBackup } from '../api/backup.ts';
import {
  DEFAULT_MONITOR_USER,
  PG_RUN_DIR,
  hbaConfig,
  postgresConfig,
  synchronousStandbyNames,
} from '../server-config/postgres.ts';
import { CREDENTIAL_FILES as f, instanceStartScript } from '../server-config/postgres-instance-script.ts';
import { APP_LOGIN_KEYS } from '../server-config/app-login-keys.ts';
import { SERVER_PASSWORD_KEYS } from '../server-config/postgres-passfile.ts';
import { FENCED_HBA_FILE, instanceReadyScript } from '../server-config/postgres-ready-script.ts';
import { ANNOTATION } from './labels.ts';
import {
  METRICS_PORT,
  POSTGRES_EXPORTER_QUERIES,
  monitored,
  postgresExporter,
  scrapeAnnotations,
} from './monitoring.ts';
import { SERVER_TLS_FILES, serverTlsSecret, serverTlsVolume, serviceDnsNames } from './tls.ts';
import { secretWith } from './secrets.ts';
import { restrictedContainerSecurity, restrictedPodBase, tmpMount, tmpVolume } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';
import { zoneSpread } from './topology.ts';
import { disruptionBudget } from './disruption-budget.ts';
import { dataTierService } from './data-tier-services.ts';
import { contentHash } from './content-hash.ts';
import { pgHeadless, pgInstanceHost, pgInstanceNames } from './postgres-instances.ts';
import { backupArchiveSettings, backupCaVolume, backupEnv, backupFiles } from './postgres-backup.ts';
import {
  backupServerFiles,
  backupServerSidecar,
  baseBackupObjects,
  type InstanceLayout,
} from './postgres-base-backup.ts';
import type { AppLoginRecord, Child, DatabaseCredentials, PgClusterFacts, TlsFacts } from './objects.ts';

export const PG_PORT = 5432;
/** The server's container: the first of every instance's pod. */
export const PG_CONTAINER = 'postgres';
/** The ConfigMap key of the exporter's queries (with monitoring). */
export const EXPORTER_QUERIES_KEY = 'exporter-queries.yaml';

/** Accepting connections, asked over TCP as clients connect. */
const PG_READY = { exec: { command: ['pg_isready', '-h', '127.0.0.1', '-p', String(PG_PORT)] } };

/**
 * How long a primary may hear from no standby and no operator heartbeat before it fences itself
 * (ready.sh). Well above the standbys' status interval (2 s) and the heartbeat's period (2 s), so a
 * restarting standby or operator alone never fences it; low enough that the fence comes within
 * about 15 s of the last contact (one probe period more). A cut-off primary's readiness fails only
 * once it has fenced, so the failed probes and the failover delay that must come before another
 * instance is promoted always follow the fence; they also bound how fast a silent primary is
 * replaced (ADR 0006).
 */
export const FENCE_AFTER_SECONDS = 10;
/** How often ready.sh runs: a cut-off primary fences within FENCE_AFTER_SECONDS plus this. */
export const READY_PERIOD_SECONDS = 5;

/**
 * Whether the primary fences itself when cut off (ready.sh) and the operator keeps a heartbeat to
 * it: a second primary is made only by a failover, so none without standbys or with failover off.
 */
export const selfFencing = (c: PgCluster) => c.spec.replicas > 0 && c.spec.failover.enabled;

/** The uid of the `postgres` user in the official image: initdb needs a user it can look up. */
export const POSTGRES_UID = 999;
/** The application's role: it owns the app's database, and logs in (the first of APP_LOGINS). */
export const APP_USER = 'app';
/**
 * The logins the app's connection takes turns with when its password is rotated (ADR 0025): the
 * owner itself, and a member of it whose sessions act as the owner.
 */
export const APP_LOGINS = [APP_USER, 'app_alt'] as const;
export type AppLogin = (typeof APP_LOGINS)[number];
export const APP_DATABASE = 'app';
export const LAST_FAILOVER_TIME = 'scalableapp.io/last-failover-time';
export const LAST_FAILOVER_REASON = 'scalableapp.io/last-failover-reason';

// Facts about a cluster, declared with the other facts (objects.ts imports no tier).
export type { DatabaseCredentials, PgClusterFacts } from './objects.ts';

/**
 * One Postgres cluster — a primary with streaming replicas — as the database tier and every shard
 * run it. The builders below take only this, so a shard is the database tier's objects under other
 * names, never a copy of its code.
 */
export interface PgCluster {
  readonly app: ScalableApp;
  /** The StatefulSet's name; every other object's name derives from it. */
  readonly name: string;
  /** The component label value ('database', 'shard'). */
  readonly component: string;
  /** The labels every object of this cluster carries, and the subset that selects its pods. */
  readonly labels: Record<string, string>;
  readonly selector: Record<string, string>;
  readonly spec: {
    readonly version: string;
    readonly image?: string | undefined;
    readonly resources: Parameters<typeof resourceRequirements>[0];
    readonly deletionPolicy: 'Retain' | 'Delete';
    readonly replicas: number;
    readonly storage: { readonly size: string | number; readonly storageClassName?: string | undefined };
    readonly synchronousReplicas: number;
    /** Whether the operator promotes a standby when the primary is lost, and after how long. */
    readonly failover: { readonly enabled: boolean; readonly delaySeconds: number };
    readonly tls: { readonly enabled: boolean };
    /** Continuous archiving (ADR 0029); none without. */
    readonly backup?: PostgresBackup | undefined;
  };
  /** The Secret holding superuser-, replication- and app-password (one per cluster or shared). */
  readonly credentialsName: string;
  readonly facts: PgClusterFacts;
  /** The app's CA and issued certificates (with TLS on, this cluster's is under pgTlsSecretName). */
  readonly tls?: TlsFacts | undefined;
}

export const pgWriteService = (c: Pick<PgCluster, 'name'>) => `${c.name}-rw`;
export const pgReadService = (c: Pick<PgCluster, 'name'>) => `${c.name}-ro`;
export const pgConfigName = (c: Pick<PgCluster, 'name'>) => `${c.name}-config`;
export const pgTlsSecretName = (c: Pick<PgCluster, 'name'>) => `${c.name}-tls`;
/** Every name a client may reach an instance by: the two Services and each pod (standbys stream by it). */
export const pgServerNames = (c: Pick<PgCluster, 'name' | 'app'>) =>
  serviceDnsNames(c.app.metadata.namespace ?? '', [pgWriteService(c), pgReadService(c)], pgHeadless(c));
export const pgPrimary = (c: PgCluster) => c.facts.primary ?? `${c.name}-0`;

const meta = (c: PgCluster, name: string) => ({
  name,
  namespace: c.app.metadata.namespace,
  labels: c.labels,
});

export function pgCredentialsSecret(
  app: ScalableApp,
  name: string,
  labels: Record<string, string>,
  credentials: DatabaseCredentials | undefined,
): V1Secret & Child {
  if (!credentials) throw new Error(`${name}: credentials not generated: the controller must provide them`);
  const login = credentials.appLogin;
  const servers = credentials.servers;
  return secretWith({ name, namespace: app.metadata.namespace, labels }, 'Opaque', {
    [f.superuserPassword]: credentials.superuser,
    [f.replicationPassword]: credentials.replication,
    [f.appPassword]: credentials.app,
    [f.monitorPassword]: credentials.monitor,
    // The record of a rotation (ADR 0025), once there has been one.
    ...(login
      ? {
          [APP_LOGIN_KEYS.login]: login.name,
          [APP_LOGIN_KEYS.password]: login.password,
          ...(login.retiring ? { [APP_LOGIN_KEYS.retiring]: login.retiring } : {}),
        }
      : {}),
    // What the servers' own roles have (ADR 0028), once recorded.
    ...(servers
      ? {
          [SERVER_PASSWORD_KEYS.superuser]: servers.superuser,
          [SERVER_PASSWORD_KEYS.replication]: servers.replication,
          ...(servers.previousSuperuser
            ? { [SERVER_PASSWORD_KEYS.previousSuperuser]: servers.previousSuperuser }
            : {}),
        }
      : {}),
  });
}

/**
 * The superuser's passwords the operator logs in with, the likeliest first: the one the servers
 * were given (ADR 0028), the one the Secret asks for (given, but the record not yet written), and
 * the one before the last change (an instance that never got it).
 */
export function superuserPasswords(c: DatabaseCredentials): [string, ...string[]] {
  const s = c.servers;
  const [first, ...rest] = new Set([
    s?.superuser ?? c.superuser,
    c.superuser,
    s?.previousSuperuser ?? c.superuser,
  ]);
  return [first!, ...rest];
}

/** The login the app's URLs name, and its password there (ADR 0025). */
export const appLoginOf = (c: DatabaseCredentials): AppLoginRecord =>
  c.appLogin ?? { name: APP_USER, password: c.app };

/** The data directory the pods' image and start script use (PGDATA). */
const PG_DATA_DIR = '/var/lib/postgresql/data/pgdata';
/** What the archiving builders need of a cluster (postgres-backup.ts). */
const archiving = (c: PgCluster) => ({
  app: c.app,
  name: c.name,
  backup: c.spec.backup,
  port: PG_PORT,
  dataDir: PG_DATA_DIR,
});
/** Where an instance keeps its data, as its base backups reach it (postgres-base-backup.ts). */
const LAYOUT: InstanceLayout = {
  dataDir: PG_DATA_DIR,
  dataMount: '/var/lib/postgresql/data',
  port: PG_PORT,
  uid: POSTGRES_UID,
};

export function pgConfigMap(c: PgCluster): V1ConfigMap & Child {
  const last = c.facts.lastFailover;
  const tls = c.spec.tls.enabled;
  const hba = { appUsers: APP_LOGINS, appDatabase: APP_DATABASE, monitor: monitored(c.app), tls };
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      ...meta(c, pgConfigName(c)),
      // The record of the last failover lives beside the primary's, so status can always tell it.
      ...(last
        ? { annotations: { [LAST_FAILOVER_TIME]: last.time, [LAST_FAILOVER_REASON]: last.reason } }
        : {}),
    },
    data: {
      'postgresql.conf': postgresConfig({
        port: PG_PORT,
        maxWalSenders: 10,
        // ANY k over every instance's name: the primary never connects as a standby, so listing it
        // is harmless, and the text (and the pods) need not change when the primary moves.
        synchronousStandbyNames: synchronousStandbyNames(c.spec.synchronousReplicas, pgInstanceNames(c)),
        ...(tls ? { tls: { certFile: SERVER_TLS_FILES.cert, keyFile: SERVER_TLS_FILES.key } } : {}),
        ...backupArchiveSettings(archiving(c)),
      }),
      'pg_hba.conf': hbaConfig({ ...hba, cidr: '0.0.0.0/0' }),
      [FENCED_HBA_FILE]: hbaConfig({ ...hba, cidr: '0.0.0.0/0', fenced: true }),
      ...(monitored(c.app) ? { [EXPORTER_QUERIES_KEY]: POSTGRES_EXPORTER_QUERIES } : {}),
      'start.sh': instanceStartScript({ appUser: APP_USER, appDatabase: APP_DATABASE }),
      'ready.sh': instanceReadyScript(),
      ...backupFiles(archiving(c)),
      ...backupServerFiles(c, LAYOUT),
      primary: pgPrimary(c),
    },
  };
}

/** Restart the servers when their configuration changes, but not when only the primary moves. */
export function pgConfigHash(c: PgCluster): string {
  const { primary: _p, ...rest } = pgConfigMap(c).data ?? {};
  return contentHash(rest);
}

export function pgStatefulSet(c: PgCluster): V1StatefulSet & Child {
  const spread = zoneSpread(c.app, c.selector);
  const base = restrictedPodBase();
  const exporter = postgresExporter(c.app, {
    port: PG_PORT,
    credentialsSecret: c.credentialsName,
    passwordKey: f.monitorPassword,
    monitorUser: DEFAULT_MONITOR_USER,
    queriesPath: `/config/${EXPORTER_QUERIES_KEY}`,
    tls: c.spec.tls.enabled,
  });
  const tls = c.spec.tls.enabled;
  const tlsFiles = serverTlsVolume(pgTlsSecretName(c));
  const backupCa = backupCaVolume(archiving(c));
  const backupServer = backupServerSidecar(c, {
    dataVolume: 'data',
    dataMount: LAYOUT.dataMount,
    runVolume: 'run',
    configVolume: 'config',
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(c, c.name),
    spec: {
      replicas: 1 + c.spec.replicas,
      serviceName: pgHeadless(c),
      podManagementPolicy: 'OrderedReady',
      selector: { matchLabels: c.selector },
      // Data is precious: claims outlive the StatefulSet unless the user chose Delete.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: c.spec.deletionPolicy, whenScaled: 'Retain' },
      template: {
        metadata: {
          labels: c.labels,
          annotations: {
            [ANNOTATION.configHash]: pgConfigHash(c),
            ...scrapeAnnotations(c.app, METRICS_PORT.postgres),
          },
        },
        spec: {
          ...base,
          securityContext: {
            ...base.securityContext,
            runAsUser: POSTGRES_UID,
            runAsGroup: POSTGRES_UID,
            fsGroup: POSTGRES_UID,
            // By default the kubelet makes every file on the volume group-writable at each new pod's
            // mount, the data directory too, and postgres refuses to start on a group-writable one:
            // a pod replaced after a rolling update or a failover (not one whose container restarts)
            // would crash-loop. Once the volume's root has our group, it is left alone.
            fsGroupChangePolicy: 'OnRootMismatch',
          },
          // A primary needs time to checkpoint cleanly on shutdown.
          terminationGracePeriodSeconds: 60,
          containers: [
            {
              name: PG_CONTAINER,
              image: postgresImage(c.spec),
              command: ['sh', '/config/start.sh'],
              env: [
                { name: 'PGDATA', value: PG_DATA_DIR },
                { name: 'PGPORT', value: String(PG_PORT) },
                { name: 'INSTANCE_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                // Read when the container starts: a pod that was primary and restarts after a
                // failover starts as a standby of the new one (pg_rewind), never as a second primary.
                {
                  name: 'PRIMARY_NAME',
                  valueFrom: { configMapKeyRef: { name: pgConfigName(c), key: 'primary' } },
                },
                { name: 'PRIMARY_HOST', value: pgInstanceHost(c, '$(PRIMARY_NAME)') },
                { name: 'PRIMARY_PORT', value: String(PG_PORT) },
                { name: 'CREDENTIALS_DIR', value: '/credentials' },
                { name: 'CONFIG_DIR', value: '/config' },
                ...(selfFencing(c)
                  ? [{ name: 'FENCE_AFTER_SECONDS', value: String(FENCE_AFTER_SECONDS) }]
                  : []),
                // start.sh verifies the primary against the CA; ready.sh reloads a renewed certificate.
                ...(tls
                  ? [
                      { name: 'TLS_CA_FILE', value: SERVER_TLS_FILES.ca },
                      { name: 'TLS_CERT_FILE', value: SERVER_TLS_FILES.cert },
                    ]
                  : []),
                ...backupEnv(archiving(c)),
              ],
              ports: [{ name: 'postgres', containerPort: PG_PORT, protocol: 'TCP' }],
              resources: resourceRequirements(c.spec.resources),
              // Starting may take long: initdb, a clone of the primary (as long as the database is
              // large), a rewind, crash recovery. Until postgres accepts connections only the startup
              // probe runs, for up to an hour; liveness would kill a clone part-way and start it over.
              startupProbe: { ...PG_READY, periodSeconds: 5, failureThreshold: 720 },
              // Ready: accepting connections and, on a primary, not fenced (ready.sh). Up to 3 s:
              // the script asks the server a question or two beside pg_isready.
              readinessProbe: {
                exec: { command: ['sh', '/config/ready.sh'] },
                periodSeconds: READY_PERIOD_SECONDS,
                timeoutSeconds: 3,
              },
              // A hung server is restarted within a minute, as before, with half the checks:
              // each exec costs the node about 0.09 CPU-s (runc), hundreds of times a TCP connect
              // (bench/pg-probe-cost.ts), and a TCP connect passes on a stopped server (the kernel
              // completes it). A slow exec on a loaded node gets 10 s, not 1.
              livenessProbe: { ...PG_READY, periodSeconds: 20, timeoutSeconds: 10, failureThreshold: 3 },
              securityContext: restrictedContainerSecurity(),
              volumeMounts: [
                { name: 'data', mountPath: '/var/lib/postgresql/data' },
                { name: 'config', mountPath: '/config', readOnly: true },
                { name: 'credentials', mountPath: '/credentials', readOnly: true },
                { name: 'run', mountPath: PG_RUN_DIR },
                ...(tls ? [tlsFiles.mount] : []),
                ...backupCa.mounts,
                tmpMount,
              ],
            },
            // After the server: the failover logic and its tests read the first container's state.
            ...exporter.containers,
            ...backupServer.containers,
          ],
          volumes: [
            { name: 'config', configMap: { name: pgConfigName(c) } },
            { name: 'credentials', secret: { secretName: c.credentialsName, defaultMode: 0o400 } },
            { name: 'run', emptyDir: {} },
            ...(tls ? [tlsFiles.volume] : []),
            ...backupCa.volumes,
            ...backupServer.volumes,
            tmpVolume,
            ...exporter.volumes,
          ],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels: c.labels },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(c.spec.storage.storageClassName ? { storageClassName: c.spec.storage.storageClassName } : {}),
            resources: { requests: { storage: String(c.spec.storage.size) } },
          },
        },
      ],
    },
  };
}

/** The server's readiness (a failing exporter beside it does not take a standby out of reads). */
const ready = (p: V1Pod) => isContainerReady(p, PG_CONTAINER);

/**
 * The read-only Service has no selector: the operator publishes its endpoints — the ready replicas,
 * or the primary when no replica is ready — so the app's read URL never points at nothing.
 */
export function pgReadEndpoints(c: PgCluster): Child {
  const primary = pgPrimary(c);
  const pods = (c.facts.pods ?? []).filter((p) => ready(p) && p.status?.podIP);
  const replicas = pods.filter((p) => p.metadata?.name !== primary);
  const chosen = replicas.length ? replicas : pods.filter((p) => p.metadata?.name === primary);
  const name = pgReadService(c);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      ...meta(c, name),
      labels: {
        ...c.labels,
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
        targetRef: { kind: 'Pod', name: p.metadata!.name!, namespace: c.app.metadata.namespace },
        ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
      }))
      .sort((a, b) => a.targetRef.name.localeCompare(b.targetRef.name)),
  };
}

/** Everything one cluster runs on except its credentials Secret (which shards share). */
export function pgClusterObjects(c: PgCluster): Child[] {
  const port = { name: 'postgres', port: PG_PORT };
  const svc = (name: string, select: 'headless' | 'primary' | 'none') =>
    dataTierService(c.app, c.component, name, select, port, { labels: c.labels, selector: c.selector });
  return [
    ...(c.spec.tls.enabled ? [serverTlsSecret(c.app, pgTlsSecretName(c), c.labels, c.tls)] : []),
    pgConfigMap(c),
    svc(pgHeadless(c), 'headless'),
    svc(pgWriteService(c), 'primary'),
    svc(pgReadService(c), 'none'),
    pgReadEndpoints(c),
    pgStatefulSet(c),
    disruptionBudget(c.app, c.component, c.name, { labels: c.labels, selector: c.selector }),
    ...baseBackupObjects(c, LAYOUT),
  ];
}

/**
 * A postgresql:// URL for the app's login (appLoginOf); the password is URL-encoded. With TLS it
 * asks libpq (and node-postgres, which reads the same parameters) to verify the server's
 * certificate and name against the app's CA, mounted in the app's pods at `caFile`.
 */
export function pgUrl(app: ScalableApp, service: string, login: AppLoginRecord, caFile?: string): string {
  const pw = encodeURIComponent(login.password);
  const tls = caFile ? `?sslmode=verify-full&sslrootcert=${caFile}` : '';
  return `postgresql://${login.name}:${pw}@${service}.${app.metadata.namespace}.svc:${PG_PORT}/${APP_DATABASE}${tls}`;
}
