import { contentHash } from './content-hash.ts';
import type { V1ConfigMap, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import {
  CACHE_ACL,
  CACHE_USERS,
  cacheAuthInclude,
  cacheServerConfig,
  maxMemoryBytes,
} from '../server-config/cache.ts';
import { ANNOTATION, childName, selectorLabels, tierLabels, tierMeta } from './labels.ts';
import { restrictedPodBase, tmpVolume, withRestrictedSecurity } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';
import { zoneSpread } from './topology.ts';
import { METRICS_PORT, cacheExporter, monitored, scrapeAnnotations } from './monitoring.ts';
import { disruptionBudget } from './disruption-budget.ts';
import { dataTierService } from './data-tier-services.ts';
import type { Child, ObservedFacts } from './objects.ts';
import {
  CA_FILE,
  SERVER_TLS_FILES,
  SERVER_TLS_PATHS,
  serverTlsSecret,
  serverTlsVolume,
  serviceDnsNames,
} from './tls.ts';
import { secretWith } from './secrets.ts';
import { superviseServer } from '../server-config/first-process.ts';

export const CACHE = 'cache';
export const CACHE_PORT = 6379;

type Cache = NonNullable<ScalableApp['spec']['cache']>;

export const cacheName = (app: ScalableApp) => childName(app, CACHE);
export const cacheHeadlessName = (app: ScalableApp) => `${cacheName(app)}-headless`;
export const cacheReplicasName = (app: ScalableApp) => `${cacheName(app)}-replicas`;
export const cacheAuthName = (app: ScalableApp) => `${cacheName(app)}-auth`;
export const cacheConfigName = (app: ScalableApp) => `${cacheName(app)}-config`;
export const cacheTlsSecretName = (app: ScalableApp) => `${cacheName(app)}-tls`;
/** Every name a client may reach the cache by: its two Services and each pod (replicas sync by it). */
export const cacheServerNames = (app: ScalableApp) =>
  serviceDnsNames(
    app.metadata.namespace ?? '',
    [cacheName(app), cacheReplicasName(app)],
    cacheHeadlessName(app),
  );
/** Whether the cache serves TLS only (spec.cache.tls, on by default). */
export const cacheTls = (app: ScalableApp) => app.spec.cache?.tls.enabled ?? false;

/** The pod that is primary: the operator's record (after a failover), else the first pod. */
export const cachePrimary = (app: ScalableApp, facts: ObservedFacts) =>
  facts.cachePrimary ?? `${cacheName(app)}-0`;

export const cacheHost = (app: ScalableApp, service: string) => `${service}.${app.metadata.namespace}.svc`;

const meta = (app: ScalableApp, name: string) => tierMeta(app, CACHE, name);

/** The ConfigMap key naming the pod (by UID) the operator saw serve as primary (cache-primary.ts). */
export const CACHE_PRIMARY_UID_KEY = 'primaryUid';
/**
 * The ConfigMap key that makes a recorded primary which starts again hold (docs/adr/0021): set by
 * the operator when there is a replica to promote; never by the charts, which have no operator.
 */
export const CACHE_HOLD_KEY = 'holdRestartedPrimary';
/** The ConfigMap keys the operator moves without restarting a server: left out of the config hash. */
const RECORD_KEYS = ['primary', CACHE_PRIMARY_UID_KEY, CACHE_HOLD_KEY] as const;
/** The marker every start leaves on the pod's emptyDir: found at start, the container restarts. */
const STARTED_MARKER = '/data/.started';

/**
 * The start script reads the primary's name from the ConfigMap at start: a pod that was primary and
 * comes back after a failover starts as a replica of the new primary, never as a second primary.
 * The password reaches the server only through the Secret's `auth.conf`, which the config includes:
 * never in the ConfigMap, the pod spec, or the process arguments.
 *
 * A cache persists nothing, so the recorded primary starting again (its container restarted, also
 * one promoted at run time, or a new pod of its name) starts empty; as a primary its replicas, still
 * following it, would resynchronise to that empty dataset and lose every key (Redis's own warning
 * about replication without persistence). With the operator's CACHE_HOLD_KEY it holds instead: a
 * replica of an address nothing listens on (HELD_PRIMARY_ARGS), which takes no writes and refuses to
 * feed replicas (NOMASTERLINK), until the operator promotes the replica that holds the most and
 * makes it follow (docs/adr/0021). Without the key (the charts) it starts as the primary, as before.
 */
function startScript(app: ScalableApp): string {
  return startScriptText(`${cacheHeadlessName(app)}.${app.metadata.namespace}.svc`);
}

/** `--replicaof` arguments of a held primary: loopback port 1, where nothing in a pod listens. */
export const HELD_PRIMARY_ARGS = ['--replicaof', '127.0.0.1', '1'] as const;

/** What the cache chart's copy of the start script has in place of the domain (generate-chart-files). */
export const CACHE_PEER_DOMAIN_PLACEHOLDER = '@PEER_DOMAIN@';

/** The start script's text; `peerDomain` is the domain of the pods' stable names (headless Service). */
export function startScriptText(peerDomain: string): string {
  return [
    '#!/bin/sh',
    'set -eu',
    'server=$(command -v valkey-server || command -v redis-server)',
    'primary=$(cat /config/primary)',
    `started_before=$([ -e ${STARTED_MARKER} ] && echo yes || true)`,
    `: > ${STARTED_MARKER}`,
    // Words without spaces (names, a port), split where the server starts.
    `role_args="--replicaof $primary.${peerDomain} ${CACHE_PORT}"`,
    'if [ "$HOSTNAME" = "$primary" ]; then',
    '  role_args=',
    `  if [ "$(cat /config/${CACHE_HOLD_KEY} 2>/dev/null || true)" = true ]; then`,
    `    served=$(cat /config/${CACHE_PRIMARY_UID_KEY} 2>/dev/null || true)`,
    '    if [ -n "$started_before" ] || { [ -n "$served" ] && [ "$served" != "${POD_UID:-}" ]; }; then',
    '      echo "the recorded primary starts again, empty: held as a replica of nothing until the operator promotes a replica that holds the data" >&2',
    `      role_args="${HELD_PRIMARY_ARGS.join(' ')}"`,
    '    fi',
    '  fi',
    'fi',
    // The server runs as this shell's child: it reaps the orphans of timed-out probes (first-process.ts).
    ...superviseServer('"$server" /config/cache.conf $role_args'),
    '',
  ].join('\n');
}

/** Where the cache pods mount their auth Secret (the include, and each login's password as a file). */
const AUTH_DIR = '/auth';

/**
 * The readiness probe: the server answers PING with PONG, asked with the operator's login. A TCP
 * connect passes while a replica loads its primary's dataset, when it answers every command with
 * LOADING; this does not. Liveness stays a TCP check: a loading server is alive. The password is
 * read from the mounted Secret into REDISCLI_AUTH, never onto a command line.
 *
 * With TLS it asks over TLS (the chain checked against the CA), and when the kubelet has swapped in
 * a renewed certificate it makes the server read it (CONFIG SET of the same files: Redis reloads its
 * TLS context then, and only then); connections keep the TLS they started with. The copy in /data
 * records what the server last loaded (none yet: load it, in case it changed since the start).
 */
export function readyScriptText(tls = false): string {
  const f = SERVER_TLS_FILES;
  const served = '/data/.served.crt';
  const ask = (verify: boolean) =>
    `"$cli"${tls ? (verify ? ` --tls --cacert ${f.ca}` : ' --tls --insecure') : ''} --no-auth-warning --user ${CACHE_USERS.operator} -h 127.0.0.1 -p ${CACHE_PORT}`;
  return [
    '#!/bin/sh',
    'cli=$(command -v valkey-cli || command -v redis-cli)',
    `REDISCLI_AUTH=$(cat ${AUTH_DIR}/${CACHE_PASSWORD_KEYS.operator}) || exit 1`,
    'export REDISCLI_AUTH',
    // First the reload, over loopback without a chain check: after a new CA the files hold a
    // certificate of the new CA while the server still serves the old one, which the new CA file
    // would not verify, so a verified PING first would never get this far.
    ...(tls
      ? [
          `if ! cmp -s ${f.cert} ${served}; then`,
          `  reply=$(${ask(false)} CONFIG SET tls-cert-file ${f.cert} tls-key-file ${f.key} tls-ca-cert-file ${f.ca} 2>&1)`,
          `  if [ "$reply" = OK ]; then cp ${f.cert} ${served}.tmp && mv -f ${served}.tmp ${served}; else echo "reloading the certificate: $reply" >&2; fi`,
          'fi',
        ]
      : []),
    `reply=$(${ask(true)} PING 2>&1)`,
    '[ "$reply" = PONG ] && exit 0',
    'echo "PING: $reply"',
    'exit 1',
    '',
  ].join('\n');
}

/** Whether a restarted primary holds for the operator: only when there is a replica to promote. */
export const restartedPrimaryWaits = (app: ScalableApp) => (app.spec.cache?.replicas ?? 0) > 0;

/** The keys of the cache's auth Secret that hold passwords (CACHE_USERS names their users). */
export const CACHE_PASSWORD_KEYS = {
  /** The app's, as the user asks for it: a new value starts a rotation. */
  app: 'password',
  operator: 'operator-password',
  replication: 'replication-password',
  monitor: 'monitor-password',
} as const;

/**
 * The operator's record of the app's password in the same Secret (docs/adr/0026): the one the URLs
 * name and the servers accept, and the previous one, accepted beside it while the app's pods roll.
 */
export const CACHE_APP_RECORD_KEYS = {
  current: 'current-password',
  retiring: 'retiring-password',
} as const;

export function cacheAuthSecret(app: ScalableApp, facts: ObservedFacts): V1Secret & Child {
  const logins = facts.cacheLogins;
  const password = facts.cachePassword;
  if (!password || !logins)
    throw new Error('cache passwords not generated: the controller must provide them');
  const retiring = password.retiring;
  // The monitor user exists only with monitoring (its password is kept either way, so it is stable).
  const passwords = {
    app: password.current,
    retiringApp: retiring,
    operator: logins.operator,
    replication: logins.replication,
    monitor: monitored(app) ? logins.monitor : undefined,
  };
  return secretWith(meta(app, cacheAuthName(app)), 'Opaque', {
    [CACHE_PASSWORD_KEYS.app]: password.wanted,
    [CACHE_APP_RECORD_KEYS.current]: passwords.app,
    ...(retiring !== undefined ? { [CACHE_APP_RECORD_KEYS.retiring]: retiring } : {}),
    [CACHE_PASSWORD_KEYS.operator]: passwords.operator,
    [CACHE_PASSWORD_KEYS.replication]: passwords.replication,
    [CACHE_PASSWORD_KEYS.monitor]: logins.monitor,
    // The include the server config names: the logins reach the server only through this file.
    'auth.conf': cacheAuthInclude(passwords),
  });
}

export function cacheConfigMap(app: ScalableApp, facts: ObservedFacts): V1ConfigMap & Child {
  const cache = app.spec.cache!;
  const conf = cacheServerConfig({
    port: CACHE_PORT,
    maxMemoryBytes: maxMemoryBytes(cache.resources.limits?.memory, cache.memoryHeadroomPercent),
    evictionPolicy: cache.evictionPolicy,
    minReplicasToWrite: cache.minReplicasToWrite,
    maxReplicaLagSeconds: cache.maxReplicaLagSeconds,
    dir: '/data',
    authFile: `${AUTH_DIR}/auth.conf`,
    ...(cacheTls(app) ? { tls: SERVER_TLS_PATHS } : {}),
  });
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(app, cacheConfigName(app)),
    data: {
      'cache.conf': conf,
      'start.sh': startScript(app),
      'ready.sh': readyScriptText(cacheTls(app)),
      primary: cachePrimary(app, facts),
      ...(facts.cachePrimaryUid ? { [CACHE_PRIMARY_UID_KEY]: facts.cachePrimaryUid } : {}),
      ...(restartedPrimaryWaits(app) ? { [CACHE_HOLD_KEY]: 'true' } : {}),
    },
  };
}

export function cacheStatefulSet(app: ScalableApp, configHash: string): V1StatefulSet & Child {
  const cache: Cache = app.spec.cache!;
  const selector = selectorLabels(app, CACHE);
  const spread = zoneSpread(app, selector);
  const tlsFiles = serverTlsVolume(cacheTlsSecretName(app));
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(app, cacheName(app)),
    spec: {
      replicas: 1 + cache.replicas,
      serviceName: cacheHeadlessName(app),
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: tierLabels(app, CACHE),
          annotations: { [ANNOTATION.configHash]: configHash, ...scrapeAnnotations(app, METRICS_PORT.cache) },
        },
        spec: {
          ...restrictedPodBase(),
          containers: [
            withRestrictedSecurity({
              name: CACHE,
              image: cache.image,
              command: ['sh', '/config/start.sh'],
              // Which pod this is, beside which pod the record says served as the primary.
              env: [{ name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } }],
              ports: [{ name: 'cache', containerPort: CACHE_PORT, protocol: 'TCP' }],
              resources: resourceRequirements(cache.resources),
              readinessProbe: {
                exec: { command: ['sh', '/config/ready.sh'] },
                periodSeconds: 5,
                timeoutSeconds: 2,
              },
              livenessProbe: { tcpSocket: { port: 'cache' }, periodSeconds: 10, failureThreshold: 6 },
              volumeMounts: [
                { name: 'config', mountPath: '/config', readOnly: true },
                { name: 'auth', mountPath: AUTH_DIR, readOnly: true },
                { name: 'data', mountPath: '/data' },
                ...(cacheTls(app) ? [tlsFiles.mount] : []),
              ],
            }),
            // After the server: the failover logic reads the server's container by name.
            ...cacheExporter(app, {
              port: CACHE_PORT,
              authSecret: cacheAuthName(app),
              passwordKey: CACHE_PASSWORD_KEYS.monitor,
              monitorUser: CACHE_USERS.monitor,
              tls: cacheTls(app),
            }),
          ],
          volumes: [
            { name: 'config', configMap: { name: cacheConfigName(app) } },
            { name: 'auth', secret: { secretName: cacheAuthName(app) } },
            ...(cacheTls(app) ? [tlsFiles.volume] : []),
            // A cache: nothing to keep across restarts, so no volume claim.
            { name: 'data', emptyDir: { sizeLimit: '1Gi' } },
            tmpVolume,
          ],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
    },
  };
}

export const cacheDisruptionBudget = (app: ScalableApp) => disruptionBudget(app, CACHE, cacheName(app));

export function cacheObjects(app: ScalableApp, facts: ObservedFacts, configHash: string): Child[] {
  if (!app.spec.cache) return [];
  const port = { name: 'cache', port: CACHE_PORT };
  return [
    cacheAuthSecret(app, facts),
    ...(cacheTls(app)
      ? [serverTlsSecret(app, cacheTlsSecretName(app), tierLabels(app, CACHE), facts.tls)]
      : []),
    cacheConfigMap(app, facts),
    dataTierService(app, CACHE, cacheHeadlessName(app), 'headless', port),
    dataTierService(app, CACHE, cacheName(app), 'primary', port),
    dataTierService(app, CACHE, cacheReplicasName(app), 'replica', port),
    cacheStatefulSet(app, configHash),
    cacheDisruptionBudget(app),
  ];
}

/** What the app is told about the cache (connection Secret entries). */
export function cacheEntries(app: ScalableApp, facts: ObservedFacts): Record<string, string> {
  if (!app.spec.cache || !facts.cachePassword) return {};
  const pw = encodeURIComponent(facts.cachePassword.current);
  // With TLS, rediss:// and the CA the certificate chains to (Redis URLs have no parameter for it).
  const scheme = cacheTls(app) ? 'rediss' : 'redis';
  const url = (svc: string) => `${scheme}://:${pw}@${cacheHost(app, svc)}:${CACHE_PORT}/0`;
  const entries: Record<string, string> = {
    CACHE_URL: url(cacheName(app)),
    CACHE_REPLICAS_URL: url(cacheReplicasName(app)),
    CACHE_DEFAULT_TTL_SECONDS: String(app.spec.cache.defaultTTLSeconds),
    ...(cacheTls(app) ? { CACHE_CA_FILE: CA_FILE } : {}),
  };
  if (app.spec.web?.sessions === 'cache') {
    // Sessions in the shared cache: any web replica serves any request, no sticky sessions.
    entries.SESSION_STORE = 'redis';
    entries.SESSION_STORE_URL = entries.CACHE_URL!;
    entries.SESSION_TTL_SECONDS = String(app.spec.cache.defaultTTLSeconds || 86400);
  }
  return entries;
}

/**
 * Restart the cache servers when their configuration changes, but not when only the primary moves.
 * The logins' rules count (not their passwords, which rotate at run time): a server reads its users
 * only at start, and one started with older rules would refuse what the operator now asks of it.
 */
export function cacheConfigHash(app: ScalableApp, facts: ObservedFacts): string {
  if (!app.spec.cache) return '';
  const data: Record<string, unknown> = { ...cacheConfigMap(app, facts).data };
  for (const key of RECORD_KEYS) delete data[key];
  data.acl = CACHE_ACL;
  return contentHash(data);
}
