import type { ScalableApp } from '../api/scalable-app.ts';
import { LABEL, OPERATOR_POD_LABELS, childName, selectorLabels, tierLabels } from './labels.ts';
import type { V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import type { Child } from './objects.ts';
import type { AllowedClient } from '../api/common.ts';
import { WEB } from './web.ts';
import { CACHE, CACHE_PORT } from './cache.ts';
import { DATABASE, PG_PORT } from './database.ts';
import { EDGE, EDGE_PORT } from './edge-cache.ts';
import { SHARD, SHARD_MOVER } from './shards.ts';
import { CONSUMER } from './consumers.ts';
import { QUEUE } from './queue.ts';
import { METRICS_PORT, monitored } from './monitoring.ts';
import { BACKUP_SERVER_PORT, backupComponent } from './postgres-base-backup.ts';
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

/** The tiers that talk to the data tiers: the web tier and the queue consumers (and a tier's `movers`). */
const dataClients = (app: ScalableApp, movers: readonly string[] = []) =>
  [WEB, CONSUMER, ...movers].map((component) => ({
    podSelector: { matchLabels: { [LABEL.instance]: app.metadata.name, [LABEL.component]: component } },
  }));

/** spec.<tier>.allowedClients and spec.monitoring.scrapers as NetworkPolicy peers: exactly the pods named. */
const peersOf = (peers: readonly AllowedClient[]) =>
  peers.map((c) => ({
    podSelector: { matchLabels: { ...c.podSelector.matchLabels } },
    ...(c.namespaceSelector
      ? { namespaceSelector: { matchLabels: { ...c.namespaceSelector.matchLabels } } }
      : {}),
  }));

/** With monitoring: the scrapers, on the tier's metrics port only. */
const scraperRules = (app: ScalableApp, port: number): IngressRule[] =>
  monitored(app) && app.spec.monitoring.scrapers.length
    ? [{ from: peersOf(app.spec.monitoring.scrapers), ports: [{ protocol: 'TCP', port }] }]
    : [];

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
          ingress: [
            { ports: [{ protocol: 'TCP', port: EDGE_PORT }] },
            ...scraperRules(app, METRICS_PORT.edgeCache),
          ],
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
  // (replication, clustering), the operator (which fails it over or reads its queue depths) and the
  // clients the user names.
  const { database, cache, shards, queue } = app.spec;
  const tiers: DataTierAccess[] = [];
  if (database) {
    tiers.push({
      component: DATABASE,
      name: 'database',
      clientPorts: [PG_PORT],
      metricsPort: METRICS_PORT.postgres,
      allowedClients: database.allowedClients,
      ...(database.backup
        ? { backupStorePort: database.backup.s3.egressPort ?? database.backup.s3.port }
        : {}),
    });
  }
  if (cache) {
    tiers.push({
      component: CACHE,
      name: 'cache',
      clientPorts: [CACHE_PORT],
      metricsPort: METRICS_PORT.cache,
      allowedClients: cache.allowedClients,
    });
  }
  if (shards) {
    tiers.push({
      component: SHARD,
      name: 'shards',
      clientPorts: [PG_PORT],
      // The resharding Job (docs/sharding.md), labelled as the app's mover, reaches every shard.
      movers: [SHARD_MOVER],
      metricsPort: METRICS_PORT.postgres,
      allowedClients: shards.allowedClients,
      ...(shards.backup ? { backupStorePort: shards.backup.s3.egressPort ?? shards.backup.s3.port } : {}),
    });
  }
  if (queue) {
    tiers.push({
      component: QUEUE,
      name: 'queue',
      clientPorts: [AMQP_PORT],
      // The management API is the operator's: it reads queue depths there. The app speaks AMQP.
      operatorPorts: [MANAGEMENT_PORT],
      peerPorts: [EPMD_PORT, DIST_PORT],
      metricsPort: METRICS_PORT.queue,
      allowedClients: queue.allowedClients,
    });
  }
  for (const tier of tiers) policies.push(...dataTierPolicies(app, operatorNamespace, tier));
  return policies;
}

/** Who reaches one data tier, on which ports. */
interface DataTierAccess {
  readonly component: string;
  /** In the policies' names: allow-<name>-ingress, allow-<name>-egress. */
  readonly name: string;
  /** The app's data clients, the clients the user names, the operator and the tier's own pods. */
  readonly clientPorts: readonly number[];
  /** Components of the app's own pods admitted on the client ports besides web and consumer. */
  readonly movers?: readonly string[];
  /** Besides the client ports: the operator only. */
  readonly operatorPorts?: readonly number[];
  /** Besides the client ports: the tier's own pods only (replication, clustering). */
  readonly peerPorts?: readonly number[];
  /** spec.<tier>.allowedClients. */
  readonly allowedClients: readonly AllowedClient[];
  /** With monitoring: the scrapers' port (spec.monitoring.scrapers), and no one else's. */
  readonly metricsPort: number;
  /**
   * With backup: the object store's port, egress from the tier's pods to it. To any address: a
   * NetworkPolicy cannot name a host, and the store's address is the user's (a cloud endpoint's
   * changes); the port and the store's certificate (checked against its name) narrow it.
   */
  readonly backupStorePort?: number;
}

/** A NetworkPolicy ingress rule as the apiserver spells it (the client library's type says `_from`). */
interface IngressRule {
  from: V1NetworkPolicyPeer[];
  ports: V1NetworkPolicyPort[];
}

/**
 * Ingress to one data tier's pods from the app's data clients and the operator on the client ports,
 * from the operator alone on its own ports, from its own pods on the client and peer-only ports, and
 * from the clients the user names on the client ports; egress from the app's pods to it.
 */
function dataTierPolicies(app: ScalableApp, operatorNamespace: string, tier: DataTierAccess): Child[] {
  const { component, allowedClients, clientPorts } = tier;
  const operatorPorts = tier.operatorPorts ?? [];
  const peerPorts = tier.peerPorts ?? [];
  const ns = app.metadata.namespace;
  const pods = { matchLabels: selectorLabels(app, component) };
  const tcp = (ports: readonly number[]) => ports.map((port) => ({ protocol: 'TCP', port }));
  const appPods = {
    matchLabels: {
      [LABEL.partOf]: app.metadata.name,
      [LABEL.managedBy]: tierLabels(app, component)[LABEL.managedBy]!,
    },
  };
  const ingress: IngressRule[] = peerPorts.length
    ? [{ from: [...dataClients(app, tier.movers), operatorPods(operatorNamespace)], ports: tcp(clientPorts) }]
    : [
        {
          from: [...dataClients(app, tier.movers), { podSelector: pods }, operatorPods(operatorNamespace)],
          ports: tcp(clientPorts),
        },
      ];
  if (operatorPorts.length)
    ingress.push({ from: [operatorPods(operatorNamespace)], ports: tcp(operatorPorts) });
  if (peerPorts.length)
    ingress.push({ from: [{ podSelector: pods }], ports: tcp([...clientPorts, ...peerPorts]) });
  if (allowedClients.length) {
    // spec.<tier>.allowedClients: exactly the pods named, by label (in the namespaces named, if any).
    ingress.push({ from: peersOf(allowedClients), ports: tcp(clientPorts) });
  }
  ingress.push(...scraperRules(app, tier.metricsPort));
  // Base backups: the tier's backup Jobs (and nothing else) reach each instance's backup server.
  const backupPods = { matchLabels: selectorLabels(app, backupComponent({ component })) };
  if (tier.backupStorePort !== undefined)
    ingress.push({ from: [{ podSelector: backupPods }], ports: tcp([BACKUP_SERVER_PORT]) });
  return [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: childName(app, `allow-${tier.name}-ingress`),
        namespace: ns,
        labels: tierLabels(app, component),
      },
      spec: { podSelector: pods, policyTypes: ['Ingress'], ingress },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: childName(app, `allow-${tier.name}-egress`),
        namespace: ns,
        labels: tierLabels(app, component),
      },
      spec: {
        podSelector: appPods,
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: pods }], ports: tcp([...clientPorts, ...peerPorts]) }],
      },
    },
    ...(tier.backupStorePort === undefined
      ? []
      : [
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: {
              name: childName(app, `allow-${tier.name}-backup-egress`),
              namespace: ns,
              labels: tierLabels(app, component),
            },
            spec: {
              podSelector: pods,
              policyTypes: ['Egress'],
              egress: [{ ports: tcp([tier.backupStorePort]) }],
            },
          },
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: {
              name: childName(app, `allow-${tier.name}-backup-job-egress`),
              namespace: ns,
              labels: tierLabels(app, backupComponent({ component })),
            },
            // The backup Jobs: the instances' backup servers, and the store (as the instances reach it).
            spec: {
              podSelector: backupPods,
              policyTypes: ['Egress'],
              egress: [
                { to: [{ podSelector: pods }], ports: tcp([BACKUP_SERVER_PORT]) },
                { ports: tcp([tier.backupStorePort]) },
              ],
            },
          },
        ]),
  ];
}
