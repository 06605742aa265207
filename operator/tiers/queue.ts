import type {
  V1ConfigMap,
  V1PodDisruptionBudget,
  V1Secret,
  V1Service,
  V1ServicePort,
  V1StatefulSet,
} from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import {
  AMQP_PORT,
  CONFIG_FILES,
  CREDENTIAL_FILES,
  DIST_PORT,
  EPMD_PORT,
  MANAGEMENT_PORT,
  brokerConfigFiles,
  brokerHost,
  brokerNodeName,
  distributionTlsArgs,
  diskFreeLimitBytes,
  memoryHighWatermarkBytes,
  type BrokerEnv,
} from '../server-config/rabbitmq.ts';
import { ANNOTATION, childName, selectorLabels, tierLabels, tierMeta } from './labels.ts';
import { restrictedContainerSecurity, restrictedPodBase, tmpMount, tmpVolume } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';
import { zoneSpread } from './topology.ts';
import { METRICS_PORT, monitored, scrapeAnnotations } from './monitoring.ts';
import { disruptionBudget } from './disruption-budget.ts';
import { contentHash } from './content-hash.ts';
import type { AppLoginRecord, Child, ObservedFacts, QueueCredentials } from './objects.ts';
import { APP_LOGIN_KEYS } from '../server-config/app-login-keys.ts';
import { secretWith } from './secrets.ts';
import { CA_FILE, SERVER_TLS_PATHS, serverTlsSecret, serverTlsVolume, serviceDnsNames } from './tls.ts';

export const QUEUE = 'queue';
/** The broker's container: what its readiness and incarnation are read from (the exporter's is apart). */
export const BROKER_CONTAINER = 'rabbitmq';
/** The uid and gid of the `rabbitmq` user in the official image, which owns what the broker writes. */
export const RABBITMQ_UID = 999;
/** How long a broker may take to open its AMQP port: twice the longest wait for its peers. */
export const STARTUP_WINDOW_SECONDS = 600;
const STARTUP_PERIOD_SECONDS = 10;

export type { QueueCredentials } from './objects.ts';

type Queue = NonNullable<ScalableApp['spec']['queue']>;

export const mqName = (app: ScalableApp) => childName(app, 'mq');
export const mqHeadlessName = (app: ScalableApp) => `${mqName(app)}-headless`;
export const mqCredentialsName = (app: ScalableApp) => `${mqName(app)}-credentials`;
export const mqConfigName = (app: ScalableApp) => `${mqName(app)}-config`;
export const mqHost = (app: ScalableApp) => `${mqName(app)}.${app.metadata.namespace}.svc`;
export const mqTlsSecretName = (app: ScalableApp) => `${mqName(app)}-tls`;

/** Whether the broker serves TLS only (spec.queue.tls, on by default). */
export const queueTls = (app: ScalableApp) => app.spec.queue?.tls.enabled ?? false;

/** The brokers' pods, one per replica, as the StatefulSet names them. */
const mqPods = (app: ScalableApp) =>
  Array.from({ length: app.spec.queue!.replicas }, (_, i) => `${mqName(app)}-${i}`);

/**
 * The names the broker's certificate holds: the client Service (AMQP and the management API, which
 * the app and the operator reach) and every node by its headless name, through the wildcard and
 * exactly: the Erlang distribution checks a node's host name without matching wildcards, so a
 * scale-up issues the certificate again with the new brokers' names.
 */
export function mqServerNames(app: ScalableApp): string[] {
  const ns = app.metadata.namespace ?? '';
  const nodes = mqPods(app).map((pod) => brokerHost(pod, mqHeadlessName(app), ns));
  return [...serviceDnsNames(ns, [mqName(app)], mqHeadlessName(app)), ...nodes];
}

/** The management API's origin, as the operator reaches it: https when the broker serves TLS. */
export const mqManagementUrl = (app: ScalableApp) =>
  `${queueTls(app) ? 'https' : 'http'}://${mqHost(app)}:${MANAGEMENT_PORT}`;

/** Where the pod mounts what the start script reads and writes (BrokerEnv). */
const PATHS = {
  config: '/config',
  credentials: '/credentials',
  /** The data volume: the image's RABBITMQ_DATA_DIR. */
  data: '/var/lib/rabbitmq',
  /** emptyDir: HOME with the cookie copy, the definitions with the login, a crash dump. */
  home: '/run/rabbitmq',
} as const;

/** Every node's Erlang name, whether or not its pod exists right now. */
export function mqNodeNames(app: ScalableApp): string[] {
  return mqPods(app).map((pod) => brokerNodeName(pod, mqHeadlessName(app), app.metadata.namespace!));
}

const meta = (app: ScalableApp, name: string) => tierMeta(app, QUEUE, name);

export function mqCredentialsSecret(app: ScalableApp, facts: ObservedFacts): V1Secret & Child {
  const c = facts.queueCredentials;
  if (!c) throw new Error('queue credentials not generated: the controller must provide them');
  return secretWith(meta(app, mqCredentialsName(app)), 'Opaque', {
    [CREDENTIAL_FILES.username]: c.username,
    [CREDENTIAL_FILES.password]: c.password,
    [CREDENTIAL_FILES.monitoringUsername]: c.monitoringUsername,
    [CREDENTIAL_FILES.monitoringPassword]: c.monitoringPassword,
    ...(c.operatorPassword ? { [CREDENTIAL_FILES.operatorPassword]: c.operatorPassword } : {}),
    [CREDENTIAL_FILES.erlangCookie]: c.erlangCookie,
    // The operator's record (ADR 0027): the login the brokers' start script gives the app.
    ...(c.appLogin
      ? {
          [APP_LOGIN_KEYS.login]: c.appLogin.name,
          [APP_LOGIN_KEYS.password]: c.appLogin.password,
          ...(c.appLogin.retiring ? { [APP_LOGIN_KEYS.retiring]: c.appLogin.retiring } : {}),
        }
      : {}),
  });
}

/** The login the app's URLs name: the operator's record, or before the first one, the Secret's own. */
export const queueAppLogin = (c: QueueCredentials): AppLoginRecord =>
  c.appLogin ?? { name: c.username, password: c.password };

/** rabbitmq.conf, advanced.config, definitions.json, enabled_plugins and start.sh: no secret in any. */
export function mqConfigMap(app: ScalableApp): V1ConfigMap & Child {
  const q: Queue = app.spec.queue!;
  const memoryLimit = q.resources.limits?.memory;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(app, mqConfigName(app)),
    data: brokerConfigFiles({
      nodes: mqNodeNames(app),
      queues: q.queues,
      definitionsFile: `${PATHS.home}/definitions.json`,
      memoryHighWatermarkBytes: memoryHighWatermarkBytes(memoryLimit),
      diskFreeLimitBytes: diskFreeLimitBytes(q.storage.size, memoryLimit),
      ...(monitored(app) ? { prometheusPort: METRICS_PORT.queue } : {}),
      ...(queueTls(app) ? { tls: SERVER_TLS_PATHS } : {}),
    }),
  };
}

/** Restart the nodes when any file of their configuration changes (a new queue is declared at boot). */
export const mqConfigHash = (app: ScalableApp) => contentHash(mqConfigMap(app).data ?? {});

const port = (name: string, number: number): V1ServicePort => ({
  name,
  port: number,
  targetPort: number,
  protocol: 'TCP',
});

function mqService(app: ScalableApp, name: string, spec: V1Service['spec']): V1Service & Child {
  return { apiVersion: 'v1', kind: 'Service', metadata: meta(app, name), spec };
}

/**
 * Stable DNS for every node (its Erlang host name), also while not ready: peers must resolve each
 * other to form the cluster before any of them is ready. Carries the peer-only ports too.
 */
export const mqHeadlessService = (app: ScalableApp) =>
  mqService(app, mqHeadlessName(app), {
    clusterIP: 'None',
    publishNotReadyAddresses: true,
    selector: selectorLabels(app, QUEUE),
    ports: [
      port('amqp', AMQP_PORT),
      port('management', MANAGEMENT_PORT),
      port('epmd', EPMD_PORT),
      port('dist', DIST_PORT),
    ],
  });

/** What clients and the operator use: any ready node serves every queue (it forwards to the leader). */
export const mqClientService = (app: ScalableApp) =>
  mqService(app, mqName(app), {
    selector: selectorLabels(app, QUEUE),
    ports: [port('amqp', AMQP_PORT), port('management', MANAGEMENT_PORT)],
  });

export function mqStatefulSet(app: ScalableApp): V1StatefulSet & Child {
  const q: Queue = app.spec.queue!;
  const ns = app.metadata.namespace!;
  const selector = selectorLabels(app, QUEUE);
  const spread = zoneSpread(app, selector);
  const base = restrictedPodBase();
  const env: BrokerEnv = {
    RABBITMQ_NODENAME: `rabbit@$(POD_NAME).${mqHeadlessName(app)}.${ns}.svc`,
    RABBITMQ_USE_LONGNAME: 'true',
    HOME: PATHS.home,
    CONFIG_DIR: PATHS.config,
    CREDENTIALS_DIR: PATHS.credentials,
    RABBITMQ_MNESIA_BASE: `${PATHS.data}/mnesia`,
    // log.file is off; this only keeps anything that still wants a log directory off the read-only root.
    RABBITMQ_LOG_BASE: `${PATHS.home}/log`,
    // A CLI run in the pod (kubectl exec rabbitmqctl) reaches a node whose distribution runs over
    // TLS the same way.
    ...(queueTls(app) ? { RABBITMQ_CTL_ERL_ARGS: distributionTlsArgs(PATHS.config) } : {}),
  };
  // Alive while the broker's VM answers HTTP: the management UI's index page needs no login. Not
  // `rabbitmq-diagnostics ping`: every exec of it starts an Erlang VM that joins the distribution
  // (over TLS), about 2 CPU seconds and 5 s of wall time on a busy node against 0.015 s for this
  // request (bench/broker-probe-cost.ts); under load it outlasted its timeout and brokers were
  // restarted for being slow to start a CLI. The kubelet does not check the certificate.
  const alive = {
    httpGet: { path: '/', port: 'management', scheme: queueTls(app) ? 'HTTPS' : 'HTTP' },
  };
  // A renewed certificate is read from these files without a restart (rabbitmq.ts, listenerLines).
  const tlsFiles = queueTls(app) ? serverTlsVolume(mqTlsSecretName(app)) : undefined;
  const amqp = { tcpSocket: { port: 'amqp' } };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(app, mqName(app)),
    spec: {
      replicas: q.replicas,
      serviceName: mqHeadlessName(app),
      // Parallel: a node that was not the last of its cluster to stop waits at boot for the peers
      // that were (Mnesia's table wait, 5 min by default, then it fails and restarts). Under
      // OrderedReady pod 0 would never become ready while waiting, so pods 1 and 2 would never be
      // created: a deadlock after any restart of the whole cluster in which pod 0 did not stop last
      // (shown in server-tests/queue.test.ts). On a first boot there is no such wait.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selector },
      // The queue spec has no deletionPolicy: messages are data, so claims always outlive the set.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      template: {
        metadata: {
          labels: tierLabels(app, QUEUE),
          annotations: {
            [ANNOTATION.configHash]: mqConfigHash(app),
            ...scrapeAnnotations(app, METRICS_PORT.queue),
          },
        },
        spec: {
          ...base,
          securityContext: {
            ...base.securityContext,
            runAsUser: RABBITMQ_UID,
            runAsGroup: RABBITMQ_UID,
            fsGroup: RABBITMQ_UID,
          },
          // A clean stop hands queue leadership over and closes Raft logs and Mnesia properly; a
          // SIGKILL halfway makes the next boot recover them.
          terminationGracePeriodSeconds: 120,
          containers: [
            {
              name: BROKER_CONTAINER,
              image: q.image,
              command: ['sh', `${PATHS.config}/${CONFIG_FILES.startScript}`],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                ...Object.entries(env).map(([name, value]) => ({ name, value: String(value) })),
              ],
              ports: [
                { name: 'amqp', containerPort: AMQP_PORT, protocol: 'TCP' },
                { name: 'management', containerPort: MANAGEMENT_PORT, protocol: 'TCP' },
                { name: 'epmd', containerPort: EPMD_PORT, protocol: 'TCP' },
                { name: 'dist', containerPort: DIST_PORT, protocol: 'TCP' },
                ...(monitored(app)
                  ? [{ name: 'metrics', containerPort: METRICS_PORT.queue, protocol: 'TCP' }]
                  : []),
              ],
              resources: resourceRequirements(q.resources),
              // Started, and ready, once the AMQP listener is open (a TCP connect costs nothing):
              // RabbitMQ opens it last, after the node joined its cluster, imported the definitions
              // and started its plugins, the management listener among them. Joining waits up to 5
              // minutes for the peers' tables (Mnesia's 10 tries of 30 s, after which the node exits
              // by itself): starting is given twice that, and liveness runs only after it, so no
              // restart cuts the wait short.
              startupProbe: {
                ...amqp,
                periodSeconds: STARTUP_PERIOD_SECONDS,
                failureThreshold: STARTUP_WINDOW_SECONDS / STARTUP_PERIOD_SECONDS,
              },
              readinessProbe: { ...amqp, periodSeconds: 10, failureThreshold: 3 },
              livenessProbe: { ...alive, periodSeconds: 30, timeoutSeconds: 10, failureThreshold: 3 },
              securityContext: restrictedContainerSecurity(),
              volumeMounts: [
                { name: 'data', mountPath: PATHS.data },
                { name: 'config', mountPath: PATHS.config, readOnly: true },
                { name: 'credentials', mountPath: PATHS.credentials, readOnly: true },
                { name: 'home', mountPath: PATHS.home },
                ...(tlsFiles ? [tlsFiles.mount] : []),
                tmpMount,
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name: mqConfigName(app) } },
            // Group-readable for fsGroup: the start script copies the cookie to a 0400 file.
            { name: 'credentials', secret: { secretName: mqCredentialsName(app), defaultMode: 0o440 } },
            { name: 'home', emptyDir: { sizeLimit: '256Mi' } },
            ...(tlsFiles ? [tlsFiles.volume] : []),
            tmpVolume,
          ],
          ...(spread ? { topologySpreadConstraints: spread } : {}),
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels: tierLabels(app, QUEUE) },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(q.storage.storageClassName ? { storageClassName: q.storage.storageClassName } : {}),
            resources: { requests: { storage: String(q.storage.size) } },
          },
        },
      ],
    },
  };
}

export const mqDisruptionBudget = (app: ScalableApp): V1PodDisruptionBudget & Child =>
  disruptionBudget(app, QUEUE, mqName(app));

export function queueObjects(app: ScalableApp, facts: ObservedFacts): Child[] {
  if (!app.spec.queue) return [];
  return [
    mqCredentialsSecret(app, facts),
    ...(queueTls(app) ? [serverTlsSecret(app, mqTlsSecretName(app), tierLabels(app, QUEUE), facts.tls)] : []),
    mqConfigMap(app),
    mqHeadlessService(app),
    mqClientService(app),
    mqStatefulSet(app),
    mqDisruptionBudget(app),
  ];
}

/**
 * What the app (its web tier and consumers) is told about the queue (connection Secret entries): its
 * own login, and with TLS amqps:// and the CA to check the broker's certificate against (AMQP URIs
 * have no parameter for it). Not the management API: that is the operator's, and the app's pods
 * cannot reach it.
 */
export function queueEntries(app: ScalableApp, facts: ObservedFacts): Record<string, string> {
  const c = facts.queueCredentials;
  if (!app.spec.queue || !c) return {};
  const current = queueAppLogin(c);
  const login = `${encodeURIComponent(current.name)}:${encodeURIComponent(current.password)}`;
  return {
    // The vhost `/`, URL-encoded as AMQP URIs require.
    QUEUE_URL: `${queueTls(app) ? 'amqps' : 'amqp'}://${login}@${mqHost(app)}:${AMQP_PORT}/%2F`,
    ...(queueTls(app) ? { QUEUE_CA_FILE: CA_FILE } : {}),
  };
}
