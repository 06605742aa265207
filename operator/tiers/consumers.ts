import type { V1Container, V1Deployment } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { ANNOTATION, childName, selectorLabels, tierLabels } from './labels.ts';
import { restrictedPodBase, tmpVolume, withRestrictedSecurity } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';
import { zoneSpread } from './topology.ts';
import { appFiles } from './app-files.ts';
import { envVars } from './env.ts';
import type { Child, ObservedFacts } from './objects.ts';

export const CONSUMER = 'consumer';
/** Tells one consumer's pods from another's: all share the component label `consumer`. */
export const CONSUMER_LABEL = 'scalableapp.io/consumer';

type Consumer = NonNullable<ScalableApp['spec']['consumers']>[number];

export const consumerName = (app: ScalableApp, c: Pick<Consumer, 'name'>) => childName(app, c.name);
export const consumerSelector = (app: ScalableApp, c: Pick<Consumer, 'name'>) => ({
  ...selectorLabels(app, CONSUMER),
  [CONSUMER_LABEL]: c.name,
});
const consumerLabels = (app: ScalableApp, c: Consumer) => ({
  ...tierLabels(app, CONSUMER),
  [CONSUMER_LABEL]: c.name,
});

/**
 * The replicas a consumer runs: fixed, or what the queue-depth autoscaler last decided. Before its
 * first decision the controller passes the Deployment's current replicas, so a restart of the
 * operator neither wakes an idle consumer nor stops a busy one; a new consumer starts at its minimum.
 */
export function consumerReplicas(c: Consumer, facts: ObservedFacts): number {
  if (!c.autoscaling) return c.replicas;
  const { minReplicas, maxReplicas } = c.autoscaling;
  // Clamped here too: a decision made before the bounds were edited must not outlive the edit.
  const decided = facts.consumerScale?.[c.name]?.replicas ?? minReplicas;
  return Math.min(maxReplicas, Math.max(minReplicas, decided));
}

export function consumerDeployment(
  app: ScalableApp,
  c: Consumer,
  facts: ObservedFacts,
  connection: { name: string; hash: string },
): V1Deployment & Child {
  const selector = consumerSelector(app, c);
  const spread = zoneSpread(app, selector, { rollingDeployment: true });

  const files = appFiles(app);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: consumerName(app, c),
      namespace: app.metadata.namespace,
      labels: consumerLabels(app, c),
    },
    spec: {
      replicas: consumerReplicas(c, facts),
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: consumerLabels(app, c),
          annotations: { [ANNOTATION.connectionHash]: connection.hash },
        },
        spec: {
          ...restrictedPodBase(),
          // A consumer stopped mid-message leaves it unacknowledged; the broker redelivers it. The
          // grace period lets it finish the message in hand on a scale-down.
          terminationGracePeriodSeconds: 30,
          containers: [
            withRestrictedSecurity({
              name: CONSUMER,
              image: c.image,
              // QUEUE_URL and the other tiers' addresses come from the connection Secret.
              envFrom: [{ secretRef: { name: connection.name } }],
              env: [{ name: 'QUEUE_NAME', value: c.queue }, ...envVars(c.env)],
              resources: resourceRequirements(c.resources),
              ...healthProbes(c.healthCheck),
              ...(files.mounts.length ? { volumeMounts: files.mounts } : {}),
            }),
          ],
          volumes: [tmpVolume, ...files.volumes],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
    },
  };
}

/**
 * The probes of a consumer that serves a health endpoint: readiness asks the endpoint (it gates
 * rollouts; there is no Service). Liveness only asks that the endpoint accepts connections, as the
 * web tier's default does (ADR 0018): the endpoint reports the broker connection, and a broker
 * outage must not restart every consumer. None without the field.
 */
function healthProbes(check: Consumer['healthCheck']): Partial<V1Container> {
  if (!check) return {};
  const { port, path, periodSeconds, failureThreshold } = check;
  return {
    ports: [{ name: 'health', containerPort: port, protocol: 'TCP' }],
    readinessProbe: { httpGet: { path, port: 'health' }, periodSeconds, failureThreshold },
    livenessProbe: { tcpSocket: { port: 'health' }, periodSeconds, failureThreshold: failureThreshold * 2 },
  };
}

/**
 * One Deployment per consumer. No PodDisruptionBudget: an evicted consumer loses no work (its
 * unacknowledged messages go back to the queue), and a budget would only block drains at 1 replica.
 */
export function consumerObjects(
  app: ScalableApp,
  facts: ObservedFacts,
  connection: { name: string; hash: string },
): Child[] {
  return (app.spec.consumers ?? []).map((c) => consumerDeployment(app, c, facts, connection));
}
