// Benchmark (a script, never a test): how long the database tier cannot take writes when its primary
// dies, on real postgres processes started by the instance script (the data-plane harness), with the
// operator's own decision code (decidePostgresFailover over pgAdmin).
//
// One run: a fresh primary and two standbys; a client writes in a loop, one row per transaction,
// always to the instance the "operator" last named primary (as the read-write Service routes);
// the primary is killed (kill -9, the whole process tree) at a random moment of that loop; the
// "operator" waits the detection delay, then decides. Measured: from the last write the old primary
// acknowledged to the first write the new one acknowledged, split into
//   in flight   last acknowledgement -> killed      (the loop's pace and the kill itself; not failover)
//   detection   killed -> decision starts           (THE PARAMETER: the operator's failover.delaySeconds
//                                                    plus how it notices; 0 here = noticed at once)
//   decision    ping, fence, read positions, promote (with a checkpoint), point the other standby
//   reconnect   decision done -> first acknowledged write on the new primary
// Run: node bench/postgres-failover.ts   (RUNS=5, DELAYS=0,5 in seconds, SYNC=0 for ANY k)
// npm run bench:real-failover runs it too, beside the same measure on the real node.
import { performance } from 'node:perf_hooks';
import type { Client } from 'pg';
import { decidePostgresFailover } from '../operator/dataplane/postgres/failover.ts';
import { LocalCluster, type LocalInstance } from '../server-tests/support/postgres-local-cluster.ts';
import { median } from './stats.ts';

const RUNS = Number(process.env.RUNS ?? 5);
const DELAYS = (process.env.DELAYS ?? '0,5').split(',').map(Number);
const SYNC = Number(process.env.SYNC ?? 0);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Run = {
  delayS: number;
  inFlight: number;
  detection: number;
  decision: number;
  reconnect: number;
  total: number;
  newPrimary: string;
  writes: number;
  lostAcknowledged: number;
};

export async function oneRun(delayS: number): Promise<Run> {
  const cluster = await LocalCluster.create({ names: ['pg-0', 'pg-1', 'pg-2'], synchronousReplicas: SYNC });
  try {
    await cluster.startAll();
    const old = cluster.get('pg-0');
    await old.query('CREATE TABLE writes (id int PRIMARY KEY)');

    let target: LocalInstance = old;
    let stop = false;
    const acks: { id: number; at: number; on: string }[] = [];
    const writer = (async () => {
      let id = 0;
      while (!stop) {
        const on = target;
        let conn: Client | undefined;
        try {
          conn = await on.connect({ timeoutMs: 1000 });
          while (!stop && on === target) {
            await conn.query('INSERT INTO writes (id) VALUES ($1)', [++id]);
            acks.push({ id, at: performance.now(), on: on.name });
          }
        } catch {
          // The primary is gone, or not yet writable: try again (the Service's current target).
          await sleep(10);
        } finally {
          await conn?.end().catch(() => {});
        }
      }
    })();

    const firstAck = () => acks.length > 0;
    while (!firstAck()) await sleep(10);
    await sleep(300 + Math.random() * 1000);
    await old.kill9();
    // After kill9 returned, every process of the old primary is gone: no acknowledgement after this.
    const killedAt = performance.now();
    await sleep(delayS * 1000);
    const decideAt = performance.now();
    const d = await decidePostgresFailover(cluster.nodes, old.node, cluster.admin, {
      synchronousReplicas: SYNC,
    });
    const decidedAt = performance.now();
    if (d.kind !== 'promoted') throw new Error(`no promotion: ${JSON.stringify(d)}`);
    const promoted = cluster.get(d.newPrimary.name);
    target = promoted;
    while (!acks.some((a) => a.on === promoted.name)) await sleep(1);
    stop = true;
    await writer;

    const lastOld = acks.filter((a) => a.on === old.name).at(-1)!;
    const firstNew = acks.find((a) => a.on === promoted.name)!;
    const acknowledgedOnOld = acks.filter((a) => a.on === old.name).map((a) => a.id);
    const rows = await promoted.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM writes WHERE id = ANY($1)',
      [acknowledgedOnOld],
    );
    return {
      delayS,
      inFlight: killedAt - lastOld.at,
      detection: decideAt - killedAt,
      decision: decidedAt - decideAt,
      reconnect: firstNew.at - decidedAt,
      total: firstNew.at - lastOld.at,
      newPrimary: promoted.name,
      writes: acknowledgedOnOld.length,
      lostAcknowledged: acknowledgedOnOld.length - rows[0]!.n,
    };
  } finally {
    await cluster.destroy();
  }
}

const ms = (x: number) => `${x.toFixed(0).padStart(6)} ms`;

async function main() {
  console.log(
    `Postgres failover, ${RUNS} runs per detection delay, ` +
      (SYNC ? `synchronous (ANY ${SYNC} of 2 standbys)` : 'asynchronous replication') +
      ', 3 instances on 127.0.0.1',
  );
  console.log(
    'total = last ack on the old primary -> first ack on the new one = in flight + detection + decision + reconnect',
  );
  for (const delayS of DELAYS) {
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await oneRun(delayS);
      runs.push(r);
      console.log(
        `  delay ${delayS}s run ${i + 1}: total ${ms(r.total)} | in flight ${ms(r.inFlight)} | ` +
          `detection ${ms(r.detection)} | decision ${ms(r.decision)} | reconnect ${ms(r.reconnect)} | ` +
          `promoted ${r.newPrimary}, ${r.writes} writes acknowledged before, ${r.lostAcknowledged} lost`,
      );
    }
    const m = (f: (r: Run) => number) => ms(median(runs.map(f)));
    console.log(
      `median, detection delay ${delayS}s: total ${m((r) => r.total)} ` +
        `(of which detection ${m((r) => r.detection)}); without detection ${m((r) => r.total - r.detection)} ` +
        `= in flight ${m((r) => r.inFlight)} + decision ${m((r) => r.decision)} + reconnect ${m((r) => r.reconnect)}`,
    );
  }
}

// Also imported by bench/real-failover.ts, which runs the loopback figure beside its own.
if (import.meta.main) await main();
