// Base backups on request (annotation scalableapp.io/backup-request; ADR 0029): the TLS server beside
// each instance, the Job that backs the cluster up through it, and who may reach it. The backup
// itself runs on real Postgres, pgBackRest and an object store in server-tests/backup.test.ts and on
// the real node in e2e/real-backup.test.ts.
import type { V1ConfigMap, V1Job, V1NetworkPolicy, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { TEST_TLS } from './testdata/facts.ts';
import { parseApp } from '../api/testdata/apps.ts';
import { databaseCluster, databaseObjects, dbConfigHash } from './database.ts';
import { shardObjects } from './shards.ts';
import { networkPolicies } from './network-policies.ts';
import type { Child, ObservedFacts } from './objects.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';
import {
  BACKUP_REQUEST_ANNOTATION,
  BACKUP_SERVER_PORT,
  backupJobName,
  backupFacts,
} from './postgres-base-backup.ts';
import { desiredState } from '../controller/desired-state.ts';

const credentials = { superuser: 'su-pw', replication: 'repl-pw', app: 'app/pw' };
const facts: ObservedFacts = {
  gatewayApi: false,
  dbCredentials: credentials,
  shardCredentials: credentials,
  tls: TEST_TLS,
};
const backup = {
  s3: {
    endpoint: 'minio.storage.svc',
    port: 9000,
    bucket: 'backups',
    accessKeyId: { name: 'store-keys', key: 'id' },
    secretAccessKey: { name: 'store-keys', key: 'secret' },
    ca: { name: 'store-ca', key: 'ca.pem' },
  },
};
const app = (
  replicas: number,
  annotations: Record<string, string> = {},
  extra: Record<string, unknown> = {},
) => {
  const a = parseApp({ web: { image: 'x' }, database: { replicas, backup, ...extra } });
  return { ...a, metadata: { ...a.metadata, annotations } };
};
const requested = (request: string, replicas = 1) => app(replicas, { [BACKUP_REQUEST_ANNOTATION]: request });
const named = <T>(objects: Child[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as T;
const jobs = (objects: Child[]) => objects.filter((o) => o.kind === 'Job') as unknown as V1Job[];

describe('base backups on request', () => {
  it('runs a TLS server beside each instance: the data read-only, one client name admitted, for this stanza', () => {
    const objects = databaseObjects(app(1), facts);
    const sts = named<V1StatefulSet>(objects, 'StatefulSet', 'shop-db');
    const server = sts.spec!.template.spec!.containers.find((c) => c.name === 'pgbackrest')!;
    expect(server.command).toEqual(['pgbackrest', '--config=/config/pgbackrest-server.conf', 'server']);
    expect(server.volumeMounts).toContainEqual({
      name: 'data',
      mountPath: '/var/lib/postgresql/data',
      readOnly: true,
    });
    // It holds no key of the store: it never reaches the repository.
    expect(server.env).toBeUndefined();
    const conf = named<V1ConfigMap>(objects, 'ConfigMap', 'shop-db-config').data!['pgbackrest-server.conf']!;
    expect(conf).toContain(`tls-server-port=${BACKUP_SERVER_PORT}`);
    expect(conf).toContain('tls-server-auth=scalableapp-backup=shop-db');
    expect(conf).toContain('pg1-path=/var/lib/postgresql/data/pgdata');
    expect(restrictedViolations(sts.spec!.template.spec!)).toEqual([]);
    // Its certificate names every pod of the cluster, from the app's CA (which exists without TLS on).
    const tls = named<V1Secret>(objects, 'Secret', 'shop-db-backup-tls');
    expect(Buffer.from(tls.data!['ca.crt']!, 'base64').toString()).toBe('test-ca-cert');
    expect(desiredState(app(1), facts).map((o) => o.metadata.name)).toContain('shop-ca');
  });

  it('without a request runs no Job; a request is one Job, named after it, from a standby when there is one', () => {
    expect(jobs(databaseObjects(app(1), facts))).toEqual([]);
    const objects = databaseObjects(requested('2026-12-07'), facts);
    const [job, ...more] = jobs(objects);
    expect(more).toEqual([]);
    expect(job!.metadata!.name).toBe(backupJobName({ name: 'shop-db' }, '2026-12-07'));
    expect(job!.metadata!.annotations).toEqual({ [BACKUP_REQUEST_ANNOTATION]: '2026-12-07' });
    expect(job!.spec!.backoffLimit).toBe(0);
    const pod = job!.spec!.template.spec!;
    expect(restrictedViolations(pod)).toEqual([]);
    expect(pod.automountServiceAccountToken).toBe(false);
    // The store's keys by reference, the client certificate mounted here and nowhere else.
    expect(pod.containers[0]!.env!.map((e) => e.valueFrom?.secretKeyRef?.name)).toEqual([
      'store-keys',
      'store-keys',
    ]);
    expect(pod.volumes).toContainEqual({
      name: 'client-tls',
      secret: { secretName: 'shop-db-backup-client', defaultMode: 0o440 },
    });
    const sts = named<V1StatefulSet>(objects, 'StatefulSet', 'shop-db');
    const mounted = JSON.stringify(sts.spec!.template.spec!.volumes);
    expect(mounted).not.toContain('backup-client');
    const conf = named<V1ConfigMap>(objects, 'ConfigMap', 'shop-db-backup-job').data!['pgbackrest.conf']!;
    // Every instance by its pod's name, through its TLS server; the bulk from a standby.
    expect(conf).toContain('pg1-host=shop-db-0.shop-db-headless.prod.svc');
    expect(conf).toContain('pg2-host=shop-db-1.shop-db-headless.prod.svc');
    expect(conf).toContain('pg1-host-type=tls');
    expect(conf).toContain('backup-standby=y');
    expect(conf).toContain('repo1-retention-full=2');
    expect(conf).toContain('repo1-path=/scalableapp/prod/shop');
    // The store's keys reach the Job as environment variables, never in its files.
    expect(conf).not.toMatch(/s3-key|key-secret/);
  });

  it('backs up from the primary when the cluster has no standby, keeping what retention says', () => {
    const objects = databaseObjects(app(0, { [BACKUP_REQUEST_ANNOTATION]: 'x' }, {}), facts);
    const conf = named<V1ConfigMap>(objects, 'ConfigMap', 'shop-db-backup-job').data!['pgbackrest.conf']!;
    expect(conf).toContain('backup-standby=n');
    expect(conf).not.toContain('pg2-host');
    const kept = databaseObjects(app(0, {}, { backup: { ...backup, retention: { fullBackups: 5 } } }), facts);
    expect(named<V1ConfigMap>(kept, 'ConfigMap', 'shop-db-backup-job').data!['pgbackrest.conf']).toContain(
      'repo1-retention-full=5',
    );
  });

  it('falls back to the primary alone only when no standby is ready, and reports the repository as its termination message', () => {
    const script = named<V1ConfigMap>(databaseObjects(app(1), facts), 'ConfigMap', 'shop-db-backup-job')
      .data!['backup.sh']!;
    expect(script).toContain("grep -q 'unable to find standby cluster' /tmp/backup.err || exit 1");
    expect(script).toContain('backup --type=full --no-backup-standby');
    expect(script).toMatch(/info --output=json >\/dev\/termination-log$/m);
  });

  it('runs one backup at a time: a new request waits while the last one runs, and a finished Job is no reason to wait', () => {
    const withJobs = (jobs: { request: string; running: boolean }[], scheduled?: string): ObservedFacts => ({
      ...facts,
      dbBackups: { jobs, ...(scheduled ? { scheduled } : {}) },
    });
    const names = (a: ReturnType<typeof app>, f: ObservedFacts) =>
      jobs(databaseObjects(a, f)).map((j) => j.metadata!.name);
    const job = (request: string) => backupJobName({ name: 'shop-db' }, request);
    // The running Job stays; the new request gets no Job while it runs.
    expect(names(requested('second'), withJobs([{ request: 'first', running: true }]))).toEqual([
      job('first'),
    ]);
    // Once it has ended: the new request's Job, and the ended one (no longer asked for) goes.
    expect(names(requested('second'), withJobs([{ request: 'first', running: false }]))).toEqual([
      job('second'),
    ]);
    // An ended Job of a request still asked for stays, and is not run again.
    expect(names(requested('second'), withJobs([{ request: 'second', running: false }]))).toEqual([
      job('second'),
    ]);
    // The schedule's request is one more request: it waits for the annotation's Job, then runs.
    const at3 = 'scheduled-2026-12-07T03:00:00Z';
    expect(names(requested('manual'), withJobs([], at3))).toEqual([job('manual')]);
    expect(names(requested('manual'), withJobs([{ request: 'manual', running: true }], at3))).toEqual([
      job('manual'),
    ]);
    expect(names(requested('manual'), withJobs([{ request: 'manual', running: false }], at3))).toEqual([
      job('manual'),
      job(at3),
    ]);
    // The schedule came round while its last Job ran: the next waits for it; then the old one goes.
    const at4 = 'scheduled-2026-12-07T04:00:00Z';
    expect(names(app(1), withJobs([{ request: at3, running: true }], at4))).toEqual([job(at3)]);
    expect(names(app(1), withJobs([{ request: at3, running: false }], at4))).toEqual([job(at4)]);
    // Without backup, no Job at all, whatever is asked.
    const plain = parseApp({ web: { image: 'x' }, database: { replicas: 1 } });
    expect(jobs(databaseObjects({ ...plain, metadata: requested('x').metadata }, facts))).toEqual([]);
  });

  it("reads the cluster's Jobs and the schedule into facts: the request each Job answers, and whether it runs", () => {
    const c = databaseCluster(app(1, {}, { backup: { ...backup, schedule: '0 3 * * *' } }), facts);
    const job = (request: string | undefined, condition?: string): V1Job => ({
      metadata: request === undefined ? {} : { annotations: { [BACKUP_REQUEST_ANNOTATION]: request } },
      status: condition ? { conditions: [{ type: condition, status: 'True' }] } : {},
    });
    const children = {
      select: () => [job('a', 'Complete'), job('b'), job('c', 'Failed'), job(undefined)],
    };
    expect(backupFacts(c, children, new Date('2026-12-07T10:20:00Z'))).toEqual({
      jobs: [
        { request: 'a', running: false },
        { request: 'b', running: true },
        { request: 'c', running: false },
      ],
      scheduled: 'scheduled-2026-12-07T03:00:00Z',
    });
  });

  it('changing the number of instances changes the Job configuration, not the instances (no restart)', () => {
    const hash = (replicas: number) => dbConfigHash(app(replicas), facts);
    const conf = (replicas: number) =>
      named<V1ConfigMap>(databaseObjects(app(replicas), facts), 'ConfigMap', 'shop-db-backup-job').data![
        'pgbackrest.conf'
      ];
    expect(conf(1)).not.toBe(conf(2));
    // The server config and the archive script do not list the instances.
    const { 'pgbackrest.conf': _a, ...rest } = named<V1ConfigMap>(
      databaseObjects(app(1), facts),
      'ConfigMap',
      'shop-db-config',
    ).data!;
    expect(JSON.stringify(rest)).not.toContain('shop-db-1');
    expect(hash(1)).toBe(hash(2));
  });

  it('admits only the backup Jobs to the backup servers, and lets the Jobs reach them and the store', () => {
    const policies = networkPolicies(app(1)) as unknown as V1NetworkPolicy[];
    const ingress = policies.find((p) => p.metadata!.name === 'shop-allow-database-ingress')!.spec!.ingress!;
    const toServer = ingress.filter((r) => r.ports!.some((p) => p.port === BACKUP_SERVER_PORT));
    expect(toServer).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/instance': 'shop',
                'app.kubernetes.io/component': 'database-backup',
              },
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: BACKUP_SERVER_PORT }],
      },
    ]);
    const egress = policies.find((p) => p.metadata!.name === 'shop-allow-database-backup-job-egress')!.spec!;
    expect(egress.podSelector).toEqual({
      matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'database-backup' },
    });
    expect(egress.egress).toEqual([
      {
        to: [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/instance': 'shop',
                'app.kubernetes.io/component': 'database',
              },
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: BACKUP_SERVER_PORT }],
      },
      { ports: [{ protocol: 'TCP', port: 9000 }] },
    ]);
    // The Job's pods carry what the policies select.
    const [job] = jobs(databaseObjects(requested('x'), facts));
    expect(job!.spec!.template.metadata!.labels).toMatchObject(egress.podSelector!.matchLabels!);
  });

  it('backs each shard up as its own stanza with its own Job', () => {
    const a = parseApp({
      web: { image: 'x' },
      shards: { count: 2, key: 'user_id', backup },
    });
    const withRequest = {
      ...a,
      metadata: { ...a.metadata, annotations: { [BACKUP_REQUEST_ANNOTATION]: 'r' } },
    };
    const objects = shardObjects(withRequest, facts);
    const names = jobs(objects).map((j) => j.metadata!.name);
    expect(names).toHaveLength(2);
    expect(new Set(names).size).toBe(2);
    for (const j of jobs(objects))
      expect(j.spec!.template.metadata!.labels!['app.kubernetes.io/component']).toBe('shard-backup');
    // Names unique across the app: one client Secret per shard.
    const all = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(all).size).toBe(all.length);
  });
});
