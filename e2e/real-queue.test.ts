// The queue tier on the real node: a 3-broker RabbitMQ cluster in pods with quorum queues of 3
// members, under the operator running in the cluster. One broker pod is killed while a publisher
// with confirms keeps publishing: no confirmed message is lost. Then the consumers, scaled on the
// depth the operator reads from the real broker, wake from zero, the demo consumer drains the
// backlog, and they go back to zero after the cooldown.
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, kubectl } from './support/kube.ts';
import { lost } from './support/pod-writer.ts';
import {
  consumerReplicas,
  consumerStatus,
  drainQueue,
  publishCount,
  publishFor,
} from './support/queue-load.ts';
import {
  allPodsReady,
  appWithWriter,
  deleteNamespaceAndWait,
  describeReal,
  execIn,
  localApp,
  podStates,
  tierPods,
  WRITER,
  WRITER_CLIENT,
} from './support/real-node.ts';

const APP = 'orders';
const BROKERS = tierPods(APP, 'queue');
const CONSUMERS = tierPods(APP, 'consumer');
/** Published to by the test only, never consumed: what the broker confirmed must all be there. */
const LEDGER = 'ledger';
/** The demo consumer's queue. */
const TASKS = 'tasks';
const WRITE_SECONDS = 45;
const BACKLOG = 600;
const COOLDOWN_SECONDS = 15;

const app = () =>
  localApp(APP, {
    queue: {
      replicas: 3,
      queues: [{ name: LEDGER }, { name: TASKS }],
      storage: { size: '1Gi' },
      allowedClients: [WRITER_CLIENT],
    },
    consumers: [
      {
        name: 'worker',
        image: 'placeholder',
        queue: TASKS,
        autoscaling: {
          minReplicas: 0,
          maxReplicas: 2,
          messagesPerReplica: 400,
          cooldownSeconds: COOLDOWN_SECONDS,
          pollIntervalSeconds: 2,
          scaleDownStabilizationSeconds: 0,
        },
        // The demo consumer serves GET /healthz on HEALTH_PORT (set from this by localize).
        healthCheck: { port: 8081, periodSeconds: 2 },
      },
    ],
  });

let ns: string;
beforeAll(async () => {
  ns = await appWithWriter('real-queue', app(), BROKERS, 3);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

/**
 * A quorum queue's members as its Raft cluster reports them (rabbitmq-queues quorum_status, which
 * fails for any other kind of queue): each member's pod and state. (`rabbitmqctl list_queues` with
 * `leader` or `members` waits out a 60 s timeout on 3.10 in these pods; this asks the queue itself.)
 */
function membersOf(queue: string): { pod: string; state: string }[] {
  const pod = podStates(ns, BROKERS).find((p) => p.ready)!.name;
  const r = execIn(ns, pod, ['rabbitmq-queues', 'quorum_status', queue, '--formatter', 'json']);
  if (!r.ok) throw new Error(`rabbitmq-queues quorum_status ${queue} failed in ${pod}: ${r.stderr}`);
  // Nodes are rabbit@<pod>.<headless Service>...: the pod is the host's first label.
  return (JSON.parse(r.stdout) as Record<string, string>[]).map((m) => ({
    pod: m['Node Name']!.split('@')[1]!.split('.')[0]!,
    state: m['Raft State']!,
  }));
}
const leaderOf = (queue: string) => membersOf(queue).find((m) => m.state === 'leader')?.pod;

const worker = () => consumerStatus(ns, APP, 'worker');
const replicasOf = () => consumerReplicas(ns, APP, 'worker');

describeReal('the queue tier on the real node', () => {
  it('runs 3 brokers with every quorum queue on all three, one leading', () => {
    for (const queue of [LEDGER, TASKS]) {
      const members = membersOf(queue);
      expect({ queue, pods: members.map((m) => m.pod).sort() }).toEqual({
        queue,
        pods: podStates(ns, BROKERS)
          .map((p) => p.name)
          .sort(),
      });
      expect({ queue, states: members.map((m) => m.state).sort() }).toEqual({
        queue,
        states: ['follower', 'follower', 'leader'],
      });
    }
  });

  it("loses no confirmed message when the queue's leader broker is killed under publishing", async () => {
    const victim = leaderOf(LEDGER)!;
    expect(victim).toBeDefined();
    const load = publishFor(ns, WRITER, LEDGER, WRITE_SECONDS);
    await sleep(8000);
    const killedAt = Date.now();
    kubectl(['delete', 'pod', '-n', ns, victim, '--grace-period=0', '--force']);
    const w = await load;
    // The StatefulSet brings the broker back on its volume, and it rejoins the cluster.
    await allPodsReady(ns, BROKERS, 3);
    const drained = await drainQueue(ns, WRITER, LEDGER);
    const missing = lost(w.acked, drained.ids);
    const after = w.at.filter((t) => t > killedAt).length;
    console.log(
      `broker ${victim} (leader of ${LEDGER}) killed: ${w.ackedCount} confirmed (${after} after the kill), ` +
        `${w.failed} failed, longest gap ${w.longestGapMs} ms; ${drained.count} on the queue ` +
        `(${drained.duplicates} twice), ${missing.length} confirmed but missing`,
    );
    expect(missing).toEqual([]);
    expect(after).toBeGreaterThan(0);
    // Only unconfirmed attempts may add to what the broker holds.
    expect(drained.count).toBeLessThanOrEqual(w.attempts);
    // A leader again, with all three members back.
    await eventually('a leader and two followers', () => {
      const states = membersOf(LEDGER)
        .map((m) => m.state)
        .sort();
      return states.join() === 'follower,follower,leader';
    });
  });

  it('wakes the consumer from zero on the real depth, drains the backlog, and sleeps again after the cooldown', async () => {
    await eventually('the consumer at zero on an empty queue', () => replicasOf() === 0, 180_000);
    const published = await publishCount(ns, WRITER, TASKS, BACKLOG);
    expect(published.confirmed).toBe(BACKLOG);
    const publishedAt = Date.now();
    const woke = await eventually(
      'a decision on the backlog',
      () => {
        const d = worker()?.lastScale;
        return d && Date.parse(d.time) >= publishedAt - 1000 && d.toReplicas > 0 && d;
      },
      120_000,
      500,
    );
    expect(woke.reason).toBe('WakeFromZero');
    const [first] = await allPodsReady(ns, CONSUMERS);
    const readyAt = Date.now();
    await eventually('the backlog drained', () => worker()?.lastDecision?.queueDepth === 0, 180_000);
    const drainedAt = Date.now();
    // While the queue is empty and the cooldown runs, the operator says it waits.
    const reasons = new Set<string>();
    await eventually(
      'the consumer back at zero',
      () => {
        reasons.add(worker()?.lastDecision?.reason);
        return replicasOf() === 0 && podStates(ns, CONSUMERS).length === 0;
      },
      180_000,
      500,
    );
    const slept = worker()!.lastScale;
    console.log(
      `backlog of ${BACKLOG}: decision ${Date.parse(woke.time) - publishedAt} ms after the last confirm ` +
        `(to ${woke.toReplicas}, depth ${woke.queueDepth}), first consumer ${first!.name} ready ${readyAt - publishedAt} ms after it; ` +
        `drained ${drainedAt - publishedAt} ms after it; back to zero ${Date.now() - drainedAt} ms after the drain`,
    );
    expect(slept).toMatchObject({ reason: 'ScaleToZero', toReplicas: 0, queueDepth: 0 });
    expect(reasons).toContain('CooldownBeforeZero');
  });
});
