import { z } from 'zod';
import { doc, type CelRule } from './meta.ts';
import { quantity, secretKeySelector } from './common.ts';
import { compareQuantities, quantityFraction } from './quantity.ts';
import { BACKUP_COMPRESSIONS } from '../server-config/pgbackrest.ts';
import { scheduleProblem } from './backup-schedule.ts';

/**
 * pgBackRest checks a certificate against a name, never an address (2.45): a host name only. Its
 * last label starts with a letter (no top-level domain is numeric), which is what keeps an IPv4
 * address out, in a pattern the apiserver's regular expressions (RE2, no lookahead) can say too.
 */
const HOST_NAME =
  /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export const s3Repository = doc(
  z.object({
    endpoint: doc(
      z.string().min(1).max(253).regex(HOST_NAME),
      "The object store's host name, e.g. s3.eu-west-1.amazonaws.com or minio.storage.svc. A name, not an address: its TLS certificate must name it.",
    ),
    port: doc(z.number().int().min(1).max(65535), "The store's HTTPS port, as pgBackRest dials it.").default(
      443,
    ),
    egressPort: doc(
      z.number().int().min(1).max(65535),
      "The port the instances' NetworkPolicy admits egress to, when it is not `port`: for a store that is a Service in the cluster whose targetPort differs, its pods' port (a policy sees the connection after the Service's translation).",
    ).optional(),
    bucket: doc(
      z
        .string()
        .min(3)
        .max(63)
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
      'The bucket, which must exist.',
    ),
    region: doc(
      z
        .string()
        .min(1)
        .max(32)
        .regex(/^[a-z0-9-]+$/),
      "The bucket's region (self-hosted stores take any).",
    ).default('us-east-1'),
    path: doc(
      z
        .string()
        .min(1)
        .max(512)
        .regex(/^(\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+$/),
      'The directory in the bucket that holds this app (no part starting with a dot); each Postgres cluster (the database, each shard) is a stanza named after its StatefulSet under it. Default: /scalableapp/<namespace>/<app>.',
    ).optional(),
    uriStyle: doc(
      z.enum(['path', 'host']),
      'path: https://<endpoint>/<bucket>/… (what self-hosted stores serve); host: https://<bucket>.<endpoint>/… (AWS).',
    ).default('path'),
    accessKeyId: secretKeySelector("The Secret key holding the store's access key id."),
    secretAccessKey: secretKeySelector("The Secret key holding the store's secret access key."),
    ca: secretKeySelector(
      "A Secret key holding the CA bundle (PEM) the store's certificate is checked against; the system's CAs when omitted.",
    ).optional(),
  }),
  'An S3-compatible object store over HTTPS. Egress to its port is admitted from the instances (the NetworkPolicy cannot name a host).',
);

/** The most full backups a repository keeps (backup.retention.fullBackups). */
export const MAX_FULL_BACKUPS = 7;

/**
 * Continuous WAL archiving with pgBackRest (ADR 0029) for one Postgres cluster: shared by the
 * database tier and the shards, each shard archiving as its own stanza.
 */
export const postgresBackup = doc(
  z.object({
    s3: s3Repository,
    rpoSeconds: doc(
      z.number().int().min(60).max(86400),
      'The most time a committed write waits before its segment is archived while archiving works (archive_timeout): the primary closes a segment that has writes in it at least this often (an idle one closes none). Below 60 s a trickle of writes archives a whole 16 MiB segment that often.',
    ).default(300),
    walQueueLimit: quantity(
      "The most WAL that may wait for the store on an instance's volume while archiving fails. Past it pgBackRest drops the oldest waiting segments from the archive (point-in-time recovery has a gap there until the next full backup) instead of filling the volume. Checked before each archive attempt, and an attempt waits up to 80 s on an unreachable store: leave room for this plus a few minutes of peak WAL. At least 16Mi (one segment), at most 1Ti, and below the volume's size.",
      { bytes: true },
    ).default('1Gi'),
    compression: doc(
      z.enum(BACKUP_COMPRESSIONS),
      'How archived WAL and base backups are compressed.',
    ).default('zst'),
    schedule: doc(
      z
        .string()
        .max(100)
        // Five fields of what cron fields are made of (numbers, names, * / , - and cron-parser's
        // ? # L W H): the apiserver refuses the rest; cron-parser then refuses what this cannot
        // judge (a minute of 61, a range backwards), as InvalidSpec naming the field.
        .regex(/^[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4}$/),
      "When to take full backups besides those asked for on the annotation: five cron fields (minute hour day-of-month month day-of-week) in UTC, e.g. `0 3 * * *`. Each time the schedule comes round a backup is asked for; while another backup of the cluster runs it waits for it. The schedule's most recent time is answered at once when it has no backup yet, so setting a schedule starts with a backup, and one missed while the operator was down is taken when it is back (once).",
    ).optional(),
    retention: doc(
      z.object({
        fullBackups: doc(
          z.number().int().min(1).max(MAX_FULL_BACKUPS),
          `How many full backups the repository keeps. Each completed backup expires the older ones past this count, with the archived WAL only they needed; the newest is never expired. At most ${MAX_FULL_BACKUPS}: the backup Job reports the repository's backups in its termination message, which holds 4 KiB.`,
        ).default(2),
      }),
      'What the repository keeps.',
    ).default({ fullBackups: 2 }),
  }),
  'Continuous WAL archiving into an object store with pgBackRest, and full base backups on request (annotation scalableapp.io/backup-request on the app) and on a schedule: every segment the primary writes is pushed by archive_command as it is finished; a promoted standby continues on its new timeline. Changing it restarts the instances (archive_mode is read at start). Recovery into a new app comes in a following release.',
);

export type PostgresBackup = z.infer<typeof postgresBackup>;

/** pgBackRest's smallest archive queue: one WAL segment. */
export const MIN_WAL_QUEUE = '16Mi';
/** pgBackRest's largest (archive-push-queue-max, in MiB, as the config is written). */
export const MAX_WAL_QUEUE = '1Ti';
export const walQueueMessage = `backup.walQueueLimit must be between ${MIN_WAL_QUEUE} and ${MAX_WAL_QUEUE}, and below the volume's size (storage.size)`;

/**
 * The same check in the apiserver, on the database and shards objects (defaults applied first): a
 * spec the operator would refuse is refused at admission.
 */
export const walQueueRule: CelRule = {
  rule:
    `!has(self.backup) || (quantity(string(self.backup.walQueueLimit)).compareTo(quantity('${MIN_WAL_QUEUE}')) >= 0 && ` +
    `quantity(string(self.backup.walQueueLimit)).compareTo(quantity('${MAX_WAL_QUEUE}')) <= 0 && ` +
    'quantity(string(self.backup.walQueueLimit)).compareTo(quantity(string(self.storage.size))) < 0)',
  message: walQueueMessage,
  fieldPath: '.backup.walQueueLimit',
};

/**
 * The archive queue's bound against the cluster's volume: a bound the volume cannot hold never
 * bites, and pg_wal fills the disk first. Refused by the schema (the operator says InvalidSpec),
 * as the image's major is.
 */
export function checkBackup(
  backup: PostgresBackup | undefined,
  storageSize: string | number,
  ctx: z.RefinementCtx,
): void {
  if (!backup) return;
  const schedule = backup.schedule === undefined ? undefined : scheduleProblem(backup.schedule);
  if (schedule)
    ctx.addIssue({
      code: 'custom',
      path: ['backup', 'schedule'],
      message: `backup.schedule is not a cron schedule: ${schedule}`,
    });
  const q = backup.walQueueLimit;
  if (
    compareQuantities(q, MIN_WAL_QUEUE) === -1 ||
    compareQuantities(q, MAX_WAL_QUEUE) === 1 ||
    compareQuantities(q, storageSize) !== -1
  )
    ctx.addIssue({ code: 'custom', path: ['backup', 'walQueueLimit'], message: walQueueMessage });
}

/** A byte quantity in whole MiB, rounded down (pgBackRest's archive-push-queue-max). */
export function mebibytes(q: string | number): number {
  const f = quantityFraction(q);
  if (!f) throw new Error(`not a quantity: ${String(q)}`);
  return Number(f.num / (f.den * 1024n * 1024n));
}
