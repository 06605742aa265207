// The database tier over TLS (spec.database.tls, on by default), against REAL postgres processes
// started by the instance script with the config texts the operator deploys, as in postgres.test.ts:
// what a client, a standby and the operator see, and a certificate renewed under a running cluster.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Client } from 'pg';
import { verifiedTls } from '../operator/dataplane/postgres/admin.ts';
import { issueCa, issueServerCert } from '../operator/tls/certificates.ts';
import { LocalCluster, TLS_NAME, until } from './support/postgres-local-cluster.ts';

const TEST_TIMEOUT = 180_000;
let c: LocalCluster;

beforeAll(async () => {
  // One synchronous standby: its commits wait for a walreceiver that streams over TLS.
  c = await LocalCluster.create({ names: ['pg-0', 'pg-1'], synchronousReplicas: 1, tls: true });
  await c.startAll();
  await c.get('pg-0').query('CREATE TABLE tls_notes (id int PRIMARY KEY)');
}, TEST_TIMEOUT);
afterAll(() => c?.destroy());

const primary = () => c.get('pg-0');
const standby = () => c.get('pg-1');

/** The serial number of the certificate the server presented on this connection. */
const servedSerial = (client: Client) =>
  (client as unknown as { connection: { stream: TLSSocket } }).connection.stream.getPeerCertificate()
    .serialNumber as string;

async function refusal(connect: () => Promise<Client>): Promise<string> {
  try {
    const client = await connect();
    await client.end();
    return 'connected';
  } catch (err) {
    return String((err as Error).cause ?? err);
  }
}

describe('Postgres over TLS, as the operator configures it', () => {
  it('refuses a plaintext client, the app and the superuser alike', async () => {
    for (const as of ['app', 'superuser'] as const) {
      expect(await refusal(() => primary().connect({ as, ssl: false }))).toMatch(
        /no pg_hba\.conf entry .* no encryption/,
      );
    }
  });

  it('serves a client that checks the certificate and the name, and no client that trusts another CA or wants another name', async () => {
    const rows = await primary().query<{ ssl: boolean; version: string }>(
      'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    expect(rows).toEqual([{ ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) }]);
    const other = await issueCa('another CA', new Date());
    expect(await refusal(() => primary().connect({ ssl: verifiedTls(other.cert, TLS_NAME) }))).toMatch(
      /unable to verify|self-signed|signature/i,
    );
    expect(
      await refusal(() => primary().connect({ ssl: verifiedTls(c.tls!.ca.cert, 'shop-db-rw.prod.svc') })),
    ).toMatch(/altnames|does not match/i);
  });

  it(
    'clones and streams over TLS, with the name checked, and a synchronous commit returns',
    async () => {
      // Right after the start a standby may still be catching up (async, not yet streaming).
      const receiver = await until('the standby streaming', async () => {
        const [r] = await standby().query<{ conninfo: string; status: string }>(
          'SELECT conninfo, status FROM pg_stat_wal_receiver',
          [],
          'superuser',
        );
        return r?.status === 'streaming' && r;
      });
      expect(receiver.conninfo).toContain('sslmode=verify-full');
      expect(receiver.conninfo).toContain(`sslrootcert=${c.tls!.caFile}`);
      expect(receiver.conninfo).toContain(`host=${TLS_NAME}`);
      // The primary's own view: the walsender's connection is encrypted.
      const senders = await until('the standby counted for ANY 1', async () => {
        const rows = await primary().query<{ application_name: string; sync_state: string; ssl: boolean }>(
          'SELECT r.application_name, r.sync_state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)',
          [],
          'superuser',
        );
        return rows[0]?.sync_state === 'quorum' && rows;
      });
      expect(senders).toEqual([{ application_name: 'pg-1', sync_state: 'quorum', ssl: true }]);
      await primary().query('INSERT INTO tls_notes VALUES (1)');
      await until(
        'the row on the standby',
        async () => (await standby().query('SELECT 1 FROM tls_notes')).length === 1,
      );
    },
    TEST_TIMEOUT,
  );

  it(
    'a standby the operator points at the primary again (follow) streams over TLS again',
    async () => {
      await c.admin.follow(standby().node, primary().node);
      await until('the standby streaming over TLS after follow', async () => {
        const rows = await standby().query<{ conninfo: string; status: string }>(
          'SELECT conninfo, status FROM pg_stat_wal_receiver',
          [],
          'superuser',
        );
        return rows[0]?.status === 'streaming' && rows[0].conninfo.includes('sslmode=verify-full');
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'a renewed certificate is served once the readiness probe reloads, and no connection or query is dropped',
    async () => {
      const before = await primary().connect();
      const oldSerial = servedSerial(before);
      // A client that keeps querying on its one connection throughout (bounded: stops by itself).
      const held = await primary().connect();
      let queries = 0;
      const failures: string[] = [];
      let stop = false;
      const loop = (async () => {
        for (let i = 0; i < 2000 && !stop; i++) {
          try {
            await held.query('SELECT 1');
            queries++;
          } catch (err) {
            failures.push(String(err));
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      try {
        const loadTime = async () =>
          (await primary().query<{ t: string }>('SELECT pg_conf_load_time()::text AS t', [], 'superuser'))[0]!
            .t;
        // The first probe records what the server loaded at start (one reload); nothing changes after.
        expect(primary().ready()).toEqual({ ready: true, said: '' });
        const settled = await loadTime();
        expect(primary().ready()).toEqual({ ready: true, said: '' });
        expect(await loadTime()).toBe(settled);

        const renewed = await issueServerCert(c.tls!.ca, [TLS_NAME], new Date());
        await c.installCertificate(renewed);
        // Until the probe runs, the server still serves the old one (it reads the files at a reload).
        const stale = await primary().connect();
        expect(servedSerial(stale)).toBe(oldSerial);
        await stale.end();
        for (const i of c.instances) expect(i.ready()).toEqual({ ready: true, said: '' });
        expect(await loadTime()).not.toBe(settled);

        const after = await primary().connect();
        expect(servedSerial(after)).toBe(new X509Certificate(renewed.cert).serialNumber);
        await after.end();
        // The connections opened before the renewal still work (the held one answers more queries
        // after the reload), and so does replication.
        const atReload = queries;
        await until('more queries on the held connection', async () => queries > atReload + 5);
        expect((await before.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
        await primary().query('INSERT INTO tls_notes VALUES (2)');
        await until(
          'the renewal-time row on the standby',
          async () => (await standby().query('SELECT 1 FROM tls_notes WHERE id = 2')).length === 1,
        );
      } finally {
        stop = true;
        await loop;
        await Promise.all([before.end(), held.end()]);
      }
      expect(failures).toEqual([]);
      expect(queries).toBeGreaterThan(10);
    },
    TEST_TIMEOUT,
  );
});
