// With spec.monitoring and the Prometheus Operator's PodMonitor served: one PodMonitor per monitored
// tier, which a Prometheus it runs turns into a scrape job. Its targets get the `namespace` and `pod`
// labels from the Prometheus Operator, and `app` and `tier` from the pods' own labels here, which is
// what the alerts (operator/monitoring/alert-rules.ts) and the dashboards read.
import type { ScalableApp } from '../api/scalable-app.ts';
import { CACHE } from './cache.ts';
import { DATABASE } from './database.ts';
import { EDGE } from './edge-cache.ts';
import { LABEL, childName, selectorLabels, tierLabels } from './labels.ts';
import { METRICS_PATH, monitored } from './monitoring.ts';
import type { Child, ObservedFacts } from './objects.ts';
import { QUEUE } from './queue.ts';
import { SHARD } from './shards.ts';

/** A pod label as Prometheus's Kubernetes discovery names it. */
const podLabel = (key: string) => `__meta_kubernetes_pod_label_${key.replace(/[^a-zA-Z0-9_]/g, '_')}`;

/** The monitored tiers the spec declares (the edge cache only in front of a web tier). */
function monitoredTiers(app: ScalableApp): string[] {
  const s = app.spec;
  return [
    ...(s.database ? [DATABASE] : []),
    ...(s.shards ? [SHARD] : []),
    ...(s.cache ? [CACHE] : []),
    ...(s.queue ? [QUEUE] : []),
    ...(s.edgeCache && s.web ? [EDGE] : []),
  ];
}

export function podMonitors(app: ScalableApp, facts: Pick<ObservedFacts, 'podMonitors'>): Child[] {
  if (!monitored(app) || !facts.podMonitors) return [];
  const { labels, interval } = app.spec.monitoring.podMonitors;
  return monitoredTiers(app).map((tier) => ({
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PodMonitor',
    metadata: {
      name: childName(app, `${tier}-metrics`),
      namespace: app.metadata.namespace,
      labels: { ...labels, ...tierLabels(app, tier) },
    },
    spec: {
      selector: { matchLabels: selectorLabels(app, tier) },
      podMetricsEndpoints: [
        {
          // Every tier names its metrics port `metrics`: the exporter's, or RabbitMQ's plugin.
          port: 'metrics',
          path: METRICS_PATH,
          interval,
          relabelings: [
            { sourceLabels: [podLabel(LABEL.instance)], targetLabel: 'app', action: 'replace' },
            { sourceLabels: [podLabel(LABEL.component)], targetLabel: 'tier', action: 'replace' },
          ],
        },
      ],
    },
  }));
}
