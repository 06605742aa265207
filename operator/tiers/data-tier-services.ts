import type { V1Service } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { ROLE_LABEL } from './labels.ts';
import { selectorLabels, tierLabels } from './labels.ts';
import type { Child } from './objects.ts';

/**
 * The Services of a primary-and-replicas tier (cache, database): `headless` for stable pod DNS (also
 * for pods not ready yet, so a starting replica finds its primary), `primary`/`replica` selecting by
 * the role label only the operator sets, and `none` for a Service whose endpoints the operator
 * publishes itself.
 */
export function dataTierService(
  app: ScalableApp,
  component: string,
  name: string,
  select: 'headless' | 'primary' | 'replica' | 'none',
  port: { name: string; port: number },
  /** For a tier of several clusters (shards): the labels and pod selector of one of them. */
  own?: { labels: Record<string, string>; selector: Record<string, string> },
): V1Service & Child {
  const selector = own?.selector ?? selectorLabels(app, component);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: app.metadata.namespace, labels: own?.labels ?? tierLabels(app, component) },
    spec: {
      ...(select === 'headless' ? { clusterIP: 'None', publishNotReadyAddresses: true, selector } : {}),
      ...(select === 'primary' || select === 'replica'
        ? { selector: { ...selector, [ROLE_LABEL]: select } }
        : {}),
      ports: [{ name: port.name, port: port.port, targetPort: port.port, protocol: 'TCP' }],
    },
  };
}
