import { z } from 'zod';
import { doc, type CelRule } from './meta.ts';
import { image, resources, storage, tlsSetting, type ResourceDefaults, allowedClients } from './common.ts';
import { checkBackup, postgresBackup, walQueueRule } from './backup.ts';

export const DELETION_POLICIES = ['Retain', 'Delete'] as const;

export const POSTGRES_RESOURCES: ResourceDefaults = {
  requests: { cpu: '250m', memory: '512Mi' },
  limits: { memory: '1Gi' },
  memoryFloor: { min: '128Mi', server: 'Postgres' },
};

/**
 * An image whose tag names a Postgres major (postgres:16, registry/pg:16.4-bookworm) must name
 * `version`: a data directory of one major does not start under another, and a major upgrade is a
 * migration, not an image change. Tags without a leading number are the user's to vouch for.
 * Refused by the schema (the operator says InvalidSpec) and the charts, not by CEL at admission: a
 * regex built from the version over a 512-character image is 16 times the apiserver's cost budget.
 */
export const IMAGE_MAJOR_MESSAGE =
  "image's tag names another Postgres major than version: a data directory of one major does not start under another";
const TAG_TAIL = '([.-][^/:@]*)?(@.*)?$';
export const imageNamesOtherMajor = (image: string | undefined, version: string) =>
  !!image &&
  new RegExp(`:[0-9]+${TAG_TAIL}`).test(image) &&
  !new RegExp(`:${version}${TAG_TAIL}`).test(image);

/** The image a Postgres cluster runs: the override, else the official image of its major. */
export const postgresImage = (s: { readonly image?: string; readonly version: string }) =>
  s.image ?? `postgres:${s.version}`;

/** Instances of one Postgres cluster (the database tier, and each shard). Shared so shards reuse it. */
export const postgresInstances = {
  version: doc(
    z.string().regex(/^(14|15|16|17|18)$/),
    'Postgres major version (14–18). Fixed after creation: a major upgrade needs a migration.',
  ).default('17'),
  image: image(
    'Override of the Postgres image; the official `postgres:<version>` image when omitted. A tag that names a major (16, 16.4-bookworm) must name `version`.',
  ).optional(),
  resources: resources('CPU and memory for each Postgres container.', POSTGRES_RESOURCES),
  tls: tlsSetting(
    "Serve TLS only: the servers refuse plaintext TCP connections, replication runs over TLS, and the app's URLs ask for sslmode=verify-full against the app's CA (ConfigMap <app>-ca-cert, mounted in the web and consumer pods). false serves plaintext only.",
  ),
  deletionPolicy: doc(
    z.enum(DELETION_POLICIES),
    'What happens to the volumes when the ScalableApp is deleted: Retain keeps them (default), Delete removes them. Removing the tier from the spec with Delete is held back until the app is annotated scalableapp.io/confirm-volume-deletion=<statefulset>.',
  ).default('Retain'),
  backup: postgresBackup.optional(),
};

/**
 * Whether and when the operator promotes a standby of one Postgres cluster (the database tier, and
 * each shard) whose primary is lost. Shared so both tiers take the same settings with one meaning.
 */
export const postgresFailover = (description: string) =>
  doc(
    z.object({
      enabled: doc(z.boolean(), 'Promote a replica when the primary is lost.').default(true),
      delaySeconds: doc(
        z.number().int().min(0).max(3600),
        'How long the primary may be gone or unready before failover starts.',
      ).default(5),
    }),
    description,
  ).default({ enabled: true, delaySeconds: 5 });

/**
 * The CEL rule that keeps `synchronousReplicas` within a cluster's standbys (`replicasField`: the
 * database's replicas, a shard's replicasPerShard), and the schema's check of it, so the operator
 * refuses such a spec (InvalidSpec) as the apiserver does: ANY k of fewer standbys never returns.
 */
export const synchronousReplicasRule = (replicasField: string): CelRule => ({
  rule: `self.synchronousReplicas <= self.${replicasField}`,
  message: `synchronousReplicas must be <= ${replicasField}`,
  fieldPath: '.synchronousReplicas',
});
export function checkSynchronousReplicas(
  synchronousReplicas: number,
  replicas: number,
  replicasField: string,
  ctx: z.RefinementCtx,
): void {
  if (synchronousReplicas > replicas)
    ctx.addIssue({
      code: 'custom',
      path: ['synchronousReplicas'],
      message: synchronousReplicasRule(replicasField).message,
    });
}

export const database = doc(
  z.object({
    ...postgresInstances,
    replicas: doc(z.number().int().min(0).max(9), 'Streaming read replicas besides the primary.').default(2),
    storage: storage('database', '10Gi').default({ size: '10Gi' }),
    allowedClients: allowedClients('database', 'port 5432'),
    synchronousReplicas: doc(
      z.number().int().min(0).max(9),
      'Commits wait for ANY n replicas (synchronous_standby_names = ANY n (...)); 0 = asynchronous. With n >= 1 of N standbys a failover promotes only when at least N - n + 1 standbys answer (one of them then holds every acknowledged commit) and refuses otherwise, so no acknowledged commit is lost.',
    ).default(0),
    failover: postgresFailover('Operator-driven failover.'),
  }),
  'The database tier: a Postgres primary with streaming read replicas, a read-write and a read-only Service, and failover.',
  {
    cel: [
      synchronousReplicasRule('replicas'),
      walQueueRule,
      {
        rule: 'self.version == oldSelf.version',
        message: 'version is immutable: a Postgres major upgrade needs a migration',
        fieldPath: '.version',
        reason: 'FieldValueForbidden',
      },
    ],
  },
).superRefine((d, ctx) => {
  checkSynchronousReplicas(d.synchronousReplicas, d.replicas, 'replicas', ctx);
  checkBackup(d.backup, d.storage.size, ctx);
  if (imageNamesOtherMajor(d.image, d.version))
    ctx.addIssue({ code: 'custom', path: ['image'], message: IMAGE_MAJOR_MESSAGE });
});
