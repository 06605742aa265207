// The passwords of a Postgres cluster's roles, set on its primary by the operator: the application's
// logins, and the servers' own roles (the superuser, the replication role; docs/adr/0028).
//
// The application's logins take turns so that a new password never refuses a client that still holds
// the old one (docs/adr/0025). The owner role (`app`, which owns the database and everything in it)
// logs in itself; a second login (`app_alt`) is a member of it whose sessions act as it (`ALTER ROLE
// ... SET role`: current_user is the owner from the first statement, and RESET ROLE returns to it),
// so objects are owned alike whichever login made them.
import { escapeIdentifier, escapeLiteral } from 'pg';
import { superuserCalls, type PgAdminOptions, type PgNode } from './admin.ts';
import { scramVerifier } from './scram.ts';

export interface PostgresRoles {
  /**
   * On the primary: `login` logs in with `password` (sent as its SCRAM verifier) and acts as
   * `owner`; created first when it does not exist. One transaction: all of it or nothing.
   */
  enable(n: PgNode, login: string, owner: string, password: string): Promise<void>;
  /** On the primary: no new session may log in as `login`; the sessions it has go on. */
  disable(n: PgNode, login: string): Promise<void>;
  /** How many sessions are logged in as `login` on the node now. */
  sessions(n: PgNode, login: string): Promise<number>;
  /**
   * On the primary: the servers' own roles (the superuser, the replication role) get these
   * passwords (sent as SCRAM verifiers), in one transaction (ADR 0028). Sessions logged in go on.
   */
  setServerPasswords(n: PgNode, passwords: ReadonlyMap<string, string>): Promise<void>;
}

export function pgRoles(o: PgAdminOptions): PostgresRoles {
  const on = superuserCalls(o);
  return {
    enable: (n, login, owner, password) =>
      on(n, `enabling the login ${login}`, async (c) => {
        const role = escapeIdentifier(login);
        const verifier = escapeLiteral(scramVerifier(password));
        await c.query('BEGIN');
        try {
          // Committed without waiting for a synchronous standby: one that is down (a failover under
          // way) would hold the operator's pass until the call timed out. A change lost with the
          // primary is made again on the next one (app-login-rotation.ts gives every primary
          // incarnation the current login).
          await c.query('SET LOCAL synchronous_commit = local');
          if (login !== owner) {
            const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [login]);
            if (exists.rowCount === 0) await c.query(`CREATE ROLE ${role} NOLOGIN`);
            await c.query(`GRANT ${escapeIdentifier(owner)} TO ${role}`);
            await c.query(`ALTER ROLE ${role} SET role = ${escapeLiteral(owner)}`);
          }
          await c.query(
            `ALTER ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD ${verifier}`,
          );
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          throw err;
        }
      }),

    disable: (n, login) =>
      on(n, `disabling the login ${login}`, async (c) => {
        // As in enable; a disable lost with the primary is not made again, but the retired login's
        // password is also gone from every Secret and URL.
        await c.query('BEGIN');
        await c.query('SET LOCAL synchronous_commit = local');
        await c.query(`ALTER ROLE ${escapeIdentifier(login)} WITH NOLOGIN PASSWORD NULL`);
        await c.query('COMMIT');
      }),

    setServerPasswords: (n, passwords) =>
      on(n, `setting the passwords of ${[...passwords.keys()].join(', ')}`, async (c) => {
        await c.query('BEGIN');
        try {
          // As in enable: every primary incarnation is given them again (server-password-rotation.ts).
          await c.query('SET LOCAL synchronous_commit = local');
          for (const [role, password] of passwords)
            await c.query(
              `ALTER ROLE ${escapeIdentifier(role)} PASSWORD ${escapeLiteral(scramVerifier(password))}`,
            );
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          throw err;
        }
      }),

    sessions: (n, login) =>
      on(n, `counting the sessions of ${login}`, async (c) => {
        const { rows } = await c.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1',
          [login],
        );
        return rows[0]!.n;
      }),
  };
}
