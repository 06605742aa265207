import { z } from 'zod';
import { doc } from './meta.ts';

export const topology = doc(
  z.object({
    spreadAcrossZones: doc(
      z.boolean(),
      "Spread every tier's pods evenly over zones (topology spread constraints, max skew 1).",
    ).default(true),
    zoneKey: doc(z.string().min(1).max(253), 'Node label that names the zone.').default(
      'topology.kubernetes.io/zone',
    ),
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
