// The database tier's data plane against REAL postgres processes: every instance is started by the
// instance script the pods run (written to a file, run with sh), with the config texts the operator
// deploys, on 127.0.0.1 and random free ports, as the `postgres` OS user when we are root. Failover
// and switchover go through pgAdmin, as in the operator. What the CRD promises (replicas that serve
// reads, failover to the most advanced standby, no acknowledged commit lost with synchronousReplicas,
// an old primary that comes back as a standby) is shown here to be what Postgres does.
// The server comes from tools/dataplane-deps.sh (Debian's postgresql-15).
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { STARTED_HBA_FILE } from '../operator/server-config/postgres-ready-script.ts';
import { join } from 'node:path';
import { Client } from 'pg';
import { decidePostgresFailover, switchover } from '../operator/dataplane/postgres/failover.ts';
import {
  APP_DATABASE,
  APP_USER,
  CREDENTIALS,
  LocalCluster,
  LocalInstance,
  processes,
  until,
} from './support/postgres-local-cluster.ts';
import { execFileSync } from 'node:child_process';
import { DEFAULT_MONITOR_USER, hbaConfig } from '../operator/server-config/postgres.ts';
import { PrimaryHeartbeats } from '../operator/dataplane/postgres/heartbeat.ts';
import { freePort } from '../e2e/support/free-port.ts';

const TEST_TIMEOUT = 180_000;
const NAMES = ['pg-0', 'pg-1', 'pg-2'];
const clusters: LocalCluster[] = [];

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.destroy()));
});

/** A primary (the first name) and two standbys, all started at once as a StatefulSet's pods are. */
async function startCluster(synchronousReplicas = 0): Promise<LocalCluster> {
  const c = await LocalCluster.create({ names: NAMES, synchronousReplicas });
  clusters.push(c);
  await c.startAll();
  await c.get('pg-0').query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
  // Every standby has replayed the table before a test starts: with ANY 1 the commit above waited for
  // one standby only, and a test that then freezes the other would find no table there at all.
  for (const i of c.instances) {
    await until(`the table on ${i.name}`, async () => {
      const rows = await i.query<{ t: string | null }>("SELECT to_regclass('notes')::text AS t");
      return rows[0]!.t === 'notes';
    });
  }
  return c;
}

const insert = (i: LocalInstance, id: number, body = `note ${id}`) =>
  i.query('INSERT INTO notes (id, body) VALUES ($1, $2)', [id, body]);

async function bodies(i: LocalInstance): Promise<string[]> {
  const rows = await i.query<{ body: string }>('SELECT body FROM notes ORDER BY id');
  return rows.map((r) => r.body);
}

/** How many of `ids` the instance has. */
async function present(i: LocalInstance, ids: number[]): Promise<number> {
  const rows = await i.query<{ n: number }>('SELECT count(*)::int AS n FROM notes WHERE id = ANY($1)', [ids]);
  return rows[0]!.n;
}

const hasBody = (i: LocalInstance, body: string) =>
  until(`'${body}' on ${i.name}`, async () => (await bodies(i)).includes(body));

/** The SQLSTATE a query fails with (undefined when it succeeds). */
const failsWith = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: { cause?: { code?: string }; code?: string }) => err.code ?? err.cause?.code,
  );

function signal(pids: number[], sig: NodeJS.Signals): void {
  if (pids.length === 0) throw new Error(`no process to send ${sig} to`);
  for (const pid of pids) process.kill(pid, sig);
}

/**
 * Inserts notes 1, 2, ... one commit at a time into `i` until stopped or the server fails; the ids
 * it acknowledged, in order. stop() waits for the writer (kill the server first if a commit hangs).
 */
function writeUntilStopped(i: LocalInstance): { acknowledged: number[]; stop: () => Promise<void> } {
  const acknowledged: number[] = [];
  let stopped = false;
  const writer = (async () => {
    const conn = await i.connect();
    try {
      for (let id = 1; !stopped; id++) {
        await conn.query('INSERT INTO notes (id, body) VALUES ($1, $2)', [id, `note ${id}`]);
        acknowledged.push(id);
      }
    } catch {
      // The server died mid-commit: that commit was not acknowledged.
    } finally {
      await conn.end().catch(() => {});
    }
  })();
  return {
    acknowledged,
    stop: async () => {
      stopped = true;
      await writer;
    },
  };
}

async function primaries(c: LocalCluster): Promise<string[]> {
  const running = c.instances.filter((i) => i.running);
  const inRecovery = await Promise.all(running.map((i) => i.inRecovery()));
  return running.filter((_, k) => !inRecovery[k]).map((i) => i.name);
}

describe('bootstrap and replication', () => {
  it(
    'a primary and two standbys start from the instance script; a row written on the primary appears on both',
    async () => {
      const c = await startCluster();
      const [primary, ...standbys] = c.instances;
      expect(await primaries(c)).toEqual(['pg-0']);

      await insert(primary!, 1, 'hello');
      for (const s of standbys) await hasBody(s, 'hello');

      // Both standbys stream from the primary under their instance names (what ANY k matches). A
      // standby that has the row may still be (re)connecting its walsender, so wait for the state.
      const replication = () =>
        primary!.query<{ application_name: string; state: string }>(
          'SELECT application_name, state FROM pg_stat_replication ORDER BY application_name',
          [],
          'superuser',
        );
      const streaming = await until('both standbys streaming', async () => {
        const rows = await replication();
        return rows.length === 2 && rows.every((r) => r.state === 'streaming') ? rows : undefined;
      }).catch(replication);
      expect(streaming).toEqual([
        { application_name: 'pg-1', state: 'streaming' },
        { application_name: 'pg-2', state: 'streaming' },
      ]);
      // A standby serves reads and refuses writes (25006: read-only transaction).
      expect(await failsWith(insert(standbys[0]!, 2))).toBe('25006');
      // SCRAM with the passwords from the credential files (the connections above); a wrong one
      // is refused (28P01).
      const intruder = new Client({ ...primary!.node, user: 'app', password: 'guess', database: 'app' });
      expect(await failsWith(intruder.connect())).toBe('28P01');
      await intruder.end().catch(() => {});
    },
    TEST_TIMEOUT,
  );
});

describe('failover, asynchronous replication', () => {
  it(
    'kill -9 the primary: a standby is promoted, the other follows it, the old primary is rewound into a standby',
    async () => {
      const c = await startCluster();
      const [old, s1, s2] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      await insert(old, 1, 'before');
      await hasBody(s1, 'before');
      await hasBody(s2, 'before');
      expect(await decidePostgresFailover(c.nodes, old.node, c.admin, { synchronousReplicas: 0 })).toEqual({
        kind: 'none',
      });

      // A commit that never leaves the primary (its WAL senders are frozen): acknowledged, as
      // asynchronous commits are, and about to be lost with it.
      signal(old.pids('walsender'), 'SIGSTOP');
      await insert(old, 2, 'lost');
      await old.kill9();

      const d = await decidePostgresFailover(c.nodes, old.node, c.admin, { synchronousReplicas: 0 });
      if (d.kind !== 'promoted') throw new Error(`expected a promotion, got ${JSON.stringify(d)}`);
      expect(d.fenced).toBe(false);
      const promoted = c.get(d.newPrimary.name);
      const follower = promoted === s1 ? s2 : s1;
      expect(d.followers).toEqual([follower.node]);

      // The promoted standby takes writes; the asynchronous commit is gone, as documented.
      expect(await promoted.inRecovery()).toBe(false);
      await insert(promoted, 3, 'after');
      expect(await bodies(promoted)).toEqual(['before', 'after']);
      // The other standby switched upstream without a restart and receives the new row; its
      // primary_conninfo names the new primary, which is what the operator checks it by.
      await hasBody(follower, 'after');
      expect((await c.admin.state(follower.node)).upstream).toBe(promoted.node.host);

      // The old primary restarts with the same script, the new primary recorded: pg_rewind takes it
      // back to where the histories forked (dropping 'lost'), and it starts as a standby.
      await old.start(promoted);
      expect(old.log).toMatch(/rewinding to pg-\d \(127.0.0.1:\d+\) with pg_rewind/);
      expect(old.log).toMatch(/servers diverged at WAL location/);
      expect(old.log).not.toMatch(/cloning/);
      expect(await old.inRecovery()).toBe(true);
      // What the instance script wrote reads back the same way.
      expect((await c.admin.state(old.node)).upstream).toBe(promoted.node.host);
      await insert(promoted, 4, 'rejoined');
      await hasBody(old, 'rejoined');
      expect(await bodies(old)).toEqual(['before', 'after', 'rejoined']);
      expect(await failsWith(insert(old, 5))).toBe('25006');
      expect(await primaries(c)).toEqual([promoted.name]);
    },
    TEST_TIMEOUT,
  );
});

describe('failover, synchronous replication (ANY 1)', () => {
  it(
    'every acknowledged commit survives kill -9 of the primary, though one standby lags far behind',
    async () => {
      const c = await startCluster(1);
      const [old, lagging, current] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      // pg-1 stops receiving (detached, as a failover detaches): from now on pg-2 alone acknowledges.
      // pg-1 is also the lower name, so a choice by name instead of position would lose commits.
      await c.admin.detach(lagging.node);
      expect(lagging.pids('walreceiver')).toEqual([]);

      const { acknowledged, stop } = writeUntilStopped(old);
      await until('200 acknowledged commits', async () => acknowledged.length >= 200);
      await old.kill9();
      await stop();

      // What a promotion of pg-1 would have lost:
      expect(await present(lagging, acknowledged)).toBeLessThan(acknowledged.length);
      const [lag, cur] = await Promise.all([c.admin.state(lagging.node), c.admin.state(current.node)]);
      expect(lag.lsn).toBeLessThan(cur.lsn);

      const d = await decidePostgresFailover(c.nodes, old.node, c.admin, { synchronousReplicas: 1 });
      expect(d).toMatchObject({ kind: 'promoted', newPrimary: current.node, followers: [lagging.node] });
      expect(await present(current, acknowledged)).toBe(acknowledged.length);

      // The lagging standby resumes, now from the new primary, and catches up on all of it.
      await until('the lagging standby to catch up', async () => {
        return (await present(lagging, acknowledged)) === acknowledged.length;
      });
    },
    TEST_TIMEOUT,
  );

  it(
    'loses no acknowledged commit to an old primary the operator cannot reach but its standbys and clients can: they stop receiving first',
    async () => {
      const c = await startCluster(1);
      const [old, a, b] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      // What the operator sees of the old primary: nothing answers there (cut off from us, or a
      // force-deleted pod's container still running at an address no Service names).
      const unreachable = { ...old.node, port: await freePort() };
      const { acknowledged, stop } = writeUntilStopped(old);
      await until('100 acknowledged commits', async () => acknowledged.length >= 100);
      const d = await decidePostgresFailover(
        c.nodes.map((n) => (n.name === old.name ? unreachable : n)),
        unreachable,
        c.admin,
        {
          synchronousReplicas: 1,
        },
      );
      if (d.kind !== 'promoted') throw new Error(`expected a promotion, got ${JSON.stringify(d)}`);
      // The old primary still runs and the writer still writes to it, but with both standbys detached
      // no commit is acknowledged any more: it waits for a synchronous standby.
      const atDecision = acknowledged.length;
      await new Promise((r) => setTimeout(r, 2000));
      expect(acknowledged.length).toBe(atDecision);
      const promoted = c.get(d.newPrimary.name);
      expect(await present(promoted, acknowledged)).toBe(acknowledged.length);
      // The other standby follows the new primary: it received nothing past the fork point.
      const other = promoted === a ? b : a;
      await insert(promoted, 1_000_000, 'after the failover');
      await hasBody(other, 'after the failover');
      await old.kill9();
      await stop();
    },
    TEST_TIMEOUT,
  );

  it(
    'refuses to promote while too few standbys answer, and promotes once enough are back',
    async () => {
      const c = await startCluster(1);
      const [old, down, up] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      const ids = Array.from({ length: 50 }, (_, k) => k + 1);
      for (const id of ids) await insert(old, id);

      // ANY 1 over 2 standbys: with one of them gone, the other may lack commits only it had.
      await down.kill9();
      await old.kill9();
      const refused = await decidePostgresFailover(c.nodes, old.node, c.admin, { synchronousReplicas: 1 });
      expect(refused).toEqual({
        kind: 'refused',
        reason: expect.stringContaining('1 of 2 standbys answer where ANY 1 of 2 standbys needs 2'),
      });
      expect(await up.inRecovery()).toBe(true);

      // The standby's pod restarts (still recorded: pg-0 as the primary): now both can be compared.
      await down.start(old);
      const d = await decidePostgresFailover(c.nodes, old.node, c.admin, { synchronousReplicas: 1 });
      if (d.kind !== 'promoted') throw new Error(`expected a promotion, got ${JSON.stringify(d)}`);
      expect(await present(c.get(d.newPrimary.name), ids)).toBe(ids.length);
      expect(await primaries(c)).toEqual([d.newPrimary.name]);
    },
    TEST_TIMEOUT,
  );
});

describe('the record is the authority', () => {
  it(
    'a standby whose pod starts recorded as the primary comes up promoted, on a new timeline the others follow',
    async () => {
      const c = await startCluster();
      const [old, chosen, other] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      await insert(old, 1, 'before');
      await hasBody(chosen, 'before');
      // All pods restart after the record moved to pg-1 (say, by hand), the old primary's last.
      await Promise.all([chosen.stop(), other.stop()]);
      await old.stop();
      await chosen.start(chosen);
      // It answers reads while it replays, then leaves recovery.
      await until('pg-1 to leave recovery', async () => !(await chosen.inRecovery()));
      expect(await c.admin.state(chosen.node)).toMatchObject({ role: 'primary', timeline: 2 });
      await insert(chosen, 2, 'after');

      await other.start(chosen);
      await old.start(chosen);
      // The old primary wrote its shutdown checkpoint on timeline 1 after pg-1 left it: rewound.
      expect(old.log).toMatch(/servers diverged at WAL location/);
      for (const s of [other, old]) {
        await hasBody(s, 'after');
        expect(await s.inRecovery()).toBe(true);
      }
    },
    TEST_TIMEOUT,
  );
});

describe('a standby further ahead than the one promoted', () => {
  it(
    'is rewound when it restarts (its history forked before its end), then streams from the new primary; restarted again, it is only checked',
    async () => {
      const c = await startCluster();
      const [old, behind, ahead] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      await insert(old, 1, 'both');
      await hasBody(behind, 'both');
      await hasBody(ahead, 'both');
      // pg-1 stops; the primary writes on and pg-2 replays it (asynchronous: nothing waits for pg-1).
      await behind.stop();
      await insert(old, 2, 'ahead only');
      await hasBody(ahead, 'ahead only');
      await old.kill9();
      await ahead.stop();
      // pg-1, recorded as the primary, starts promoted: its timeline forks before 'ahead only', which
      // pg-2 replayed. Without a rewind pg-2 would wait on timeline 2 for ever.
      await behind.start(behind);
      await until('pg-1 to leave recovery', async () => !(await behind.inRecovery()));
      await insert(behind, 3, 'after');

      await ahead.start(behind);
      expect(ahead.log).toMatch(/went past where pg-1's timeline forked from its own: rewinding it/);
      expect(ahead.log).toMatch(/servers diverged at WAL location/);
      await hasBody(ahead, 'after');
      expect(await bodies(ahead)).toEqual(['both', 'after']);
      await until('pg-2 streaming', async () => (await c.admin.state(ahead.node)).streaming);

      // Restarted once more, it is on pg-1's history: compared, not rewound.
      await ahead.stop();
      const seen = ahead.log.length;
      await ahead.start(behind);
      expect(ahead.log.slice(seen)).toMatch(/on pg-1's history: following it/);
      expect(ahead.log.slice(seen)).not.toMatch(/rewinding it|cloning/);
      await insert(behind, 4, 'again');
      await hasBody(ahead, 'again');
    },
    TEST_TIMEOUT,
  );
});

describe('a primary cut off from its standbys and the operator fences itself (ready.sh)', () => {
  it(
    'stays open while the operator beats, fences once neither standby nor operator is heard, keeps the fence through a restart, and only the heartbeat lifts it',
    async () => {
      const c = await startCluster(1);
      const [primary, ...standbys] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      expect(primary.ready(2)).toEqual({ ready: true, said: '' });
      // A standby's probe never fences: it has nothing to fence.
      expect(standbys[0]!.ready(0)).toEqual({ ready: true, said: '' });

      // The standbys fall silent (their walreceivers stopped): with ANY 1 no commit can return now.
      const walreceivers = standbys.flatMap((s) => s.pids('walreceiver'));
      signal(walreceivers, 'SIGSTOP');
      const direct = await primary.connect();
      const pending = direct.query("INSERT INTO notes (id, body) VALUES (1, 'never acknowledged')").then(
        () => 'acknowledged',
        (err: Error) => err.message,
      );

      // The operator's heartbeat alone is contact enough: no fence while it beats.
      const heartbeats = new PrimaryHeartbeats({ periodMs: 500 });
      const target = { host: primary.node.host, port: primary.node.port, password: CREDENTIALS.superuser };
      heartbeats.keep('cluster', target);
      for (let k = 0; k < 8; k++) {
        await new Promise((r) => setTimeout(r, 500));
        expect(primary.ready(2)).toEqual({ ready: true, said: '' });
      }

      // Neither is heard: within the fence delay and one probe more, it fences itself.
      heartbeats.stop();
      const verdict = await until('the fence', async () => {
        const r = primary.ready(2);
        return !r.ready && r.said;
      });
      expect(verdict).toMatch(/^fenced: no standby report and no operator heartbeat for \d+s/);
      // The client that waited on the commit was cut off: it never got it acknowledged.
      // (Postgres warns that the commit is local only, then closes the connection without an answer.)
      expect(await pending).toMatch(/Connection terminated/);
      // No app client gets in (the fenced pg_hba.conf has no line for it); the superuser still does.
      expect(await failsWith(primary.connect())).toBe('28000');
      const [fence] = await primary.query<{ f: string }>(
        "SELECT current_setting('scalableapp.fenced') AS f",
        [],
        'superuser',
      );
      expect(fence!.f).toMatch(/^no standby report/);

      // The standbys are heard again: that lifts nothing (it might have been replaced meanwhile).
      signal(walreceivers, 'SIGCONT');
      await new Promise((r) => setTimeout(r, 3000));
      expect(primary.ready(2)).toMatchObject({ ready: false, said: expect.stringMatching(/^fenced: /) });

      // Restarted while still recorded as the primary, it keeps the fence from its first moment.
      await primary.stop();
      await primary.start(primary);
      expect(primary.log).toMatch(/fenced itself when it was cut off/);
      expect(await failsWith(primary.connect())).toBe('28000');

      // The operator reaches it again and it is still the recorded primary: the heartbeat lifts the
      // fence and the next probe lets clients in.
      const lifted: string[] = [];
      const again = new PrimaryHeartbeats({ periodMs: 500, onLifted: (_k, reason) => lifted.push(reason) });
      again.keep('cluster', target);
      try {
        await until('the fence lifted', async () => lifted.length > 0);
        expect(lifted[0]).toMatch(/^no standby report/);
        await until('ready again', async () => primary.ready(2).ready);
        await direct.end().catch(() => {});
        await insert(primary, 2, 'after the fence');
        for (const s of standbys) await hasBody(s, 'after the fence');
      } finally {
        again.stop();
      }
    },
    TEST_TIMEOUT,
  );
});

describe('the pg_hba.conf a running primary serves (ready.sh)', () => {
  it(
    'stays the one it started with when the ConfigMap changes under it, also for a server started before start.sh kept a copy',
    async () => {
      const c = await LocalCluster.create({ names: ['hba-0'], synchronousReplicas: 0 });
      clusters.push(c);
      await c.startAll();
      const primary = c.get('hba-0');
      const served = join(primary.dataDir, 'pg_hba.conf');
      const before = await readFile(served, 'utf8');
      // The spec changed (TLS turned on): the ConfigMap's file now has hostssl lines only, which this
      // plaintext server would refuse every TCP client with.
      const hostssl = hbaConfig({
        cidr: '127.0.0.1/32',
        appUsers: [APP_USER],
        appDatabase: APP_DATABASE,
        tls: true,
      });
      await writeFile(join(c.configDir, 'pg_hba.conf'), hostssl);
      expect(primary.ready(30)).toEqual({ ready: true, said: '' });
      expect(await readFile(served, 'utf8')).toBe(before);
      // A server an older start.sh started has no copy: the probe keeps what it runs.
      await rm(join(primary.runDir, STARTED_HBA_FILE));
      expect(primary.ready(30)).toEqual({ ready: true, said: '' });
      expect(await readFile(served, 'utf8')).toBe(before);
      expect(await readFile(join(primary.runDir, STARTED_HBA_FILE), 'utf8')).toBe(before);
      expect(await primary.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    },
    TEST_TIMEOUT,
  );
});

describe('a volume whose plugin applies the pod fsGroup on mount', () => {
  it(
    'a data directory left group-writable (as the kubelet leaves it by default) still starts',
    async () => {
      const c = await LocalCluster.create({ names: ['solo'], synchronousReplicas: 0 });
      clusters.push(c);
      await c.startAll();
      const solo = c.get('solo');
      await solo.query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
      await insert(solo, 1, 'before the new mount');
      await solo.stop();
      await chmod(solo.dataDir, 0o2770);
      await solo.start(solo);
      expect(await bodies(solo)).toEqual(['before the new mount']);
      expect((await stat(solo.dataDir)).mode & 0o777).toBe(0o700);
    },
    TEST_TIMEOUT,
  );
});

describe('one postgres per data directory', () => {
  it(
    "a second container of the same instance (a force-deleted pod's replacement) waits until the first one's postgres is gone",
    async () => {
      const c = await LocalCluster.create({ names: ['solo'], synchronousReplicas: 0 });
      clusters.push(c);
      await c.startAll();
      const first = c.get('solo');
      await first.query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
      await insert(first, 1, 'before');
      // The same volume (instance name, so data directory), another port: as a new pod would be.
      const twin = new LocalInstance(c, 'solo', await freePort());
      c.instances.push(twin);
      const started = twin.start(twin, 120_000);
      await until('the twin to wait for the lock', async () =>
        twin.log.includes('another postgres still runs on this volume'),
      );
      // It waits, it does not start: the first one goes on serving from the directory alone.
      await new Promise((r) => setTimeout(r, 2000));
      expect(twin.log).not.toMatch(/starting postgres/);
      await insert(first, 2, 'while the twin waits');
      await first.kill9();
      await started;
      expect(twin.log).toMatch(/it exited; starting/);
      expect(await bodies(twin)).toEqual(['before', 'while the twin waits']);
    },
    TEST_TIMEOUT,
  );
});

describe('the instance script is PID 1 of its PID namespace, as in a pod, and postgres its child', () => {
  // Under load the kubelet kills a readiness probe that ran past its timeout (so does a dropped
  // `kubectl exec`): the probe's children are orphaned, and PID 1 of the container inherits them.
  // When that was the postmaster (start.sh exec'd it), one exiting with code 141 (SIGPIPE, its pipe
  // gone with the probe) was taken for a crashed backend, and every session restarted, again and
  // again on a loaded node; seen on the real node.
  const asRoot = process.getuid?.() === 0;
  // Skipped unless root: a PID namespace of our own needs CAP_SYS_ADMIN (CI runs as root).
  (asRoot ? it : it.skip)(
    'an orphan exiting with an error is reaped by the script, no session restarts, and the stop signal still reaches postgres',
    async () => {
      const c = await LocalCluster.create({ names: ['pid1'], synchronousReplicas: 0 });
      clusters.push(c);
      const i = c.get('pid1');
      await i.start(i, 60_000, { pidNamespace: true });
      const script = i.script()!;
      const session = await i.connect();
      const backend = async () =>
        (await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const before = await backend();

      // What a killed probe leaves: a shell whose parent is gone and that fails a moment later.
      // (Its output elsewhere: execFileSync would wait for the pipe it holds.)
      const orphaned = '(exec sh -c "sleep 1; exit 141" </dev/null >/dev/null 2>&1 &)';
      execFileSync('nsenter', ['-t', String(script), '-p', '--', 'sh', '-c', orphaned]);
      const orphan = processes().find((p) => p.args === 'sh -c sleep 1; exit 141');
      expect(orphan?.ppid).toBe(script); // inherited by PID 1, the script, not by the postmaster
      await until('the orphan to be reaped', async () => !processes().some((p) => p.pid === orphan!.pid));

      await new Promise((r) => setTimeout(r, 500)); // the postmaster would have logged it by now
      expect(i.log).not.toMatch(/exited with exit code 141|terminating any other active server processes/);
      expect(await backend()).toBe(before); // the same session, never restarted
      await session.end();

      // The kubelet stops a container with a signal to its PID 1 (the image's STOPSIGNAL, SIGINT):
      // the script hands it to postgres, which shuts down cleanly, and exits with its status.
      const exited = new Promise<number | null>((resolve) => i.proc!.once('exit', (code) => resolve(code)));
      process.kill(script, 'SIGINT');
      expect(await exited).toBe(0);
      expect(i.log).toMatch(/database system is shut down/);
    },
    TEST_TIMEOUT,
  );
});

describe('the monitor role (spec.monitoring)', () => {
  /** A login as the monitor role with `password`: the roles it belongs to, or the error's SQLSTATE. */
  const asMonitor = async (i: LocalInstance, password: string) => {
    const client = new Client({
      host: i.node.host,
      port: i.node.port,
      user: DEFAULT_MONITOR_USER,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 5000,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      const { rows } = await client.query<{ super: boolean; monitor: boolean }>(
        "SELECT rolsuper AS super, pg_has_role(current_user, 'pg_monitor', 'member') AS monitor FROM pg_roles WHERE rolname = current_user",
      );
      return rows[0];
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    } finally {
      await client.end().catch(() => {});
    }
  };

  it(
    'turned on after initdb, the next start of the primary makes it; a changed password takes effect at the start after',
    async () => {
      const c = await LocalCluster.create({ names: ['solo'], synchronousReplicas: 0 });
      clusters.push(c);
      // Loopback admits the monitor role, as the operator's pg_hba.conf does with monitoring on.
      await writeFile(
        join(c.configDir, 'pg_hba.conf'),
        hbaConfig({ cidr: '127.0.0.1/32', appUsers: [APP_USER], appDatabase: APP_DATABASE, monitor: true }),
      );
      await c.startAll();
      const solo = c.get('solo');
      await solo.query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
      await insert(solo, 1, 'before monitoring');
      // initdb ran without a monitor password: no such role (28P01: the login is refused).
      expect(await asMonitor(solo, 'first-password')).toBe('28P01');

      await c.setMonitorPassword('first-password');
      await solo.stop();
      await solo.start(solo);
      expect(await asMonitor(solo, 'first-password')).toEqual({ super: false, monitor: true });
      expect(solo.log).toMatch(/ensuring the role monitor/);
      expect(solo.log).not.toMatch(/first-password/);

      await c.setMonitorPassword('second-password');
      await solo.stop();
      await solo.start(solo);
      expect(await asMonitor(solo, 'second-password')).toEqual({ super: false, monitor: true });
      expect(await asMonitor(solo, 'first-password')).toBe('28P01');
      expect(await bodies(solo)).toEqual(['before monitoring']);
    },
    TEST_TIMEOUT,
  );
});

describe('a synchronous primary restarted with monitoring on', () => {
  it(
    'makes the monitor role and starts, though no standby can confirm that commit (its standbys need the server up first)',
    async () => {
      const c = await startCluster(1);
      await c.setMonitorPassword('sync-monitor-pw');
      const [primary] = c.instances as [LocalInstance];
      await insert(primary, 1, 'before the restart');
      // The standbys stay up, waiting to stream again: none can connect to a single-user server.
      await primary.stop();
      await primary.start(primary);
      expect(primary.log).toMatch(/ensuring the role monitor/);
      await insert(primary, 2, 'after the restart');
      expect(await bodies(primary)).toEqual(['before the restart', 'after the restart']);
    },
    TEST_TIMEOUT,
  );
});

describe('switchover', () => {
  it(
    'moves the primary without losing a commit; the old primary, restarted, becomes a standby',
    async () => {
      const c = await startCluster();
      const [old, other, target] = c.instances as [LocalInstance, LocalInstance, LocalInstance];
      const ids = Array.from({ length: 100 }, (_, k) => k + 1);
      for (const id of ids) await insert(old, id);

      const r = await switchover(c.nodes, old.node, target.node, c.admin);
      expect(r).toEqual({ newPrimary: target.node, followers: [other.node], restartAsStandby: old.node });
      expect(await present(target, ids)).toBe(ids.length);
      // Fenced: the old primary, still running as a primary, refuses new writes.
      expect(await failsWith(insert(old, 1000))).toBe('25006');
      await insert(target, 101, 'after');
      await hasBody(other, 'after');

      // The operator restarts the old primary's pod with the new record.
      await old.stop();
      await old.start(target);
      expect(old.log).toMatch(/rewinding to pg-2 \(127.0.0.1:\d+\) with pg_rewind/);
      expect(await old.inRecovery()).toBe(true);
      await insert(target, 102, 'rejoined');
      await hasBody(old, 'rejoined');
      expect(await primaries(c)).toEqual(['pg-2']);
    },
    TEST_TIMEOUT,
  );
});
