// Rotating the app's RabbitMQ password without refusing a client (docs/adr/0027). The user changes
// `password` in the queue's credentials Secret (or deletes it, and the operator generates one). A
// RabbitMQ user has one password, so the app's two logins take turns, as its Postgres logins do:
//   1. the login not in use gets the new password and the app's permissions, and the app's URLs name
//      it from then on: its pods roll, and until they have, the old login still works;
//   2. the old login is deleted once no pod the operator runs holds the old URLs and no connection
//      is logged in with it (deleting a user closes its connections: none is left to close).
// Users live in the cluster's replicated database, so one call reaches every node. But a node that
// boots imports its definitions, which the start script writes from the Secret as the kubelet last
// refreshed it: a minute or so late, it may name a login already retired, with its old password.
// So every broker incarnation, once seen ready, is followed by the record put back: the current
// login with its password and permissions, and the other login gone unless it is being retired.
// Each step is idempotent and its record is in the same Secret, so an operator restart, a stale
// cache or a failed call only repeats a step.
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { incarnation, isContainerReady } from '../kube/pods.ts';
import type { BrokerUsers } from '../dataplane/rabbitmq/users.ts';
import { APP_LOGIN_KEYS } from '../server-config/app-login-keys.ts';
import { CREDENTIAL_FILES, appLoginPair, type VhostPermissions } from '../server-config/rabbitmq.ts';
import type { AppLoginRecord, QueueCredentials } from '../tiers/objects.ts';
import { BROKER_CONTAINER, queueAppLogin } from '../tiers/queue.ts';
import { AppMemory } from './app-memory.ts';
import { waitForOldUrls, waitOn, type AppPodsView, type RotationStep } from './rotation.ts';

/** One app's broker, as a rotation step sees it. */
export interface QueueLoginScope extends AppPodsView {
  /** `namespace/name` of the app: what is remembered is kept per app. */
  readonly app: string;
  /** The credentials Secret's name, for messages. */
  readonly secret: string;
  readonly credentials: QueueCredentials;
  /** The broker's pods, and how many it should have. */
  readonly brokers: readonly V1Pod[];
  readonly replicas: number;
  /** What the app's login may do on the vhost (the ConfigMap's app-permissions.json). */
  readonly permissions: VhostPermissions;
  /** The management API: its origin, and with TLS the CA its certificate chains to. */
  readonly broker: BrokerEndpoint;
}

export interface BrokerEndpoint {
  readonly baseUrl: string;
  readonly ca?: string | undefined;
}

export interface QueueLoginRotationDeps {
  /** The calls on the broker, with the operator's login (its password from the Secret). */
  readonly usersFor: (broker: BrokerEndpoint, operatorPassword: string) => BrokerUsers;
}

/**
 * The keys of the broker incarnations known to hold this record (a digest: no password kept), as
 * a function of the pod: the digest is taken once per pass, not once per broker.
 */
const restoredKeys = (login: AppLoginRecord, permissions: VhostPermissions) => {
  const digest = createHash('sha256')
    .update(JSON.stringify([login.name, login.password, login.retiring ?? '', permissions]))
    .digest('base64');
  return (p: V1Pod) => `${incarnation(p, BROKER_CONTAINER)}/${digest}`;
};

export class QueueLoginRotation {
  /** Per app: the broker incarnations after whose boot the record was put back (restoredKeys). */
  private readonly restored = new AppMemory(() => new Set<string>());
  private readonly d: QueueLoginRotationDeps;
  constructor(deps: QueueLoginRotationDeps) {
    this.d = deps;
  }

  forget(key: string): void {
    this.restored.forget(key);
  }

  /** The next step of a rotation of the app's queue login, done (at most one change of logins). */
  async step(scope: QueueLoginScope): Promise<RotationStep<QueueCredentials>> {
    const { credentials } = scope;
    // The first pass records what the servers have, so a later change of `password` is seen as one.
    if (!credentials.appLogin)
      return { kind: 'recorded', credentials: { ...credentials, appLogin: queueAppLogin(credentials) } };
    const current = credentials.appLogin;
    const pair = appLoginPair(credentials.username);
    const key = `Secret ${scope.secret} key ${CREDENTIAL_FILES.password}`;
    if (credentials.password !== current.password || !pair.includes(current.name)) {
      if (current.retiring) {
        return waitOn(`${key} changed again while the previous login is retired from the last change`);
      }
      const notYet = this.allBrokersReady(scope);
      if (notYet) return waitOn(notYet);
      const next = pair.find((n) => n !== current.name)!;
      await this.users(scope, (u) => u.setLogin(next, credentials.password, scope.permissions));
      // Every incarnation seen so far has the new login too: it was added after they booted.
      const appLogin = { name: next, password: credentials.password, retiring: current.name };
      this.remember(scope, appLogin);
      return {
        kind: 'switched',
        credentials: { ...credentials, appLogin },
        message: `${key} changed: the app's URLs name its other queue login, with the new password; the previous one keeps working until no pod and no connection uses it`,
      };
    }
    await this.restore(scope, current);
    if (!current.retiring) return { kind: 'steady' };
    const oldUrls = waitForOldUrls(scope, `with the previous queue login`);
    if (oldUrls) return oldUrls;
    const retiring = current.retiring;
    // One client (one TLS pool) for the count and the delete.
    const open = await this.users(scope, async (u) => {
      const n = await u.connections(retiring);
      if (n === 0) await u.deleteLogin(retiring);
      return n;
    });
    if (open > 0) return waitOn(`${open} connection(s) still logged in with the previous queue login`);
    const { retiring: _done, ...appLogin } = current;
    this.remember(scope, appLogin);
    return {
      kind: 'retired',
      credentials: { ...credentials, appLogin },
      message: `Secret ${scope.secret}: the previous queue login is deleted; the app's URLs name the current one (key ${APP_LOGIN_KEYS.login})`,
    };
  }

  /** Why a login cannot be switched now, or undefined when every broker is ready. */
  private allBrokersReady(scope: QueueLoginScope): string | undefined {
    const unready = scope.brokers
      .filter((p) => !isContainerReady(p, BROKER_CONTAINER))
      .map((p) => p.metadata?.name);
    if (unready.length > 0) return `broker(s) not ready: ${unready.join(', ')}`;
    if (scope.brokers.length < scope.replicas)
      return `${scope.brokers.length} of ${scope.replicas} brokers run`;
    return undefined;
  }

  /**
   * After a broker incarnation booted (it imported the logins of the Secret as mounted then, maybe
   * stale): the current login with its password and permissions again, and the other login gone
   * unless it is being retired. Once for every incarnation seen ready since the last time.
   */
  private async restore(scope: QueueLoginScope, current: AppLoginRecord): Promise<void> {
    const restored = this.restored.of(scope.app);
    const keyOf = restoredKeys(current, scope.permissions);
    const fresh = scope.brokers.filter(
      (p) => isContainerReady(p, BROKER_CONTAINER) && !restored.has(keyOf(p)),
    );
    if (fresh.length === 0) return;
    await this.users(scope, async (u) => {
      await u.setLogin(current.name, current.password, scope.permissions);
      for (const other of appLoginPair(scope.credentials.username)) {
        if (other !== current.name && other !== current.retiring) await u.deleteLogin(other);
      }
    });
    for (const p of fresh) restored.add(keyOf(p));
  }

  /** Every ready broker incarnation holds this record now (it was written after they booted). */
  private remember(scope: QueueLoginScope, login: AppLoginRecord): void {
    const restored = this.restored.of(scope.app);
    const keyOf = restoredKeys(login, scope.permissions);
    for (const p of scope.brokers) if (isContainerReady(p, BROKER_CONTAINER)) restored.add(keyOf(p));
  }

  private async users<T>(scope: QueueLoginScope, call: (u: BrokerUsers) => Promise<T>): Promise<T> {
    const password = scope.credentials.operatorPassword;
    // Generated with the other passwords: absent only in facts made by hand.
    if (!password) throw new Error(`Secret ${scope.secret} has no ${CREDENTIAL_FILES.operatorPassword}`);
    const users = this.d.usersFor(scope.broker, password);
    try {
      return await call(users);
    } finally {
      await users.close();
    }
  }
}
