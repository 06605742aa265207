import { createHash } from 'node:crypto';
import { z } from 'zod';
import { doc } from './meta.ts';
import {
  IMAGE_MAJOR_MESSAGE,
  checkSynchronousReplicas,
  imageNamesOtherMajor,
  postgresFailover,
  postgresInstances,
  synchronousReplicasRule,
} from './database.ts';
import { storage, allowedClients } from './common.ts';
import { checkBackup, walQueueRule } from './backup.ts';

/**
 * What names a hot key's shard (<app>-shard-hot-<digest>): 32 bits of its SHA-256, stable whatever
 * the order of the list. Two keys with one digest would make one shard of two, so the schema refuses
 * them (the operator with InvalidSpec; CEL cannot hash).
 */
export const hotKeyDigest = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 8);

export const shards = doc(
  z.object({
    ...postgresInstances,
    count: doc(z.number().int().min(1).max(64), 'Number of hash shards (besides the dedicated ones).'),
    key: doc(
      z
        .string()
        .min(1)
        .max(63)
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
      'The sharding key the app routes by, e.g. user_id. Fixed after creation.',
    ),
    replicasPerShard: doc(
      z.number().int().min(0).max(5),
      'Streaming replicas of each shard primary.',
    ).default(1),
    synchronousReplicas: doc(
      z.number().int().min(0).max(5),
      'Each shard is its own Postgres cluster, and this applies to each: its commits wait for ANY n of its replicas (synchronous_standby_names = ANY n (...)); 0 = asynchronous. At most replicasPerShard. With n >= 1 of N standbys a shard fails over only when at least N - n + 1 of its standbys answer (one of them then holds every acknowledged commit) and refuses otherwise, so no acknowledged commit is lost.',
    ).default(0),
    failover: postgresFailover(
      "Operator-driven failover of each shard: each shard is its own Postgres cluster, whose lost primary is replaced by one of that shard's replicas, the other shards untouched.",
    ),
    virtualNodes: doc(
      z.number().int().min(1).max(1024),
      'Points per shard on the consistent-hash ring; more points, more even balance.',
    ).default(128),
    storage: storage('shard', '10Gi').default({ size: '10Gi' }),
    allowedClients: allowedClients('shards', 'port 5432'),
    dedicated: doc(
      z
        .array(
          doc(
            z.object({ key: doc(z.string().min(1).max(253), 'The hot key value, e.g. celebrity-42.') }),
            'A hot key that gets a shard of its own.',
          ),
        )
        .max(16),
      'Hot keys (the celebrity problem), each routed to a dedicated shard named by a digest of the key; two keys with one digest are refused.',
      { listType: 'map', listMapKeys: ['key'] },
    )
      .superRefine((list, ctx) => {
        const seen = new Map<string, number>();
        list.forEach(({ key }, i) => {
          const digest = hotKeyDigest(key);
          const first = seen.get(digest);
          if (first !== undefined)
            ctx.addIssue({
              code: 'custom',
              path: [i, 'key'],
              message: `hot keys ${JSON.stringify(list[first]!.key)} and ${JSON.stringify(key)} would share the shard name shard-hot-${digest}: rename one`,
            });
          else seen.set(digest, i);
        });
      })
      .default([]),
  }),
  'Database shards: Postgres clusters selected by a consistent-hash ring over the sharding key.',
  {
    cel: [
      synchronousReplicasRule('replicasPerShard'),
      walQueueRule,
      {
        rule: 'self.key == oldSelf.key',
        message: 'key is immutable: changing the sharding key would move every row',
        fieldPath: '.key',
        reason: 'FieldValueForbidden',
      },
      {
        rule: 'self.version == oldSelf.version',
        message: 'version is immutable: a Postgres major upgrade needs a migration',
        fieldPath: '.version',
        reason: 'FieldValueForbidden',
      },
    ],
  },
).superRefine((s, ctx) => {
  checkSynchronousReplicas(s.synchronousReplicas, s.replicasPerShard, 'replicasPerShard', ctx);
  checkBackup(s.backup, s.storage.size, ctx);
  if (imageNamesOtherMajor(s.image, s.version))
    ctx.addIssue({ code: 'custom', path: ['image'], message: IMAGE_MAJOR_MESSAGE });
});
