import { TEST_TLS } from './testdata/facts.ts';
import type { V1ContainerStatus, V1ConfigMap, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { databaseEntries, databaseObjects, dbConfigHash, dbReadEndpoints } from './database.ts';
import type { ObservedFacts } from './objects.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';

const credentials = { superuser: 'su-pw', replication: 'repl-pw', app: 'app/pw' };
const facts: ObservedFacts = { gatewayApi: false, dbCredentials: credentials, tls: TEST_TLS };
const app = parseApp({
  web: { image: 'x' },
  database: { replicas: 2, synchronousReplicas: 1, storage: { size: '5Gi', storageClassName: 'fast' } },
});
const find = <T>(kind: string, f = facts) =>
  databaseObjects(app, f).find((o) => o.kind === kind) as unknown as T;
const pod = (name: string, ready: boolean, ip: string): V1Pod => ({
  metadata: { name },
  status: {
    podIP: ip,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [{ name: 'postgres', ready } as V1ContainerStatus],
  },
});

describe('database objects', () => {
  it('runs 1 + replicas instances under the restricted profile, as the image user, with retained volumes', () => {
    const sts = find<V1StatefulSet>('StatefulSet');
    expect(sts.spec!.replicas).toBe(3);
    expect(restrictedViolations(sts.spec!.template.spec!)).toEqual([]);
    expect(sts.spec!.template.spec!.securityContext).toMatchObject({
      runAsUser: 999,
      fsGroup: 999,
      runAsNonRoot: true,
    });
    expect(sts.spec!.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: 'Retain',
      whenScaled: 'Retain',
    });
    expect(sts.spec!.volumeClaimTemplates![0]!.spec).toMatchObject({
      storageClassName: 'fast',
      resources: { requests: { storage: '5Gi' } },
    });
    const deleting = parseApp({ database: { deletionPolicy: 'Delete' } });
    const s2 = databaseObjects(deleting, facts).find(
      (o) => o.kind === 'StatefulSet',
    ) as unknown as V1StatefulSet;
    expect(s2.spec!.persistentVolumeClaimRetentionPolicy!.whenDeleted).toBe('Delete');
  });

  it('reads the recorded primary from the ConfigMap at container start, never bakes it into the pod', () => {
    const env = find<V1StatefulSet>('StatefulSet').spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === 'PRIMARY_NAME')!.valueFrom!.configMapKeyRef).toEqual({
      name: 'shop-db-config',
      key: 'primary',
    });
    expect(find<V1ConfigMap>('ConfigMap').data!.primary).toBe('shop-db-0');
    expect(find<V1ConfigMap>('ConfigMap', { ...facts, dbPrimary: 'shop-db-2' }).data!.primary).toBe(
      'shop-db-2',
    );
  });

  it('gives starting an hour (a clone of a large database) before liveness may restart the container', () => {
    const c = find<V1StatefulSet>('StatefulSet').spec!.template.spec!.containers[0]!;
    const window = (p: typeof c.livenessProbe) => (p!.periodSeconds ?? 10) * (p!.failureThreshold ?? 3);
    expect(c.startupProbe!.exec).toEqual(c.livenessProbe!.exec);
    expect(window(c.startupProbe)).toBeGreaterThanOrEqual(3600);
    // Liveness counts from a started server only: no initial delay to guess.
    expect(c.livenessProbe!.initialDelaySeconds).toBeUndefined();
    expect(window(c.livenessProbe)).toBeLessThan(window(c.startupProbe));
  });

  it('restarts a hung server within a minute with an exec every 20 s, each given 10 s on a loaded node', () => {
    // An exec probe costs the node a runc exec (bench/pg-probe-cost.ts); a TCP check would pass on
    // a stopped postmaster, whose listening socket the kernel still completes connections on.
    const c = find<V1StatefulSet>('StatefulSet').spec!.template.spec!.containers[0]!;
    expect(c.livenessProbe).toMatchObject({
      exec: { command: expect.arrayContaining(['pg_isready']) },
      periodSeconds: 20,
      timeoutSeconds: 10,
    });
    expect(c.livenessProbe!.periodSeconds! * c.livenessProbe!.failureThreshold!).toBe(60);
  });

  it('does not restart the instances when only the primary moves', () => {
    expect(dbConfigHash(app, { ...facts, dbPrimary: 'shop-db-1' })).toBe(dbConfigHash(app, facts));
    expect(dbConfigHash(parseApp({ database: { replicas: 2, synchronousReplicas: 2 } }), facts)).not.toBe(
      dbConfigHash(parseApp({ database: { replicas: 2 } }), facts),
    );
  });

  it('configures ANY k synchronous replication over every instance name', () => {
    expect(find<V1ConfigMap>('ConfigMap').data!['postgresql.conf']).toContain(
      "synchronous_standby_names = 'ANY 1 (",
    );
  });

  it('keeps every password in the Secret only', () => {
    const secret = find<V1Secret>('Secret');
    expect(Object.keys(secret.data!).sort()).toEqual([
      'app-password',
      'replication-password',
      'superuser-password',
    ]);
    const others = JSON.stringify(databaseObjects(app, facts).filter((o) => o.kind !== 'Secret'));
    for (const pw of Object.values(credentials)) expect(others).not.toContain(pw);
  });

  it('publishes ready replicas as read endpoints, and the primary when none is ready', () => {
    const names = (pods: V1Pod[]) =>
      (
        dbReadEndpoints(app, { ...facts, dbPods: pods }) as unknown as {
          endpoints: { targetRef: { name: string } }[];
        }
      ).endpoints.map((e) => e.targetRef.name);
    const primary = pod('shop-db-0', true, '10.0.0.1');
    expect(names([primary, pod('shop-db-1', true, '10.0.0.2'), pod('shop-db-2', false, '10.0.0.3')])).toEqual(
      ['shop-db-1'],
    );
    expect(names([primary, pod('shop-db-1', false, '10.0.0.2')])).toEqual(['shop-db-0']);
    expect(names([pod('shop-db-0', false, '10.0.0.1')])).toEqual([]);
  });

  it('gives the app a read-write and a read-only URL with the password URL-encoded', () => {
    // TLS by default: the server's certificate and name checked against the app's CA, mounted in
    // the app's pods.
    const tls = '?sslmode=verify-full&sslrootcert=/etc/scalableapp/ca/ca.crt';
    expect(databaseEntries(app, facts)).toEqual({
      DATABASE_URL: `postgresql://app:app%2Fpw@shop-db-rw.prod.svc:5432/app${tls}`,
      DATABASE_READ_URL: `postgresql://app:app%2Fpw@shop-db-ro.prod.svc:5432/app${tls}`,
    });
    const plain = parseApp({ web: { image: 'x' }, database: { tls: { enabled: false } } });
    expect(databaseEntries(plain, facts).DATABASE_URL).toBe(
      'postgresql://app:app%2Fpw@shop-db-rw.prod.svc:5432/app',
    );
  });
});

describe('database TLS (spec.database.tls, on by default)', () => {
  const plainApp = parseApp({ web: { image: 'x' }, database: { tls: { enabled: false } } });
  const objects = (a = app) => databaseObjects(a, facts);
  const config = (a = app) =>
    (objects(a).find((o) => o.kind === 'ConfigMap') as unknown as V1ConfigMap).data!;
  const server = (a = app) =>
    (objects(a).find((o) => o.kind === 'StatefulSet') as unknown as V1StatefulSet).spec!.template.spec!;

  it("serves the certificate from the cluster's own Secret, which carries the CA beside it", () => {
    const secret = objects().find((o) => o.metadata.name === 'shop-db-tls') as unknown as V1Secret;
    expect(secret.type).toBe('kubernetes.io/tls');
    const data = Object.fromEntries(
      Object.entries(secret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
    expect(data).toEqual({
      'tls.crt': 'shop-db-tls-cert',
      'tls.key': 'shop-db-tls-key',
      'ca.crt': 'test-ca-cert',
    });
    // Root-owned, group-readable by the server's group: what postgres accepts for a key it does not own.
    expect(server().volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'shop-db-tls', defaultMode: 0o440 },
    });
    const container = server().containers[0]!;
    expect(container.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/tls', readOnly: true });
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: 'TLS_CA_FILE', value: '/tls/ca.crt' },
        { name: 'TLS_CERT_FILE', value: '/tls/tls.crt' },
      ]),
    );
  });

  it('turns ssl on and admits TCP clients, standbys and the operator over TLS only', () => {
    expect(config()['postgresql.conf']).toContain(
      "ssl = on\nssl_cert_file = '/tls/tls.crt'\nssl_key_file = '/tls/tls.key'",
    );
    for (const file of ['pg_hba.conf', 'pg_hba.fenced.conf']) {
      const text = config()[file]!;
      const tcp = text.split('\n').filter((l) => /^host/.test(l));
      expect(tcp.length).toBeGreaterThan(0);
      expect(tcp.every((l) => l.startsWith('hostssl '))).toBe(true);
    }
  });

  it('serves plaintext only when the user turns TLS off: no certificate, no ssl, no hostssl', () => {
    expect(objects(plainApp).some((o) => o.metadata.name === 'shop-db-tls')).toBe(false);
    expect(config(plainApp)['postgresql.conf']).not.toContain('ssl');
    expect(config(plainApp)['pg_hba.conf']).not.toContain('hostssl');
    expect(server(plainApp).volumes!.map((v) => v.name)).not.toContain('tls');
    expect(server(plainApp).containers[0]!.env!.map((e) => e.name)).not.toContain('TLS_CA_FILE');
  });

  it('restarts the servers when TLS is turned on or off (their configuration), not when a certificate is renewed', () => {
    expect(dbConfigHash(app, facts)).not.toBe(dbConfigHash(plainApp, facts));
    const renewed = {
      ...facts,
      tls: { ...TEST_TLS, servers: { 'shop-db-tls': { cert: 'new', key: 'new-key' } } },
    };
    expect(dbConfigHash(app, renewed)).toBe(dbConfigHash(app, facts));
  });

  it('refuses to build without the certificates the controller issues', () => {
    expect(() => databaseObjects(app, { gatewayApi: false, dbCredentials: credentials })).toThrow(
      /certificates not issued/,
    );
  });
});
