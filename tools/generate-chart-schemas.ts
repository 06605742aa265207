// Writes charts/<chart>/values.schema.json for every tier chart from the zod schema, so a chart's
// values are validated exactly as the ScalableApp spec's tier object is (same fields, ranges,
// patterns, enums), plus the keys only the chart has. `--check` fails when a file on disk differs
// (CI runs it after the CRD check, so a stale schema cannot land).
//
// To add a chart: add one entry to CHART_SCHEMAS. CEL rules (cross-field rules such as
// minReplicas <= maxReplicas) cannot be said in JSON Schema; each chart enforces them in its
// templates with `fail` and the CEL rule's message, and its tests check every rule (tierCelRules).
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { format } from 'prettier';
import { parse } from 'yaml';
import { z } from 'zod';
import { doc, type CelRule } from '../operator/api/meta.ts';
import { spec, TIERS } from '../operator/api/spec.ts';
import { web } from '../operator/api/web.ts';
import { cache } from '../operator/api/cache.ts';
import { edgeCache } from '../operator/api/edge-cache.ts';
import { database, postgresInstances } from '../operator/api/database.ts';
import { shards } from '../operator/api/shards.ts';
import { consumers, queue } from '../operator/api/queue.ts';
import { DNS_LABEL } from '../operator/api/common.ts';
import { monitoring } from '../operator/api/platform.ts';

type Schema = Record<string, unknown>;

export interface ChartSchema {
  /** The chart's directory under charts/. */
  readonly chart: string;
  /** The zod object whose fields (and defaults) the chart's values mirror, e.g. spec.web. */
  readonly tier: z.ZodObject;
  /** Keys only the chart has: what the operator would observe or generate, wiring between charts. */
  readonly chartOnly?: z.ZodRawShape;
  /** Whether the values also have `platform` and `networkPolicies` (every tier chart does). */
  readonly tierChart?: boolean;
  /**
   * Keys of the tier the chart does not take (yet), each with the reason: its values refuse them,
   * so a chart never accepts a field it ignores.
   */
  readonly operatorOnly?: Readonly<Record<string, string>>;
}

/**
 * Continuous archiving is the operator's so far (ADR 0029): its status (whether archiving keeps up)
 * is read by the operator, and the charts take it with base backups and recovery.
 */
const BACKUP_OPERATOR_ONLY =
  'archiving is reported by the operator; the charts take backups with base backups and recovery';

const secretName = (what: string) =>
  doc(
    z
      .string()
      .min(1)
      .max(253)
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/),
    what,
  );

/**
 * A password a server reads from a file line by line (Postgres' start script, the cache's ACL file):
 * a line break would cut or split it, a NUL end it.
 */
const oneLinePassword = (description: string) =>
  doc(
    z
      .string()
      .min(1)
      .max(512)
      .regex(/^[^\r\n\0]+$/),
    description,
  ).optional();

const postgresPassword = (what: string) =>
  oneLinePassword(`${what} When omitted it is kept from the release's Secret, or generated.`);

/** The Postgres passwords of a chart whose Secret has the operator's layout (`<app>-<name>`). */
const postgresAuth = (name: string) =>
  doc(
    z.object({
      existingSecret: secretName(
        `An existing Secret with the keys superuser-password, replication-password and app-password (the layout of the operator's \`<app>-${name}\`), and monitor-password with monitoring.enabled, used instead of one the chart creates.`,
      ).optional(),
      superuserPassword: postgresPassword('The password of the superuser `postgres`.'),
      replicationPassword: postgresPassword('The password of the replication role `replicator`.'),
      appPassword: postgresPassword('The password of the role `app`, owner of the database `app`.'),
      // postgres_exporter 0.11 builds a DSN from it and does not start when it holds a space.
      monitorPassword: doc(
        z
          .string()
          .min(1)
          .max(512)
          .regex(/^[^\s\0]+$/),
        "The password of the role `monitor` (the metrics exporter's, a member of pg_monitor, admitted from loopback only), with monitoring.enabled: created at initdb, so one given later changes the Secret but not the role. No spaces (postgres_exporter 0.11 refuses them). When omitted it is kept from the release's Secret, or generated.",
      ).optional(),
    }),
    "The Postgres passwords. Each one not given is kept from the release's Secret, or generated at install.",
  ).default({});

/** A PEM text (a certificate or a private key). */
const pem = (what: string) =>
  doc(
    z
      .string()
      .min(1)
      .max(16384)
      .regex(/-----BEGIN [A-Z ]+-----/),
    what,
  ).optional();

/** A certificate and its private key, PEM. */
const keyPair = (description: string, cert: string, key: string) =>
  doc(z.object({ cert: pem(cert), key: pem(key) }), description).default({});

/**
 * The spec's `tls` of a data tier (`spec`: the tier's own, database, shards or cache) with what the
 * operator issues itself as chart-only keys: the CA, the server certificate(s), or an existing
 * Secret (cert-manager's), and the switches a chart needs without a controller. `certificates` is
 * the tier's key for its server certificates.
 */
// prefault: the object is filled from its fields' defaults, whichever keys the tier adds.
const tierTls = (
  spec: ReturnType<typeof postgresInstances.tls.unwrap>,
  certificates: Record<string, z.ZodType>,
  owns: string,
) => {
  return doc(
    spec.extend({
      ca: keyPair(
        "The app's CA. When omitted it is kept from the release's Secret `<release>-ca`, or generated (ECDSA P-256, ten years). A cert given without its key (an outside CA) only fills the ConfigMap `<release>-ca-cert`, with existingSecret.",
        'The CA certificate, PEM.',
        "The CA's private key, PEM.",
      ),
      ...certificates,
      existingSecret: secretName(
        `An existing Secret with tls.crt, tls.key and ca.crt (cert-manager's layout) that ${owns} mount instead of the chart's; the chart then renders no server certificate and no CA Secret, and fills \`<release>-ca-cert\` from ca.cert, else from the Secret's ca.crt.`,
      ).optional(),
      reissue: doc(
        z.boolean(),
        'Issue the server certificates again from the kept CA on this render: how a chart renews them (nothing renews them without the operator).',
      ).default(false),
      appWide: doc(
        z.boolean(),
        "Render the app's CA Secret and CA ConfigMap. Several tier charts installed under one release (an umbrella) must leave them to exactly one.",
      ).default(true),
    }),
    `${spec.description} Without the operator: certificates given, kept from the release's Secrets, or generated at install, and never renewed by themselves (docs/helm.md, "TLS").`,
  ).prefault({});
};

/** The connection Secret the pods take their environment from, as charts/web and charts/consumers have it. */
const connectionValues = (pods: string, entries: string) =>
  doc(
    z.object({
      secretName: secretName(
        'An existing Secret the pods take their environment from (envFrom), e.g. the operator-style `<app>-connection`. When omitted the chart creates `<release>-connection`.',
      ).optional(),
      hash: doc(
        z.string().regex(/^[0-9a-f]{16}$/),
        "Digest of that Secret's data for the pod template (rolls the pods when it changes). When omitted the chart computes it from the live Secret at install and upgrade.",
      ).optional(),
      entries: doc(z.record(z.string().regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/), z.string()), entries).default(
        {},
      ),
    }),
    `Where the ${pods}' environment comes from: the operator's connection Secret holds every tier's address.`,
  ).default({ entries: {} });

/**
 * What the tier charts' `helm test` pods run: hand-written HTTP/1.0 requests through nc, so any image
 * with a shell and busybox's or netcat-openbsd's nc will do (busybox, a Debian minbase with netcat).
 */
const ncTestTools = (...more: string[]) =>
  `sh, ${[...more, 'sed', 'tr', 'grep'].join(', ')} and nc (busybox's or netcat-openbsd's)`;

/** An image reference: no whitespace. */
const imageRef = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\s]+$/);

/** The image of a chart's `helm test` pod. */
const testPod = (runs: string, checks: string) =>
  doc(
    z.object({
      image: doc(imageRef, `Image of the \`helm test\` pod; it runs ${runs}.`).default('busybox:1.37'),
    }),
    `The \`helm test\` hook that checks ${checks}.`,
  ).default({ image: 'busybox:1.37' });

/**
 * The image of a `helm test` pod that asks the broker's management API: over TLS with openssl
 * s_client when the broker serves TLS (which busybox lacks), so its default depends on that.
 */
const brokerTestPod = (checks: string, whenOmitted: string) =>
  doc(
    z.object({
      image: doc(
        imageRef,
        `Image of the \`helm test\` pod; it runs ${ncTestTools('base64')} without TLS, and sh, base64, sed, tr, grep, timeout and openssl (s_client, checking the broker's certificate against the app's CA and its name) with TLS. When omitted: ${whenOmitted}.`,
      ).optional(),
    }),
    `The \`helm test\` hook that checks ${checks}.`,
  ).default({});

/** A broker login field: the start script refuses control characters in it. */
const brokerLogin = (what: string) =>
  doc(
    z
      .string()
      .min(1)
      .max(512)
      // eslint-disable-next-line no-control-regex -- refusing control characters is the point
      .regex(/^[^\x00-\x1f\x7f]+$/),
    `${what} When omitted it is kept from the release's Secret, or generated.`,
  ).optional();

/** Keys every tier chart has: the platform-wide spec fields and the app-wide policies switch. */
const tierChartKeys = {
  platform: doc(
    z.object({ topology: spec.shape.topology }),
    'Platform-wide settings, as the ScalableApp spec has them at its top level.',
  ).default({ topology: spec.shape.topology.parse(undefined) }),
  networkPolicies: doc(
    z.object({
      appWide: doc(
        z.boolean(),
        "Render the app's default-deny and DNS NetworkPolicies. Several tier charts installed under one release (an umbrella) must leave them to exactly one.",
      ).default(true),
    }),
    'NetworkPolicies: default deny for every pod of the app, then the allows of this tier.',
  ).default({ appWide: true }),
};

/** The exporter images of the spec's `monitoring`, each with its default. */
const stackImages = monitoring.shape.exporterImages.unwrap().shape;

/** What every tier chart takes of the spec's `monitoring`: whether, and who may scrape. */
const monitoringScrape = { enabled: monitoring.shape.enabled, scrapers: monitoring.shape.scrapers };

/**
 * The spec's `monitoring` as one tier chart takes it: the fields that tier's objects depend on, with
 * the spec's defaults and rules, and only that tier's exporter image.
 */
const tierMonitoring = (exporter: 'postgres' | 'cache' | 'edgeCache', description: string) => {
  const images = monitoring.shape.exporterImages.unwrap().shape;
  return doc(
    z.object({
      ...monitoringScrape,
      exporterImages: doc(
        z.object(
          exporter === 'postgres'
            ? { postgres: images.postgres }
            : exporter === 'cache'
              ? { cache: images.cache }
              : { edgeCache: images.edgeCache },
        ),
        'The exporter image; its entrypoint must be the exporter itself (the pod passes arguments only).',
      ).prefault({}),
      resources: monitoring.shape.resources,
    }),
    description,
  ).prefault({});
};

/** Where the app's pods find the shard map, as the operator mounts it for an app with shards. */
const shardMapValue = (who: string) =>
  doc(
    z.object({
      configMapName: secretName(
        "The ConfigMap holding the shard map (the shards chart's `<release>-shard-map`), mounted at /etc/scalableapp/shard-map as the operator does for an app with shards.",
      ).optional(),
    }),
    `The shard map the ${who} route by, when the app has shards.`,
  ).default({});

/** The app's CA the pods mount, as the operator mounts it when a data tier serves TLS. */
const caValue = (who: string) =>
  doc(
    z.object({
      configMapName: secretName(
        "The ConfigMap holding the app's CA certificate (the database, shards, cache or queue chart's `<release>-ca-cert`), mounted at /etc/scalableapp/ca, where the URLs' sslrootcert, CACHE_CA_FILE and QUEUE_CA_FILE point, as the operator does for an app whose database, shards, cache or queue serve TLS.",
      ).optional(),
      cert: pem(
        'That certificate, PEM, for the connection hash (a new CA rolls the pods). When omitted it is read from the ConfigMap at install and upgrade.',
      ),
    }),
    `The CA the ${who} verify the database, shards, cache and queue with, when those serve TLS.`,
  ).default({});

export const CHART_SCHEMAS: readonly ChartSchema[] = [
  {
    chart: 'web',
    tier: web,
    tierChart: true,
    chartOnly: {
      connection: connectionValues(
        'web pods',
        'Extra entries of the Secret the chart creates (e.g. CACHE_URL, SESSION_STORE_URL from other tiers).',
      ),
      edgeCache: doc(
        z.object({
          pathPrefix: edgeCache.shape.pathPrefix.unwrap().optional(),
        }),
        'An edge cache in front of this web tier (the edge-cache chart under the same release): the Ingress or HTTPRoute sends pathPrefix to it.',
      ).default({}),
      shardMap: shardMapValue('web pods'),
      ca: caValue('web pods'),
      test: testPod(ncTestTools(), 'the web Service answers the health check path'),
    },
  },
  {
    chart: 'cache',
    tier: cache,
    tierChart: true,
    chartOnly: {
      auth: doc(
        z.object({
          password: oneLinePassword(
            "The application's cache password (the default user: every command but the administrative and dangerous ones). When neither this nor existingSecret is set the chart generates one at install and keeps it across upgrades.",
          ),
          operatorPassword: oneLinePassword(
            'The password of the user `scalableapp-operator` (PING, INFO, REPLICAOF and CONFIG SET only: failover, and the readiness probe loading a renewed certificate). Generated and kept like password when not set.',
          ),
          replicationPassword: oneLinePassword(
            'The password replicas log in to their primary with (user `replication`: PSYNC, REPLCONF and PING only). Generated and kept like password when not set.',
          ),
          monitorPassword: oneLinePassword(
            "The password of the user `monitor` (the metrics exporter's: PING, INFO, SLOWLOG GET/LEN and LATENCY LATEST only), with monitoring.enabled. Generated and kept like password when not set.",
          ),
          existingSecret: secretName(
            "An existing Secret with the keys `password`, `operator-password`, `replication-password` and `auth.conf` (the layout of the operator's `<app>-cache-auth`), and `monitor-password` with monitoring.enabled, used instead of one the chart creates.",
          ).optional(),
        }),
        'How clients and replicas authenticate.',
      ).default({}),
      monitoring: tierMonitoring(
        'cache',
        "The spec's `monitoring`, as far as the cache uses it: a redis_exporter beside each server (port 9121, user `monitor`), the pods' prometheus.io annotations, and the scrapers admitted to that port.",
      ),
      tls: tierTls(
        cache.shape.tls.unwrap(),
        {
          certificate: keyPair(
            'The server certificate of `<release>-cache`, signed by the CA, for its primary and replicas Services and its pods. When omitted it is kept from `<release>-cache-tls` while the same CA issued it, or issued from the CA (one year).',
            'The certificate, PEM.',
            'Its private key, PEM.',
          ),
        },
        'the servers',
      ),
      primary: doc(
        z.string().min(1).max(63).regex(DNS_LABEL),
        'The pod that is primary (`<release>-cache-<n>`), the record the operator keeps after a failover. Defaults to `<release>-cache-0`.',
      ).optional(),
    },
  },
  {
    chart: 'database',
    tier: database,
    tierChart: true,
    operatorOnly: { backup: BACKUP_OPERATOR_ONLY },
    chartOnly: {
      primary: doc(
        z.string().min(1).max(63).regex(DNS_LABEL),
        'The instance that starts as the primary (`<release>-db-<n>`), the record the operator keeps after a failover. Defaults to `<release>-db-0`.',
      ).optional(),
      auth: postgresAuth('db-credentials'),
      tls: tierTls(
        database.shape.tls.unwrap(),
        {
          certificate: keyPair(
            'The server certificate of `<release>-db`, signed by the CA, for its read-write and read-only Services and its pods. When omitted it is kept from `<release>-db-tls` while the same CA issued it, or issued from the CA (one year).',
            'The certificate, PEM.',
            'Its private key, PEM.',
          ),
        },
        'the instances',
      ),
      monitoring: tierMonitoring(
        'postgres',
        "The spec's `monitoring`, as far as the database uses it: a postgres_exporter beside each instance (port 9187, role `monitor`, the operator's queries), the pods' prometheus.io annotations, and the scrapers admitted to that port.",
      ),
    },
  },
  {
    chart: 'edge-cache',
    tier: edgeCache,
    tierChart: true,
    chartOnly: {
      monitoring: tierMonitoring(
        'edgeCache',
        "The spec's `monitoring`, as far as the edge cache uses it: nginx's stub_status on 127.0.0.1:8081, an nginx-prometheus-exporter beside each proxy reading it (port 9113), the pods' prometheus.io annotations, and the scrapers admitted to that port.",
      ),
      web: doc(
        z.object({
          release: doc(
            z.string().min(1).max(40).regex(DNS_LABEL),
            'The release (or ScalableApp) whose web tier is the origin (`<release>-web`); this release when omitted.',
          ).optional(),
          port: web.shape.port,
        }),
        "The origin: the web tier's Service, and the port its pods listen on (the proxy's only egress).",
      ).default({ port: web.shape.port.parse(undefined) }),
      test: testPod(ncTestTools(), "the edge Service answers /healthz with this release's asset version"),
    },
  },
  {
    chart: 'shards',
    tier: shards,
    tierChart: true,
    operatorOnly: { backup: BACKUP_OPERATOR_ONLY },
    chartOnly: {
      auth: postgresAuth('shards-credentials'),
      tls: tierTls(
        shards.shape.tls.unwrap(),
        {
          certificates: doc(
            z.record(
              z.string().min(1).max(63).regex(DNS_LABEL),
              z.object({ cert: pem('The certificate, PEM.'), key: pem('Its private key, PEM.') }),
            ),
            "Each shard's server certificate, by shard name, signed by the CA. A shard not named keeps the one in `<shard>-tls` while the same CA issued it, or gets one issued from the CA (one year).",
          ).default({}),
        },
        "every shard's instances (its certificate must then hold every shard's names)",
      ),
      monitoring: tierMonitoring(
        'postgres',
        "The spec's `monitoring`, as far as the shards use it: a postgres_exporter beside each instance of every shard (port 9187, role `monitor`, the operator's queries), the pods' prometheus.io annotations, and the scrapers admitted to that port.",
      ),
      primaries: doc(
        z.record(z.string().min(1).max(63).regex(DNS_LABEL), z.string().min(1).max(63).regex(DNS_LABEL)),
        'The instance each shard starts as primary, by shard name (`<release>-shard-<i>: <release>-shard-<i>-<n>`): the records the operator keeps after a failover. A shard not named starts with its instance 0.',
      ).default({}),
    },
  },
  {
    chart: 'queue',
    tier: queue,
    tierChart: true,
    chartOnly: {
      auth: doc(
        z.object({
          existingSecret: secretName(
            "An existing Secret with the keys username, password, monitoring-username, monitoring-password and erlang-cookie (the layout of the operator's `<app>-mq-credentials`), used instead of one the chart creates.",
          ).optional(),
          username: brokerLogin(
            "The application's user name: it may declare, read and publish to the values' queues only, and has no management API.",
          ),
          password: brokerLogin('Its password.'),
          monitoringUsername: brokerLogin(
            "The monitoring user name (KEDA and `helm test` read queue depths with it): the management API's read-only views, no messaging. It must differ from username.",
          ),
          monitoringPassword: brokerLogin('Its password.'),
          erlangCookie: doc(
            z
              .string()
              .min(1)
              .max(255)
              .regex(/^[!-~]+$/),
            "The Erlang cookie every node shares (printable ASCII, no spaces). When omitted it is kept from the release's Secret, or generated.",
          ).optional(),
        }),
        "The broker's two logins and Erlang cookie. Each one not given is kept from the release's Secret, or generated at install.",
      ).default({}),
      // RabbitMQ serves its own metrics (the rabbitmq_prometheus plugin): no exporter image, no
      // container, so neither exporterImages nor resources.
      monitoring: doc(
        z.object(monitoringScrape),
        "The spec's `monitoring`, as far as the queue uses it: RabbitMQ's rabbitmq_prometheus plugin on every node (port 15692, per-queue metrics), the pods' prometheus.io annotations, and the scrapers admitted to that port.",
      ).prefault({}),
      tls: tierTls(
        queue.shape.tls.unwrap(),
        {
          certificate: keyPair(
            'The server certificate of `<release>-mq`, signed by the CA, for its client Service and every node by its headless name (through the wildcard and exactly), for server and client use. When omitted it is kept from `<release>-mq-tls` while the same CA issued it for those names, or issued from the CA (one year).',
            'The certificate, PEM.',
            'Its private key, PEM.',
          ),
        },
        'the brokers',
      ),
      test: brokerTestPod(
        "every queue is declared on the broker's management API",
        "with TLS the broker's own image (`image`: the official image and Debian's rabbitmq-server both have openssl), without it busybox:1.37",
      ),
    },
  },
  {
    chart: 'consumers',
    tier: doc(
      z.object({ consumers: consumers.default([]) }),
      "The consumers of the queues (the ScalableApp spec's `consumers` list), each a Deployment.",
    ),
    tierChart: true,
    chartOnly: {
      queue: doc(
        z.object({
          release: doc(
            z.string().min(1).max(53).regex(DNS_LABEL),
            'The release of the queue chart (or the ScalableApp) whose queue the consumers read, in this namespace; this release when omitted.',
          ).optional(),
          credentialsSecret: secretName(
            "The queue's credentials Secret (keys username and password); `<queue.release>-mq-credentials` when omitted.",
          ).optional(),
          tls: doc(
            z.boolean(),
            "Whether that queue serves TLS (its tls.enabled; true when omitted, as the queue's default): QUEUE_URL is then amqps:// with QUEUE_CA_FILE, the app's CA is mounted (ca.configMapName, else `<queue.release>-ca-cert`), and KEDA and the helm test reach the management API over https, checking its certificate.",
          ).optional(),
        }),
        'The queue the consumers read: QUEUE_URL is built from its login, the helm test and KEDA read its management API.',
      ).default({}),
      connection: connectionValues(
        'consumer pods',
        "Extra entries of the Secret the chart creates (e.g. SHARD_MAP_PATH, SHARDS_USER from other tiers). QUEUE_URL here replaces the one built from the queue's credentials Secret.",
      ),
      keda: doc(
        z.object({
          enabled: doc(
            z.boolean(),
            'Scale each autoscaled consumer on its queue depth with a KEDA ScaledObject (only where the cluster serves keda.sh/v1alpha1).',
          ).default(false),
          namespace: doc(
            z.string().min(1).max(63).regex(DNS_LABEL),
            "The namespace of the KEDA operator, whose pods are let in to the queue's management API.",
          ).default('keda'),
        }),
        'Scaling on queue depth without the ScalableApp operator.',
      ).default({ enabled: false, namespace: 'keda' }),
      shardMap: shardMapValue('consumers'),
      ca: caValue('consumers'),
      test: brokerTestPod(
        "every consumer's queue exists and each running consumer is attached to its queue",
        "with queue.tls rabbitmq:4.1-management (the queue chart's default image, which has openssl; the umbrella gives the queue's `image`), without it busybox:1.37",
      ),
    },
  },
  {
    // The umbrella: the spec's own keys here, each tier under its key validated by that tier chart's
    // schema (embedded from its dependencies, see chartValuesSchema), and which tier charts to install.
    chart: 'stack',
    tier: doc(
      spec.pick({ consumers: true, topology: true }),
      "A whole ScalableApp without the operator: the values are its spec, each tier as that tier's chart takes it.",
    ),
    chartOnly: {
      // The spec's monitoring, which the umbrella hands to every tier chart that serves metrics
      // (templates/_wiring.tpl). Not podMonitors: PodMonitors are the operator's objects.
      monitoring: doc(
        // No defaults but enabled's: what the top leaves out, each tier chart's own values (which
        // hold the spec's defaults) say.
        z.object({
          enabled: monitoring.shape.enabled,
          scrapers: monitoring.shape.scrapers.unwrap().optional(),
          exporterImages: doc(
            z.object({
              postgres: stackImages.postgres.unwrap().optional(),
              cache: stackImages.cache.unwrap().optional(),
              edgeCache: stackImages.edgeCache.unwrap().optional(),
            }),
            'The exporter images, each handed to the tier charts of its kind; each entrypoint must be the exporter itself.',
          ).optional(),
          resources: monitoring.shape.resources.unwrap().optional(),
        }),
        "The spec's `monitoring` for every tier: with enabled, each tier chart that serves metrics (database, shards, cache, queue, edgeCache) gets it as its own `monitoring`: what is given here wins (resources key by key), the rest is that tier's own; each Postgres chart takes the postgres image, the cache and edge cache their own, the queue neither image nor resources. No PodMonitors: those are the operator's.",
      ).prefault({}),
      tiers: doc(
        z.object(
          Object.fromEntries(
            TIERS.map((t) => [t, doc(z.boolean(), `Install the ${t} tier chart.`).default(false)]),
          ) as Record<(typeof TIERS)[number], z.ZodDefault<z.ZodBoolean>>,
        ),
        'Which tier charts Helm installs (dependency conditions): true for every tier the values declare. tools/install-stack.sh sets them; the chart refuses a tier the values configure but do not enable.',
      ).default(Object.fromEntries(TIERS.map((t) => [t, false])) as Record<(typeof TIERS)[number], boolean>),
    },
  },
];

const UNSAFE_BOUND = Number.MAX_SAFE_INTEGER;

/**
 * zod's draft-07 output made strict for Helm values: unknown keys are rejected (a typo is a bad
 * value), the Kubernetes-only extensions and zod's ±2^53 integer bounds are dropped.
 */
function forHelm(node: Schema): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-kubernetes-') || key === 'id') continue;
    if ((key === 'minimum' && value === -UNSAFE_BOUND) || (key === 'maximum' && value === UNSAFE_BOUND))
      continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, forHelm(v)]),
      );
    } else if (key === 'items' || (key === 'additionalProperties' && typeof value === 'object')) {
      out[key] = forHelm(value as Schema);
    } else if (key === 'anyOf' || key === 'oneOf' || key === 'allOf') {
      out[key] = (value as Schema[]).map(forHelm);
    } else {
      out[key] = value;
    }
  }
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  return out;
}

/** The tier object with the chart's keys, as one zod object. */
export function chartValues(entry: ChartSchema): z.ZodObject {
  // safeExtend: a chart-only key may widen a tier key (tls, with what the operator issues itself),
  // and the tier objects carry refinements (their CEL rules), which plain extend refuses to keep.
  return entry.tier.safeExtend({ ...(entry.tierChart ? tierChartKeys : {}), ...(entry.chartOnly ?? {}) });
}

/** A chart's dependencies: the key of their values (the alias, if any) and their directory under charts/. */
function chartDependencies(chart: string): { key: string; chart: string }[] {
  const meta = parse(readFileSync(new URL(`../charts/${chart}/Chart.yaml`, import.meta.url), 'utf8')) as {
    dependencies?: { name: string; alias?: string; repository?: string }[];
  };
  return (meta.dependencies ?? []).map((d) => ({
    key: d.alias ?? d.name,
    chart: d.repository?.startsWith('file://../') ? d.repository.slice('file://../'.length) : d.name,
  }));
}

/** values.schema.json of one chart. */
export function chartValuesSchema(entry: ChartSchema): Schema {
  const json = z.toJSONSchema(chartValues(entry), {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'throw',
  });
  const schema = forHelm(json as Schema);
  const properties = schema.properties as Record<string, Schema>;
  for (const key of Object.keys(entry.operatorOnly ?? {})) delete properties[key];
  // A parent chart hands every subchart `global`, and Helm adds a key per dependency (even a
  // library): allowed, never read.
  properties.global = { type: 'object', description: 'Helm global values, set by a parent chart.' };
  for (const dep of chartDependencies(entry.chart)) {
    // A parent validates a subchart that has a generated schema (the umbrella's tiers) as it validates itself.
    const sub = CHART_SCHEMAS.find((s) => s.chart === dep.chart);
    if (sub) {
      const { $schema: _schema, ...embedded } = chartValuesSchema(sub);
      properties[dep.key] = embedded;
    } else {
      properties[dep.key] = { type: 'object', description: `Values of the ${dep.key} dependency (unused).` };
    }
  }
  return {
    $schema: schema.$schema,
    title: `ScalableApp ${entry.chart} chart values`,
    description: entry.tier.description,
    ...schema,
  };
}

/** Every CEL rule of a chart's tier object, with the path of the node that carries it. */
export function tierCelRules(entry: ChartSchema): { path: string; rule: CelRule }[] {
  const out: { path: string; rule: CelRule }[] = [];
  const walk = (node: Schema, path: string) => {
    for (const rule of (node['x-kubernetes-validations'] as CelRule[] | undefined) ?? [])
      out.push({ path, rule });
    for (const [k, v] of Object.entries((node.properties as Record<string, Schema>) ?? {})) {
      walk(v, path ? `${path}.${k}` : k);
    }
    if (node.items) walk(node.items as Schema, `${path}[]`);
  };
  walk(z.toJSONSchema(entry.tier, { target: 'draft-7', io: 'input' }) as Schema, '');
  // The keys the chart refuses carry no rule the chart must enforce.
  const refused = Object.keys(entry.operatorOnly ?? {});
  const under = (p: string | undefined, key: string) => !!p && (p === key || p.startsWith(`${key}.`));
  return out.filter(
    ({ path, rule }) => !refused.some((k) => under(path, k) || under(rule.fieldPath?.replace(/^\./, ''), k)),
  );
}

export const schemaPath = (chart: string) =>
  new URL(`../charts/${chart}/values.schema.json`, import.meta.url);

/** The file's text: the schema as prettier formats JSON (the repository's prettier config). */
export async function renderChartSchema(entry: ChartSchema): Promise<string> {
  return format(JSON.stringify(chartValuesSchema(entry)), {
    parser: 'json',
    ...(JSON.parse(readFileSync(new URL('../.prettierrc.json', import.meta.url), 'utf8')) as object),
  });
}

async function main() {
  const check = process.argv.includes('--check');
  let stale = false;
  for (const entry of CHART_SCHEMAS) {
    const path = schemaPath(entry.chart);
    const text = await renderChartSchema(entry);
    if (!check) {
      writeFileSync(path, text);
      console.log(`wrote ${path.pathname}`);
      continue;
    }
    let current = '';
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      /* missing counts as stale */
    }
    if (current !== text) {
      console.error(
        `${path.pathname} is stale: run \`node tools/generate-chart-schemas.ts\` and commit the result.`,
      );
      stale = true;
    } else {
      console.log(`${path.pathname} is up to date`);
    }
  }
  if (stale) process.exit(1);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
