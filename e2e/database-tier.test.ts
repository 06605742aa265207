import { X509Certificate } from 'node:crypto';
import { SERVER_PASSWORD_KEYS } from '../operator/server-config/postgres-passfile.ts';
import { podRoles, readyEndpoints, setPodReady } from './support/pods.ts';
// The database tier on the local control plane: instances and volumes, roles and Services, the read
// fallback, failover and switchover (Postgres replaced by pod readiness at the PostgresAdmin
// interface; the Postgres side is tested with real servers in server-tests/postgres.test.ts), and
// volumes retained when the app is deleted.
import { applyApp, decodeSecret, getApp, readyAt as readyAtGeneration } from './support/apps.ts';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  json,
  kubectl,
  tryKubectl,
  eventsWhere,
} from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

let ns: string;
let op: OperatorProcess;
beforeAll(async () => {
  ns = createNamespace('db', { 'pod-security.kubernetes.io/enforce': 'restricted' });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  if (process.env.SCALABLEAPP_DUMP_LOGS)
    console.log(
      op?.logs
        .filter((l) => /warn|error/.test(l))
        .slice(-40)
        .join('\n'),
    );
  await op?.stop();
  deleteNamespace(ns);
});

const spec = {
  web: { image: 'registry.example/notes:1', replicas: 1 },
  database: { replicas: 2, storage: { size: '1Gi' } },
};
const readyAt = (name: string) => readyAtGeneration(ns, name);
const setReady = (pod: string, status: 'True' | 'False') => setPodReady(ns, pod, status);
const roles = (app: string) => podRoles(ns, app, 'database');
const endpoints = (svc: string) => readyEndpoints(ns, svc);
const recorded = (app: string) => json<any>(['get', 'configmap', `${app}-db-config`, '-n', ns]).data.primary;

describe('a web tier with a Postgres primary and two streaming replicas', () => {
  it('runs three instances with bound volumes, the primary behind the read-write Service and the replicas behind the read-only one', async () => {
    applyApp(ns, 'notes', spec);
    const a = await readyAt('notes');
    expect(a.status.conditions.find((c: any) => c.type === 'DatabaseReady')).toMatchObject({
      status: 'True',
      reason: 'Available',
    });
    expect(a.status.database).toEqual({ primary: 'notes-db-0', readyReplicas: 2 });
    expect(a.status.endpoints).toMatchObject({
      databaseWrite: `notes-db-rw.${ns}.svc:5432`,
      databaseRead: `notes-db-ro.${ns}.svc:5432`,
    });
    const claims = json<{ items: any[] }>(['get', 'pvc', '-n', ns]).items;
    expect(
      claims.map((c) => [c.metadata.name, c.status.phase, c.spec.resources.requests.storage]).sort(),
    ).toEqual([
      ['data-notes-db-0', 'Bound', '1Gi'],
      ['data-notes-db-1', 'Bound', '1Gi'],
      ['data-notes-db-2', 'Bound', '1Gi'],
    ]);
    expect(roles('notes')).toEqual({
      'notes-db-0': 'primary',
      'notes-db-1': 'replica',
      'notes-db-2': 'replica',
    });
    await eventually('Service endpoints', () => endpoints('notes-db-rw').join() === 'notes-db-0');
    expect(endpoints('notes-db-ro')).toEqual(['notes-db-1', 'notes-db-2']);
  });

  it('hands the app read-write and read-only URLs, with passwords only in Secrets', async () => {
    const conn = decodeSecret(json<any>(['get', 'secret', 'notes-connection', '-n', ns]));
    const creds = decodeSecret(json<any>(['get', 'secret', 'notes-db-credentials', '-n', ns]));
    // monitor-password: the metrics exporter's login, generated whether or not monitoring is on.
    // app-login and app-login-password: the operator's record of which login the URLs name, with
    // which password (docs/credentials.md); before any rotation, the app role with app-password.
    // applied-*: the record of the servers' own passwords (ADR 0028), before any change the Secret's.
    expect(Object.keys(creds).sort()).toEqual([
      'app-login',
      'app-login-password',
      'app-password',
      SERVER_PASSWORD_KEYS.replication,
      SERVER_PASSWORD_KEYS.superuser,
      'monitor-password',
      'replication-password',
      'superuser-password',
    ]);
    expect([creds['app-login'], creds['app-login-password']]).toEqual(['app', creds['app-password']]);
    expect([creds[SERVER_PASSWORD_KEYS.superuser], creds[SERVER_PASSWORD_KEYS.replication]]).toEqual([
      creds['superuser-password'],
      creds['replication-password'],
    ]);
    // TLS by default: the certificate and the name verified against the app's CA.
    const tls = '?sslmode=verify-full&sslrootcert=/etc/scalableapp/ca/ca.crt';
    expect(conn.DATABASE_URL).toBe(
      `postgresql://app:${encodeURIComponent(creds['app-password']!)}@notes-db-rw.${ns}.svc:5432/app${tls}`,
    );
    expect(conn.DATABASE_READ_URL).toBe(
      `postgresql://app:${encodeURIComponent(creds['app-password']!)}@notes-db-ro.${ns}.svc:5432/app${tls}`,
    );
    const elsewhere = [
      JSON.stringify(getApp(ns, 'notes')),
      kubectl(['get', 'configmap,statefulset,events', '-n', ns, '-o', 'json']),
      await op.output(),
    ];
    // Every password (the login's name is no secret).
    const { 'app-login': _name, ...passwords } = creds;
    for (const text of elsewhere) for (const pw of Object.values(passwords)) expect(text).not.toContain(pw);
  });

  it("serves TLS with a certificate from the app's own CA, kept across operator restarts with no write", async () => {
    const secret = (name: string) => json<any>(['get', 'secret', name, '-n', ns]);
    const pem = (s: any, key: string) => Buffer.from(s.data[key], 'base64').toString();
    const server = secret('notes-db-tls');
    expect(server.type).toBe('kubernetes.io/tls');
    const cert = new X509Certificate(pem(server, 'tls.crt'));
    const ca = json<any>(['get', 'configmap', 'notes-ca-cert', '-n', ns]).data['ca.crt'];
    expect(cert.checkIssued(new X509Certificate(ca))).toBe(true);
    expect(cert.subjectAltName).toContain(`DNS:notes-db-rw.${ns}.svc`);
    expect(cert.subjectAltName).toContain(`DNS:*.notes-db-headless.${ns}.svc`);
    // The CA's key is in a Secret no pod mounts.
    expect(pem(secret('notes-ca'), 'tls.crt')).toBe(ca);
    const mounted = json<any>(['get', 'pods', '-n', ns, '-o', 'json']).items.flatMap((p: any) =>
      (p.spec.volumes ?? []).map((v: any) => v.secret?.secretName).filter(Boolean),
    );
    expect(mounted).not.toContain('notes-ca');
    const versions = () =>
      ['notes-ca', 'notes-db-tls'].map((n) => secret(n).metadata.resourceVersion as string);
    const before = versions();
    // No key in the operator's log, the app's status or any Event.
    for (const text of [
      await op.output(),
      JSON.stringify(getApp(ns, 'notes')),
      kubectl(['get', 'events', '-n', ns, '-o', 'json']),
    ])
      expect(text).not.toContain('PRIVATE KEY');
    await op.stop();
    op = await startOperator({ namespace: ns });
    await eventually(
      'a reconcile',
      async () => (await op.counter('controller_runtime_reconcile_total', { result: 'success' })) > 0,
    );
    expect(await op.counter('scalableapp_api_requests_total')).toBe(0);
    expect(versions()).toEqual(before);
  });

  it('runs Postgres as the image user under the restricted profile, spread over zones, and lets only the app in', () => {
    const pod = json<any>(['get', 'statefulset', 'notes-db', '-n', ns]).spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 999,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.topologySpreadConstraints[0]).toMatchObject({
      topologyKey: 'topology.kubernetes.io/zone',
      maxSkew: 1,
    });
    const from = json<any>(['get', 'networkpolicy', 'notes-allow-database-ingress', '-n', ns]).spec.ingress[0]
      .from;
    expect(from).toContainEqual({
      podSelector: {
        matchLabels: { 'app.kubernetes.io/instance': 'notes', 'app.kubernetes.io/component': 'web' },
      },
    });
    expect(json<any>(['get', 'pdb', 'notes-db', '-n', ns]).spec.maxUnavailable).toBe(1);
  });

  it('points the read-only Service at the primary while no replica is ready', async () => {
    setReady('notes-db-1', 'False');
    setReady('notes-db-2', 'False');
    await eventually(
      'reads fall back to the primary',
      () => endpoints('notes-db-ro').join() === 'notes-db-0',
    );
    setReady('notes-db-1', 'True');
    setReady('notes-db-2', 'True');
    await eventually(
      'reads back on the replicas',
      () => endpoints('notes-db-ro').join() === 'notes-db-1,notes-db-2',
    );
  });

  it('fails over when the primary is lost: promotes a standby, repoints the Services, records why', async () => {
    setReady('notes-db-0', 'False');
    await eventually('a new primary recorded', () => recorded('notes') === 'notes-db-1');
    await eventually(
      'the read-write Service follows',
      () => endpoints('notes-db-rw').join() === 'notes-db-1',
    );
    const a = await eventually(
      'status',
      () => getApp(ns, 'notes').status?.database?.primary === 'notes-db-1' && getApp(ns, 'notes'),
    );
    expect(a.status.database.lastFailoverReason).toContain('notes-db-0 was not ready');
    expect(Date.parse(a.status.database.lastFailoverTime)).not.toBeNaN();
    const events = eventsWhere(ns, 'reason=Failover');
    expect(events.map((e) => e.message).join()).toContain('promoted notes-db-1');

    setReady('notes-db-0', 'True'); // the old primary comes back: as a replica, never a second primary
    await readyAt('notes');
    expect(roles('notes')).toEqual({
      'notes-db-0': 'replica',
      'notes-db-1': 'primary',
      'notes-db-2': 'replica',
    });
    expect(endpoints('notes-db-rw')).toEqual(['notes-db-1']);
  });

  it('switches over on request', async () => {
    kubectl([
      'annotate',
      'sapp',
      'notes',
      '-n',
      ns,
      'scalableapp.io/switchover-to=notes-db-0',
      '--overwrite',
    ]);
    await eventually('primary back on db-0', () => recorded('notes') === 'notes-db-0');
    await eventually(
      'the read-write Service follows',
      () => endpoints('notes-db-rw').join() === 'notes-db-0',
    );
    const events = json<{ items: any[] }>([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'reason=Switchover',
    ]).items;
    expect(events).toHaveLength(1);
    expect(getApp(ns, 'notes').status.database.lastFailoverReason).toBe('switchover to notes-db-0 requested');
    // A one-time request: once done it is removed, so a later failover is not undone by it.
    await eventually(
      'the request removed',
      () => getApp(ns, 'notes').metadata.annotations?.['scalableapp.io/switchover-to'] === undefined,
    );
  });

  it('keeps the volumes and their credentials when the app is deleted (deletionPolicy Retain), and a new app of the same name opens them', async () => {
    const before = decodeSecret(json<any>(['get', 'secret', 'notes-db-credentials', '-n', ns]));
    kubectl(['delete', 'sapp', 'notes', '-n', ns]);
    await eventually(
      'StatefulSet gone',
      () => json<{ items: any[] }>(['get', 'statefulset', '-n', ns]).items.length === 0,
    );
    const claims = json<{ items: any[] }>(['get', 'pvc', '-n', ns]).items;
    expect(claims.map((c) => [c.metadata.name, c.status.phase]).sort()).toEqual([
      ['data-notes-db-0', 'Bound'],
      ['data-notes-db-1', 'Bound'],
      ['data-notes-db-2', 'Bound'],
    ]);
    // The connection Secret is the app's and goes with it; the passwords of the kept data stay.
    await eventually(
      'connection Secret collected',
      () => !tryKubectl(['get', 'secret', 'notes-connection', '-n', ns]).ok,
    );
    expect(decodeSecret(json<any>(['get', 'secret', 'notes-db-credentials', '-n', ns]))).toEqual(before);
    applyApp(ns, 'notes', spec);
    await readyAt('notes');
    expect(decodeSecret(json<any>(['get', 'secret', 'notes-db-credentials', '-n', ns]))).toEqual(before);
    kubectl(['delete', 'sapp', 'notes', '-n', ns]);
  });
});

describe('synchronous replication', () => {
  it('refuses a failover that could lose an acknowledged commit, and says so', async () => {
    // ANY 2 of 2 standbys: with both standbys gone as well, no reachable instance is sure to hold
    // every acknowledged commit.
    applyApp(ns, 'ledger', {
      database: { replicas: 2, synchronousReplicas: 2, failover: { delaySeconds: 1 } },
    });
    await readyAt('ledger');
    expect(json<any>(['get', 'configmap', 'ledger-db-config', '-n', ns]).data['postgresql.conf']).toMatch(
      /synchronous_standby_names = 'ANY 2 \(/,
    );
    for (const pod of ['ledger-db-1', 'ledger-db-2', 'ledger-db-0']) setReady(pod, 'False');
    await eventually(
      'a FailoverRefused event',
      () =>
        json<{ items: any[] }>([
          'get',
          'events',
          '-n',
          ns,
          '--field-selector',
          'reason=FailoverRefused,involvedObject.name=ledger',
        ]).items.length > 0,
    );
    expect(recorded('ledger')).toBe('ledger-db-0');
    expect(getApp(ns, 'ledger').status.conditions.find((c: any) => c.type === 'Ready').status).toBe('False');
    // The status says so too (ADR 0006), not only the Event.
    const degraded = await eventually('Degraded FailoverRefused', () => {
      const c = getApp(ns, 'ledger').status.conditions.find((x: any) => x.type === 'Degraded');
      return c?.reason === 'FailoverRefused' && c;
    });
    expect(degraded).toMatchObject({ status: 'True', message: expect.stringContaining('ledger-db:') });
  });
});
