// The broker's configuration as pure text: the same functions produce the ConfigMap the operator
// deploys and the files the data-plane tests start real rabbitmq-server nodes with, so what the tests
// show about clustering, quorum queues and queue depth is what the pods run.
//
// No secret is part of these texts: the login and the Erlang cookie reach the node only through the
// start script (brokerStartScript, below), which reads them from the mounted credentials Secret.
import { quantityFraction } from '../api/quantity.ts';
import { APP_LOGIN_KEYS } from './app-login-keys.ts';

export const AMQP_PORT = 5672;
export const MANAGEMENT_PORT = 15672;
/** Erlang's port mapper: how the nodes find each other's distribution port. */
export const EPMD_PORT = 4369;
/** Erlang distribution (clustering, quorum queue replication): RabbitMQ's default, AMQP + 20000. */
export const DIST_PORT = 25672;
/** The one virtual host: every spec queue lives here. */
export const VHOST = '/';

/**
 * How often queue statistics are refreshed, in ms, wherever the management API's queue depth comes
 * from: the channel and queue stats emitters (`collect_statistics_interval`, default 5000), a quorum
 * queue's own metrics tick (`quorum_tick_interval`, default 5000, fixed per queue when it is created),
 * and the management collector, which aggregates at the smallest `basic` sample interval (5 s by
 * default). How long a publish took to show in the depth the queue autoscaler reads (rabbitmq-server
 * 3.10, one node, 20 publishes each): 9.0–10.0 s (median 9.6 s) with the defaults, 1.0–2.0 s (median
 * 1.5 s) with 1000 everywhere. The price is a tick per queue and a collection per node every second.
 */
export const STATS_INTERVAL_MS = 1000;

/**
 * The memory high watermark as a share of the container's memory limit. RabbitMQ blocks publishers at
 * the watermark, but the Erlang VM can briefly use twice its heap while garbage collecting: 2 × 40%
 * stays below the limit with 20% left for the runtime's own memory, so flow control, not the OOM
 * killer, is what a full broker meets. (RabbitMQ's relative default is of the host's RAM, which a
 * container does not own.)
 */
export const MEMORY_HIGH_WATERMARK_PERCENT = 40;

/** The files of the ConfigMap, as the start script and rabbitmq-server expect them in $CONFIG_DIR. */
export const CONFIG_FILES = {
  conf: 'rabbitmq.conf',
  advanced: 'advanced.config',
  definitions: 'definitions.json',
  appPermissions: 'app-permissions.json',
  plugins: 'enabled_plugins',
  startScript: 'start.sh',
  /** Only with TLS: the Erlang distribution's TLS options (interNodeTlsConfig). */
  interNodeTls: 'inter-node-tls.config',
} as const;

/** Erlang node names: `name@host`, where the host is what the other nodes resolve. */
const NODE_NAME = /^[A-Za-z0-9_-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
/** Queue names as the API allows them (operator/api/queue.ts). */
const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,200}$/;
/** Paths we write into rabbitmq.conf unquoted. */
const PATH = /^\/[A-Za-z0-9_.@/-]*$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function checkPort(what: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad ${what} ${port}`);
  return port;
}

function positiveInt(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${n}`);
  return n;
}

/**
 * The host of a node's name: its pod under the headless Service, `<pod>.<headless>.<namespace>.svc`,
 * which every pod resolves (the headless Service publishes not-ready pods too, so peers resolve each
 * other while they start). Over TLS the distribution checks it against the peer's certificate.
 */
export const brokerHost = (pod: string, headlessService: string, namespace: string) =>
  `${pod}.${headlessService}.${namespace}.svc`;

/** A node's name in a pod: `rabbit@<brokerHost>`, a long name (needs RABBITMQ_USE_LONGNAME=true). */
export function brokerNodeName(pod: string, headlessService: string, namespace: string): string {
  const name = `rabbit@${brokerHost(pod, headlessService, namespace)}`;
  if (!NODE_NAME.test(name)) throw new Error(`bad node name ${JSON.stringify(name)}`);
  return name;
}

/** A quantity in bytes, rounded down; undefined when there is none. */
function bytesOf(what: string, q: string | number | undefined): bigint | undefined {
  if (q === undefined || q === '') return undefined;
  const f = quantityFraction(q);
  if (!f) throw new Error(`${what} is not a quantity: ${JSON.stringify(q)}`);
  return f.num / f.den;
}

/**
 * `vm_memory_high_watermark.absolute` for a container memory limit: MEMORY_HIGH_WATERMARK_PERCENT
 * of it, rounded down. Undefined without a limit: RabbitMQ then keeps its relative default.
 */
export function memoryHighWatermarkBytes(memoryLimit: string | number | undefined): number | undefined {
  const limit = bytesOf('queue.resources.limits.memory', memoryLimit);
  if (limit === undefined) return undefined;
  const bytes = (limit * BigInt(MEMORY_HIGH_WATERMARK_PERCENT)) / 100n;
  if (bytes < 1n)
    throw new Error(`queue.resources.limits.memory ${JSON.stringify(memoryLimit)} is too small`);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('queue.resources.limits.memory is too large');
  return Number(bytes);
}

/**
 * `disk_free_limit.absolute`: below this much free space on the data volume RabbitMQ blocks
 * publishers. RabbitMQ's production advice is as much free disk as the node has memory (so it can
 * page everything out), not its 50 MB default: the memory limit, or 1 GiB without one — but at most
 * half the volume, or a small volume would raise the alarm before the first message.
 */
export function diskFreeLimitBytes(
  storageSize: string | number,
  memoryLimit: string | number | undefined,
): number {
  const volume = bytesOf('queue.storage.size', storageSize);
  if (volume === undefined) throw new Error('queue.storage.size is required');
  const memory = bytesOf('queue.resources.limits.memory', memoryLimit) ?? 1n << 30n;
  const bytes = memory < volume / 2n ? memory : volume / 2n;
  if (bytes < 1n) throw new Error(`queue.storage.size ${JSON.stringify(storageSize)} is too small`);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('queue.storage.size is too large');
  return Number(bytes);
}

export type BrokerConfOptions = {
  /**
   * Every node's full name (brokerNodeName), the same list in the same order on every node: the
   * classic_config peer list, from which the nodes form one cluster.
   */
  nodes: readonly string[];
  /** Where the start script writes the definitions (spec queues plus the logins): a private, writable file. */
  definitionsFile: string;
  diskFreeLimitBytes: number;
  /** From memoryHighWatermarkBytes(); omitted when the container has no memory limit. */
  memoryHighWatermarkBytes?: number | undefined;
  amqpPort?: number;
  managementPort?: number;
  /** An IPv4 address to listen on (the tests: 127.0.0.1); default every address. */
  listenAddress?: string;
  /** Default STATS_INTERVAL_MS. */
  statsIntervalMs?: number;
  /**
   * TLS only (spec.queue.tls, ADR 0023): the AMQP and management ports serve TLS with this
   * certificate and no plaintext listener exists. Absolute paths; the files may be replaced while the
   * node runs (see tlsListenerLines).
   */
  tls?: BrokerTlsFiles | undefined;
  /**
   * With monitoring: the rabbitmq_prometheus plugin's port (15692), its metrics per queue (depth,
   * consumers, unacknowledged) besides the aggregates. Without it the plugin is not enabled.
   */
  prometheusPort?: number;
  /** Never config options: the logins reach the node through the definitions the start script writes. */
  defaultUser?: never;
  defaultPass?: never;
};

/** Where a node finds its certificate, its key and the CA that signed it. */
export type BrokerTlsFiles = { certFile: string; keyFile: string; caFile: string };

/**
 * The listeners of AMQP and of the management API. With TLS, the same port numbers serve TLS alone
 * (`listeners.tcp = none`): no plaintext client gets as far as a login, and the Services, probes and
 * NetworkPolicies stay as they are. Clients log in with passwords, so the server asks for no
 * client certificate. TLS 1.2 and 1.3 only.
 *
 * A renewed certificate is picked up without a restart: the kubelet swaps the Secret's files in
 * place, and Erlang's ssl reads certificate files through its PEM cache, which checks them for
 * changes every `ssl_pem_cache_clean` (the start script sets it); new handshakes get the new
 * certificate, open connections keep theirs.
 */
function listenerLines(
  amqp: number,
  management: number,
  address: string | undefined,
  tls: BrokerTlsFiles | undefined,
): string[] {
  if (!tls) {
    return [
      address ? `listeners.tcp.local = ${address}:${amqp}` : `listeners.tcp.default = ${amqp}`,
      `management.tcp.port = ${management}`,
      ...(address ? [`management.tcp.ip = ${address}`] : []),
    ];
  }
  for (const [what, path] of Object.entries(tls)) {
    if (!PATH.test(path))
      throw new Error(`tls.${what} must be an absolute path, got ${JSON.stringify(path)}`);
  }
  const files = (prefix: string) => [
    `${prefix}.cacertfile = ${tls.caFile}`,
    `${prefix}.certfile = ${tls.certFile}`,
    `${prefix}.keyfile = ${tls.keyFile}`,
  ];
  return [
    'listeners.tcp = none',
    address ? `listeners.ssl.local = ${address}:${amqp}` : `listeners.ssl.default = ${amqp}`,
    ...files('ssl_options'),
    'ssl_options.verify = verify_none',
    'ssl_options.fail_if_no_peer_cert = false',
    'ssl_options.versions.1 = tlsv1.3',
    'ssl_options.versions.2 = tlsv1.2',
    // Only an ssl listener for the management API: with no management.tcp key, none on plain HTTP.
    `management.ssl.port = ${management}`,
    ...(address ? [`management.ssl.ip = ${address}`] : []),
    ...files('management.ssl'),
    'management.ssl.versions.1 = tlsv1.3',
    'management.ssl.versions.2 = tlsv1.2',
  ];
}

/**
 * rabbitmq.conf for every node of the cluster (nothing in it differs per node: the node's name comes
 * from RABBITMQ_NODENAME).
 *
 * No default_user/default_pass: RabbitMQ seeds its default user (and vhost) only when no definitions
 * are configured to be imported at boot (rabbit:maybe_insert_default_data, 3.10 and 4.x alike), and
 * these nodes always import some. So no user exists but the two the start script adds to the
 * definitions from the Secret — in particular no `guest`, and no administrator; should a guest ever
 * be created, it may still only log in from loopback.
 */
export function rabbitmqConf(o: BrokerConfOptions): string {
  if (o.nodes.length === 0) throw new Error('at least one node is required');
  for (const n of o.nodes) if (!NODE_NAME.test(n)) throw new Error(`bad node name ${JSON.stringify(n)}`);
  if (new Set(o.nodes).size !== o.nodes.length)
    throw new Error(`duplicate node names in ${o.nodes.join(', ')}`);
  if (!PATH.test(o.definitionsFile)) {
    throw new Error(`definitionsFile must be an absolute path, got ${JSON.stringify(o.definitionsFile)}`);
  }
  const amqp = checkPort('amqpPort', o.amqpPort ?? AMQP_PORT);
  const management = checkPort('managementPort', o.managementPort ?? MANAGEMENT_PORT);
  const prometheus =
    o.prometheusPort === undefined ? undefined : checkPort('prometheusPort', o.prometheusPort);
  const address = o.listenAddress;
  if (address !== undefined) {
    const m = IPV4.exec(address);
    if (!m || m.slice(1).some((b) => Number(b) > 255)) {
      throw new Error(`listenAddress must be an IPv4 address, got ${JSON.stringify(address)}`);
    }
  }
  const stats = positiveInt('statsIntervalMs', o.statsIntervalMs ?? STATS_INTERVAL_MS);
  const statsSeconds = Math.max(1, Math.round(stats / 1000));
  const lines = [
    '# Generated by the ScalableApp operator.',
    ...listenerLines(amqp, management, address, o.tls),
    // Per queue, not only the totals: the alerts name the queue whose backlog grows. An app has a
    // handful of queues, far from the thousands where RabbitMQ advises against it.
    ...(prometheus === undefined
      ? []
      : [
          `prometheus.tcp.port = ${prometheus}`,
          ...(address ? [`prometheus.tcp.ip = ${address}`] : []),
          'prometheus.return_per_object_metrics = true',
        ]),
    // Logs on stdout only: the kubelet collects them, and the root filesystem is read-only.
    'log.console = true',
    'log.console.level = info',
    // One JSON object per event, which a log aggregator parses without a pattern.
    'log.console.formatter = json',
    'log.file = false',
    'loopback_users.guest = true',
    // Every node knows every peer by name; the first to boot forms the cluster, the others join it.
    'cluster_formation.peer_discovery_backend = classic_config',
    ...o.nodes.map((n, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${n}`),
    // A boot-time import skips queues while fewer nodes than this run, so the queues are declared by
    // the node that completes the cluster. Declared by the first node alone, a quorum queue would get
    // that one replica and keep it: RabbitMQ does not grow a queue onto nodes that join later.
    `cluster_formation.target_cluster_size_hint = ${o.nodes.length}`,
    // A node cut off from the majority stops serving instead of diverging; a single node has nobody
    // to be cut off from.
    ...(o.nodes.length >= 3 ? ['cluster_partition_handling = pause_minority'] : []),
    // The spec's queues (and the logins) are declared at boot from the file the start script writes;
    // a restart with the same file skips the import (RabbitMQ keeps a hash of what it imported).
    'definitions.import_backend = local_filesystem',
    `definitions.local.path = ${o.definitionsFile}`,
    'definitions.skip_if_unchanged = true',
    // Resource alarms from the container's own budget rather than the host's (see the helpers).
    ...(o.memoryHighWatermarkBytes !== undefined
      ? [
          `vm_memory_high_watermark.absolute = ${positiveInt('memoryHighWatermarkBytes', o.memoryHighWatermarkBytes)}`,
        ]
      : []),
    `disk_free_limit.absolute = ${positiveInt('diskFreeLimitBytes', o.diskFreeLimitBytes)}`,
    // Fresh queue depths for the queue autoscaler (see STATS_INTERVAL_MS). Setting one sample
    // retention policy replaces all three, so the global and detailed ones restate the defaults.
    `collect_statistics_interval = ${stats}`,
    `management.sample_retention_policies.basic.minute = ${statsSeconds}`,
    'management.sample_retention_policies.basic.hour = 60',
    'management.sample_retention_policies.global.minute = 5',
    'management.sample_retention_policies.global.hour = 60',
    'management.sample_retention_policies.global.day = 1200',
    'management.sample_retention_policies.detailed.10 = 5',
    '',
  ];
  return lines.join('\n');
}

/**
 * How often Erlang's ssl checks the certificate files it has read for changes (`ssl_pem_cache_clean`,
 * default 2 minutes): how long a renewed certificate may wait, after the kubelet swapped its files,
 * before new handshakes get it. A check reads the files' metadata only. It is the ssl application's
 * setting, read when ssl starts, before RabbitMQ applies advanced.config: so the start script passes
 * it on the VM's command line.
 */
export const PEM_CACHE_CHECK_MS = 20_000;

/**
 * The TLS options of the Erlang distribution (`-ssl_dist_optfile`), with TLS: what the nodes say to
 * each other (clustering, Mnesia, quorum-queue replication) and what the CLI tools of the probes and
 * of the start script say to their node. Both ends show the broker's certificate and ask for the
 * other's (`verify_peer`, `fail_if_no_peer_cert`): only a holder of a certificate from the app's CA
 * — a broker of this app — may join the cluster or run a command on a node, where before the Erlang
 * cookie alone decided; the certificate is issued for client and server use. A client checks the
 * node's host name too: Erlang matches no wildcard there without a match function (which this file of
 * terms cannot hold), so the certificate names every broker exactly (mqServerNames).
 */
export function interNodeTlsConfig(tls: BrokerTlsFiles): string {
  for (const [what, path] of Object.entries(tls)) {
    if (!PATH.test(path))
      throw new Error(`tls.${what} must be an absolute path, got ${JSON.stringify(path)}`);
  }
  const files = `{cacertfile, "${tls.caFile}"}, {certfile, "${tls.certFile}"}, {keyfile, "${tls.keyFile}"}`;
  const versions = `{versions, ['tlsv1.3', 'tlsv1.2']}`;
  return [
    '[',
    `  {server, [${files}, ${versions}, {verify, verify_peer}, {fail_if_no_peer_cert, true}, {secure_renegotiate, true}]},`,
    `  {client, [${files}, ${versions}, {verify, verify_peer}, {secure_renegotiate, true}]}`,
    '].',
    '',
  ].join('\n');
}

/**
 * advanced.config: what rabbitmq.conf has no key for. A quorum queue publishes its depth on its own
 * metrics tick, fixed when the queue is created (RabbitMQ's own test suites shorten it this way).
 */
export function advancedConfig(o: { statsIntervalMs?: number } = {}): string {
  const tick = positiveInt('statsIntervalMs', o.statsIntervalMs ?? STATS_INTERVAL_MS);
  return `[{rabbit, [{quorum_tick_interval, ${tick}}]}].\n`;
}

/**
 * The plugins to run: management, for the HTTP API the operator reads queue depths from (the
 * official `-management` image enables it already; this file makes the pod not depend on which
 * image variant it got), and with monitoring the Prometheus endpoint.
 */
export function enabledPlugins(o: { prometheus?: boolean } = {}): string {
  return o.prometheus ? '[rabbitmq_management,rabbitmq_prometheus].\n' : '[rabbitmq_management].\n';
}

/**
 * The definitions every node imports at boot: the vhost and every spec queue as a durable quorum
 * queue (replicated, by Raft, over the nodes). No users or permissions: the start script adds the
 * logins from the Secret. The text is a JSON object whose first character is `{`, which is what the
 * start script relies on to prepend them.
 */
export function definitionsJson(queues: readonly { readonly name: string }[]): string {
  const names = queueNames(queues);
  const definitions = {
    vhosts: [{ name: VHOST }],
    queues: names.map((name) => ({
      name,
      vhost: VHOST,
      durable: true,
      auto_delete: false,
      arguments: { 'x-queue-type': 'quorum' },
    })),
  };
  return `${JSON.stringify(definitions, null, 2)}\n`;
}

function queueNames(queues: readonly { readonly name: string }[]): string[] {
  const names = queues.map((q) => q.name);
  for (const n of names) if (!QUEUE_NAME.test(n)) throw new Error(`bad queue name ${JSON.stringify(n)}`);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`queue ${JSON.stringify(dup)} is declared twice`);
  return names;
}

/** A pattern that matches nothing: RabbitMQ's own way of granting no permission of a kind. */
export const NOTHING = '^$';

/**
 * What the application's login may do on the vhost, as RabbitMQ permission patterns: declare (and
 * so re-assert), consume from and bind its own queues, publish through the default exchange to them,
 * and nothing else. So it cannot declare, read or delete a queue the spec does not name, nor make
 * an exchange. The pattern is anchored and the names escaped (`.` is the only character of a queue
 * name that means something in a regular expression). A JSON object whose first character is `{`,
 * which is what the start script relies on to complete it with the user's name.
 */
export function appPermissionsJson(queues: readonly { readonly name: string }[]): string {
  return `${JSON.stringify(appPermissions(queues))}\n`;
}

/** A login's permissions on the vhost, as RabbitMQ patterns. */
export interface VhostPermissions {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
}

/** The application's permissions (appPermissionsJson), as the operator grants them to a new login. */
export function appPermissions(queues: readonly { readonly name: string }[]): VhostPermissions {
  const names = queueNames(queues).map((n) => n.replaceAll('.', '\\.'));
  const own = names.length ? `^(${names.join('|')})$` : NOTHING;
  const publish = `^(${[...names, 'amq\\.default'].join('|')})$`;
  return { configure: own, write: publish, read: own };
}

/** The files the start script reads from $CREDENTIALS_DIR (the keys of the credentials Secret). */
export const CREDENTIAL_FILES = {
  /**
   * The application's login (QUEUE_URL): its own queues only, no management API. With the operator,
   * what the user asks for: the servers have the login its record names (APP_LOGIN_KEYS, ADR 0027).
   */
  username: 'username',
  password: 'password',
  /** The queue autoscaler's (the operator's, KEDA's with the charts): management API, read-only. */
  monitoringUsername: 'monitoring-username',
  monitoringPassword: 'monitoring-password',
  /**
   * Optional: the password of QUEUE_OPERATOR_USER, an administrator of the users (no messaging),
   * with which the operator rotates the app's login. Only the operator's Secret has it: it holds the
   * Erlang cookie, which is more, already.
   */
  operatorPassword: 'operator-password',
  erlangCookie: 'erlang-cookie',
} as const;

/** The operator's own login when its Secret gives a password for it (CREDENTIAL_FILES.operatorPassword). */
export const QUEUE_OPERATOR_USER = 'scalableapp-operator';

/**
 * The app's two logins, taking turns on each rotation (ADR 0027): the Secret's username, and one
 * named after it. The other login is the one that is not `current`.
 */
export const appLoginPair = (username: string): [string, string] => [username, `${username}-alt`];

/**
 * The environment the start script expects. RABBITMQ_NODENAME, RABBITMQ_USE_LONGNAME and HOME are
 * required; HOME must be private and writable (the Erlang cookie is written there, and the CLI tools
 * of the probes read it from there, so the container's HOME must be the same). CONFIG_DIR holds the
 * CONFIG_FILES (default /config), CREDENTIALS_DIR the CREDENTIAL_FILES (default /credentials),
 * RABBITMQ_BIN the directory of rabbitmq-server (default: PATH). The rest is rabbitmq-server's own
 * and passed through: the data directory (RABBITMQ_MNESIA_BASE, default /var/lib/rabbitmq/mnesia),
 * and what the tests set to run several nodes on one host.
 */
export type BrokerEnv = {
  RABBITMQ_NODENAME: string;
  RABBITMQ_USE_LONGNAME: 'true' | 'false';
  HOME: string;
  CONFIG_DIR?: string;
  CREDENTIALS_DIR?: string;
  RABBITMQ_BIN?: string;
  RABBITMQ_MNESIA_BASE?: string;
  RABBITMQ_LOG_BASE?: string;
  RABBITMQ_DIST_PORT?: string;
  ERL_EPMD_PORT?: string;
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS?: string;
  /** With TLS: the CLI tools' distribution over TLS (distributionTlsArgs), for the probes. */
  RABBITMQ_CTL_ERL_ARGS?: string;
};

/**
 * What the CLI tools need to reach a node whose distribution runs over TLS: the same as the start
 * script gives the server. An exec probe gets the container's environment, not the script's.
 */
export const distributionTlsArgs = (configDir: string) =>
  `-proto_dist inet_tls -ssl_dist_optfile ${configDir}/${CONFIG_FILES.interNodeTls}`;

/**
 * How long a booting node waits for itself before growing the quorum queues onto it (a node that
 * waits for its peers' tables may take minutes), and how often it retries a queue whose leader is
 * away: 60 attempts 5 s apart outlast the restart of a peer in the same rollout.
 */
const GROW_STARTUP_TIMEOUT_SECONDS = 900;
const GROW_ATTEMPTS = 60;
const GROW_RETRY_SECONDS = 5;

/**
 * A POSIX sh script (dash, bash, busybox ash) that prepares what a node needs from the Secret, then
 * execs rabbitmq-server in its place, so the broker is the container's main process and gets its
 * signals:
 *
 * - the Erlang cookie, copied to $HOME/.erlang.cookie with mode 0400: Erlang refuses a cookie file
 *   that others may read, and a Secret's files are root-owned and group-readable (fsGroup);
 * - the definitions file rabbitmq.conf names (definitions.local.path): the ConfigMap's
 *   definitions.json with the logins from the Secret prepended. The application's (the one the
 *   operator's record names after a rotation), with no tag (so no management API) and the
 *   permissions of app-permissions.json (its own queues only); the monitoring one, tagged
 *   `monitoring` (the management API's read-only views: queue depths and cluster members) with no
 *   permission to publish, consume or declare anything; and, when the Secret has its password, the
 *   operator's, tagged `administrator` with no permission either (it manages the app's logins).
 *   Written with umask 077 into HOME's private emptyDir, so no password is
 *   in a ConfigMap, argument or environment variable of the broker;
 * - rabbitmq-server's environment: our config files only. Not the image's /etc/rabbitmq/conf.d,
 *   whose defaults let `guest` in from anywhere, nor its rabbitmq-env.conf;
 * - beside the server, once it has booted: this node added to every quorum queue it is not a member
 *   of, which is how a scale-up grows the queues onto the new nodes (RabbitMQ 3.10 does not).
 *
 * The logins go into JSON strings: backslashes and quotes are escaped, control characters refused.
 * The two user names must differ: one user cannot have two sets of tags and permissions.
 */
export function brokerStartScript(): string {
  const f = CREDENTIAL_FILES;
  const c = CONFIG_FILES;
  // In this template literal `\${` is a literal `${` and `\\` a single backslash.
  return `#!/bin/sh
# Generated by the ScalableApp operator: the Erlang cookie and the logins from the credentials Secret,
# then rabbitmq-server in the foreground.
set -eu

: "\${RABBITMQ_NODENAME:?RABBITMQ_NODENAME is required}"
: "\${RABBITMQ_USE_LONGNAME:?RABBITMQ_USE_LONGNAME is required}"
: "\${HOME:?HOME is required}"
config_dir=\${CONFIG_DIR:-/config}
credentials_dir=\${CREDENTIALS_DIR:-/credentials}
bin=\${RABBITMQ_BIN:+$RABBITMQ_BIN/}

log() { printf '%s start.sh %s: %s\\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$RABBITMQ_NODENAME" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# A credential file's content (command substitution drops trailing newlines). Read into variables
# before use: a failing substitution inside another command's arguments would go unnoticed.
secret() {
  [ -r "$credentials_dir/$1" ] || die "credential file $credentials_dir/$1 is missing or unreadable"
  cat "$credentials_dir/$1"
}
# The app's login as the operator recorded it after a rotation (ADR 0027), else as the Secret names it.
# The record, not what the user asks for: a changed password reaches the servers by the operator.
if [ -s "$credentials_dir/${APP_LOGIN_KEYS.login}" ]; then
  username=$(secret ${APP_LOGIN_KEYS.login})
  password=$(secret ${APP_LOGIN_KEYS.password})
else
  username=$(secret ${f.username})
  password=$(secret ${f.password})
fi
monitoring_username=$(secret ${f.monitoringUsername})
monitoring_password=$(secret ${f.monitoringPassword})
cookie=$(secret ${f.erlangCookie})
[ -n "$username" ] || die "${f.username} is empty"
[ -n "$password" ] || die "${f.password} is empty"
[ -n "$monitoring_username" ] || die "${f.monitoringUsername} is empty"
[ -n "$monitoring_password" ] || die "${f.monitoringPassword} is empty"
[ -n "$cookie" ] || die "${f.erlangCookie} is empty"
[ "$username" != "$monitoring_username" ] || die "${f.username} and ${f.monitoringUsername} must differ"
operator_password=
if [ -e "$credentials_dir/${f.operatorPassword}" ]; then
  operator_password=$(secret ${f.operatorPassword})
  [ -n "$operator_password" ] || die "${f.operatorPassword} is empty"
  for name in "$username" "$monitoring_username"; do
    [ "$name" != ${QUEUE_OPERATOR_USER} ] || die "the login ${QUEUE_OPERATOR_USER} is the operator's"
  done
fi

# The inside of a JSON string. printf is a builtin: the value is in no process's arguments.
json_string() {
  case $2 in *[[:cntrl:]]*) die "$1 must not contain control characters" ;; esac
  printf '%s' "$2" | sed 's/[\\\\"]/\\\\&/g'
}
user_json=$(json_string ${f.username} "$username")
password_json=$(json_string ${f.password} "$password")
monitoring_user_json=$(json_string ${f.monitoringUsername} "$monitoring_username")
monitoring_password_json=$(json_string ${f.monitoringPassword} "$monitoring_password")
operator_password_json=$(json_string ${f.operatorPassword} "$operator_password")

conf=$config_dir/${c.conf}
topology=$config_dir/${c.definitions}
app_permissions=$config_dir/${c.appPermissions}
[ -r "$conf" ] || die "$conf is missing or unreadable"
[ -r "$topology" ] || die "$topology is missing or unreadable"
[ -r "$app_permissions" ] || die "$app_permissions is missing or unreadable"
definitions=$(sed -n 's/^definitions\\.local\\.path = //p' "$conf")
case $definitions in /*) ;; *) die "$conf names no absolute definitions.local.path" ;; esac
[ "$(head -c 1 "$topology")" = "{" ] || die "$topology is not a JSON object"
[ "$(head -c 1 "$app_permissions")" = "{" ] || die "$app_permissions is not a JSON object"

# Everything written from here on is private to this user.
umask 077
mkdir -p "$HOME" "$(dirname "$definitions")"
rm -f "$HOME/.erlang.cookie"
printf '%s' "$cookie" >"$HOME/.erlang.cookie"
chmod 400 "$HOME/.erlang.cookie"

# An import sets each user's tags and permissions to these, also for a user an older version of this
# script made an administrator: upgrading takes that away.
{
  printf '{"users": [\\n'
  printf '  {"name": "%s", "password": "%s", "tags": []},\\n' "$user_json" "$password_json"
  printf '  {"name": "%s", "password": "%s", "tags": ["monitoring"]}' "$monitoring_user_json" "$monitoring_password_json"
  if [ -n "$operator_password" ]; then
    printf ',\\n  {"name": "${QUEUE_OPERATOR_USER}", "password": "%s", "tags": ["administrator"]}' "$operator_password_json"
  fi
  printf '\\n],\\n"permissions": [\\n'
  printf '  {"user": "%s", "vhost": "${VHOST}", ' "$user_json"
  tail -c +2 "$app_permissions" | tr -d '\\n'
  printf ',\\n  {"user": "%s", "vhost": "${VHOST}", "configure": "${NOTHING}", "write": "${NOTHING}", "read": "${NOTHING}"}\\n' "$monitoring_user_json"
  printf '],\\n'
  tail -c +2 "$topology"
} >"$definitions.tmp"
mv -f "$definitions.tmp" "$definitions"

export RABBITMQ_CONFIG_FILE="$conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$config_dir/${c.advanced}"
export RABBITMQ_ENABLED_PLUGINS_FILE="$config_dir/${c.plugins}"
# Patterns that match nothing: only the files above configure the node.
export RABBITMQ_CONFIG_FILES="$config_dir/conf.d/*.conf"
export RABBITMQ_CONF_ENV_FILE="$config_dir/rabbitmq-env.conf"
# A crash dump lands beside the cookie (the working directory may be read-only).
export ERL_CRASH_DUMP="\${ERL_CRASH_DUMP:-$HOME/erl_crash.dump}"
# A renewed certificate is served within this many ms of its files changing (PEM_CACHE_CHECK_MS).
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="\${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-} -ssl ssl_pem_cache_clean ${PEM_CACHE_CHECK_MS}"
# With TLS the nodes, and the CLI tools this script runs, speak the Erlang distribution over TLS
# (interNodeTlsConfig). The pod's environment sets RABBITMQ_CTL_ERL_ARGS to the same for its probes.
inter_node_tls=$config_dir/${c.interNodeTls}
if [ -r "$inter_node_tls" ]; then
  dist_tls="-proto_dist inet_tls -ssl_dist_optfile $inter_node_tls"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS $dist_tls"
  export RABBITMQ_CTL_ERL_ARGS="$dist_tls"
fi
# A node that joins a running cluster (the broker scaled up) is a member of none of the quorum queues
# that exist: RabbitMQ 3.10 declares a queue's members once and never adds nodes that join later (the
# continuous membership reconciliation of 3.13 does). So, once this node has booted, it adds itself
# to every quorum queue it is not a member of yet; where it is one already this changes nothing. A
# queue whose leader is away (its node restarting in the same rollout) is retried until it grows.
# It runs beside the server, which the exec below makes this shell's process: when the server is
# gone, it stops too.
server=$$
grow_queues() {
  # await_startup fails at once while the Erlang VM itself is not up yet, so it is retried.
  since=$(date +%s)
  until "\${bin}rabbitmqctl" -q await_startup --timeout 60 >/dev/null 2>&1; do
    if ! kill -0 "$server" 2>/dev/null; then
      log "quorum queues not grown: rabbitmq-server exited before it finished booting"
      return 0
    fi
    if [ $(($(date +%s) - since)) -ge ${GROW_STARTUP_TIMEOUT_SECONDS} ]; then
      log "quorum queues not grown: the node did not finish booting in ${GROW_STARTUP_TIMEOUT_SECONDS} s"
      return 0
    fi
    sleep ${GROW_RETRY_SECONDS}
  done
  attempt=1
  while kill -0 "$server" 2>/dev/null; do
    if failed=$("\${bin}rabbitmq-queues" -q grow "$RABBITMQ_NODENAME" all --errors-only 2>&1) &&
      [ -z "$(printf '%s' "$failed" | tr -d '[:space:]')" ]; then
      log "a member of every quorum queue"
      return 0
    fi
    if [ "$attempt" -ge ${GROW_ATTEMPTS} ]; then
      log "quorum queues not grown after $attempt attempts: $failed"
      return 0
    fi
    attempt=$((attempt + 1))
    sleep ${GROW_RETRY_SECONDS}
  done
}
grow_queues &

log "starting rabbitmq-server"
exec "\${bin}rabbitmq-server"
`;
}

export type BrokerConfigOptions = BrokerConfOptions & { queues: readonly { readonly name: string }[] };

/** Every file of the ConfigMap, by name (CONFIG_FILES): what each node's $CONFIG_DIR holds. */
export function brokerConfigFiles(o: BrokerConfigOptions): Record<string, string> {
  const { queues, ...conf } = o;
  return {
    [CONFIG_FILES.conf]: rabbitmqConf(conf),
    [CONFIG_FILES.advanced]: advancedConfig({ statsIntervalMs: o.statsIntervalMs }),
    [CONFIG_FILES.definitions]: definitionsJson(queues),
    [CONFIG_FILES.appPermissions]: appPermissionsJson(queues),
    [CONFIG_FILES.plugins]: enabledPlugins({ prometheus: o.prometheusPort !== undefined }),
    [CONFIG_FILES.startScript]: brokerStartScript(),
    ...(o.tls ? { [CONFIG_FILES.interNodeTls]: interNodeTlsConfig(o.tls) } : {}),
  };
}
