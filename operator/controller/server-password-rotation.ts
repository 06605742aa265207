// Changing the passwords of a Postgres cluster's own roles — the superuser the operator administers
// with, the replication role the standbys stream and clone as — with no restart (docs/adr/0028).
// The user changes `superuser-password` or `replication-password` in the credentials Secret (or
// deletes it, and the operator generates a new one). Each role has one password, so the change is
// one step: every primary these credentials open is given the new ones, and the record says so:
//   - the operator logs in with the record's superuser password, then the Secret's, then the one
//     before the last change (an instance that never got it), so a step cut short, or lost with an
//     asynchronous primary, never locks it out;
//   - each instance's passfile (what its walreceiver, pg_rewind and pg_basebackup log in with)
//     follows the record through the readiness probe once the kubelet refreshes the Secret in the
//     pod. Until then a standby that reconnects is refused and tries again: nothing is lost, a
//     synchronous commit waits. The probe itself logs in on the socket as the container's user.
// Between changes every primary incarnation is given the recorded passwords once, as the app's
// login is (app-login-rotation.ts).
import { verifierSafe } from '../dataplane/postgres/scram.ts';
import { DEFAULT_REPLICATION_USER, DEFAULT_SUPERUSER } from '../server-config/postgres.ts';
import { CREDENTIAL_FILES } from '../server-config/postgres-instance-script.ts';
import type { ServerPasswordsRecord } from '../tiers/objects.ts';
import { PgRotation, readyPrimaries, type LoginScope, type RotationStep } from './app-login-rotation.ts';
import { waitOn } from './rotation.ts';

/** What a primary incarnation is given, for PrimaryGrants. */
const grantOf = (r: ServerPasswordsRecord) => ['servers', r.superuser, r.replication];

/** The roles' passwords as ALTER ROLE takes them. */
const rolePasswords = (r: Pick<ServerPasswordsRecord, 'superuser' | 'replication'>) =>
  new Map([
    [DEFAULT_SUPERUSER, r.superuser],
    [DEFAULT_REPLICATION_USER, r.replication],
  ]);

export class ServerPasswordRotation extends PgRotation {
  /** The next step of a change of these credentials' server passwords, done (at most one write each). */
  async step(scope: LoginScope): Promise<RotationStep> {
    const { credentials } = scope;
    // The first pass records what the servers have (initdb gave them the Secret's passwords), so a
    // later change of either key is seen as one.
    if (!credentials.servers) {
      return {
        kind: 'recorded',
        credentials: {
          ...credentials,
          servers: { superuser: credentials.superuser, replication: credentials.replication },
        },
      };
    }
    const recorded = credentials.servers;
    const changed = [
      ...(credentials.superuser !== recorded.superuser ? [CREDENTIAL_FILES.superuserPassword] : []),
      ...(credentials.replication !== recorded.replication ? [CREDENTIAL_FILES.replicationPassword] : []),
    ];
    if (changed.length === 0) {
      await this.grantRecorded(scope, recorded);
      return { kind: 'steady' };
    }
    const keys = `Secret ${scope.secret} key${changed.length > 1 ? 's' : ''} ${changed.join(', ')}`;
    if (!verifierSafe(credentials.superuser) || !verifierSafe(credentials.replication)) {
      return {
        kind: 'refused',
        reason: `${keys}: a password must be printable ASCII (the operator sends Postgres its SCRAM verifier, never the password); the servers keep their current passwords`,
      };
    }
    const primaries = readyPrimaries(this.d.pods, scope.clusters);
    if (typeof primaries === 'string') return waitOn(primaries);
    const next: ServerPasswordsRecord = {
      superuser: credentials.superuser,
      replication: credentials.replication,
      ...(credentials.superuser !== recorded.superuser
        ? { previousSuperuser: recorded.superuser }
        : recorded.previousSuperuser
          ? { previousSuperuser: recorded.previousSuperuser }
          : {}),
    };
    const logins = this.d.rolesFor(credentials);
    // Every cluster first (the shards share these credentials): the record changes once all have them.
    for (const { node } of primaries) await logins.setServerPasswords(node, rolePasswords(next));
    for (const { pod } of primaries) this.grants.mark(scope.clusters, pod, grantOf(next));
    return {
      kind: 'retired',
      credentials: { ...credentials, servers: next },
      message: `${keys} changed: the servers' roles have the new passwords; each instance's standbys and rewinds use them once the kubelet refreshes the Secret in its pod`,
    };
  }

  /**
   * Gives every primary incarnation not known to have them the recorded passwords (once per
   * incarnation: a new verifier for the same password changes nothing a client sees).
   */
  private async grantRecorded(scope: LoginScope, recorded: ServerPasswordsRecord): Promise<void> {
    if (!verifierSafe(recorded.superuser) || !verifierSafe(recorded.replication)) return;
    const logins = this.d.rolesFor(scope.credentials);
    await this.grants.giveOnce(this.d.pods, scope.clusters, grantOf(recorded), (node) =>
      logins.setServerPasswords(node, rolePasswords(recorded)),
    );
  }
}
