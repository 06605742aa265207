import { z } from 'zod';
import { doc } from './meta.ts';
import { web } from './web.ts';
import { cache } from './cache.ts';
import { database } from './database.ts';
import { shards } from './shards.ts';
import { consumers, queue } from './queue.ts';
import { edgeCache } from './edge-cache.ts';
import { monitoring, topology } from './platform.ts';

/** The tiers, in the order the seed architecture adds them. Every one is optional. */
export const TIERS = ['web', 'cache', 'database', 'shards', 'queue', 'consumers', 'edgeCache'] as const;
export type Tier = (typeof TIERS)[number];

export const spec = doc(
  z.object({
    web: web.optional(),
    cache: cache.optional(),
    database: database.optional(),
    shards: shards.optional(),
    queue: queue.optional(),
    consumers: consumers.optional(),
    edgeCache: edgeCache.optional(),
    topology: topology.default({
      spreadAcrossZones: true,
      zoneKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'DoNotSchedule',
    }),
    monitoring: monitoring.prefault({}),
  }),
  'The application: every tier is optional; an omitted tier is not deployed. The smallest ScalableApp is a web tier alone.',
  {
    // Rules that cross tiers live here, each pointed (fieldPath) at the field the user must change.
    cel: [
      {
        rule: 'has(self.web) || has(self.cache) || has(self.database) || has(self.shards) || has(self.queue) || has(self.edgeCache) || (has(self.consumers) && size(self.consumers) > 0)',
        message:
          'spec must declare at least one tier (web, cache, database, shards, queue, consumers or edgeCache)',
        reason: 'FieldValueRequired',
      },
      {
        rule: '!has(self.consumers) || size(self.consumers) == 0 || has(self.queue)',
        message: 'consumers need a queue tier: add spec.queue',
        fieldPath: '.consumers',
        reason: 'FieldValueRequired',
      },
      {
        rule: '!has(self.consumers) || !has(self.queue) || self.consumers.all(c, self.queue.queues.exists(q, q.name == c.queue))',
        message: 'every consumers[].queue must name a queue declared in spec.queue.queues',
        fieldPath: '.consumers',
        reason: 'FieldValueInvalid',
      },
      {
        rule: "!has(self.web) || self.web.sessions != 'cache' || has(self.cache)",
        message: 'web.sessions is cache but there is no cache tier: add spec.cache or set sessions to none',
        fieldPath: '.web.sessions',
        reason: 'FieldValueInvalid',
      },
      {
        rule: '!has(self.edgeCache) || has(self.web)',
        message: 'edgeCache fronts the web tier: add spec.web',
        fieldPath: '.edgeCache',
        reason: 'FieldValueRequired',
      },
      {
        rule: '!has(oldSelf.shards) || has(self.shards)',
        message:
          'shards cannot be removed once created: the data lives on them (reshard into the database first)',
        fieldPath: '.shards',
        reason: 'FieldValueForbidden',
      },
    ],
  },
);
