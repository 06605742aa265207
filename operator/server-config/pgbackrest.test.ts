// What pgBackRest is told. The data-plane test (server-tests/backup.test.ts) runs these texts with
// the real pgBackRest, Postgres and object store.
import {
  archiveScript,
  backupHostConfig,
  pgBackRestConfig,
  pgBackRestServerConfig,
  pgBackRestRestoreCommand,
  type PgBackRestOptions,
} from './pgbackrest.ts';
import { postgresConfig } from './postgres.ts';

const S3 = {
  type: 's3' as const,
  endpoint: 'store.backups.svc',
  port: 7070,
  bucket: 'backups',
  region: 'us-east-1',
  caFile: '/backup-ca/ca.crt',
  path: '/shop/db',
};
const BASE: PgBackRestOptions = {
  stanza: 'db',
  repository: S3,
  dataDir: '/var/lib/postgresql/data/pgdata',
  socketDir: '/var/run/postgresql',
  port: 5432,
  lockDir: '/tmp/pgbackrest',
  logDir: '/var/lib/postgresql/data/pgbackrest/log',
  retainFull: 2,
  compression: 'zst',
  archiveQueueMaxMb: 1024,
};

describe('pgBackRest’s configuration', () => {
  it('an object store over TLS with its own CA, path-style, the cluster’s directory in the bucket', () => {
    const text = pgBackRestConfig(BASE);
    expect(text).toContain(
      [
        'repo1-type=s3',
        'repo1-s3-endpoint=store.backups.svc',
        'repo1-storage-port=7070',
        'repo1-s3-bucket=backups',
        'repo1-s3-region=us-east-1',
        'repo1-s3-uri-style=path',
        'repo1-storage-ca-file=/backup-ca/ca.crt',
        'repo1-path=/shop/db',
      ].join('\n'),
    );
    expect(text).toContain(
      '\n[db]\npg1-path=/var/lib/postgresql/data/pgdata\npg1-socket-path=/var/run/postgresql\npg1-port=5432\n',
    );
  });

  it('archives synchronously, bounds the archive queue, keeps the asked number of full backups, compresses as asked', () => {
    const text = pgBackRestConfig(BASE);
    // No daemon outliving archive_command (ADR 0029), so no spool directory, which pgBackRest
    // refuses without archive-async.
    expect(text).not.toContain('spool-path');
    for (const line of [
      'archive-async=n',
      'archive-push-queue-max=1024MiB',
      'repo1-retention-full=2',
      'compress-type=zst',
    ])
      expect(text.split('\n')).toContain(line);
  });

  it('archive-push and stanza-create wait storeTimeoutSeconds a request; a restore’s fetches keep the default', () => {
    const text = pgBackRestConfig({ ...BASE, storeTimeoutSeconds: 10 });
    expect(text).toContain('[global:archive-push]\nio-timeout=10\n');
    expect(text).toContain('[global:stanza-create]\nio-timeout=10\n');
    // pgbackrest restore writes a restore_command with this file: a short timeout there would end
    // a recovery at the first slow request.
    expect(text).not.toContain('archive-get');
  });

  it('holds no key: the object store’s keys come from the environment', () => {
    expect(pgBackRestConfig(BASE)).not.toMatch(/s3-key|cipher-pass/);
  });

  it('a directory repository', () => {
    const text = pgBackRestConfig({ ...BASE, repository: { type: 'posix', path: '/backups/shop' } });
    expect(text).toContain('repo1-type=posix\nrepo1-path=/backups/shop\n');
    expect(text).not.toContain('s3');
  });

  it.each([
    [{ stanza: 'a b' }, 'stanza'],
    [{ repository: { ...BASE.repository, bucket: 'Bad_Bucket' } }, 'repository.bucket'],
    [{ repository: { ...BASE.repository, endpoint: 'store\nrepo1-type=posix' } }, 'repository.endpoint'],
    [{ repository: { type: 'posix', path: 'relative' } }, 'repository.path'],
    [{ repository: { type: 'posix', path: '/a//b' } }, 'repository.path'],
    [{ dataDir: '/data/' }, 'dataDir'],
    [{ retainFull: 0 }, 'retainFull'],
    [{ archiveQueueMaxMb: 1.5 }, 'archiveQueueMaxMb'],
  ] as [Partial<PgBackRestOptions>, string][])('refuses %j, naming %s', (change, field) => {
    expect(() => pgBackRestConfig({ ...BASE, ...change })).toThrow(field);
  });

  it('the archive script creates the stanza once per pod, then pushes the segment whatever that gave', () => {
    const script = archiveScript({
      configFile: '/config/pgbackrest.conf',
      stanza: 'db',
      stateDir: '/run/pgbackrest',
      lockDir: '/run/pgbackrest/lock',
      logDir: '/run/pgbackrest/log',
    }).split('\n');
    const run = 'pgbackrest --config=/config/pgbackrest.conf --stanza=db';
    expect(script).toContain(`if [ ! -e /run/pgbackrest/stanza-created ] && ${run} stanza-create; then`);
    expect(script).toContain(`exec ${run} archive-push "$1"`);
  });

  it('Postgres archives and restores through it, at least every archive timeout', () => {
    const forRestore = { configFile: '/config/pgbackrest.conf', stanza: 'db' };
    expect(pgBackRestRestoreCommand(forRestore)).toBe(
      'pgbackrest --config=/config/pgbackrest.conf --stanza=db archive-get %f "%p"',
    );
    const restoreCommand = pgBackRestRestoreCommand({ ...forRestore, ioTimeoutSeconds: 3 });
    expect(restoreCommand).toBe(
      'pgbackrest --config=/config/pgbackrest.conf --stanza=db --io-timeout=3 archive-get %f "%p"',
    );
    expect(() => pgBackRestRestoreCommand({ ...forRestore, ioTimeoutSeconds: 0 })).toThrow(
      'ioTimeoutSeconds',
    );
    const commands = { archiveCommand: 'sh /config/pgbackrest-archive.sh %p', restoreCommand };
    const conf = postgresConfig({ port: 5432, archive: { ...commands, timeoutSeconds: 300 } }).split('\n');
    expect(conf).toContain('archive_mode = on');
    expect(conf).toContain("archive_command = 'sh /config/pgbackrest-archive.sh %p'");
    expect(conf).toContain('archive_timeout = 300');
    expect(conf).toContain(
      `restore_command = 'pgbackrest --config=/config/pgbackrest.conf --stanza=db --io-timeout=3 archive-get %f "%p"'`,
    );
    expect(() => postgresConfig({ port: 5432, archive: { ...commands, timeoutSeconds: 5 } })).toThrow(
      'archive.timeoutSeconds',
    );
    expect(postgresConfig({ port: 5432 })).not.toContain('archive');
  });
});

describe('backups run where no instance is, through a TLS server beside each instance', () => {
  const TLS = { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', caFile: '/tls/ca.crt' };
  const SERVER = {
    stanza: 'shop-db',
    dataDir: '/var/lib/postgresql/data/pgdata',
    socketDir: '/var/run/postgresql',
    port: 5432,
    listen: { address: '0.0.0.0', port: 8432 },
    tls: TLS,
    clientName: 'shop-backup',
    lockDir: '/var/run/postgresql/pgbackrest/lock',
    logDir: '/var/run/postgresql/pgbackrest/log',
  };
  const HOST = (n: number) => ({
    host: `shop-db-${n}.shop-db.default.svc`,
    serverPort: 8432,
    serverConfig: '/config/pgbackrest-server.conf',
    dataDir: '/var/lib/postgresql/data/pgdata',
    socketDir: '/var/run/postgresql',
    port: 5432,
  });
  const JOB = {
    stanza: 'shop-db',
    repository: BASE.repository,
    hosts: [HOST(0), HOST(1)],
    client: TLS,
    fromStandby: true,
    retainFull: 3,
    compression: 'zst' as const,
    lockDir: '/tmp/lock',
    logDir: '/tmp/log',
  };

  it('each server admits one client name, for its own stanza only', () => {
    const text = pgBackRestServerConfig(SERVER).split('\n');
    expect(text).toContain('tls-server-auth=shop-backup=shop-db');
    expect(text).toContain('tls-server-port=8432');
    expect(text).toContain('tls-server-ca-file=/tls/ca.crt');
    expect(text).toContain('pg1-path=/var/lib/postgresql/data/pgdata');
  });

  it('the backup reaches every instance over TLS and copies from a standby', () => {
    const text = backupHostConfig(JOB);
    expect(text).toContain('backup-standby=y');
    expect(text).toContain('repo1-retention-full=3');
    for (const n of [1, 2]) {
      expect(text).toContain(`pg${n}-host=shop-db-${n - 1}.shop-db.default.svc\npg${n}-host-type=tls\n`);
      expect(text).toContain(`pg${n}-host-cert-file=/tls/tls.crt`);
    }
    expect(backupHostConfig({ ...JOB, fromStandby: false })).toContain('backup-standby=n');
    // The commands the servers run read the servers' own files.
    expect(text).toContain('pg1-host-config=/config/pgbackrest-server.conf');
  });

  it('lists every instance the API allows (a primary and 9 replicas), and more', () => {
    const ten = Array.from({ length: 10 }, (_, n) => HOST(n));
    expect(backupHostConfig({ ...JOB, hosts: ten })).toContain('pg10-host=shop-db-9.shop-db.default.svc');
    const many = Array.from({ length: 257 }, (_, n) => HOST(n));
    expect(() => backupHostConfig({ ...JOB, hosts: many })).toThrow('hosts must list 1..256 instances');
  });

  it.each([
    [() => pgBackRestServerConfig({ ...SERVER, clientName: 'a=b' }), 'clientName'],
    [() => pgBackRestServerConfig({ ...SERVER, listen: { address: '0.0.0.0', port: 0 } }), 'listen.port'],
    [() => backupHostConfig({ ...JOB, hosts: [] }), 'hosts'],
    [() => backupHostConfig({ ...JOB, hosts: [{ ...HOST(0), host: 'a b' }, HOST(1)] }), 'hosts[0].host'],
    [() => backupHostConfig({ ...JOB, client: { ...TLS, keyFile: 'key' } }), 'client.keyFile'],
    [() => backupHostConfig({ ...JOB, hosts: [HOST(0), HOST(0)] }), 'twice'],
    [() => backupHostConfig({ ...JOB, hosts: [HOST(0)] }), 'fromStandby'],
    [() => backupHostConfig({ ...JOB, hosts: [{ ...HOST(0), host: 'a..b' }, HOST(1)] }), 'hosts[0].host'],
    [
      () => backupHostConfig({ ...JOB, hosts: [{ ...HOST(0), dataDir: '/data/../etc' }, HOST(1)] }),
      'hosts[0].dataDir',
    ],
    [() => pgBackRestServerConfig({ ...SERVER, clientName: 'c'.repeat(65) }), 'clientName'],
    [() => backupHostConfig({ ...JOB, compression: 'zip' as 'zst' }), 'compression'],
    [
      () =>
        pgBackRestConfig({
          ...BASE,
          repository: { ...S3, uriStyle: 'x\nrepo1-type=posix' as 'path' },
        }),
      'repository.uriStyle',
    ],
  ])('refuses bad input, naming it (%#)', (render, field) => {
    expect(render).toThrow(field);
  });
});
