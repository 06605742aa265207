import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { LABEL, childName, selectorLabels, tierLabels } from './labels.ts';
import type { Child } from './objects.ts';
import { WEB } from './web.ts';

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
export function networkPolicies(app: ScalableApp): (V1NetworkPolicy & Child)[] {
  const ns = app.metadata.namespace;
  const appPods = {
    matchLabels: {
      [LABEL.partOf]: app.metadata.name,
      [LABEL.managedBy]: tierLabels(app, WEB)[LABEL.managedBy]!,
    },
  };
  const policies: (V1NetworkPolicy & Child)[] = [
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
  return policies;
}
