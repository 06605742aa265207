import { z } from 'zod';
import { doc } from './meta.ts';
import { LABEL_KEY } from './common.ts';

export const topology = doc(
  z.object({
    spreadAcrossZones: doc(
      z.boolean(),
      "Spread every tier's pods evenly over zones (topology spread constraints, max skew 1).",
    ).default(true),
    zoneKey: doc(
      z.string().min(1).max(317).regex(LABEL_KEY),
      'Node label that names the zone (a label key: an optional DNS prefix and /, then a name of at most 63 characters). kubernetes.io/hostname spreads hard over nodes; the soft node spread is then left out.',
    ).default('topology.kubernetes.io/zone'),
    whenUnsatisfiable: doc(
      z.enum(['DoNotSchedule', 'ScheduleAnyway']),
      'DoNotSchedule keeps pods Pending rather than pile them into one zone.',
    ).default('DoNotSchedule'),
  }),
  'Where pods run.',
);

export const monitoring = doc(
  z.object({
    enabled: doc(
      z.boolean(),
      'Run a metrics exporter beside each data tier and label everything for scraping.',
    ).default(false),
  }),
  'Observability of the tiers.',
);
