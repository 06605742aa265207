// Continuous archiving from the spec (spec.database.backup, spec.shards.backup; ADR 0029): what it
// adds to each Postgres cluster's objects, and what the schema refuses. The archiving itself runs
// on real Postgres, pgBackRest and an object store in server-tests/backup.test.ts.
import type { V1ConfigMap, V1NetworkPolicy, V1StatefulSet } from '@kubernetes/client-node';
import { TEST_TLS } from './testdata/facts.ts';
import { parseApp } from '../api/testdata/apps.ts';
import { scalableApp } from '../api/scalable-app.ts';
import { databaseObjects, dbConfigHash } from './database.ts';
import { shardClusters } from './shards.ts';
import { pgConfigMap, pgStatefulSet } from './postgres-cluster.ts';
import { networkPolicies } from './network-policies.ts';
import { referencedSecrets } from '../controller/references.ts';
import type { ObservedFacts } from './objects.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';

const credentials = { superuser: 'su-pw', replication: 'repl-pw', app: 'app/pw' };
const facts: ObservedFacts = { gatewayApi: false, dbCredentials: credentials, tls: TEST_TLS };
const s3 = {
  endpoint: 'minio.storage.svc',
  port: 9000,
  bucket: 'backups',
  accessKeyId: { name: 'store-keys', key: 'id' },
  secretAccessKey: { name: 'store-keys', key: 'secret' },
};
const backedUp = parseApp({
  web: { image: 'x' },
  database: { replicas: 1, backup: { s3: { ...s3, ca: { name: 'store-ca', key: 'ca.pem' } } } },
});
const find = <T>(kind: string, app = backedUp) =>
  databaseObjects(app, facts).find((o) => o.kind === kind) as unknown as T;
const conf = (app = backedUp) => find<V1ConfigMap>('ConfigMap', app).data!;

describe('continuous archiving (spec.database.backup)', () => {
  it('archives every segment through the archive script, at least every rpoSeconds, with a bounded queue', () => {
    const pg = conf()['postgresql.conf']!;
    expect(pg).toContain('archive_mode = on');
    expect(pg).toContain("archive_command = 'sh /config/pgbackrest-archive.sh %p'");
    expect(pg).toContain('archive_timeout = 300');
    expect(pg).toMatch(
      /restore_command = 'pgbackrest --config=\/config\/pgbackrest.conf --stanza=shop-db --io-timeout=3 archive-get/,
    );
    const rest = conf()['pgbackrest.conf']!;
    expect(rest).toContain('repo1-s3-endpoint=minio.storage.svc');
    expect(rest).toContain('repo1-storage-port=9000');
    expect(rest).toContain('repo1-s3-bucket=backups');
    expect(rest).toContain('repo1-s3-region=us-east-1');
    expect(rest).toContain('repo1-s3-uri-style=path');
    expect(rest).toContain('repo1-storage-ca-file=/backup-ca/ca.crt');
    // One directory per app; each cluster its own stanza in it.
    expect(rest).toContain('repo1-path=/scalableapp/prod/shop');
    expect(rest).toContain('[shop-db]');
    expect(rest).toContain('archive-push-queue-max=1024MiB');
    expect(rest).toContain('compress-type=zst');
    expect(conf()['pgbackrest-archive.sh']).toContain('--stanza=shop-db stanza-create');
  });

  it("takes the store's keys from the user's Secret by reference: never in the ConfigMap or the pod spec", () => {
    const sts = find<V1StatefulSet>('StatefulSet');
    const c = sts.spec!.template.spec!.containers[0]!;
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: 'PGBACKREST_REPO1_S3_KEY', valueFrom: { secretKeyRef: { name: 'store-keys', key: 'id' } } },
        {
          name: 'PGBACKREST_REPO1_S3_KEY_SECRET',
          valueFrom: { secretKeyRef: { name: 'store-keys', key: 'secret' } },
        },
      ]),
    );
    // pgBackRest reads the keys from the environment only: its config names none.
    expect(conf()['pgbackrest.conf']).not.toMatch(/repo1-s3-key/);
    expect(c.volumeMounts).toContainEqual({ name: 'backup-ca', mountPath: '/backup-ca', readOnly: true });
    expect(sts.spec!.template.spec!.volumes).toContainEqual({
      name: 'backup-ca',
      secret: { secretName: 'store-ca', items: [{ key: 'ca.pem', path: 'ca.crt' }] },
    });
    expect(restrictedViolations(sts.spec!.template.spec!)).toEqual([]);
  });

  it('uses the system CAs when no CA is named, and the path the user names', () => {
    const app = parseApp({ database: { backup: { s3: { ...s3, path: '/pg/shop', uriStyle: 'host' } } } });
    const rest = conf(app)['pgbackrest.conf']!;
    expect(rest).not.toContain('repo1-storage-ca-file');
    expect(rest).toContain('repo1-path=/pg/shop');
    expect(rest).toContain('repo1-s3-uri-style=host');
    expect(
      find<V1StatefulSet>('StatefulSet', app).spec!.template.spec!.volumes!.map((v) => v.name),
    ).not.toContain('backup-ca');
  });

  it('changes nothing without backup', () => {
    const plain = parseApp({ web: { image: 'x' }, database: { replicas: 1 } });
    expect(conf(plain)['postgresql.conf']).not.toContain('archive_mode');
    expect(Object.keys(conf(plain))).not.toContain('pgbackrest.conf');
    const env = find<V1StatefulSet>('StatefulSet', plain).spec!.template.spec!.containers[0]!.env!;
    expect(env.map((e) => e.name)).not.toContain('PGBACKREST_REPO1_S3_KEY');
    expect(networkPolicies(plain, 'ops').map((p) => p.metadata.name)).not.toContain(
      'shop-allow-database-backup-egress',
    );
  });

  it('restarts the instances when archiving is turned on or its settings change (archive_mode is read at start)', () => {
    const plain = parseApp({ database: {} });
    const on = parseApp({ database: { backup: { s3 } } });
    const later = parseApp({ database: { backup: { s3, rpoSeconds: 60 } } });
    expect(dbConfigHash(on, facts)).not.toBe(dbConfigHash(plain, facts));
    expect(dbConfigHash(later, facts)).not.toBe(dbConfigHash(on, facts));
  });

  it("admits egress from the database's pods to the store's port only", () => {
    const egress = networkPolicies(backedUp, 'ops').find(
      (p) => p.metadata.name === 'shop-allow-database-backup-egress',
    ) as unknown as V1NetworkPolicy;
    expect(egress.spec).toEqual({
      podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/component': 'database' }) },
      policyTypes: ['Egress'],
      egress: [{ ports: [{ protocol: 'TCP', port: 9000 }] }],
    });
  });

  it('admits egress to egressPort instead when the store is a Service whose pods listen elsewhere', () => {
    const app = parseApp({ database: { backup: { s3: { ...s3, port: 443, egressPort: 9000 } } } });
    const egress = networkPolicies(app, 'ops').find(
      (p) => p.metadata.name === 'shop-allow-database-backup-egress',
    ) as unknown as V1NetworkPolicy;
    expect(egress.spec!.egress).toEqual([{ ports: [{ protocol: 'TCP', port: 9000 }] }]);
    expect(conf(app)['pgbackrest.conf']).toContain('repo1-storage-port=443');
  });

  it('checks that the Secrets it names exist, naming the field', () => {
    expect(referencedSecrets(backedUp).filter((r) => r.field.includes('backup'))).toEqual([
      { name: 'store-keys', key: 'id', field: 'spec.database.backup.s3.accessKeyId' },
      { name: 'store-keys', key: 'secret', field: 'spec.database.backup.s3.secretAccessKey' },
      { name: 'store-ca', key: 'ca.pem', field: 'spec.database.backup.s3.ca' },
    ]);
  });
});

describe('continuous archiving of the shards (spec.shards.backup)', () => {
  it('archives every shard as its own stanza in the same directory', () => {
    const app = parseApp({
      shards: { count: 2, key: 'tenant_id', backup: { s3, compression: 'lz4', walQueueLimit: '256Mi' } },
    });
    const clusters = shardClusters(app, { gatewayApi: false, tls: TEST_TLS });
    expect(clusters.length).toBe(2);
    for (const c of clusters) {
      const data = pgConfigMap(c).data!;
      expect(data['pgbackrest.conf']).toContain(`[${c.name}]`);
      expect(data['pgbackrest.conf']).toContain('repo1-path=/scalableapp/prod/shop');
      expect(data['pgbackrest.conf']).toContain('archive-push-queue-max=256MiB');
      expect(data['pgbackrest.conf']).toContain('compress-type=lz4');
      expect(data['pgbackrest-archive.sh']).toContain(`--stanza=${c.name} `);
      const env = pgStatefulSet(c).spec!.template.spec!.containers[0]!.env!;
      expect(env.map((e) => e.name)).toContain('PGBACKREST_REPO1_S3_KEY_SECRET');
    }
    expect(networkPolicies(app, 'ops').map((p) => p.metadata.name)).toContain(
      'shop-allow-shards-backup-egress',
    );
  });
});

describe('what the schema refuses in backup, naming the field', () => {
  const refused = (database: Record<string, unknown>) => {
    const r = scalableApp.safeParse({
      apiVersion: 'scalableapp.io/v1alpha1',
      kind: 'ScalableApp',
      metadata: { name: 'shop', namespace: 'prod' },
      spec: { database },
    });
    return r.success ? undefined : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('a queue bound the volume cannot hold, or below one segment', () => {
    const msg = expect.stringContaining('spec.database.backup.walQueueLimit: backup.walQueueLimit must be');
    expect(refused({ storage: { size: '1Gi' }, backup: { s3 } })).toEqual([msg]);
    expect(refused({ backup: { s3, walQueueLimit: '8Mi' } })).toEqual([msg]);
    expect(refused({ storage: { size: '2Gi' }, backup: { s3, walQueueLimit: '512Mi' } })).toBeUndefined();
    // Past what pgBackRest takes, however large the volume.
    expect(refused({ storage: { size: '4Ti' }, backup: { s3, walQueueLimit: '2Ti' } })).toEqual([msg]);
  });

  it('a schedule that is not five cron fields, or that cron cannot read', () => {
    expect(refused({ backup: { s3, schedule: '0 3 * * *' } })).toBeUndefined();
    // Seconds (a sixth field) are cron-parser's, not crontab's: refused, as the CRD's pattern does.
    expect(refused({ backup: { s3, schedule: '0 0 3 * * *' } })?.[0]).toMatch(
      /^spec\.database\.backup\.schedule:/,
    );
    expect(refused({ backup: { s3, schedule: '@daily' } })?.[0]).toMatch(
      /^spec\.database\.backup\.schedule:/,
    );
    // Characters no cron field has: refused by the pattern, which the CRD holds too.
    expect(refused({ backup: { s3, schedule: '0 3 * * $(id)' } })?.[0]).toMatch(
      /^spec\.database\.backup\.schedule:/,
    );
    expect(refused({ backup: { s3, schedule: '0 25 * * *' } })).toEqual([
      expect.stringMatching(/^spec\.database\.backup\.schedule: backup\.schedule is not a cron schedule: ./),
    ]);
  });

  it('an RPO below a minute, an address for a host name, a missing key reference', () => {
    expect(refused({ backup: { s3, rpoSeconds: 10 } })?.[0]).toMatch(/^spec\.database\.backup\.rpoSeconds:/);
    expect(refused({ backup: { s3: { ...s3, endpoint: '10.0.0.7' } } })?.[0]).toMatch(
      /^spec\.database\.backup\.s3\.endpoint:/,
    );
    expect(refused({ backup: { s3: { ...s3, path: '/pg/../other' } } })?.[0]).toMatch(
      /^spec\.database\.backup\.s3\.path:/,
    );
    const { accessKeyId: _a, ...noKey } = s3;
    expect(refused({ backup: { s3: noKey } })?.[0]).toMatch(/^spec\.database\.backup\.s3\.accessKeyId:/);
  });
});
