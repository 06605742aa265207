// The app's two logins taking turns (operator/dataplane/postgres/roles.ts, ADR 0025) against REAL
// postgres processes started by the instance script with the pg_hba.conf the operator deploys: a
// new password works on the primary and on a standby at once, the login it replaces keeps its open
// sessions until it is disabled and after, and whichever login made an object, the owner owns it.
import { Client } from 'pg';
import { pgRoles } from '../operator/dataplane/postgres/roles.ts';
import {
  APP_DATABASE,
  APP_USER,
  CREDENTIALS,
  LocalCluster,
  until,
} from './support/postgres-local-cluster.ts';

const TEST_TIMEOUT = 180_000;
const ALT = 'app_alt';
let c: LocalCluster;
const logins = pgRoles({ superuserPassword: CREDENTIALS.superuser, timeoutMs: 5000 });

beforeAll(async () => {
  // A synchronous standby: every commit of the app waits for it, and the operator's must not.
  c = await LocalCluster.synchronousPair();
}, TEST_TIMEOUT);
afterAll(() => c?.destroy());

const primary = () => c.get('pg-0');

/** A session of the app's database as `user` with `password` on an instance. */
async function session(instance: 'pg-0' | 'pg-1', user: string, password: string): Promise<Client> {
  const node = c.get(instance).node;
  const client = new Client({
    host: node.host,
    port: node.port,
    user,
    password,
    database: APP_DATABASE,
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The SQLSTATE with which a login is refused, or 'accepted'. */
async function loginOutcome(instance: 'pg-0' | 'pg-1', user: string, password: string): Promise<string> {
  try {
    await (await session(instance, user, password)).end();
    return 'accepted';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const scalar = async <T>(client: Client, sql: string, values: unknown[] = []): Promise<T> =>
  Object.values((await client.query(sql, values)).rows[0] as object)[0] as T;

describe("the app's logins taking turns", () => {
  const next = 'new:pass "word"\\1';
  const third = 'third-password';

  it('enables the second login with a new password on the primary, and a standby lets it in too', async () => {
    const held = await session('pg-0', APP_USER, CREDENTIALS.app);
    await held.query('INSERT INTO orders VALUES (1)');

    await logins.enable(primary().node, ALT, APP_USER, next);

    const alt = await session('pg-0', ALT, next);
    // It acts as the owner from its first statement, and RESET ROLE does not leave it.
    expect((await alt.query('SELECT session_user AS s, current_user AS u')).rows[0]).toEqual({
      s: ALT,
      u: APP_USER,
    });
    await alt.query('RESET ROLE');
    expect(await scalar(alt, 'SELECT current_user')).toBe(APP_USER);
    await alt.query('INSERT INTO orders VALUES (2)');
    await alt.query('CREATE TABLE made_by_alt (id int)');
    expect(await scalar(alt, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_alt'")).toBe(
      APP_USER,
    );
    // The old login with the old password still works meanwhile: both are valid during the turn.
    expect(await loginOutcome('pg-0', APP_USER, CREDENTIALS.app)).toBe('accepted');
    await until('the standby to let the new login in', async () =>
      (await loginOutcome('pg-1', ALT, next)) === 'accepted' ? true : undefined,
    );
    const read = await session('pg-1', ALT, next);
    await until('the standby to replay both rows', async () =>
      (await scalar<string>(read, 'SELECT count(*) FROM orders')) === '2' ? true : undefined,
    );
    await Promise.all([held.end(), alt.end(), read.end()]);
  });

  it('disables the old login: no new session, on either instance, while an open one goes on', async () => {
    const held = await session('pg-0', APP_USER, CREDENTIALS.app);
    expect(await logins.sessions(primary().node, APP_USER)).toBeGreaterThanOrEqual(1);

    await logins.disable(primary().node, APP_USER);

    // 28P01: its password is gone, so authentication fails before NOLOGIN is even asked.
    expect(await loginOutcome('pg-0', APP_USER, CREDENTIALS.app)).toBe('28P01');
    await until('the standby to refuse the old login', async () =>
      (await loginOutcome('pg-1', APP_USER, CREDENTIALS.app)) === '28P01' ? true : undefined,
    );
    await held.query('INSERT INTO orders VALUES (3)');
    expect(await scalar(held, 'SELECT count(*)::int FROM orders')).toBe(3);
    await held.end();
    await until('the old session to be gone', async () =>
      (await logins.sessions(primary().node, APP_USER)) === 0 ? true : undefined,
    );
    expect(await loginOutcome('pg-0', ALT, next)).toBe('accepted');
  });

  it('turns back to the owner with a third password, refusing the old one', async () => {
    await logins.enable(primary().node, APP_USER, APP_USER, third);
    expect(await loginOutcome('pg-0', APP_USER, third)).toBe('accepted');
    // 28P01: password authentication failed (the old password is no longer the owner's).
    expect(await loginOutcome('pg-0', APP_USER, CREDENTIALS.app)).toBe('28P01');
    await logins.disable(primary().node, ALT);
    expect(await loginOutcome('pg-0', ALT, next)).toBe('28P01');
    const owner = await session('pg-0', APP_USER, third);
    expect(await scalar(owner, 'SELECT count(*)::int FROM made_by_alt')).toBe(0);
    await owner.end();
  });

  it('does not wait for a synchronous standby that is down: a failover under way holds no step', async () => {
    await c.get('pg-1').kill9();
    // Each call would otherwise wait for the standby until its own timeout, and fail.
    await logins.enable(primary().node, ALT, APP_USER, next);
    await logins.disable(primary().node, ALT);
    await c.get('pg-1').start(primary());
  });

  it('changes nothing when a step fails: a password it cannot hash as the server would, or a missing owner', async () => {
    await expect(logins.enable(primary().node, ALT, APP_USER, 'caf\u00e9')).rejects.toThrow(
      /enabling the login app_alt failed/,
    );
    await expect(logins.enable(primary().node, 'app_other', 'no_such_owner', next)).rejects.toThrow(
      /enabling the login app_other failed/,
    );
    const roles = await primary().query<{ rolname: string; rolcanlogin: boolean }>(
      "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'app%' ORDER BY rolname",
      [],
      'superuser',
    );
    expect(roles).toEqual([
      { rolname: APP_USER, rolcanlogin: true },
      { rolname: ALT, rolcanlogin: false },
    ]);
  });
});
