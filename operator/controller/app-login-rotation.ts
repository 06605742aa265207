// Rotating the app's Postgres password without refusing a client (docs/adr/0025). The user changes
// `app-password` in the credentials Secret (or deletes it, and the operator generates a new one);
// the app's two logins take turns:
//   1. the login not in use gets the new password on every primary these credentials open, and the
//      app's URLs name it from then on: its pods roll, and until they have, the old login still
//      works, so neither an old pod nor a new one is refused;
//   2. the old login is disabled once no pod the operator runs holds the old URLs and no session is
//      logged in with it on any instance (a client the operator does not run, still connected, is
//      waited for; one that only connects later is not seen, and is refused then).
// Each step is idempotent and its record is in the same Secret, so an operator restart, a stale
// cache or a failed call only repeats a step. Between rotations, every primary incarnation (a new
// shard, a promoted standby after a restore, the first pass after an operator restart) is given the
// current login once, so a cluster created after a rotation lets the app's URLs in too.
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { PostgresRoles } from '../dataplane/postgres/roles.ts';
import { verifierSafe } from '../dataplane/postgres/scram.ts';
import {
  APP_LOGINS,
  APP_USER,
  appLoginOf,
  pgPrimary,
  type DatabaseCredentials,
  type PgCluster,
} from '../tiers/postgres-cluster.ts';
import { CREDENTIAL_FILES } from '../server-config/postgres-instance-script.ts';
import { APP_LOGIN_KEYS } from '../server-config/app-login-keys.ts';
import { AppMemory, appKey } from './app-memory.ts';
import { waitForOldUrls, waitOn, type AppPodsView, type RotationStep as GenericStep } from './rotation.ts';
import { nodeIn, pgServerReady, pgServerRunning } from './database-primary.ts';
import type { PgNode } from '../dataplane/postgres/admin.ts';

/** The credentials of one Secret, and every Postgres cluster they open (the database, or every shard). */
export interface LoginScope extends AppPodsView {
  /** The credentials Secret's name, for messages. */
  readonly secret: string;
  readonly credentials: DatabaseCredentials;
  readonly clusters: readonly PgCluster[];
}

export type RotationStep = GenericStep<DatabaseCredentials>;

export interface AppLoginRotationDeps {
  readonly rolesFor: (credentials: DatabaseCredentials) => PostgresRoles;
  readonly pods: (namespace: string, labels: Record<string, string>) => V1Pod[];
}

const otherLogin = (login: string) => APP_LOGINS.find((l) => l !== login) ?? APP_USER;

/**
 * What the rotations on Postgres clusters share: their view of the pods and servers, and what each
 * primary incarnation was given.
 */
export abstract class PgRotation {
  protected readonly d: AppLoginRotationDeps;
  protected readonly grants = new PrimaryGrants();
  constructor(deps: AppLoginRotationDeps) {
    this.d = deps;
  }

  forget(key: string): void {
    this.grants.forget(key);
  }

  /** The next step for these credentials, done (at most one write to each server). */
  abstract step(scope: LoginScope): Promise<RotationStep>;
}

export class AppLoginRotation extends PgRotation {
  /** The next step of a rotation of these credentials, done (at most one write to the servers). */
  async step(scope: LoginScope): Promise<RotationStep> {
    const { credentials } = scope;
    // The first pass records what the servers have (initdb gave the app role app-password), so a
    // later change of app-password is seen as one.
    if (!credentials.appLogin)
      return { kind: 'recorded', credentials: { ...credentials, appLogin: appLoginOf(credentials) } };
    const current = appLoginOf(credentials);
    const wanted = credentials.app;
    const key = `Secret ${scope.secret} key ${CREDENTIAL_FILES.appPassword}`;
    if (wanted !== current.password) {
      if (current.retiring) {
        return waitOn(`${key} changed again while ${current.retiring} is retired from the last change`);
      }
      if (!verifierSafe(wanted)) {
        return {
          kind: 'refused',
          reason: `${key}: the password must be printable ASCII (the operator sends Postgres its SCRAM verifier, never the password); the app keeps its current login`,
        };
      }
      const primaries = this.primaries(scope);
      if (typeof primaries === 'string') return waitOn(primaries);
      const next = otherLogin(current.name);
      const logins = this.d.rolesFor(credentials);
      // Every cluster first: the URLs switch only once every shard lets the new login in.
      for (const primary of primaries) await logins.enable(primary, next, APP_USER, wanted);
      return {
        kind: 'switched',
        credentials: { ...credentials, appLogin: { name: next, password: wanted, retiring: current.name } },
        message: `${key} changed: the app's URLs name the login ${next} with the new password; ${current.name} keeps working until no pod and no session uses it`,
      };
    }
    const granted = await this.grantCurrent(scope, current);
    if (granted) return granted;
    if (!current.retiring) return { kind: 'steady' };
    const oldUrls = waitForOldUrls(scope, `of ${current.retiring}`);
    if (oldUrls) return oldUrls;
    const logins = this.d.rolesFor(credentials);
    for (const cluster of scope.clusters) {
      // An instance that is not running holds no session; one running that cannot be asked may:
      // the step fails and is tried again (it never guesses).
      const pods = this.d
        .pods(cluster.app.metadata.namespace ?? '', cluster.selector)
        .filter(pgServerRunning);
      for (const p of pods) {
        const sessions = await logins.sessions(nodeIn(cluster)(p), current.retiring);
        if (sessions > 0) {
          return waitOn(`${sessions} session(s) of ${current.retiring} still open on ${p.metadata?.name}`);
        }
      }
    }
    const primaries = this.primaries(scope);
    if (typeof primaries === 'string') return waitOn(primaries);
    for (const primary of primaries) await logins.disable(primary, current.retiring);
    const { retiring: _done, ...login } = current;
    return {
      kind: 'retired',
      credentials: { ...credentials, appLogin: login },
      message: `Secret ${scope.secret}: the login ${current.retiring} is disabled; the app uses ${current.name} (key ${APP_LOGIN_KEYS.login})`,
    };
  }

  /**
   * Gives the current login its password on every primary incarnation not known to have it (once
   * per incarnation: an ALTER ROLE with the same password changes nothing a client sees).
   */
  private async grantCurrent(
    scope: LoginScope,
    current: { name: string; password: string },
  ): Promise<RotationStep | undefined> {
    if (!verifierSafe(current.password)) return undefined; // a Secret the user made: kept as it is
    const logins = this.d.rolesFor(scope.credentials);
    await this.grants.giveOnce(this.d.pods, scope.clusters, [current.name, current.password], (node) =>
      logins.enable(node, current.name, APP_USER, current.password),
    );
    return undefined;
  }

  /** Every cluster's ready primary, or why one is missing. */
  private primaries(scope: LoginScope): PgNode[] | string {
    const pods = this.primaryPods(scope);
    return typeof pods === 'string' ? pods : pods.map((p) => p.node);
  }

  private primaryPods(scope: LoginScope): ReadyPrimary[] | string {
    return readyPrimaries(this.d.pods, scope.clusters);
  }
}

/**
 * What each primary incarnation (its pod's uid) was given, by a digest of it, per app: a login's
 * password, the servers' passwords. Given once per incarnation, as a new or restarted primary may
 * not have it (a change lost with an asynchronous primary, a new shard, an operator restart).
 */
export class PrimaryGrants {
  private readonly given = new AppMemory(() => new Set<string>());

  forget(key: string): void {
    this.given.forget(key);
  }

  /** Gives `what` with `give` to every ready primary of `clusters` not known to have it. */
  async giveOnce(
    pods: AppLoginRotationDeps['pods'],
    clusters: readonly PgCluster[],
    what: readonly string[],
    give: (node: PgNode) => Promise<void>,
  ): Promise<void> {
    // Not ready yet: its pod turning ready brings the next pass.
    const primaries = readyPrimaries(pods, clusters);
    if (typeof primaries === 'string') return;
    for (const { pod, node } of primaries) {
      if (this.has(clusters, pod, what)) continue;
      await give(node);
      this.mark(clusters, pod, what);
    }
  }

  /** Records that `pod`, a primary of `clusters`, has `what` (given by a step of its own). */
  mark(clusters: readonly PgCluster[], pod: V1Pod, what: readonly string[]): void {
    this.of(clusters).add(grantKey(pod, what));
  }

  private has(clusters: readonly PgCluster[], pod: V1Pod, what: readonly string[]): boolean {
    return this.of(clusters).has(grantKey(pod, what));
  }

  private of(clusters: readonly PgCluster[]): Set<string> {
    return this.given.of(appKey(clusters[0]?.app ?? { metadata: {} }));
  }
}

const grantKey = (pod: V1Pod, what: readonly string[]) =>
  `${pod.metadata?.uid}/${createHash('sha256').update(what.join('\0')).digest('base64')}`;

/** A cluster's primary, ready: its pod and how to reach it. */
export interface ReadyPrimary {
  readonly pod: V1Pod;
  readonly node: PgNode;
}

/** Every cluster's ready primary, or why one is missing (its name). */
export function readyPrimaries(
  pods: AppLoginRotationDeps['pods'],
  clusters: readonly PgCluster[],
): ReadyPrimary[] | string {
  const found = [];
  for (const cluster of clusters) {
    const name = pgPrimary(cluster);
    const pod = pods(cluster.app.metadata.namespace ?? '', cluster.selector).find(
      (p) => p.metadata?.name === name,
    );
    if (!pod || !pgServerReady(pod)) return `the primary ${name} is not ready`;
    found.push({ pod, node: nodeIn(cluster)(pod) });
  }
  return found;
}
