// spec.monitoring: the exporters beside the data tiers' servers, the annotations that name their
// ports to a scraper, and who may reach those ports. Each tier's builder asks here; with monitoring
// off every function returns nothing, so a tier without it renders exactly as before.
import type { V1Container, V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { restrictedContainerSecurity, RESTRICTED_UID, tmpMount } from './pod-security.ts';
import { resourceRequirements } from './resources.ts';

/** Each tier's metrics port: the anchors' (the exporters' defaults, RabbitMQ's plugin). */
export const METRICS_PORT = { postgres: 9187, cache: 9121, edgeCache: 9113, queue: 15692 } as const;
/** Where nginx answers stub_status for its exporter, on loopback inside the edge pod. */
export const EDGE_STATUS_PORT = 8081;
export const METRICS_PATH = '/metrics';

export const monitored = (app: ScalableApp): boolean => app.spec.monitoring?.enabled === true;

/** The annotations a Prometheus `kubernetes_sd` pod job (and many scrapers) reads. */
export function scrapeAnnotations(
  app: ScalableApp,
  port: number,
  path = METRICS_PATH,
): Record<string, string> {
  if (!monitored(app)) return {};
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': path };
}

/**
 * An exporter container: the image's entrypoint is the exporter, so only arguments are given (the
 * same ones suit the upstream images and ours). Its own uid, whatever the pod's (a Postgres pod runs
 * as the server's): it shares nothing with the server but loopback and the files mounted for it. No
 * readiness probe: a failing exporter must never make the server's pod unready (that would move a
 * database's primary); a liveness probe restarts it alone.
 */
function exporterContainer(
  app: ScalableApp,
  o: {
    image: string;
    port: number;
    args: string[];
    env?: V1EnvVar[];
    volumeMounts?: V1VolumeMount[];
  },
): V1Container {
  return {
    name: 'metrics',
    image: o.image,
    args: o.args,
    ...(o.env ? { env: o.env } : {}),
    ports: [{ name: 'metrics', containerPort: o.port, protocol: 'TCP' }],
    resources: resourceRequirements(app.spec.monitoring.resources),
    livenessProbe: { tcpSocket: { port: 'metrics' }, periodSeconds: 20, failureThreshold: 3 },
    securityContext: {
      ...restrictedContainerSecurity(),
      runAsUser: RESTRICTED_UID,
      runAsGroup: RESTRICTED_UID,
    },
    volumeMounts: [...(o.volumeMounts ?? []), tmpMount],
  };
}

/** The monitor role's password alone, as a file: the exporter never sees another credential. */
const passwordVolume = (name: string, secretName: string, key: string): V1Volume => ({
  name,
  secret: { secretName, items: [{ key, path: 'password' }], defaultMode: 0o440 },
});

const MONITOR_DIR = '/monitor';

/**
 * The Postgres exporter beside an instance: it logs in over loopback as the monitor role (a member
 * of pg_monitor, admitted from 127.0.0.1 only), reads the built-in statistics and the queries below
 * from the cluster's ConfigMap (`queriesKey`, mounted at /config).
 */
export function postgresExporter(
  app: ScalableApp,
  o: {
    port: number;
    credentialsSecret: string;
    passwordKey: string;
    monitorUser: string;
    queriesPath: string;
    /**
     * The server takes TLS only: the exporter encrypts too, without checking the certificate, as
     * it talks to its own pod over loopback, a name no certificate holds.
     */
    tls: boolean;
  },
): { containers: V1Container[]; volumes: V1Volume[] } {
  if (!monitored(app)) return { containers: [], volumes: [] };
  const container = exporterContainer(app, {
    image: app.spec.monitoring.exporterImages.postgres,
    port: METRICS_PORT.postgres,
    args: [`--web.listen-address=:${METRICS_PORT.postgres}`, `--extend.query-path=${o.queriesPath}`],
    env: [
      {
        name: 'DATA_SOURCE_URI',
        value: `127.0.0.1:${o.port}/postgres?sslmode=${o.tls ? 'require' : 'disable'}`,
      },
      { name: 'DATA_SOURCE_USER', value: o.monitorUser },
      { name: 'DATA_SOURCE_PASS_FILE', value: `${MONITOR_DIR}/password` },
    ],
    volumeMounts: [
      { name: 'monitor', mountPath: MONITOR_DIR, readOnly: true },
      { name: 'config', mountPath: '/config', readOnly: true },
    ],
  });
  return {
    containers: [container],
    volumes: [passwordVolume('monitor', o.credentialsSecret, o.passwordKey)],
  };
}

/**
 * The Redis-protocol exporter beside a cache server: it logs in over loopback as the monitor user,
 * whose ACL allows the read-only commands it sends; CONFIG is not among them (CONFIG GET would show
 * masterauth), and maxmemory comes from INFO. `--config-command=-` names a command that does not
 * exist: 1.45 has no "skip" value (1.61 makes `-` one), so each scrape costs one unknown-command error
 * in the server's error counters, where CONFIG would cost one NOPERM.
 */
export function cacheExporter(
  app: ScalableApp,
  o: {
    port: number;
    authSecret: string;
    passwordKey: string;
    monitorUser: string;
    /**
     * The server takes TLS only: the exporter encrypts too, without checking the certificate, as
     * it talks to its own pod over loopback, a name no certificate holds.
     */
    tls: boolean;
  },
): V1Container[] {
  if (!monitored(app)) return [];
  return [
    exporterContainer(app, {
      image: app.spec.monitoring.exporterImages.cache,
      port: METRICS_PORT.cache,
      args: [
        `--web.listen-address=:${METRICS_PORT.cache}`,
        `--redis.addr=${o.tls ? 'rediss' : 'redis'}://127.0.0.1:${o.port}`,
        ...(o.tls ? ['--skip-tls-verification'] : []),
        `--redis.user=${o.monitorUser}`,
        '--config-command=-',
        // Naming its connection (CLIENT SETNAME) at every scrape is not among what the ACL allows.
        '--set-client-name=false',
      ],
      // From the Secret by reference: the password is in no spec, only in the exporter's environment.
      env: [
        { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: o.authSecret, key: o.passwordKey } } },
      ],
    }),
  ];
}

/** The nginx exporter beside an edge-cache proxy: it reads stub_status over loopback. */
export function edgeExporter(app: ScalableApp, statusPath: string): V1Container[] {
  if (!monitored(app)) return [];
  return [
    exporterContainer(app, {
      image: app.spec.monitoring.exporterImages.edgeCache,
      port: METRICS_PORT.edgeCache,
      args: [
        `--web.listen-address=:${METRICS_PORT.edgeCache}`,
        `--nginx.scrape-uri=http://127.0.0.1:${EDGE_STATUS_PORT}${statusPath}`,
      ],
      // 0.11 exits at start when nginx does not answer yet (the two start together): it retries
      // instead. Environment, not flags: the 1.x images ignore these, and refuse the flags.
      env: [
        { name: 'NGINX_RETRIES', value: '10' },
        { name: 'NGINX_RETRY_INTERVAL', value: '2s' },
      ],
    }),
  ];
}

/**
 * The exporter's own queries (postgres_exporter's --extend.query-path format), besides its built-in
 * ones (pg_stat_database, pg_stat_replication, pg_stat_activity, ...): what a failover decision and
 * its alerts look at. Every query works on a primary and on a standby: pg_current_wal_lsn() is
 * only called where the server is not in recovery.
 */
export const POSTGRES_EXPORTER_QUERIES = `# Generated by the ScalableApp operator (operator/tiers/monitoring.ts).
pg_instance:
  query: |
    SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END AS standby,
      CASE WHEN pg_is_in_recovery()
        THEN COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)
        ELSE 0 END AS replay_backlog_bytes,
      CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() <> pg_last_wal_replay_lsn()
        THEN COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
        ELSE 0 END AS replay_lag_seconds,
      pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, '0/0') AS wal_position_bytes,
      (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming_from_primary
  metrics:
    - standby:
        usage: GAUGE
        description: 1 on a standby (in recovery), 0 on the primary.
    - replay_backlog_bytes:
        usage: GAUGE
        description: On a standby, WAL received and not yet replayed.
    - replay_lag_seconds:
        usage: GAUGE
        description: On a standby with WAL to replay, the age of the last replayed transaction; 0 when caught up.
    - wal_position_bytes:
        usage: COUNTER
        description: The WAL position (written on a primary, replayed on a standby), in bytes.
    - streaming_from_primary:
        usage: GAUGE
        description: 1 while this standby's WAL receiver streams.
pg_standby:
  query: |
    SELECT application_name AS standby, sync_state,
      COALESCE(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, replay_lsn), 0) AS replay_lag_bytes,
      COALESCE(EXTRACT(EPOCH FROM replay_lag), 0) AS replay_lag_seconds
    FROM pg_stat_replication
  metrics:
    - standby:
        usage: LABEL
        description: The standby's application_name (its pod).
    - sync_state:
        usage: LABEL
        description: sync, quorum, potential or async.
    - replay_lag_bytes:
        usage: GAUGE
        description: WAL the standby has not replayed yet, as the primary sees it.
    - replay_lag_seconds:
        usage: GAUGE
        description: The standby's last reported replay lag (0 when idle and caught up).
pg_synchronous:
  query: |
    SELECT (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')) AS standbys,
      CASE WHEN current_setting('synchronous_standby_names') = '' THEN 0
        ELSE COALESCE(substring(current_setting('synchronous_standby_names') FROM '^ANY ([0-9]+)')::int, 1) END AS required
  metrics:
    - standbys:
        usage: GAUGE
        description: Standbys that count for synchronous commit now.
    - required:
        usage: GAUGE
        description: Standbys every commit waits for (synchronous_standby_names); 0 for asynchronous replication.
pg_connections:
  query: |
    SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS clients,
      current_setting('max_connections')::int AS max
    FROM pg_stat_activity
  metrics:
    - clients:
        usage: GAUGE
        description: Client connections now.
    - max:
        usage: GAUGE
        description: max_connections.
pg_wal_directory:
  query: SELECT COALESCE(sum(size), 0) AS bytes, count(*) AS segments FROM pg_ls_waldir()
  metrics:
    - bytes:
        usage: GAUGE
        description: The size of pg_wal.
    - segments:
        usage: GAUGE
        description: Files in pg_wal.
`;
