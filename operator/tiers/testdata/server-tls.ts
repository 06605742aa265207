import type { V1PodSpec, V1Secret } from '@kubernetes/client-node';

/**
 * A server tier's certificate as every TLS tier carries it (operator/tiers/tls.ts): a
 * kubernetes.io/tls Secret in cert-manager's layout, mounted read-only at /tls by the server's pod.
 */
export function expectServerCertificate(secret: V1Secret, pod: V1PodSpec, secretName: string): void {
  expect(secret.metadata?.name).toBe(secretName);
  expect(secret.type).toBe('kubernetes.io/tls');
  expect(Object.keys(secret.data!).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName, defaultMode: 0o440 } });
  expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/tls', readOnly: true });
}
