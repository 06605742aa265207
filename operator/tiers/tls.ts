import type { V1ConfigMap, V1Secret, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { KeyPair } from '../tls/certificates.ts';
import { childName, tierLabels } from './labels.ts';
import type { Child, ObservedFacts, TlsFacts } from './objects.ts';

/**
 * The app's CA (ADR 0023): its Secret holds the key, is mounted by no pod and read by the operator
 * alone; its ConfigMap holds only the certificate, which every client of the app trusts.
 */
export const caSecretName = (app: ScalableApp) => childName(app, 'ca');
export const caConfigMapName = (app: ScalableApp) => childName(app, 'ca-cert');

/** cert-manager's keys, so a Secret it issues can stand in for ours. */
export const TLS_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;

/** Where the web and consumer pods find the CA certificate (the URLs' sslrootcert). */
export const CA_MOUNT = '/etc/scalableapp/ca';
export const CA_FILE = `${CA_MOUNT}/${TLS_KEYS.ca}`;
/** Where a server finds its certificate, key and CA. */
export const SERVER_TLS_MOUNT = '/tls';

/** Whether any tier of the app serves TLS, so its clients need the CA. */
export const usesTls = (app: ScalableApp): boolean =>
  !!(app.spec.database?.tls.enabled || app.spec.shards?.tls.enabled || app.spec.cache?.tls.enabled);

const b64 = (s: string) => Buffer.from(s).toString('base64');

function requireTls(tls: TlsFacts | undefined, what: string): TlsFacts {
  if (!tls) throw new Error(`${what}: certificates not issued: the controller must provide them`);
  return tls;
}

/** The CA's Secret and its certificate's ConfigMap, when a tier serves TLS. */
export function caObjects(app: ScalableApp, facts: ObservedFacts): Child[] {
  if (!usesTls(app)) return [];
  const { ca } = requireTls(facts.tls, caSecretName(app));
  const labels = tierLabels(app, 'tls');
  const secret: V1Secret & Child = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: caSecretName(app), namespace: app.metadata.namespace, labels },
    data: { [TLS_KEYS.cert]: b64(ca.cert), [TLS_KEYS.key]: b64(ca.key) },
  };
  const configMap: V1ConfigMap & Child = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: caConfigMapName(app), namespace: app.metadata.namespace, labels },
    data: { [TLS_KEYS.ca]: ca.cert },
  };
  return [secret, configMap];
}

/** A server's certificate Secret (cert-manager's layout: tls.crt, tls.key, ca.crt). */
export function serverTlsSecret(
  app: ScalableApp,
  name: string,
  labels: Record<string, string>,
  issued: TlsFacts | undefined,
): V1Secret & Child {
  const tls = requireTls(issued, name);
  const pair: KeyPair | undefined = tls.servers[name];
  if (!pair) throw new Error(`${name}: certificate not issued: the controller must provide it`);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name, namespace: app.metadata.namespace, labels },
    data: { [TLS_KEYS.cert]: b64(pair.cert), [TLS_KEYS.key]: b64(pair.key), [TLS_KEYS.ca]: b64(tls.ca.cert) },
  };
}

/** The CA certificate as a file in the app's own pods (web, consumers), when a tier serves TLS. */
export function caVolume(app: ScalableApp): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (!usesTls(app)) return { volumes: [], mounts: [] };
  return {
    volumes: [{ name: 'ca', configMap: { name: caConfigMapName(app) } }],
    mounts: [{ name: 'ca', mountPath: CA_MOUNT, readOnly: true }],
  };
}

/**
 * The DNS names a server certificate holds for Services `services` and the pods of `headless`:
 * every short and qualified form a client in the cluster may use (libpq and Node both match a
 * leading wildcard label).
 */
export function serviceDnsNames(ns: string, services: readonly string[], headless?: string): string[] {
  const forms = (name: string) => [
    name,
    `${name}.${ns}`,
    `${name}.${ns}.svc`,
    `${name}.${ns}.svc.cluster.local`,
  ];
  return [
    ...services.flatMap(forms),
    ...(headless ? [`*.${headless}.${ns}.svc`, `*.${headless}.${ns}.svc.cluster.local`] : []),
  ];
}
