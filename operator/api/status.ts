import { z } from 'zod';
import { doc } from './meta.ts';

export const PHASES = ['Pending', 'Progressing', 'Ready', 'Degraded', 'Invalid'] as const;

export const condition = doc(
  z.object({
    type: doc(z.string().min(1).max(316), 'Ready, Progressing, Degraded, or <Tier>Ready.'),
    status: doc(z.enum(['True', 'False', 'Unknown']), 'Whether the condition holds.'),
    reason: doc(z.string().min(1).max(1024), 'A CamelCase reason.'),
    message: doc(z.string().max(32768), 'What holds it back, naming the blocking object.'),
    lastTransitionTime: doc(z.string(), 'When the status last changed (RFC 3339).'),
    observedGeneration: doc(
      z.number().int().min(0),
      'The generation the condition was computed for.',
    ).optional(),
  }),
  'A condition, as metav1.Condition.',
);

const count = (d: string) => doc(z.number().int().min(0), d);
const time = (d: string) => doc(z.string(), `${d} (RFC 3339).`);

export const status = doc(
  z.object({
    observedGeneration: count('The metadata.generation this status describes.').optional(),
    phase: doc(z.enum(PHASES), 'A one-word summary; conditions carry the detail.').optional(),
    conditions: doc(
      z.array(condition).max(32),
      'Ready, Progressing, Degraded and one <Tier>Ready per deployed tier.',
      {
        listType: 'map',
        listMapKeys: ['type'],
      },
    ).optional(),
    connectionSecret: doc(
      z.string(),
      'The Secret holding every URL and credential the app needs.',
    ).optional(),
    endpoints: doc(
      z.object({
        web: doc(z.string(), 'Where the web tier is reached.').optional(),
        databaseWrite: doc(z.string(), 'Read-write database Service (host:port).').optional(),
        databaseRead: doc(z.string(), 'Read-only database Service (host:port).').optional(),
        cache: doc(z.string(), 'Cache primary Service (host:port).').optional(),
        cacheReplicas: doc(z.string(), 'Cache replicas Service (host:port).').optional(),
        queue: doc(z.string(), 'Broker Service (host:port).').optional(),
        edgeCache: doc(z.string(), 'Edge cache Service (host:port).').optional(),
        shardMap: doc(z.string(), 'ConfigMap with the shard ring.').optional(),
      }),
      'In-cluster addresses of the tiers. Credentials are only in the connection Secret.',
    ).optional(),
    web: doc(
      z.object({ replicas: count('Desired replicas.'), readyReplicas: count('Ready replicas.') }),
      'Web tier.',
    ).optional(),
    cache: doc(
      z.object({
        primary: doc(z.string(), 'Current primary pod.').optional(),
        readyReplicas: count('Ready replicas.'),
      }),
      'Cache tier.',
    ).optional(),
    database: doc(
      z.object({
        primary: doc(z.string(), 'Current primary pod.').optional(),
        readyReplicas: count('Ready streaming replicas.'),
        lastFailoverTime: time('When the last failover or switchover finished').optional(),
        lastFailoverReason: doc(z.string(), 'Why it happened.').optional(),
      }),
      'Database tier.',
    ).optional(),
    shards: doc(
      z.object({
        ready: count('Shards whose primary is ready.'),
        ringVersion: count('Version of the published ring.'),
        movedKeyRanges: count(
          'Ring ranges (arcs between points) whose owner changes from the routed ring to the pending one.',
        ).optional(),
        pendingRingVersion: count(
          'A new ring waiting for its data to be copied and verified; routing flips to it then.',
        ).optional(),
      }),
      'Shards.',
    ).optional(),
    backups: doc(
      z
        .array(
          doc(
            z.object({
              cluster: doc(
                z.string(),
                "The Postgres cluster (the database's or a shard's StatefulSet): its stanza.",
              ),
              lastBackup: doc(
                z.object({
                  label: doc(z.string(), "pgBackRest's label of the backup."),
                  startTime: time('When it started'),
                  stopTime: time('When it ended: a recovery can reach any time from here on'),
                  job: doc(z.string(), 'The Job that took it.'),
                }),
                'The newest full backup in the repository.',
              ),
              firstRecoverabilityPoint: time(
                'The earliest time a recovery can reach: the end of the oldest backup the repository keeps',
              ),
              fullBackups: count('Full backups the repository keeps (backup.retention.fullBackups at most).'),
            }),
            "One cluster's backups, as its last successful backup Job found the repository.",
          ),
        )
        .max(65),
      'Base backups, per cluster that archives.',
      { listType: 'map', listMapKeys: ['cluster'] },
    ).optional(),
    consumers: doc(
      z
        .array(
          doc(
            z.object({
              name: doc(z.string(), 'Consumer name.'),
              replicas: count('Replicas set by the last decision.'),
              lastDecision: doc(
                z.object({
                  time: time('When it was made'),
                  queueDepth: count('Ready + unacknowledged messages seen.'),
                  desiredReplicas: count('What the formula asked for.'),
                  reason: doc(
                    z.string(),
                    'The rule that decided: WakeFromZero, ScaleUp, AtMax, ScaleDown, HeldByStabilization, CooldownBeforeZero, ScaleToZero, Steady or PollFailed.',
                  ),
                }),
                'The latest scaling decision and its inputs (Steady once the replicas match).',
              ).optional(),
              lastScale: doc(
                z.object({
                  time: time('When the replicas were changed'),
                  fromReplicas: count('Replicas before.'),
                  toReplicas: count('Replicas after.'),
                  queueDepth: count('Ready + unacknowledged messages seen.'),
                  reason: doc(z.string(), 'The rule that changed them, as in lastDecision.reason.'),
                }),
                'The last decision that changed the replicas, kept after later Steady decisions and operator restarts.',
              ).optional(),
            }),
            "One consumer's scaling state.",
          ),
        )
        .max(20),
      'Consumers and their scaling.',
      { listType: 'map', listMapKeys: ['name'] },
    ).optional(),
  }),
  'What the operator observed. Never contains credentials.',
);
