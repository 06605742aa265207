// Base backups of one Postgres cluster (spec.database.backup, spec.shards.backup; ADR 0029): a Job
// runs `pgbackrest backup` where no instance is, and reaches every instance's data directory and
// database through pgBackRest's TLS server, a sidecar of each instance. The server admits one client
// name, whose certificate (from the app's CA) only the backup Jobs mount; the NetworkPolicy admits
// only the backup Jobs' pods to its port. The operator needs no exec into a pod.
import type { V1ConfigMap, V1Container, V1Job, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { postgresImage } from '../api/database.ts';
import { PG_RUN_DIR } from '../server-config/postgres.ts';
import { backupHostConfig, backupJobScript, pgBackRestServerConfig } from '../server-config/pgbackrest.ts';
import { selectorLabels, tierLabels } from './labels.ts';
import { restrictedContainerSecurity, restrictedPodBase, tmpMount, tmpVolume } from './pod-security.ts';
import { contentHash } from './content-hash.ts';
import { serverTlsSecret, serviceDnsNames, TLS_KEYS } from './tls.ts';
import { pgHeadless, pgInstanceHost, pgInstanceNames } from './postgres-instances.ts';
import { backupCaVolume, backupEnv, backupRepository, BACKUP_CONFIG_DIR } from './postgres-backup.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { PostgresBackup } from '../api/backup.ts';
import type { BackupFacts, Child, TlsFacts } from './objects.ts';
import { scheduledRequest } from '../api/backup-schedule.ts';

/**
 * What base backups need of a Postgres cluster (postgres-cluster.ts's PgCluster has it all; declared
 * here so that module can build its sidecar from this one).
 */
export interface BackupCluster {
  readonly app: ScalableApp;
  /** The StatefulSet's name: the stanza, and the start of every backup object's name. */
  readonly name: string;
  readonly component: string;
  readonly labels: Record<string, string>;
  readonly spec: {
    readonly version: string;
    readonly image?: string | undefined;
    readonly replicas: number;
    readonly backup?: PostgresBackup | undefined;
  };
  readonly facts: { readonly backups?: BackupFacts | undefined };
  readonly tls?: TlsFacts | undefined;
}

/**
 * Annotation on a ScalableApp asking for a full backup of every cluster that archives (the database,
 * each shard). Its value is the request's name (any text: a date, a ticket): a new value is a new
 * backup, the same value stays one. A request made while a cluster's backup runs waits for it.
 */
export const BACKUP_REQUEST_ANNOTATION = 'scalableapp.io/backup-request';

/** pgBackRest's TLS server port (its default). */
export const BACKUP_SERVER_PORT = 8432;
/** The sidecar beside each instance. */
export const BACKUP_SERVER_CONTAINER = 'pgbackrest';
/**
 * The name in the backup's client certificate, which every instance's server admits: one per app's
 * CA, so a fixed name (the CA is the app's own; another app's backup holds another CA's certificate).
 */
export const BACKUP_CLIENT_NAME = 'scalableapp-backup';
/** The ConfigMap key of the server's configuration (in the cluster's ConfigMap, at /config). */
export const BACKUP_SERVER_CONFIG_KEY = 'pgbackrest-server.conf';

const SERVER_TLS_DIR = '/backup-tls';
const CLIENT_TLS_DIR = '/backup-client';
const JOB_DIR = '/job';
const JOB_FILES = { config: 'pgbackrest.conf', script: 'backup.sh' } as const;
/** The data directory and the instance's port, as the instances run them (postgres-cluster.ts). */
export interface InstanceLayout {
  readonly dataDir: string;
  readonly dataMount: string;
  readonly port: number;
  /** The instances' user: the Job runs as it too (pgBackRest wants the files' owner's id). */
  readonly uid: number;
}
/** pgBackRest's locks and logs: the pod's /tmp (an emptyDir), never a volume that outlives it. */
const WORK = { lockDir: '/tmp/pgbackrest/lock', logDir: '/tmp/pgbackrest/log' };

/** The component label of a cluster's backup Jobs' pods, which its servers admit. */
export const backupComponent = (c: Pick<BackupCluster, 'component'>) => `${c.component}-backup`;
export const backupServerTlsSecretName = (c: Pick<BackupCluster, 'name'>) => `${c.name}-backup-tls`;
/** One per cluster (each shard's Job mounts its own), all with the same name in them. */
export const backupClientSecretName = (c: Pick<BackupCluster, 'name'>) => `${c.name}-backup-client`;
export const backupJobConfigName = (c: Pick<BackupCluster, 'name'>) => `${c.name}-backup-job`;
/** A request's Job: its name follows from the request, so the same request is one Job. */
export const backupJobName = (c: Pick<BackupCluster, 'name'>, request: string) =>
  `${c.name}-backup-${contentHash(request).slice(0, 8)}`;

/** The certificates base backups need: each cluster's server's, for its pods' names, and the client's. */
export function backupCertificateRequests(
  c: BackupCluster,
): { secret: string; dnsNames: string[]; use?: { clientAuth: boolean } }[] {
  if (!c.spec.backup) return [];
  return [
    {
      // Each instance's pod name: the Job reaches every server by it (backupJobConfigMap).
      secret: backupServerTlsSecretName(c),
      dnsNames: serviceDnsNames(c.app.metadata.namespace ?? '', [], pgHeadless(c)),
    },
    { secret: backupClientSecretName(c), dnsNames: [BACKUP_CLIENT_NAME], use: { clientAuth: true } },
  ];
}

/** The server's configuration (ConfigMap key BACKUP_SERVER_CONFIG_KEY), none without backup. */
export function backupServerFiles(c: BackupCluster, layout: InstanceLayout): Record<string, string> {
  if (!c.spec.backup) return {};
  return {
    [BACKUP_SERVER_CONFIG_KEY]: pgBackRestServerConfig({
      stanza: c.name,
      dataDir: layout.dataDir,
      socketDir: PG_RUN_DIR,
      port: layout.port,
      // Every address of the pod: the Job reaches it by the pod's DNS name.
      listen: { address: '0.0.0.0', port: BACKUP_SERVER_PORT },
      tls: {
        certFile: `${SERVER_TLS_DIR}/${TLS_KEYS.cert}`,
        keyFile: `${SERVER_TLS_DIR}/${TLS_KEYS.key}`,
        caFile: `${SERVER_TLS_DIR}/${TLS_KEYS.ca}`,
      },
      clientName: BACKUP_CLIENT_NAME,
      ...WORK,
    }),
  };
}

/**
 * The sidecar serving the instance's files and database to the backup Job: the data volume read
 * only, the socket directory (it connects as the postgres user over the socket, pg_hba's peer line).
 */
export function backupServerSidecar(
  c: BackupCluster,
  o: { dataVolume: string; dataMount: string; runVolume: string; configVolume: string },
): { containers: V1Container[]; volumes: V1Volume[] } {
  if (!c.spec.backup) return { containers: [], volumes: [] };
  return {
    containers: [
      {
        name: BACKUP_SERVER_CONTAINER,
        image: postgresImage(c.spec),
        command: ['pgbackrest', `--config=${BACKUP_CONFIG_DIR}/${BACKUP_SERVER_CONFIG_KEY}`, 'server'],
        ports: [{ name: 'pgbackrest', containerPort: BACKUP_SERVER_PORT, protocol: 'TCP' }],
        // Idle between backups; a backup's file copies run in processes it forks.
        resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '256Mi' } },
        securityContext: restrictedContainerSecurity(),
        volumeMounts: [
          { name: o.dataVolume, mountPath: o.dataMount, readOnly: true },
          { name: o.configVolume, mountPath: BACKUP_CONFIG_DIR, readOnly: true },
          { name: o.runVolume, mountPath: PG_RUN_DIR },
          { name: 'backup-tls', mountPath: SERVER_TLS_DIR, readOnly: true },
          tmpMount,
        ],
      },
    ],
    volumes: [
      { name: 'backup-tls', secret: { secretName: backupServerTlsSecretName(c), defaultMode: 0o440 } },
    ],
  };
}

/** The Job's configuration (its own ConfigMap: the instances do not restart when it changes). */
export function backupJobConfigMap(c: BackupCluster, layout: InstanceLayout): (V1ConfigMap & Child)[] {
  const b = c.spec.backup;
  if (!b) return [];
  return [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: backupJobConfigName(c), namespace: c.app.metadata.namespace, labels: c.labels },
      data: {
        [JOB_FILES.config]: backupHostConfig({
          stanza: c.name,
          repository: backupRepository(c.app, b),
          hosts: pgInstanceNames(c).map((name) => ({
            host: pgInstanceHost(c, name),
            serverPort: BACKUP_SERVER_PORT,
            serverConfig: `${BACKUP_CONFIG_DIR}/${BACKUP_SERVER_CONFIG_KEY}`,
            dataDir: layout.dataDir,
            socketDir: PG_RUN_DIR,
            port: layout.port,
          })),
          client: {
            certFile: `${CLIENT_TLS_DIR}/${TLS_KEYS.cert}`,
            keyFile: `${CLIENT_TLS_DIR}/${TLS_KEYS.key}`,
            caFile: `${CLIENT_TLS_DIR}/${TLS_KEYS.ca}`,
          },
          // The bulk of the files from a standby when there is one (the script falls back).
          fromStandby: c.spec.replicas > 0,
          retainFull: b.retention.fullBackups,
          compression: b.compression,
          processMax: 2,
          ...WORK,
        }),
        [JOB_FILES.script]: backupJobScript({
          configFile: `${JOB_DIR}/${JOB_FILES.config}`,
          stanza: c.name,
          // The container's termination message: what the status reads (controller/backups.ts).
          reportFile: '/dev/termination-log',
          scratchDir: '/tmp',
          ...WORK,
        }),
      },
    },
  ];
}

/** The client certificate's Secret: mounted by the backup Jobs alone. */
export function backupClientSecret(c: BackupCluster): Child[] {
  if (!c.spec.backup) return [];
  return [serverTlsSecret(c.app, backupClientSecretName(c), c.labels, c.tls)];
}

/** The server certificate's Secret of one cluster. */
export function backupServerSecret(c: BackupCluster): Child[] {
  if (!c.spec.backup) return [];
  return [serverTlsSecret(c.app, backupServerTlsSecretName(c), c.labels, c.tls)];
}

/** The requests the cluster answers now: the annotation's, then the schedule's. None without backup. */
export function backupRequests(c: BackupCluster): string[] {
  if (!c.spec.backup) return [];
  const asked = [c.app.metadata.annotations?.[BACKUP_REQUEST_ANNOTATION], c.facts.backups?.scheduled];
  return [...new Set(asked.filter((r) => r !== undefined))];
}

/**
 * The requests whose Jobs the cluster wants: a Job that runs (whatever asked for it: it ends by
 * itself), a Job of a request still asked for (kept: created once, its result stays readable), and,
 * when none runs, the first request asked for that has no Job yet. One backup at a time, then: a
 * request made while another runs waits for it. A Job of a request no longer asked for goes once it
 * has ended; the status keeps what it found (controller/backups.ts).
 */
export function wantedBackupRequests(c: BackupCluster): string[] {
  const asked = backupRequests(c);
  const jobs = c.facts.backups?.jobs ?? [];
  const running = jobs.filter((j) => j.running).map((j) => j.request);
  const kept = jobs.filter((j) => !j.running && asked.includes(j.request)).map((j) => j.request);
  const next = running.length ? undefined : asked.find((r) => !jobs.some((j) => j.request === r));
  return [...new Set([...running, ...kept, ...(next === undefined ? [] : [next])])];
}

/** The Jobs the cluster wants (wantedBackupRequests). */
export function backupJobs(c: BackupCluster, layout: InstanceLayout): (V1Job & Child)[] {
  const b = c.spec.backup;
  if (!b) return [];
  return wantedBackupRequests(c).map((request) => backupJob(c, b, layout, request));
}

/** The Job of one request. */
function backupJob(
  c: BackupCluster,
  b: PostgresBackup,
  layout: InstanceLayout,
  request: string,
): V1Job & Child {
  const component = backupComponent(c);
  const labels = { ...tierLabels(c.app, component), [CLUSTER_LABEL]: c.name };
  const ca = backupCaVolume({ backup: b });
  const base = restrictedPodBase();
  const mounts: V1VolumeMount[] = [
    { name: 'job', mountPath: JOB_DIR, readOnly: true },
    { name: 'client-tls', mountPath: CLIENT_TLS_DIR, readOnly: true },
    ...ca.mounts,
    tmpMount,
  ];
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: backupJobName(c, request),
      namespace: c.app.metadata.namespace,
      labels,
      annotations: { [BACKUP_REQUEST_ANNOTATION]: request },
    },
    spec: {
      // A failed backup is reported, not retried behind the user's back: a new request retries.
      backoffLimit: 0,
      // A backup that hangs (a server gone mid-copy) ends within a day and says so.
      activeDeadlineSeconds: 24 * 3600,
      template: {
        metadata: { labels: { ...labels, ...selectorLabels(c.app, component) } },
        spec: {
          ...base,
          securityContext: {
            ...base.securityContext,
            runAsUser: layout.uid,
            runAsGroup: layout.uid,
            fsGroup: layout.uid,
          },
          restartPolicy: 'Never',
          containers: [
            {
              name: 'backup',
              image: postgresImage(c.spec),
              command: ['sh', `${JOB_DIR}/${JOB_FILES.script}`],
              env: backupEnv({ backup: b }),
              resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '512Mi' } },
              securityContext: restrictedContainerSecurity(),
              volumeMounts: mounts,
            },
          ],
          volumes: [
            { name: 'job', configMap: { name: backupJobConfigName(c) } },
            { name: 'client-tls', secret: { secretName: backupClientSecretName(c), defaultMode: 0o440 } },
            ...ca.volumes,
            tmpVolume,
          ],
        },
      },
    },
  };
}

/** On a backup Job and its pods: the cluster it backs up. */
export const CLUSTER_LABEL = 'scalableapp.io/cluster';

/** Cached children of one kind in a namespace with every label given (controller/children.ts). */
export interface SelectChildren {
  select(kind: string, namespace: string, labels: Record<string, string>): readonly unknown[];
}

/** A cluster's backup Jobs that exist now, whichever request each answers. */
export const backupJobsOf = (
  c: Pick<BackupCluster, 'app' | 'name' | 'component'>,
  children: SelectChildren,
) =>
  children.select('Job', c.app.metadata.namespace ?? '', {
    ...selectorLabels(c.app, backupComponent(c)),
    [CLUSTER_LABEL]: c.name,
  }) as V1Job[];

/** Whether a Job has ended with a condition of one of `types` that is True. */
export const jobEnded = (j: V1Job, ...types: readonly ('Complete' | 'Failed')[]) =>
  (j.status?.conditions ?? []).some(
    (c) => c.status === 'True' && (types as readonly string[]).includes(c.type),
  );

/** What a cluster's backups need of the cluster (its Jobs) and of the clock (the schedule's request). */
export function backupFacts(c: BackupCluster, children: SelectChildren, now: Date): BackupFacts {
  const jobs = backupJobsOf(c, children).flatMap((j) => {
    const request = j.metadata?.annotations?.[BACKUP_REQUEST_ANNOTATION];
    return request === undefined ? [] : [{ request, running: !jobEnded(j, 'Complete', 'Failed') }];
  });
  const schedule = c.spec.backup?.schedule;
  const scheduled = schedule === undefined ? undefined : scheduledRequest(schedule, now).request;
  return { jobs, ...(scheduled === undefined ? {} : { scheduled }) };
}

/** Everything base backups add to one cluster besides its sidecar and its server's configuration. */
export const baseBackupObjects = (c: BackupCluster, layout: InstanceLayout): Child[] => [
  ...backupServerSecret(c),
  ...backupClientSecret(c),
  ...backupJobConfigMap(c, layout),
  ...backupJobs(c, layout),
];
