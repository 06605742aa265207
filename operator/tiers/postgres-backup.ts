// What continuous archiving (spec.database.backup, spec.shards.backup; ADR 0029) adds to one
// Postgres cluster's objects: pgBackRest's config and the archive script in its ConfigMap, the
// archive settings of postgresql.conf, the store's keys as environment variables from the user's
// Secret, and the store's CA. Every instance gets them, so a promoted standby archives on.
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { mebibytes, type PostgresBackup } from '../api/backup.ts';
import { PG_RUN_DIR, type PostgresConfigOptions } from '../server-config/postgres.ts';
import {
  BACKUP_KEY_ENV,
  ARCHIVE_SCRIPT,
  archiveScript,
  type BackupRepository,
  pgBackRestConfig,
  pgBackRestRestoreCommand,
  STANDBY_FETCH_TIMEOUT_SECONDS,
} from '../server-config/pgbackrest.ts';
import type { ScalableApp } from '../api/scalable-app.ts';

/** The ConfigMap's keys, mounted at /config. */
export const BACKUP_FILES = { config: 'pgbackrest.conf', archive: ARCHIVE_SCRIPT } as const;
/** Where the instances (and their backup server) mount the cluster's ConfigMap. */
export const BACKUP_CONFIG_DIR = '/config';
const CONFIG_DIR = BACKUP_CONFIG_DIR;
const CA_DIR = '/backup-ca';
const CA_FILE = `${CA_DIR}/ca.crt`;
/** pgBackRest's locks and logs and the archive script's mark: the pod's own (an emptyDir), never the data volume. */
const WORK_DIR = `${PG_RUN_DIR}/pgbackrest`;
const DIRS = { lockDir: `${WORK_DIR}/lock`, logDir: `${WORK_DIR}/log` };

/** Where an app's clusters archive in the bucket unless the user says: one directory per app. */
export const defaultRepositoryPath = (app: ScalableApp) =>
  `/scalableapp/${app.metadata.namespace}/${app.metadata.name}`;

interface Cluster {
  readonly app: ScalableApp;
  /** The StatefulSet's name: the stanza, so every shard has its own in the same directory. */
  readonly name: string;
  readonly backup?: PostgresBackup | undefined;
  readonly port: number;
  readonly dataDir: string;
}

/** Where a cluster's archive and backups go: the app's directory in the user's bucket. */
export function backupRepository(app: ScalableApp, b: PostgresBackup): BackupRepository {
  const s3 = b.s3;
  return {
    type: 's3',
    endpoint: s3.endpoint,
    port: s3.port,
    bucket: s3.bucket,
    region: s3.region,
    uriStyle: s3.uriStyle,
    ...(s3.ca ? { caFile: CA_FILE } : {}),
    path: s3.path ?? defaultRepositoryPath(app),
  };
}

/** The ConfigMap's files (none without backup). */
export function backupFiles(c: Cluster): Record<string, string> {
  const b = c.backup;
  if (!b) return {};
  return {
    [BACKUP_FILES.config]: pgBackRestConfig({
      stanza: c.name,
      repository: backupRepository(c.app, b),
      dataDir: c.dataDir,
      socketDir: PG_RUN_DIR,
      port: c.port,
      ...DIRS,
      // What expires is the backup Job's business (it runs expire); the same value keeps the files alike.
      retainFull: b.retention.fullBackups,
      compression: b.compression,
      archiveQueueMaxMb: mebibytes(b.walQueueLimit),
      fileLogLevel: 'warn',
    }),
    [BACKUP_FILES.archive]: archiveScript({
      configFile: `${CONFIG_DIR}/${BACKUP_FILES.config}`,
      stanza: c.name,
      stateDir: WORK_DIR,
      ...DIRS,
    }),
  };
}

/** postgresql.conf's archive settings (none without backup). */
export function backupArchiveSettings(c: Cluster): Pick<PostgresConfigOptions, 'archive'> {
  if (!c.backup) return {};
  return {
    archive: {
      archiveCommand: `sh ${CONFIG_DIR}/${BACKUP_FILES.archive} %p`,
      restoreCommand: pgBackRestRestoreCommand({
        configFile: `${CONFIG_DIR}/${BACKUP_FILES.config}`,
        stanza: c.name,
        ioTimeoutSeconds: STANDBY_FETCH_TIMEOUT_SECONDS,
      }),
      timeoutSeconds: c.backup.rpoSeconds,
    },
  };
}

/** The store's keys, from the user's Secret: never in the ConfigMap, the spec or the status. */
export function backupEnv(c: Pick<Cluster, 'backup'>): V1EnvVar[] {
  const s3 = c.backup?.s3;
  if (!s3) return [];
  return [
    { name: BACKUP_KEY_ENV.accessKeyId, valueFrom: { secretKeyRef: s3.accessKeyId } },
    { name: BACKUP_KEY_ENV.secretAccessKey, valueFrom: { secretKeyRef: s3.secretAccessKey } },
  ];
}

/** The store's CA, when the user names one. */
export function backupCaVolume(c: Pick<Cluster, 'backup'>): {
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
} {
  const ca = c.backup?.s3.ca;
  if (!ca) return { volumes: [], mounts: [] };
  return {
    volumes: [
      { name: 'backup-ca', secret: { secretName: ca.name, items: [{ key: ca.key, path: 'ca.crt' }] } },
    ],
    mounts: [{ name: 'backup-ca', mountPath: CA_DIR, readOnly: true }],
  };
}
