import { z } from 'zod';
import { doc } from './meta.ts';
import { LABEL_KEY, image, matchLabels, podPeers, resources, type ResourceDefaults } from './common.ts';

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

/** Exporters are small Go programs: 16Mi is below what any of the three starts in. */
export const EXPORTER_RESOURCES: ResourceDefaults = {
  requests: { cpu: '10m', memory: '32Mi' },
  limits: { memory: '64Mi' },
  memoryFloor: { min: '16Mi', server: 'an exporter' },
};

/**
 * Who scrapes by default: the Prometheus of kube-prometheus-stack (and of the Prometheus Operator's
 * examples), which labels its pods app.kubernetes.io/name=prometheus, in a namespace `monitoring`.
 */
export const DEFAULT_SCRAPER = {
  podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
};

export const monitoring = doc(
  z.object({
    enabled: doc(
      z.boolean(),
      "Expose Prometheus metrics from every data tier and the edge cache: an exporter container beside each Postgres instance (database and shards, port 9187), each cache server (9121) and each edge-cache proxy (9113), and RabbitMQ's built-in endpoint on the queue (15692). The pods carry prometheus.io/scrape, port and path annotations, and only the scrapers are admitted to those ports.",
    ).default(false),
    scrapers: podPeers(
      'scraper',
      'Who may reach the metrics ports (a NetworkPolicy admits exactly these, to those ports only). Default: pods labelled app.kubernetes.io/name=prometheus in the namespace monitoring.',
    ).default([DEFAULT_SCRAPER]),
    exporterImages: doc(
      z.object({
        postgres: image(
          'Image of the Postgres exporter (prometheus-community postgres_exporter 0.11).',
        ).default('quay.io/prometheuscommunity/postgres-exporter:v0.11.1'),
        cache: image('Image of the Redis-protocol exporter (oliver006 redis_exporter 1.45).').default(
          'oliver006/redis_exporter:v1.45.0',
        ),
        edgeCache: image('Image of the nginx exporter (nginx-prometheus-exporter 0.11).').default(
          'nginx/nginx-prometheus-exporter:0.11.0',
        ),
      }),
      'The exporter images; each entrypoint must be the exporter itself (the pod passes arguments only).',
    ).prefault({}),
    resources: resources('CPU and memory for each exporter container.', EXPORTER_RESOURCES),
    podMonitors: doc(
      z.object({
        labels: matchLabels(
          "Labels on every PodMonitor: what your Prometheus's podMonitorSelector matches (kube-prometheus-stack: release: <its release name>).",
          0,
        ).default({}),
        interval: doc(
          z.string().regex(/^[1-9][0-9]*(s|m)$/),
          'How often Prometheus scrapes each exporter, in seconds or minutes (e.g. 30s, 1m).',
        ).default('30s'),
      }),
      "When the Prometheus Operator's PodMonitor is served (looked up when the operator starts), one PodMonitor per monitored tier, labelled app and tier; without it, the pods' prometheus.io annotations are all there is.",
    ).prefault({}),
  }),
  'Observability of the tiers.',
);
