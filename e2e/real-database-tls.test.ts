// Postgres over TLS on the real node (spec.database.tls and spec.shards.tls, on by default): what a
// client pod sees with real connections, what the servers' own views say of replication, and a
// certificate the operator issues again under running traffic. Last, the app's passwords of the
// database, the shard and the cache rotated under traffic.
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { SWITCHOVER_ANNOTATION } from '../operator/controller/database-primary.ts';
import { decodeSecret } from './support/apps.ts';
import { eventually, json, kubectl } from './support/kube.ts';
import { lost, storedIds, superuserQuery, writeFor } from './support/pg-load.ts';
import { PgFailover, report } from './support/pg-failover.ts';
import { getApp, isReadyAtGeneration } from './support/apps.ts';
import { stringify } from 'yaml';
import {
  WRITER,
  WRITER_CLIENT,
  WRITER_LABELS,
  allPodsReady,
  appWithWriter,
  applyAndAwaitReady,
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  eventsOf,
  execIn,
  installInClusterOperator,
  localApp,
  serviceRequest,
  startProbe,
  tierPods,
} from './support/real-node.ts';

const APP = 'vault';
let ns: string;

beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-tls');
  await applyAndAwaitReady(
    ns,
    localApp(APP, {
      web: {
        image: 'placeholder',
        port: 8080,
        replicas: 1,
        healthCheck: { path: '/healthz' },
        // Sessions in the cache: the rotation case below reads one through the web tier.
        sessions: 'cache',
      },
      cache: { replicas: 1, allowedClients: [WRITER_CLIENT] },
      // The client pod below is let in by name (the tiers admit the app's own pods and these only).
      database: { replicas: 1, storage: { size: '1Gi' }, allowedClients: [WRITER_CLIENT] },
      shards: {
        count: 1,
        key: 'user_id',
        replicasPerShard: 0,
        storage: { size: '1Gi' },
        allowedClients: [WRITER_CLIENT],
      },
    }),
    'the app Ready on the real node',
  );
  startProbe(ns, WRITER, WRITER_LABELS, `${APP}-connection`);
  await allPodsReady(ns, `scalableapp.io/test-client=${WRITER_LABELS['scalableapp.io/test-client']}`, 1);
  await allPodsReady(ns, tierPods(APP, 'web'), 1);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

/**
 * Runs `body` (JavaScript with `pg` and `url` in scope) in the client pod, which has the app's
 * connection Secret as its environment and its CA where the URLs say; its stdout, trimmed.
 */
function inClient(url: string, body: string): { ok: boolean; out: string } {
  const script =
    `const pg=require('/app/node_modules/pg');const url=${url};` +
    `(async()=>{${body}})().catch(e=>{console.log('error: '+e.message);process.exit(1)})`;
  const r = execIn(ns, WRITER, ['node', '-e', script]);
  return { ok: r.ok, out: r.stdout.trim() };
}

/** The uids of a tier's pods: the same after a change means none was recreated. */
const podUids = (tier: string) =>
  kubectl(['get', 'pods', '-n', ns, '-l', tierPods(APP, tier), '-o', 'jsonpath={.items[*].metadata.uid}']);

/** PING over the client pod's CACHE_URL (TLS, checked against its CA): PONG, or the error. */
function cacheFromClient(): string {
  const script =
    "const {createClient}=require('/app/node_modules/redis');const fs=require('fs');" +
    'const c=createClient({url:process.env.CACHE_URL,socket:{tls:true,ca:fs.readFileSync(process.env.CACHE_CA_FILE),reconnectStrategy:false,connectTimeout:5000}});' +
    "c.on('error',()=>{});" +
    "c.connect().then(()=>c.ping()).then(r=>{console.log(r);process.exit(0)},e=>{console.log('error: '+e.message);process.exit(1)})";
  return execIn(ns, WRITER, ['node', '-e', script]).stdout.trim();
}

/** The first shard's read-write URL, as the demo's router builds it from the Secret's entries. */
const shardUrl = () =>
  '`postgres://app:${encodeURIComponent(process.env.SHARDS_PASSWORD)}@' +
  `${APP}-shard-0-rw.${ns}.svc:5432/app` +
  '?sslmode=${process.env.SHARDS_SSLMODE}&sslrootcert=${process.env.SHARDS_SSLROOTCERT}`';

/** The serial of the certificate the database's primary serves to a new connection. */
const servedSerial = () =>
  inClient(
    'process.env.DATABASE_URL',
    'const c=new pg.Client({connectionString:url,connectionTimeoutMillis:5000});await c.connect();' +
      'console.log(c.connection.stream.getPeerCertificate().serialNumber);await c.end();',
  ).out;

const secretCert = (name: string) =>
  Buffer.from(json<any>(['get', 'secret', name, '-n', ns]).data['tls.crt'], 'base64').toString();

describeReal('Postgres over TLS on the real node', () => {
  it('refuses a plaintext connection to the database and to a shard', () => {
    const plain = (url: string) =>
      inClient(
        url,
        "const u=new URL(url);const c=new pg.Client({host:u.hostname,port:5432,user:'app'," +
          "password:decodeURIComponent(u.password),database:'app',ssl:false,connectionTimeoutMillis:5000});" +
          "await c.connect();console.log('connected');await c.end();",
      );
    const db = plain('process.env.DATABASE_URL');
    expect(db.out).toMatch(/no pg_hba\.conf entry .* no encryption/);
    const shard = plain(shardUrl());
    expect(shard.out).toMatch(/no pg_hba\.conf entry .* no encryption/);
  });

  it("the app's URLs verify the certificate and the name against the app's CA, and the session is encrypted", () => {
    const env = decodeSecret(json<any>(['get', 'secret', `${APP}-connection`, '-n', ns]));
    expect(env.DATABASE_URL).toMatch(/\?sslmode=verify-full&sslrootcert=\/etc\/scalableapp\/ca\/ca\.crt$/);
    expect([env.SHARDS_SSLMODE, env.SHARDS_SSLROOTCERT]).toEqual([
      'verify-full',
      '/etc/scalableapp/ca/ca.crt',
    ]);
    const query =
      'const c=new pg.Client({connectionString:url,connectionTimeoutMillis:5000});await c.connect();' +
      "const r=await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');" +
      'console.log(JSON.stringify(r.rows));await c.end();';
    expect(inClient('process.env.DATABASE_URL', query)).toEqual({ ok: true, out: '[{"ssl":true}]' });
    expect(inClient(shardUrl(), query)).toEqual({
      ok: true,
      out: '[{"ssl":true}]',
    });
    // The CA the clients trust is the app's, handed out as a ConfigMap (its key stays in a Secret
    // no pod mounts).
    const ca = json<any>(['get', 'configmap', `${APP}-ca-cert`, '-n', ns]).data['ca.crt'];
    expect(new X509Certificate(secretCert(`${APP}-db-tls`)).checkIssued(new X509Certificate(ca))).toBe(true);
  });

  it('replication runs over TLS: the primary sees its standby on an encrypted connection', () => {
    const seen = superuserQuery(
      ns,
      `${APP}-db-0`,
      "SELECT r.application_name || ' ' || s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
    );
    expect(seen).toBe(`${APP}-db-1 true`);
  });

  it('the demo app reaches the database and the shards with verified TLS', async () => {
    const res = await serviceRequest(ns, `${APP}-web`, '/touch-all');
    expect(res.status).toBe(200);
    for (const tier of ['database', 'shards'])
      expect({ tier, ...res.body.results?.[tier] }).toMatchObject({ tier, ok: true });
  });

  it('a certificate the operator issues again is served after the servers reload, with no failed request and no pod restarted', async () => {
    const webPods = kubectl(['get', 'pods', '-n', ns, '-l', tierPods(APP, 'web'), '-o', 'name']);
    const dbUids = podUids('database');
    const before = servedSerial();
    expect(before).toBe(new X509Certificate(secretCert(`${APP}-db-tls`)).serialNumber);
    // The manual way to rotate (docs): delete the Secret; the operator issues a new one from the same CA.
    kubectl(['delete', 'secret', `${APP}-db-tls`, '-n', ns]);
    const deletedAt = Date.now();
    const failures: string[] = [];
    let requests = 0;
    // Writes on the primary through the web tier, three at a time.
    const write = async () => {
      for (let i = 0; i < 3; i++) {
        requests++;
        const r = await serviceRequest(ns, `${APP}-web`, '/db/items', {
          method: 'POST',
          body: JSON.stringify({ value: `rotation ${requests}` }),
          headers: { 'content-type': 'application/json' },
        }).catch((e: Error) => ({ status: 0, body: e.message }));
        if (r.status !== 201) failures.push(`${r.status} ${JSON.stringify(r.body)}`);
      }
    };
    const renewed = await eventually(
      'the new certificate served by the primary',
      async () => {
        // Traffic all along (bounded by the wait).
        await write();
        const served = servedSerial();
        return served !== before && /^[0-9A-F]+$/.test(served) && served;
      },
      300_000,
      2000,
    );
    // And after it, through the pools opened before: however fast the renewal (it was once served
    // after a single round, 4 s), writes run through it and after it.
    await write();
    // A figure for the notes: the kubelet's Secret refresh plus a probe period, mostly.
    console.log(
      `renewed certificate served ${Math.round((Date.now() - deletedAt) / 1000)} s after the Secret was deleted; ${requests} writes through the web tier meanwhile, ${failures.length} failed`,
    );
    expect(renewed).toBe(new X509Certificate(secretCert(`${APP}-db-tls`)).serialNumber);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThanOrEqual(6);
    // Nothing restarted: the web pods kept their pools, the servers only reloaded.
    expect(kubectl(['get', 'pods', '-n', ns, '-l', tierPods(APP, 'web'), '-o', 'name'])).toBe(webPods);
    expect(podUids('database')).toBe(dbUids);
  }, 400_000);

  it("changes the servers' own passwords under writes: no pod restarted, none acknowledged lost, the standby streams again after a dropped connection, and a switchover after rewinds the old primary with them", async () => {
    const db = new PgFailover(ns, APP, WRITER);
    const dbUids = podUids('database');
    const primary = db.primaryOf();
    const standby = [`${APP}-db-0`, `${APP}-db-1`].find((p) => p !== primary)!;
    const streaming = () =>
      superuserQuery(ns, primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") ===
      '1';
    expect(streaming()).toBe(true);
    const oldSuperuser = decodeSecret(json<any>(['get', 'secret', `${APP}-db-credentials`, '-n', ns]))[
      'superuser-password'
    ]!;
    /** A login as the superuser from the client pod, to the primary over verified TLS. */
    const asSuperuser = (password: string) =>
      inClient(
        'process.env.DATABASE_URL',
        `const u=new URL(url);u.username='postgres';u.password=${JSON.stringify(encodeURIComponent(password))};` +
          "u.pathname='/postgres';const c=new pg.Client({connectionString:u.toString(),connectionTimeoutMillis:5000});" +
          "await c.connect();await c.end();console.log('ok');",
      );
    expect(asSuperuser(oldSuperuser)).toEqual({ ok: true, out: 'ok' });
    const load = writeFor(ns, WRITER, 90, 'server_passwords');
    await sleep(3000);
    // The user's way (docs/credentials.md): write the new passwords into the Secret.
    kubectl([
      'patch',
      'secret',
      `${APP}-db-credentials`,
      '-n',
      ns,
      '--type',
      'merge',
      '-p',
      JSON.stringify({
        stringData: { 'superuser-password': 'n3w super:1', 'replication-password': "n3w'repl\\2" },
      }),
    ]);
    const changedAt = Date.now();
    const changed = (e: string) =>
      e.startsWith('CredentialsRotated') && e.includes('superuser-password, replication-password');
    await eventually(
      'the servers given the new passwords',
      () => eventsOf(ns, APP).some(changed),
      120_000,
      1000,
    );
    const givenMs = Date.now() - changedAt;
    // The standby's connection drops: it logs in again with what its passfile says, which follows the
    // record once the kubelet has refreshed the Secret in its pod (and the probe has run).
    superuserQuery(ns, primary, 'SELECT pg_terminate_backend(pid) FROM pg_stat_replication');
    const droppedAt = Date.now();
    await eventually('the standby streaming again', async () => streaming(), 240_000, 1000);
    const backMs = Date.now() - droppedAt;
    const r = await load;
    report(
      'server passwords',
      r,
      `; servers given the new passwords ${(givenMs / 1000).toFixed(1)} s after the Secret changed, standby streaming ${(backMs / 1000).toFixed(1)} s after its connection was dropped`,
    );
    await db.expectNothingLost(r, 'server_passwords');
    expect(podUids('database')).toBe(dbUids);
    expect(eventsOf(ns, APP).filter(changed)).toHaveLength(1);
    // Over TCP the old superuser password is refused now, and the new one logs in.
    expect(asSuperuser(oldSuperuser).out).toMatch(/password authentication failed for user "postgres"/);
    expect(asSuperuser('n3w super:1')).toEqual({ ok: true, out: 'ok' });
    // A switchover: the operator promotes with the new superuser password, and the old primary
    // rewinds from the new one with the passfile that followed.
    kubectl(['annotate', 'scalableapp', APP, '-n', ns, `${SWITCHOVER_ANNOTATION}=${standby}`, '--overwrite']);
    await eventually('the record to name the standby', () => db.primaryOf() === standby, 120_000, 500);
    const log = await db.rejoinedAsStandby(primary);
    expect(log).not.toMatch(/cloning/);
    await eventually('the app Ready again', () => isReadyAtGeneration(getApp(ns, APP)), 300_000, 2000);
  }, 600_000);

  // Last in this suite: the writer pod keeps the URLs it started with, and they stop working here.
  it("rotates the app's password in the database, the shard and the cache under traffic through the web tier: no request fails, a session outlives it, and the old passwords are refused after", async () => {
    const stale = inClient(
      'process.env.DATABASE_URL',
      `const c=new pg.Client(url);await c.connect();await c.end();console.log('ok');`,
    );
    expect(stale).toEqual({ ok: true, out: 'ok' });
    expect(cacheFromClient()).toBe('PONG');
    const webBefore = kubectl(['get', 'pods', '-n', ns, '-l', tierPods(APP, 'web'), '-o', 'name']);
    const cacheBefore = podUids('cache');
    // A session stored before: the cache servers keep their data through the rotation (no restart).
    const created = await serviceRequest(ns, `${APP}-web`, '/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ data: 'before the rotation' }),
    });
    expect(created.status).toBe(201);
    const cookie = (created.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(cookie).toMatch(/=/);
    // The user's way (docs/credentials.md): write the new password into each Secret.
    for (const [secret, key, password] of [
      [`${APP}-db-credentials`, 'app-password', 'rotated-db-1'],
      [`${APP}-shards-credentials`, 'app-password', 'rotated-shards-1'],
      [`${APP}-cache-auth`, 'password', 'rotated cache/1'],
    ] as const)
      kubectl([
        'patch',
        'secret',
        secret,
        '-n',
        ns,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ stringData: { [key]: password } }),
      ]);
    const startedAt = Date.now();
    const failures: string[] = [];
    let requests = 0;
    const request = async (path: string, init: RequestInit, ok: number) => {
      requests++;
      const r = await serviceRequest(ns, `${APP}-web`, path, init).catch((e: Error) => ({
        status: 0,
        body: e.message,
      }));
      if (r.status !== ok) failures.push(`${path} ${r.status} ${JSON.stringify(r.body)}`);
    };
    const post = { method: 'POST', headers: { 'content-type': 'application/json' } };
    await eventually(
      'the three rotations done: the old passwords refused',
      async () => {
        // Traffic all along (bounded by the wait): a write on the primary, one on the shard, and
        // the session read from the cache.
        await request('/db/items', { ...post, body: JSON.stringify({ value: `rotation ${requests}` }) }, 201);
        await request(
          `/shard/user-${requests % 7}`,
          { ...post, body: JSON.stringify({ value: requests }) },
          200,
        );
        await request('/session', { headers: { cookie } }, 200);
        // The app's passwords' (the servers' own were changed by the case before).
        const rotated = eventsOf(ns, APP).filter(
          (e) => e.startsWith('CredentialsRotated') && !e.includes('superuser-password'),
        );
        return rotated.length === 3;
      },
      300_000,
      1000,
    );
    console.log(
      `password rotation of the database, the shard and the cache done ${Math.round((Date.now() - startedAt) / 1000)} s after the Secrets changed; ${requests} requests through the web tier meanwhile, ${failures.length} failed`,
    );
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(6);
    const env = decodeSecret(json<any>(['get', 'secret', `${APP}-connection`, '-n', ns]));
    expect(env.DATABASE_URL).toMatch(/^postgresql:\/\/app_alt:rotated-db-1@/);
    expect([env.SHARDS_USER, env.SHARDS_PASSWORD]).toEqual(['app_alt', 'rotated-shards-1']);
    expect(env.CACHE_URL).toMatch(/^rediss:\/\/:rotated%20cache%2F1@/);
    // The session written before is still there, and no cache server was restarted for it.
    const session = await serviceRequest(ns, `${APP}-web`, '/session', { headers: { cookie } });
    expect(session).toMatchObject({ status: 200, body: { data: 'before the rotation' } });
    expect(podUids('cache')).toBe(cacheBefore);
    expect(
      json<any>(['get', 'pods', '-n', ns, '-l', tierPods(APP, 'cache')]).items.map(
        (p: any) => p.status.containerStatuses.find((c: any) => c.name === 'cache').restartCount,
      ),
    ).toEqual([0, 0]);
    // The client pod kept the old URL: refused now.
    expect(cacheFromClient()).toMatch(/WRONGPASS/);
    // The web pods rolled onto the new URLs; the client pod that kept the old ones is refused now.
    expect(kubectl(['get', 'pods', '-n', ns, '-l', tierPods(APP, 'web'), '-o', 'name'])).not.toBe(webBefore);
    const refused = inClient(
      'process.env.DATABASE_URL',
      `const c=new pg.Client(url);await c.connect();await c.end();console.log('ok');`,
    );
    expect(refused.out).toMatch(/password authentication failed for user "app"/);
    expect(eventsOf(ns, APP).filter((e) => e.startsWith('CredentialsRotating'))).toHaveLength(3);
  }, 400_000);
});

describeReal('turning TLS on for a running database', () => {
  const PLAIN = 'ledger';
  let other: string;
  const spec = (tls: boolean) =>
    localApp(PLAIN, {
      // Synchronous: a commit is acknowledged only once a standby has it, through the whole rollout.
      database: {
        replicas: 1,
        synchronousReplicas: 1,
        tls: { enabled: tls },
        storage: { size: '1Gi' },
        allowedClients: [WRITER_CLIENT],
      },
    });
  afterAll(() => {
    if (other) deleteNamespaceAndWait(other);
  });

  it('rolls the instances onto TLS under writes: none acknowledged is lost, and a client of the new URL writes over TLS', async () => {
    other = await appWithWriter('real-tls-on', spec(false), tierPods(PLAIN, 'database'), 2);
    const db = new PgFailover(other, PLAIN, WRITER);
    const url = () =>
      decodeSecret(json<any>(['get', 'secret', `${PLAIN}-connection`, '-n', other])).DATABASE_URL!;
    expect(url()).not.toContain('sslmode');
    // The writer keeps its plaintext URL (its pod does not roll): it writes until the servers take
    // TLS only, then is refused. What it had acknowledged must all be there after the rollout.
    const load = writeFor(other, WRITER, 120, 'rollout');
    await new Promise((r) => setTimeout(r, 10_000));
    kubectl(['apply', '-n', other, '-f', '-'], stringify(spec(true)));
    await eventually(
      'every instance restarted with its certificate, ready, and the app Ready',
      () => {
        const pods = json<any>(['get', 'pods', '-n', other, '-l', tierPods(PLAIN, 'database')]).items;
        const rolled = pods.every(
          (p: any) =>
            p.spec.volumes.some((v: any) => v.name === 'tls') &&
            p.status.containerStatuses?.every((c: any) => c.ready),
        );
        return pods.length === 2 && rolled && isReadyAtGeneration(getApp(other, PLAIN));
      },
      600_000,
      2000,
    );
    const r = await load;
    report('plaintext writer through the TLS rollout', r);
    expect(r.ackedCount).toBeGreaterThan(0);
    expect(url()).toMatch(/\?sslmode=verify-full&sslrootcert=/);
    // A client of the new URL (a new pod: the connection Secret and the CA mounted) reads back every
    // acknowledged row and writes over TLS.
    kubectl(['delete', 'pod', WRITER, '-n', other, '--wait=true']);
    startProbe(other, WRITER, WRITER_LABELS, `${PLAIN}-connection`);
    await allPodsReady(other, `scalableapp.io/test-client=${WRITER_LABELS['scalableapp.io/test-client']}`, 1);
    // Every acknowledged row is there. (Writes do not resume for this writer: its URL is plaintext.)
    const stored = await storedIds(other, WRITER, 'rollout');
    expect(lost(r.acked, stored.ids)).toEqual([]);
    const after = await writeFor(other, WRITER, 5, 'after_rollout');
    expect(after.ackedCount).toBeGreaterThan(0);
    expect(
      superuserQuery(
        other,
        db.primaryOf(),
        "SELECT string_agg(r.application_name || ' ' || s.ssl, ',') FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
      ),
    ).toMatch(/^ledger-db-\d true$/);
  }, 900_000);
});
