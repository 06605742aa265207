import type { KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { ShardMap } from '../sharding/shard-map.ts';
import type { Decision } from '../autoscaling/queue-scaler.ts';
import type { KeyPair } from '../tls/certificates.ts';

/** The app's CA and the server certificates it signed: read back from their Secrets, or issued. */
export interface TlsFacts {
  readonly ca: KeyPair;
  /** By the name of the Secret that carries each. */
  readonly servers: Readonly<Record<string, KeyPair>>;
}

/** The generated passwords: read back from their Secret, or generated once by the controller. */
export interface DatabaseCredentials {
  readonly superuser: string;
  readonly replication: string;
  /** The app's password as its Secret asks for it: a user may change it (ADR 0025). */
  readonly app: string;
  /** The metrics exporter's role (pg_monitor); optional for facts built before it existed. */
  readonly monitor?: string;
  /** The login the app's URLs name and its password on the servers; absent: the app role with `app`. */
  readonly appLogin?: AppLoginRecord;
  /**
   * What the servers' own roles have (ADR 0028): `superuser` and `replication` may be ahead of it
   * while a change is made. Absent: not recorded yet, the servers have what the Secret asks for.
   */
  readonly servers?: ServerPasswordsRecord;
}

/** The passwords the superuser and the replication role have on the servers (ADR 0028). */
export interface ServerPasswordsRecord {
  readonly superuser: string;
  readonly replication: string;
  /**
   * The superuser's password before the last change: an instance that never got the change (an
   * asynchronous standby promoted before it streamed it) still lets the operator in with it, and
   * is given the current one.
   */
  readonly previousSuperuser?: string;
}

/** Which of the app's logins its URLs name, and what is being retired (ADR 0025, 0027). */
export interface AppLoginRecord {
  readonly name: string;
  readonly password: string;
  /** The login the previous password was on, until no pod and no session uses it. */
  readonly retiring?: string;
}

/** What the cluster knows about one Postgres cluster: its recorded primary, last failover and pods. */
export interface PgClusterFacts {
  readonly primary?: string;
  readonly lastFailover?: { readonly time: string; readonly reason: string };
  readonly pods?: readonly V1Pod[];
  /** Its base backups' Jobs and schedule (postgres-base-backup.ts). */
  readonly backups?: BackupFacts;
}

/** What base backups of one cluster need to know of the cluster and the clock. */
export interface BackupFacts {
  /** The backup Jobs that exist: the request each answers, and whether it still runs. */
  readonly jobs: readonly { readonly request: string; readonly running: boolean }[];
  /** The request backup.schedule names now (api/backup-schedule.ts), if it has one. */
  readonly scheduled?: string;
}

/** The broker's generated login and Erlang cookie: read back from their Secret, or generated once. */
export interface QueueCredentials {
  /** The application's login as its Secret asks for it: its own queues, no management API. */
  readonly username: string;
  /** What the user asks for (ADR 0027): the servers have appLogin's. */
  readonly password: string;
  /** The login the app's URLs name and its password on the servers; absent: username with password. */
  readonly appLogin?: AppLoginRecord;
  /** The queue autoscaler's: the management API's read-only views, no messaging. */
  readonly monitoringUsername: string;
  readonly monitoringPassword: string;
  /** The operator's administrator login (QUEUE_OPERATOR_USER): the app's logins, no messaging. */
  readonly operatorPassword?: string;
  /** Shared by every node (and the CLI tools of the probes): Erlang nodes only talk to equals. */
  readonly erlangCookie: string;
}

/** A desired child object: what a builder returns and what the operator applies. */
export interface Child extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }[];
  };
  [field: string]: unknown;
}

/** Facts the builders need that only the cluster knows. Gathered by the controller; builders stay pure. */
export interface ObservedFacts {
  /** gateway.networking.k8s.io/v1 HTTPRoute is served (the Gateway API CRDs are installed). */
  readonly gatewayApi: boolean;
  /** The Prometheus Operator's PodMonitor is served: spec.monitoring makes one per tier. */
  readonly podMonitors?: boolean;
  /** The namespace the operator runs in: the data tiers admit its pods (failover, queue depths). */
  readonly operatorNamespace?: string;
  /** The app's cache password, and its rotation (controller/cache-password-rotation.ts). */
  readonly cachePassword?: CacheAppPassword;
  /** The cache's other two logins' passwords, kept beside it (CACHE_USERS names the users). */
  readonly cacheLogins?: {
    readonly operator: string;
    readonly replication: string;
    /** The metrics exporter's (optional for facts built before it existed). */
    readonly monitor?: string;
  };
  /** The cache pod the operator last made primary (its ConfigMap record); the first pod when unset. */
  readonly cachePrimary?: string;
  /** The UID of the pod the operator last saw serve as that primary (its ConfigMap record). */
  readonly cachePrimaryUid?: string;
  /** The database's generated passwords (read back from their Secret, or generated once). */
  readonly dbCredentials?: DatabaseCredentials;
  /** The database pod the operator last made primary (its ConfigMap record); the first pod when unset. */
  readonly dbPrimary?: string;
  /** The last failover or switchover, as recorded on the database ConfigMap. */
  readonly dbLastFailover?: { readonly time: string; readonly reason: string };
  /** The database pods as observed (for the read-only endpoints). */
  readonly dbPods?: readonly V1Pod[];
  /** The database's base backups' Jobs and schedule (PgClusterFacts.backups). */
  readonly dbBackups?: BackupFacts;
  /** One login for every shard (read back from its Secret, or generated once). */
  readonly shardCredentials?: DatabaseCredentials;
  /** Each shard cluster's recorded primary, last failover and pods, by StatefulSet name. */
  readonly shards?: Readonly<Record<string, PgClusterFacts>>;
  /** The shard map as last published (its ConfigMap), from which the next version follows. */
  readonly shardMap?: ShardMap;
  /** The shard StatefulSets that exist, in the map or not: a shard holding data is never dropped unseen. */
  readonly shardStatefulSets?: readonly string[];
  /**
   * The highest ring version status has shown (routed or pending). A map published again after a
   * reset starts above it, so a stale `reshard-verified` annotation can never flip a new ring.
   */
  readonly shardVersionFloor?: number;
  /** The CA and server certificates of the tiers that serve TLS (ADR 0023). */
  readonly tls?: TlsFacts;
  /** The broker's generated login and Erlang cookie (read back from their Secret, or generated once). */
  readonly queueCredentials?: QueueCredentials;
  /**
   * The queue-depth autoscaler's current word per consumer name: the replicas to run and the decision
   * that set them. A consumer absent here keeps the replicas its Deployment has (or its minimum).
   */
  readonly consumerScale?: Readonly<
    Record<
      string,
      {
        readonly replicas: number;
        readonly decision?: Decision;
        /** The last decision that changed the replicas (a later Steady one does not replace it). */
        readonly lastScale?: Decision;
      }
    >
  >;
}

export const NO_FACTS: ObservedFacts = { gatewayApi: false };

/** The app's cache password: the one asked for, the one the URLs name, and one still accepted. */
export interface CacheAppPassword {
  /** What the user asks for: the cache Secret's `password`. */
  readonly wanted: string;
  /**
   * What the app's URLs name and every server accepts: the operator's record in the same Secret,
   * `current-password` (before there is one, `password`).
   */
  readonly current: string;
  /** The previous one, still accepted while the app's pods roll onto `current`. */
  readonly retiring?: string;
}

/** A cache password with no rotation under way. */
export const steadyCachePassword = (password: string): CacheAppPassword => ({
  wanted: password,
  current: password,
});
