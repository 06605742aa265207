import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { selectorLabels, tierLabels } from './labels.ts';
import type { Child } from './objects.ts';

/**
 * maxUnavailable 1 for every tier: a node drain always makes progress (it never blocks on a single
 * instance) and never takes more than one pod of a tier at a time. A pod that is not Ready (crash
 * looping, stuck pulling) may always be evicted: it serves nothing, and by default it would hold the
 * budget and block every drain of its node (unhealthyPodEvictionPolicy AlwaysAllow, GA in 1.31).
 */
export function disruptionBudget(
  app: ScalableApp,
  component: string,
  name: string,
  /** For a tier of several clusters (shards): the labels and pod selector of one of them. */
  own?: { labels: Record<string, string>; selector: Record<string, string> },
): V1PodDisruptionBudget & Child {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace: app.metadata.namespace, labels: own?.labels ?? tierLabels(app, component) },
    spec: {
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
      selector: { matchLabels: own?.selector ?? selectorLabels(app, component) },
    },
  };
}
