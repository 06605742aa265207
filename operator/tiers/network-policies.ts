import type { ScalableApp } from '../api/scalable-app.ts';
import { LABEL, childName, selectorLabels, tierLabels } from './labels.ts';
import type { Child } from './objects.ts';
import { WEB } from './web.ts';
import { CACHE, CACHE_PORT } from './cache.ts';
import { DATABASE, PG_PORT } from './database.ts';
import { EDGE, EDGE_PORT } from './edge-cache.ts';

/** Where the operator runs (manifests/operator); its pods must reach the database to fail it over. */
export const OPERATOR_NAMESPACE = 'scalableapp-system';

/** The operator reaches the data tiers' servers to promote and repoint them on failover. */
const operatorPods = {
  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': OPERATOR_NAMESPACE } },
};

/** The tiers that talk to the data tiers: the web tier and the queue consumers. */
const dataClients = (app: ScalableApp) =>
  [WEB, 'consumer'].map((component) => ({
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
export function networkPolicies(app: ScalableApp): Child[] {
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
  if (app.spec.database) {
    // The database: only the app's web tier and consumers (and the instances' own replication), plus
    // the operator, which promotes and repoints instances on failover.
    const dbPods = { matchLabels: selectorLabels(app, DATABASE) };
    const port = [{ protocol: 'TCP', port: PG_PORT }];
    policies.push(
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: {
          name: childName(app, 'allow-database-ingress'),
          namespace: ns,
          labels: tierLabels(app, DATABASE),
        },
        spec: {
          podSelector: dbPods,
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: [...dataClients(app), { podSelector: dbPods }, operatorPods],
              ports: port,
            },
          ],
        },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: {
          name: childName(app, 'allow-database-egress'),
          namespace: ns,
          labels: tierLabels(app, DATABASE),
        },
        spec: {
          podSelector: appPods,
          policyTypes: ['Egress'],
          egress: [{ to: [{ podSelector: dbPods }], ports: port }],
        },
      },
    );
  }
  if (app.spec.cache) {
    // Only the web tier and consumers reach the cache, besides its own replication and the
    // operator, which fails it over.
    const cachePods = { matchLabels: selectorLabels(app, CACHE) };
    const port = [{ protocol: 'TCP', port: CACHE_PORT }];
    policies.push(
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: {
          name: childName(app, 'allow-cache-ingress'),
          namespace: ns,
          labels: tierLabels(app, CACHE),
        },
        spec: {
          podSelector: cachePods,
          policyTypes: ['Ingress'],
          ingress: [{ from: [...dataClients(app), { podSelector: cachePods }, operatorPods], ports: port }],
        },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: {
          name: childName(app, 'allow-cache-egress'),
          namespace: ns,
          labels: tierLabels(app, CACHE),
        },
        spec: {
          podSelector: appPods,
          policyTypes: ['Egress'],
          egress: [{ to: [{ podSelector: cachePods }], ports: port }],
        },
      },
    );
  }
  return policies;
}
