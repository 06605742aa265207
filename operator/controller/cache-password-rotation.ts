// Rotating the app's cache password without refusing a client (docs/adr/0026). The user writes a new
// `password` into the cache's auth Secret (or deletes it, and the operator generates one). A server
// lets a user have several passwords, so the app's one user (`default`) takes both for a while:
//   1. every cache server gets the new password beside the current one (one ACL SETUSER each, by
//      their SHA-256), then the record names the new one: auth.conf lists both, the app's URLs name
//      the new one and its pods roll; old pods and new ones are both let in;
//   2. once no pod the operator runs holds the old URLs, every server keeps only the new password
//      and the record drops the old one. A connection already logged in is never cut: a server
//      checks a password only at AUTH, so a pooled connection of an old pod lives on until it closes.
// A server reads auth.conf only when it starts, and the kubelet refreshes a mounted Secret a minute
// or so after it changed: a server that starts in between may hold an older list. So every server
// incarnation is given the recorded list once, when it is first seen ready (Redis has no reload of
// users defined in its config). Each step is idempotent and its record is in the same Secret, so an
// operator restart, a stale cache or a failed call only repeats a step.
import type { V1Pod } from '@kubernetes/client-node';
import { incarnation, isContainerReady } from '../kube/pods.ts';
import type { CacheNode, CacheUsers } from '../dataplane/redis-admin.ts';
import { appPasswordRules, CACHE_USERS } from '../server-config/cache.ts';
import { ANNOTATION } from '../tiers/labels.ts';
import { CACHE, CACHE_APP_RECORD_KEYS, CACHE_PASSWORD_KEYS } from '../tiers/cache.ts';
import type { CacheAppPassword } from '../tiers/objects.ts';
import { AppMemory } from './app-memory.ts';
import { waitForOldUrls, waitOn, type AppPodsView, type RotationStep } from './rotation.ts';

/** One app's cache, as a rotation step sees it. */
export interface CacheScope extends AppPodsView {
  /** `namespace/name` of the app: what is remembered is kept per app. */
  readonly app: string;
  /** The auth Secret's name, for messages. */
  readonly secret: string;
  readonly password: CacheAppPassword;
  /** Every pod of the cache's StatefulSet. */
  readonly pods: readonly V1Pod[];
  /** The config hash the servers run with when they started from the current configuration. */
  readonly configHash: () => string;
  /** How the operator reaches a pod's server. */
  readonly node: (pod: V1Pod) => CacheNode;
  /** The operator's cache login's password (CACHE_USERS.operator). */
  readonly operatorPassword: string | undefined;
}

export interface CachePasswordRotationDeps {
  /** The calls on the servers, with the operator's login. */
  readonly usersFor: (operatorPassword: string | undefined) => CacheUsers;
}

/** A server incarnation given a list of password rules. */
const grantKey = (p: V1Pod, rules: readonly string[]) => `${incarnation(p, CACHE)}/${rules.join(',')}`;

/** Whether a pod's server started from the current configuration (older ones may lack ACL SETUSER). */
const current = (scope: CacheScope) => (p: V1Pod) =>
  p.metadata?.annotations?.[ANNOTATION.configHash] === scope.configHash();

export class CachePasswordRotation {
  /** Per app: the server incarnations known to hold the recorded list (grantKey). */
  private readonly granted = new AppMemory(() => new Set<string>());
  private readonly d: CachePasswordRotationDeps;
  constructor(deps: CachePasswordRotationDeps) {
    this.d = deps;
  }

  forget(key: string): void {
    this.granted.forget(key);
  }

  /** The next step of a rotation of the app's cache password, done (at most one list per server). */
  async step(scope: CacheScope): Promise<RotationStep<CacheAppPassword>> {
    const { password } = scope;
    const key = `Secret ${scope.secret} key ${CACHE_PASSWORD_KEYS.app}`;
    if (password.wanted !== password.current) {
      if (password.retiring !== undefined) {
        return waitOn(`${key} changed again while the previous password is retired from the last change`);
      }
      const notYet = this.allServersReady(scope);
      if (notYet) return waitOn(notYet);
      // Every server first: the URLs name the new password only once each of them lets it in.
      const next = { ...password, current: password.wanted, retiring: password.current };
      await this.give(scope, scope.pods, next);
      return {
        kind: 'switched',
        credentials: next,
        message: `${key} changed: every cache server accepts the new password beside the old, and the app's URLs name the new one; the old one goes once no pod uses it`,
      };
    }
    // Between rotations and during one, each server incarnation started since gets the list once.
    await this.give(scope, scope.pods, password, (p) => isContainerReady(p, CACHE) && current(scope)(p));
    if (password.retiring === undefined) return { kind: 'steady' };
    const oldUrls = waitForOldUrls(scope, `with the previous cache password`);
    if (oldUrls) return oldUrls;
    const notYet = this.allServersReady(scope);
    if (notYet) return waitOn(notYet);
    const { retiring: _done, ...done } = password;
    await this.give(scope, scope.pods, done);
    return {
      kind: 'retired',
      credentials: done,
      message: `Secret ${scope.secret}: every cache server accepts only the new password now (key ${CACHE_APP_RECORD_KEYS.current})`,
    };
  }

  /** Why not every server can be given a list now, or undefined when each can. */
  private allServersReady(scope: CacheScope): string | undefined {
    if (scope.pods.length === 0) return 'no cache server runs yet';
    const unready = scope.pods.filter((p) => !isContainerReady(p, CACHE)).map((p) => p.metadata?.name);
    if (unready.length > 0) return `cache server(s) not ready: ${unready.join(', ')}`;
    const older = scope.pods.filter((p) => !current(scope)(p)).map((p) => p.metadata?.name);
    if (older.length > 0) return `cache server(s) still run an older configuration: ${older.join(', ')}`;
    return undefined;
  }

  /**
   * Gives each of these servers exactly the list of `password` (current, and retiring if any), once;
   * `able` is asked only of a server not given it yet (steady passes ask nothing).
   */
  private async give(
    scope: CacheScope,
    pods: readonly V1Pod[],
    password: CacheAppPassword,
    able: (p: V1Pod) => boolean = () => true,
  ): Promise<void> {
    const rules = appPasswordRules({ app: password.current, retiringApp: password.retiring });
    const granted = this.granted.of(scope.app);
    const users = this.d.usersFor(scope.operatorPassword);
    for (const p of pods) {
      const k = grantKey(p, rules);
      if (granted.has(k) || !able(p)) continue;
      await users.setPasswords(scope.node(p), CACHE_USERS.app, rules);
      granted.add(k);
    }
  }
}
