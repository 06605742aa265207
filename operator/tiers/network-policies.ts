import type { ScalableApp } from '../api/scalable-app.ts';
import { LABEL, OPERATOR_POD_LABELS, childName, selectorLabels, tierLabels } from './labels.ts';
import type { V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import type { Child } from './objects.ts';
import type { AllowedClient } from '../api/common.ts';
import { WEB } from './web.ts';
import { CACHE, CACHE_PORT } from './cache.ts';
import { DATABASE, PG_PORT } from './database.ts';
import { EDGE, EDGE_PORT } from './edge-cache.ts';
import { SHARD } from './shards.ts';
import { CONSUMER } from './consumers.ts';
import { QUEUE } from './queue.ts';
import { AMQP_PORT, DIST_PORT, EPMD_PORT, MANAGEMENT_PORT } from '../server-config/rabbitmq.ts';

/** Where the operator runs unless told otherwise (manifests/operator, the operator chart's default). */
export const OPERATOR_NAMESPACE = 'scalableapp-system';

/**
 * The operator reaches the data tiers' servers to promote and repoint them on failover and to read
 * queue depths; it runs in its own namespace (ObservedFacts.operatorNamespace). Only its own pods
 * are admitted, by their label: any other pod of that namespace is as foreign as any other workload.
 */
const operatorPods = (namespace: string) => ({
  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
  podSelector: { matchLabels: { ...OPERATOR_POD_LABELS } },
});

/** The tiers that talk to the data tiers: the web tier and the queue consumers. */
const dataClients = (app: ScalableApp) =>
  [WEB, CONSUMER].map((component) => ({
    podSelector: { matchLabels: { [LABEL.instance]: app.metadata.name, [LABEL.component]: component } },
  }));

const dnsEgress = {
  to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }],
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
};

/**
 * Default deny for every pod of the app (ingress and egress), then explicit allows: only the entry
 * point accepts traffic from outside the app, and every pod may resolve names.
 */
export function networkPolicies(app: ScalableApp, operatorNamespace = OPERATOR_NAMESPACE): Child[] {
  const ns = app.metadata.namespace;
  const appPods = {
    matchLabels: {
      [LABEL.partOf]: app.metadata.name,
      [LABEL.managedBy]: tierLabels(app, WEB)[LABEL.managedBy]!,
    },
  };
  // Plain JSON, not client-node's types: they spell `from` as `_from`, which the apiserver would drop.
  const policies: Child[] = [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: childName(app, 'default-deny'), namespace: ns, labels: tierLabels(app, 'network') },
      spec: { podSelector: appPods, policyTypes: ['Ingress', 'Egress'] },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: childName(app, 'allow-dns'), namespace: ns, labels: tierLabels(app, 'network') },
      spec: { podSelector: appPods, policyTypes: ['Egress'], egress: [dnsEgress] },
    },
  ];
  if (app.spec.web) {
    policies.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: childName(app, 'allow-web-ingress'), namespace: ns, labels: tierLabels(app, WEB) },
      // The entry point: any source (load balancer, ingress controller, other namespaces) on the app port only.
      spec: {
        podSelector: { matchLabels: selectorLabels(app, WEB) },
        policyTypes: ['Ingress'],
        ingress: [{ ports: [{ protocol: 'TCP', port: app.spec.web.port }] }],
      },
    });
  }
  if (app.spec.edgeCache && app.spec.web) {
    const edgePods = { matchLabels: selectorLabels(app, EDGE) };
    policies.push(
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: {
          name: childName(app, 'allow-edge-ingress'),
          namespace: ns,
          labels: tierLabels(app, EDGE),
        },
        // An entry point like the web tier: any source, on the proxy port only.
        spec: {
          podSelector: edgePods,
          policyTypes: ['Ingress'],
          ingress: [{ ports: [{ protocol: 'TCP', port: EDGE_PORT }] }],
        },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: childName(app, 'allow-edge-egress'), namespace: ns, labels: tierLabels(app, EDGE) },
        // The proxy talks to its origin, the web pods, and nothing else.
        spec: {
          podSelector: edgePods,
          policyTypes: ['Egress'],
          egress: [
            {
              to: [{ podSelector: { matchLabels: selectorLabels(app, WEB) } }],
              ports: [{ protocol: 'TCP', port: app.spec.web.port }],
            },
          ],
        },
      },
    );
  }
  // Each data tier: only the app's web tier and consumers reach it, besides its own members
  // (replication, clustering) and the operator, which fails it over or reads its queue depths.
  const { database, cache, shards, queue } = app.spec;
  if (database)
    policies.push(
      ...dataTierPolicies(app, operatorNamespace, DATABASE, 'database', [PG_PORT], [], {
        clients: database.allowedClients,
        ports: [PG_PORT],
      }),
    );
  if (cache)
    policies.push(
      ...dataTierPolicies(app, operatorNamespace, CACHE, 'cache', [CACHE_PORT], [], {
        clients: cache.allowedClients,
        ports: [CACHE_PORT],
      }),
    );
  if (shards)
    policies.push(
      ...dataTierPolicies(app, operatorNamespace, SHARD, 'shards', [PG_PORT], [], {
        clients: shards.allowedClients,
        ports: [PG_PORT],
      }),
    );
  if (queue) {
    // Clients of the user's choosing speak AMQP only: the management API stays the app's and the operator's.
    policies.push(
      ...dataTierPolicies(
        app,
        operatorNamespace,
        QUEUE,
        'queue',
        [AMQP_PORT, MANAGEMENT_PORT],
        [EPMD_PORT, DIST_PORT],
        { clients: queue.allowedClients, ports: [AMQP_PORT] },
      ),
    );
  }
  return policies;
}

/** A NetworkPolicy ingress rule as the apiserver spells it (the client library's type says `_from`). */
interface IngressRule {
  from: V1NetworkPolicyPeer[];
  ports: V1NetworkPolicyPort[];
}

/**
 * Ingress to one data tier's pods from the app's data clients and the operator on the client ports,
 * and from its own pods on those and the peer-only ports; egress from the app's pods to it.
 */
function dataTierPolicies(
  app: ScalableApp,
  operatorNamespace: string,
  component: string,
  nameTier: string,
  clientPorts: number[],
  peerPorts: number[] = [],
  chosen: { clients: readonly AllowedClient[]; ports: number[] } = { clients: [], ports: [] },
): Child[] {
  const ns = app.metadata.namespace;
  const pods = { matchLabels: selectorLabels(app, component) };
  const tcp = (ports: number[]) => ports.map((port) => ({ protocol: 'TCP', port }));
  const appPods = {
    matchLabels: {
      [LABEL.partOf]: app.metadata.name,
      [LABEL.managedBy]: tierLabels(app, component)[LABEL.managedBy]!,
    },
  };
  const ingress: IngressRule[] = peerPorts.length
    ? [
        { from: [...dataClients(app), operatorPods(operatorNamespace)], ports: tcp(clientPorts) },
        { from: [{ podSelector: pods }], ports: tcp([...clientPorts, ...peerPorts]) },
      ]
    : [
        {
          from: [...dataClients(app), { podSelector: pods }, operatorPods(operatorNamespace)],
          ports: tcp(clientPorts),
        },
      ];
  if (chosen.clients.length) {
    // spec.<tier>.allowedClients: exactly the pods named, by label (in the namespaces named, if any).
    ingress.push({
      from: chosen.clients.map((c) => ({
        podSelector: { matchLabels: { ...c.podSelector.matchLabels } },
        ...(c.namespaceSelector
          ? { namespaceSelector: { matchLabels: { ...c.namespaceSelector.matchLabels } } }
          : {}),
      })),
      ports: tcp(chosen.ports),
    });
  }
  return [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: childName(app, `allow-${nameTier}-ingress`),
        namespace: ns,
        labels: tierLabels(app, component),
      },
      spec: { podSelector: pods, policyTypes: ['Ingress'], ingress },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: childName(app, `allow-${nameTier}-egress`),
        namespace: ns,
        labels: tierLabels(app, component),
      },
      spec: {
        podSelector: appPods,
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: pods }], ports: tcp([...clientPorts, ...peerPorts]) }],
      },
    },
  ];
}
