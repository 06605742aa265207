import type {
  V1ConfigMap,
  V1Pod,
  V1PodSpec,
  V1Secret,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { KeyPair } from '../tls/certificates.ts';
import { childName, tierLabels } from './labels.ts';
import type { Child, ObservedFacts, TlsFacts } from './objects.ts';
import { secretWith } from './secrets.ts';

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
export const SERVER_TLS_FILES = {
  cert: `${SERVER_TLS_MOUNT}/${TLS_KEYS.cert}`,
  key: `${SERVER_TLS_MOUNT}/${TLS_KEYS.key}`,
  ca: `${SERVER_TLS_MOUNT}/${TLS_KEYS.ca}`,
} as const;
/** The same files as the server configs name them (cache, broker). */
export const SERVER_TLS_PATHS = {
  certFile: SERVER_TLS_FILES.cert,
  keyFile: SERVER_TLS_FILES.key,
  caFile: SERVER_TLS_FILES.ca,
} as const;
/** The volume of a server pod's certificate. */
export const SERVER_TLS_VOLUME = 'tls';

/**
 * Whether a server's pod was made to serve TLS (it mounts its certificate): what the server runs
 * follows its pod, not the spec, while a change of the setting rolls through the pods.
 */
export const podServesTls = (p: V1Pod) => specServesTls(p.spec);

/** Whether a pod spec (a pod's, or a template's) mounts its server's certificate. */
export const specServesTls = (spec: V1PodSpec | undefined) =>
  (spec?.volumes ?? []).some((v) => v.name === SERVER_TLS_VOLUME);

/** Whether any tier of the app serves TLS, so its clients need the CA. */
export const usesTls = (app: ScalableApp): boolean =>
  !!(
    app.spec.database?.tls.enabled ||
    app.spec.shards?.tls.enabled ||
    app.spec.cache?.tls.enabled ||
    app.spec.queue?.tls.enabled
  );

function requireTls(tls: TlsFacts | undefined, what: string): TlsFacts {
  if (!tls) throw new Error(`${what}: certificates not issued: the controller must provide them`);
  return tls;
}

/**
 * Whether the app needs its CA: a tier serves TLS, or a Postgres cluster takes base backups (its
 * backup servers and their client hold certificates from it, ADR 0029).
 */
export const needsCa = (app: ScalableApp): boolean =>
  usesTls(app) || !!(app.spec.database?.backup || app.spec.shards?.backup);

/** The CA's Secret and its certificate's ConfigMap, when the app needs a CA. */
export function caObjects(app: ScalableApp, facts: ObservedFacts): Child[] {
  if (!needsCa(app)) return [];
  const { ca } = requireTls(facts.tls, caSecretName(app));
  const labels = tierLabels(app, 'tls');
  const secret = secretWith(
    { name: caSecretName(app), namespace: app.metadata.namespace, labels },
    'kubernetes.io/tls',
    { [TLS_KEYS.cert]: ca.cert, [TLS_KEYS.key]: ca.key },
  );
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
  const pair: KeyPair | undefined = issued?.servers[name];
  if (!issued || !pair) throw new Error(`${name}: certificates not issued: the controller must provide them`);
  return secretWith({ name, namespace: app.metadata.namespace, labels }, 'kubernetes.io/tls', {
    [TLS_KEYS.cert]: pair.cert,
    [TLS_KEYS.key]: pair.key,
    [TLS_KEYS.ca]: issued.ca.cert,
  });
}

/**
 * A server's certificate Secret as files in its pod: root-owned and group-readable by the pod's
 * group (fsGroup), which the servers accept for a key file they do not own.
 */
export function serverTlsVolume(secretName: string): { volume: V1Volume; mount: V1VolumeMount } {
  return {
    volume: { name: SERVER_TLS_VOLUME, secret: { secretName, defaultMode: 0o440 } },
    mount: { name: SERVER_TLS_VOLUME, mountPath: SERVER_TLS_MOUNT, readOnly: true },
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
