// Continuous archiving, backups and point-in-time recovery with the real pgBackRest (ADR 0029),
// real Postgres started by the pods' own start script and config, and a real S3-compatible object
// store (versitygw) on loopback, all configured by the operator's texts (server-config/pgbackrest.ts).
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { until, type LocalInstance } from './support/postgres-local-cluster.ts';
import { LocalObjectStore } from './support/object-store-local.ts';
import { archivingVerdict } from '../operator/controller/archiving.ts';
import { recordOf } from '../operator/controller/backups.ts';
import {
  BackedUpCluster,
  QUEUE_MAX_MB,
  archiver,
  archivingCluster,
  pgArchive,
  switchWal,
  STANZA,
} from './support/backup-local.ts';

/** Inserts one row after another until stopped (bounded: at most `max`); what each commit returned. */
function writer(primary: LocalInstance, max = 50_000) {
  const acked: { n: number; at: number; ackedAt: number }[] = [];
  let stop = false;
  const done = (async () => {
    const c = await primary.connect();
    try {
      for (let n = 1; n <= max && !stop; n++) {
        const { rows } = await c.query<{ at: Date }>('INSERT INTO events (n) VALUES ($1) RETURNING at', [n]);
        acked.push({ n, at: rows[0]!.at.getTime(), ackedAt: Date.now() });
      }
    } finally {
      await c.end().catch(() => {});
    }
  })();
  return {
    acked,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

// The operator's verdict on the archiver's state.
const verdict = async (p: LocalInstance) =>
  archivingVerdict('db', await pgArchive.archiver(p.node), {
    rpoSeconds: 60,
    walQueueLimit: `${QUEUE_MAX_MB}Mi`,
  }).reason;

/** A new store and archiving cluster for each test of a describe, handed to `use`, destroyed after it. */
function archivingClusterEach(
  names: string[] | undefined,
  use: (made: { store: LocalObjectStore; b: BackedUpCluster }) => void,
) {
  let made: { store: LocalObjectStore; b: BackedUpCluster } | undefined;
  beforeEach(async () => {
    made = await archivingCluster(names);
    use(made);
  });
  afterEach(async () => {
    await made?.b.destroy();
    await made?.store.destroy();
    made = undefined;
  });
}

describe('backups with pgBackRest into an object store', () => {
  let store: LocalObjectStore;
  let b: BackedUpCluster;
  archivingClusterEach(undefined, (made) => ({ store, b } = made));

  it('recovers a new instance to a time just before a mistake: every row acknowledged before it is there, none after', async () => {
    // Some bulk, so that the backup and the restore have something to move.
    await b.primary.query(
      "INSERT INTO events (n, pad) SELECT -g, repeat('x', 400) FROM generate_series(1, 100000) g",
    );
    const w = writer(b.primary);
    await until('writes to flow', async () => w.acked.length >= 200);
    const size = (
      await b.primary.query<{ mb: number }>('SELECT pg_database_size(current_database()) / 1048576 AS mb')
    )[0]!.mb;
    const backup = await b.backRest(['backup', '--type=full']);
    expect(backup).toMatch(/new backup label = \d{8}-\d{6}F/);
    const written = w.acked.length;
    // pgBackRest restores from a backup that ended before the target, by its stop time in seconds.
    const backupEnded = Date.now();
    await until(
      'more writes after the backup',
      async () => w.acked.length >= written + 300 && Date.now() > backupEnded + 2000,
    );
    // The target, by the server's clock; then more writes, then the mistake.
    const target = (await b.primary.query<{ t: string }>('SELECT clock_timestamp()::text AS t'))[0]!.t;
    const targetMs = new Date(target.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).getTime();
    const atTarget = w.acked.length;
    await until('writes after the target', async () => w.acked.length >= atTarget + 100);
    await b.primary.query('DELETE FROM events');
    await w.stop();
    // Every segment up to the mistake in the repository: check switches WAL and waits for it.
    await b.backRest(['check']);

    const { client, seconds } = await b.restore({ time: target });
    try {
      const { rows } = await client.query<{ n: number }>('SELECT n FROM events WHERE n > 0');
      const present = new Set(rows.map((r) => r.n));
      const before = w.acked.filter((a) => a.ackedAt < targetMs - 1);
      const after = w.acked.filter((a) => a.at > targetMs + 1);
      expect(before.length).toBeGreaterThan(300);
      expect(after.length).toBeGreaterThan(50);
      expect(before.filter((a) => !present.has(a.n))).toEqual([]);
      expect(after.filter((a) => present.has(a.n))).toEqual([]);
      const bulk = (await client.query<{ c: number }>('SELECT count(*)::int AS c FROM events WHERE n < 0'))
        .rows[0]!.c;
      expect(bulk).toBe(100_000);
      // The newest row that survived was written (its statement began) this long before the target.
      const newest = Math.max(...w.acked.filter((a) => present.has(a.n)).map((a) => a.at));
      console.log(
        `backup: point-in-time recovery of a ${size} MiB database: ${present.size} of ${w.acked.length} rows written under load ` +
          `recovered, all ${before.length} acknowledged before the target there, all ${after.length} written after it absent; ` +
          `the newest surviving row written ${(targetMs - newest).toFixed(1)} ms before the target; ` +
          `restore and recovery took ${seconds.toFixed(1)} s`,
      );
    } finally {
      await client.end();
    }
  }, 300_000);

  it('the store away: archiving fails and waits, then catches up with no gap; past the queue bound the oldest WAL is dropped and the newest kept', async () => {
    await b.backRest(['backup', '--type=full']);
    await store.stop();
    // Two segments while the store is away: under the bound, they wait in pg_wal.
    let n = 0;
    const write = async (rows: number) => {
      for (let i = 0; i < rows; i++) await b.primary.query('INSERT INTO events (n) VALUES ($1)', [++n]);
    };
    await write(10);
    await switchWal(b.primary);
    // What the status says (archiving.ts): the attempts fail, one segment waits.
    await until(
      'the verdict ArchivingFailing',
      async () => (await verdict(b.primary)) === 'ArchivingFailing',
      120_000,
    );
    await write(10);
    const lastWaiting = await switchWal(b.primary);
    const failing = await until(
      'the archiver to report failures',
      async () => {
        const a = await archiver(b.primary);
        return a.failed > 0 && a.ready >= 2 ? a : undefined;
      },
      120_000,
    );
    // Two of the bound's four segments: the condition warns before anything is dropped.
    expect(await verdict(b.primary)).toBe('ArchiveQueueFilling');
    expect(b.primary.log).not.toMatch(/dropped WAL file/);
    await store.resume();
    const caughtUp = await until(
      'archiving to catch up',
      async () => {
        const a = await archiver(b.primary);
        return a.ready === 0 && a.last !== null && a.last >= lastWaiting ? a : undefined;
      },
      180_000,
    );
    expect(await verdict(b.primary)).toBe('Archiving');
    // No gap: the archive replays to its end, every row there.
    const { client } = await b.restore('latest');
    try {
      const { rows } = await client.query<{ c: number }>('SELECT count(*)::int AS c FROM events');
      expect(rows[0]!.c).toBe(n);
    } finally {
      await client.end();
    }

    // Away again, and more WAL than the bound: the oldest segments are dropped from the queue instead
    // of filling the disk, the newest bound's worth waits, and is archived once the store is back.
    await store.stop();
    const bound = QUEUE_MAX_MB / 16;
    const segments = bound + 2;
    let newest = '';
    for (let i = 0; i < segments; i++) {
      await write(5);
      newest = await switchWal(b.primary);
    }
    const dropped = () =>
      [...b.primary.log.matchAll(/dropped WAL file '([0-9A-F]{24})' because archive queue exceeded/g)].map(
        (m) => m[1]!,
      );
    const held = await until(
      'the oldest segments past the bound dropped while the store is still away',
      async () => {
        const a = await archiver(b.primary);
        return dropped().length >= segments - bound && a.ready <= bound ? a : undefined;
      },
      240_000,
    );
    // The queue is back at its bound (it is checked before each attempt: while one waits on the store
    // it can grow by what the server writes meanwhile), and what was dropped is older than all kept.
    expect(held.ready).toBe(bound);
    const waiting = (
      await b.primary.query<{ name: string }>(
        "SELECT name FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready' ORDER BY name",
        [],
        'superuser',
      )
    ).map((r) => r.name.replace('.ready', ''));
    expect(dropped().every((d) => d < waiting[0]!)).toBe(true);
    await store.resume();
    await until(
      'the segments kept under the bound archived once the store is back',
      async () => {
        const a = await archiver(b.primary);
        return a.ready === 0 && a.last !== null && a.last >= newest ? a : undefined;
      },
      180_000,
    );
    console.log(
      `backup: store away: ${failing.failed} failed archive attempts and ${failing.ready} segments waiting; caught up to ` +
        `${caughtUp.last} once back; away again, ${segments} segments past the ${QUEUE_MAX_MB} MiB bound: ` +
        `${dropped().length} oldest dropped, ${held.ready} kept and archived up to ${newest} once back`,
    );
  }, 720_000);
});

describe('a failover while archiving', () => {
  let store: LocalObjectStore;
  let b: BackedUpCluster;
  archivingClusterEach(['pg-0', 'pg-1'], (made) => ({ store, b } = made));

  it('the promoted standby archives on its new timeline, and a restore replays across the switch', async () => {
    const [old, standby] = [b.cluster.get('pg-0'), b.cluster.get('pg-1')];
    await b.backRest(['backup', '--type=full']);
    await old.query('INSERT INTO events (n) SELECT g FROM generate_series(1, 100) g');
    const lastOld = await switchWal(old);
    await until(
      'the old primary archiving its last segment',
      async () => (await archiver(old)).last === lastOld,
    );
    await until(
      'the standby replaying every row',
      async () => (await standby.query<{ c: number }>('SELECT count(*)::int AS c FROM events'))[0]!.c === 100,
    );
    await old.stop();
    // In the pods each instance has its own directory for the marker; here they share one, so the
    // promoted standby's is made fresh: its first archive attempt runs stanza-create again.
    const marker = join(b.dir, 'state', 'stanza-created');
    await rm(marker);
    await b.cluster.admin.promote(standby.node);
    await standby.query('INSERT INTO events (n) SELECT g FROM generate_series(101, 200) g');
    const lastNew = await switchWal(standby);
    // Timeline 2: the WAL file's name starts with it.
    expect(lastNew.startsWith('00000002')).toBe(true);
    await until('the promoted standby archiving on timeline 2', async () => {
      const a = await archiver(standby);
      return a.last === lastNew && a.ready === 0;
    });
    expect(await verdict(standby)).toBe('Archiving');
    // stanza-create found the stanza this system's, and said so.
    expect(existsSync(marker)).toBe(true);
    // The new timeline's history file is in the archive too: without it no restore could follow.
    const [info] = JSON.parse(await b.backRest(['info', '--output=json', '--log-level-console=off'])) as {
      archive: { max: string }[];
    }[];
    expect(info!.archive[0]!.max).toBe(lastNew);
    const { client } = await b.restore('latest');
    try {
      const { rows } = await client.query<{ c: number; tli: number }>(
        `SELECT (SELECT count(*)::int FROM events) AS c,
                ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli`,
      );
      expect(rows[0]!.c).toBe(200);
      // Recovery followed the archive onto timeline 2 and promoted past it.
      expect(rows[0]!.tli).toBeGreaterThanOrEqual(3);
    } finally {
      await client.end();
    }
  }, 300_000);

  it('with the store away, a standby asks the archive for seconds, not minutes, and streams again once its primary is back', async () => {
    const [primary, standby] = [b.cluster.get('pg-0'), b.cluster.get('pg-1')];
    const rows = async () =>
      (await standby.query<{ c: number }>('SELECT count(*)::int AS c FROM events'))[0]!.c;
    await store.stop();
    // Streaming stops: the standby's startup process turns to restore_command, which the store fails.
    await primary.stop();
    const asked = standby.log.length;
    await until(
      'the standby to fail a fetch from the archive',
      async () => /unable to find a valid repository/.test(standby.log.slice(asked)),
      120_000,
    );
    await primary.start(primary);
    const back = performance.now();
    await primary.query('INSERT INTO events (n) VALUES (1)');
    // At pgBackRest's default io-timeout the fetch under way would hold the standby ~8 minutes.
    await until('the standby streaming the new row', async () => (await rows()) === 1, 120_000);
    console.log(
      `backup: the store away, the primary restarted: the standby streamed its first new row ` +
        `${((performance.now() - back) / 1000).toFixed(1)} s after the primary was back`,
    );
  }, 300_000);
});

describe('a base backup run where no instance is, through the instances’ TLS servers', () => {
  let b: BackedUpCluster;
  archivingClusterEach(['pg-0', 'pg-1'], (made) => ({ b } = made));

  it('copies from the standby, starts and stops on the primary; a restore from it to the end has every row', async () => {
    const reach = await b.serveBackups();
    await b.primary.query('INSERT INTO events (n) SELECT g FROM generate_series(1, 100) g');
    const started = performance.now();
    // The standby first: pgBackRest asks each instance whether it is in recovery, so order is no matter.
    const log = await b.backupElsewhere({ ...reach, hosts: [...reach.hosts].reverse() }, true);
    const seconds = (performance.now() - started) / 1000;
    // pgBackRest says where it copied from: the standby, once it replayed to the backup's start.
    expect(log).toMatch(/wait for replay on the standby to reach/);
    expect(log).toMatch(/new backup label = \d{8}-\d{6}F/);
    await b.primary.query('INSERT INTO events (n) SELECT g FROM generate_series(101, 200) g');
    const last = await switchWal(b.primary);
    await until('the last segment archived', async () => (await archiver(b.primary)).last === last, 60_000);
    const [info] = JSON.parse(await b.backRest(['info', '--output=json', '--log-level-console=off'])) as {
      backup: { type: string }[];
    }[];
    expect(info!.backup.map((x) => x.type)).toEqual(['full']);
    const { client } = await b.restore('latest');
    try {
      const { rows } = await client.query<{ c: number }>('SELECT count(*)::int AS c FROM events');
      expect(rows[0]!.c).toBe(200);
    } finally {
      await client.end();
    }
    console.log(`backup: a full backup from the standby through TLS servers took ${seconds.toFixed(1)} s`);
  }, 300_000);

  // pgBackRest 2.45 cannot prefer a standby: the Job's script retries from the primary on exactly
  // "unable to find standby cluster", and on nothing else.
  it("the Job's script: with the standby down it backs up from the primary alone and reports the repository; a refused client fails it", async () => {
    const reach = await b.serveBackups();
    await b.cluster.get('pg-1').stop();
    const job = await b.runBackupJob(reach, true);
    expect(job).toMatchObject({ code: 0 });
    expect(job.output).toMatch(/unable to find standby cluster/);
    expect(job.output).toMatch(/no standby is ready: backing up from the primary alone/);
    // The report is what the status reads: one full backup.
    expect(recordOf(STANZA, 'job', job.report)).toMatchObject({ cluster: STANZA, fullBackups: 1 });
    const stranger = {
      ...reach.client,
      certFile: reach.client.certFile.replace('client.crt', 'stranger.crt'),
      keyFile: reach.client.keyFile.replace('client.key', 'stranger.key'),
    };
    const refused = await b.runBackupJob({ hosts: reach.hosts, client: stranger }, true);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/access denied/);
    expect(refused.output).not.toMatch(/backing up from the primary alone/);
    expect(refused.report).toBe('');
  }, 300_000);

  it('refuses a client whose certificate names another client', async () => {
    const reach = await b.serveBackups();
    // A certificate from the same CA for another client.
    const other = {
      ...reach.client,
      certFile: reach.client.certFile.replace('client.crt', 'stranger.crt'),
      keyFile: reach.client.keyFile.replace('client.key', 'stranger.key'),
    };
    const refused = await b.backupElsewhere({ hosts: reach.hosts, client: other }, true).then(
      () => 'it ran',
      (err: Error) => err.message,
    );
    // Both servers refuse it (tls-server-auth names the backup's client only), so no primary is found.
    expect(refused).toMatch(/unable to check pg1: \[AccessError\].*access denied/);
    expect(refused).toMatch(/unable to check pg2: \[AccessError\].*access denied/);
    expect(refused).toMatch(/unable to find primary cluster/);
  }, 300_000);
});

describe('a store away from the first attempt', () => {
  it('keeps pg_wal bounded although the stanza cannot be created, and archives once the store is there', async () => {
    const store = await LocalObjectStore.start();
    await store.stop();
    const b = await BackedUpCluster.create(store);
    try {
      await b.cluster.startAll();
      await b.primary.query('CREATE TABLE events (n int PRIMARY KEY)');
      const segments = QUEUE_MAX_MB / 16 + 2;
      for (let i = 0; i < segments; i++) {
        await b.primary.query('INSERT INTO events VALUES ($1)', [i]);
        await switchWal(b.primary);
      }
      // archive-push still runs after the failed stanza-create, and it enforces the bound.
      await until(
        'the queue past its bound dropped with no stanza',
        async () =>
          (await archiver(b.primary)).ready <= QUEUE_MAX_MB / 16 && /dropped WAL file/.test(b.primary.log),
        240_000,
      );
      expect(existsSync(join(b.dir, 'state', 'stanza-created'))).toBe(false);
      await store.resume();
      await b.primary.query('INSERT INTO events VALUES ($1)', [segments]);
      const next = await switchWal(b.primary);
      await until(
        'the stanza created and the segment archived',
        async () => (await archiver(b.primary)).last === next,
        120_000,
      );
      expect(existsSync(join(b.dir, 'state', 'stanza-created'))).toBe(true);
    } finally {
      await b.destroy();
      await store.destroy();
    }
  }, 420_000);
});
