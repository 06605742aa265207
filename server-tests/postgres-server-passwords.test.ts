// Changing the servers' own passwords (ADR 0028) against REAL postgres processes started by the
// instance script with the pg_hba.conf the operator deploys, and a synchronous standby: the roles get
// the new passwords with no restart; the readiness probe keeps passing while the instances' files
// still hold the old ones (it logs in on the socket as the container's user); a standby that
// reconnects before its passfile follows is refused and retries, and once the probe rewrites the
// passfile from the record it streams again, with every acknowledged commit on it; the operator
// logs in with whichever of its candidate passwords the server has.
import { Client } from 'pg';
import { pgAdmin } from '../operator/dataplane/postgres/admin.ts';
import { pgRoles } from '../operator/dataplane/postgres/roles.ts';
import { SERVER_PASSWORD_KEYS } from '../operator/server-config/postgres-passfile.ts';
import { CREDENTIAL_FILES } from '../operator/server-config/postgres-instance-script.ts';
import { CREDENTIALS, LocalCluster, until } from './support/postgres-local-cluster.ts';

const TEST_TIMEOUT = 180_000;
const NEW_SUPERUSER = 'n3w:su\\per';
const NEW_REPLICATION = "n3w:re'pl";
let c: LocalCluster;

beforeAll(async () => {
  c = await LocalCluster.synchronousPair();
}, TEST_TIMEOUT);
afterAll(() => c?.destroy());

/** Whether pg-1 streams from pg-0 now, as the primary sees it (asked with the new superuser password). */
async function streaming(): Promise<boolean> {
  const node = c.get('pg-0').node;
  const client = new Client({ ...node, user: 'postgres', password: NEW_SUPERUSER, database: 'postgres' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'",
    );
    return rows[0].n === 1;
  } finally {
    await client.end();
  }
}

describe("the servers' own passwords changed", () => {
  it(
    'the roles get them at once; the probe passes on both instances before their files change',
    async () => {
      const primary = c.get('pg-0');
      const admin = pgAdmin({ superuserPassword: CREDENTIALS.superuser, timeoutMs: 5000 });
      expect(await admin.ping(primary.node)).toBe(true);
      await pgRoles({ superuserPassword: CREDENTIALS.superuser, timeoutMs: 5000 }).setServerPasswords(
        primary.node,
        new Map([
          ['postgres', NEW_SUPERUSER],
          ['replicator', NEW_REPLICATION],
        ]),
      );
      // The old superuser password is refused now, over TCP...
      expect(await admin.ping(primary.node)).toBe(false);
      // ...but the operator, trying the record's, then the Secret's, then the previous, gets in.
      const candidates = pgAdmin({
        superuserPassword: [CREDENTIALS.superuser, NEW_SUPERUSER],
        timeoutMs: 5000,
      });
      expect(await candidates.ping(primary.node)).toBe(true);
      expect(await candidates.ping(c.get('pg-1').node)).toBe(true);
      // The probes query as the superuser (the self-fence reads the standbys' reports) with the old
      // passfile still in place: on the socket, as the container's user, no password is asked.
      expect(primary.ready(3600)).toEqual({ ready: true, said: '' });
      expect(c.get('pg-1').ready(3600)).toEqual({ ready: true, said: '' });
    },
    TEST_TIMEOUT,
  );

  it(
    'a standby that reconnects before its passfile follows is refused; once the probe rewrites it from the record, it streams, and no acknowledged commit is lost',
    async () => {
      const [primary, standby] = [c.get('pg-0'), c.get('pg-1')];
      expect(await streaming()).toBe(true);
      // Its connection drops (a network blip): it reconnects with the passfile it has, the old password.
      for (const pid of primary.pids('walsender')) process.kill(pid, 'SIGTERM');
      await until('the standby to be refused', async () => !(await streaming()));
      // A synchronous commit waits for it, unacknowledged, rather than being lost.
      const writer = await primary.connect();
      const pending = writer.query('INSERT INTO orders VALUES (1)');
      let acknowledged = false;
      void pending.then(() => (acknowledged = true));
      await new Promise((r) => setTimeout(r, 3000));
      expect(await streaming()).toBe(false);
      expect(acknowledged).toBe(false);

      // The kubelet refreshes the Secret: the user's keys, and the operator's record that the servers
      // have them. The next probe rewrites the passfile; the walreceiver's next try logs in.
      await c.setCredential(CREDENTIAL_FILES.superuserPassword, NEW_SUPERUSER);
      await c.setCredential(CREDENTIAL_FILES.replicationPassword, NEW_REPLICATION);
      await c.setCredential(SERVER_PASSWORD_KEYS.superuser, NEW_SUPERUSER);
      await c.setCredential(SERVER_PASSWORD_KEYS.replication, NEW_REPLICATION);
      expect(standby.ready(3600)).toEqual({ ready: true, said: '' });
      await until('the standby to stream again', () => streaming(), 60_000);
      await pending;
      await writer.end();
      const onStandby = await until('the commit on the standby', async () => {
        const rows = await standby.query<{ n: number }>('SELECT count(*)::int AS n FROM orders WHERE id = 1');
        return rows[0]!.n === 1;
      });
      expect(onStandby).toBe(true);
      // A second look finds nothing to change.
      expect(standby.ready(3600)).toEqual({ ready: true, said: '' });
    },
    TEST_TIMEOUT,
  );
});
