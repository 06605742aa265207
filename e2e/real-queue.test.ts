// The queue tier on the real node: a 3-broker RabbitMQ cluster in pods with quorum queues of 3
// members, under the operator running in the cluster. One broker pod is killed while a publisher
// with confirms keeps publishing: no confirmed message is lost. Then the consumers, scaled on the
// depth the operator reads from the real broker (over https, checking its certificate), wake from
// zero, the demo consumer drains the backlog, and they go back to zero after the cooldown. The
// brokers serve TLS only (spec.queue.tls, the default): a plaintext client is refused, and a
// certificate the operator issues again is served under publishing with no broker restarted.
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeSecret } from './support/apps.ts';
import { eventually, json, kubectl } from './support/kube.ts';
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
  eventsOf,
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
/**
 * Publishing while a renewed certificate reaches the brokers: the kubelet's Secret refresh (up to
 * about a minute) plus Erlang's check of the files (20 s), with room to spare.
 */
const RENEWAL_WRITE_SECONDS = 120;
/** Publishing while the app's queue password rotates: the switch takes a pass or two. */
const ROTATION_WRITE_SECONDS = 30;

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

/**
 * Runs `body` (JavaScript with `amqp`, `tls`, `ca` (QUEUE_CA_FILE's text) and `url` (QUEUE_URL) in
 * scope) in the writer pod, which has the app's connection Secret as its environment and the CA
 * mounted; its stdout, trimmed.
 */
function inWriter(body: string): string {
  const script =
    "const amqp=require('/app/node_modules/amqplib');const tls=require('tls');" +
    "const ca=require('fs').readFileSync(process.env.QUEUE_CA_FILE,'utf8');const url=new URL(process.env.QUEUE_URL);" +
    `(async()=>{${body}})().catch(e=>{console.log('error: '+(e.code||e.message));process.exit(1)})`;
  const r = execIn(ns, WRITER, ['node', '-e', script]);
  return r.stdout.trim() || r.stderr.trim();
}

/** What an AMQP connection from the writer pod to `target` meets: `connected`, or the error's code. */
const amqpOutcome = (target: string, options: string) =>
  inWriter(
    `try{const c=await amqp.connect(${target},{timeout:5000,...${options}});c.on('error',()=>{});` +
      "await c.close();console.log('connected')}catch(e){console.log(e.code||e.message)}",
  );

/** The serial of the certificate each broker pod serves a new handshake on AMQP, by pod. */
function servedSerials(): Record<string, string> {
  const pods = podStates(ns, BROKERS).map((p) => p.name);
  const hosts = pods.map((p) => `${p}.${APP}-mq-headless.${ns}.svc`);
  const out = inWriter(
    `for(const host of ${JSON.stringify(hosts)}){const serial=await new Promise(r=>{` +
      'const s=tls.connect({host,port:+url.port,ca,servername:host},()=>{r(s.getPeerX509Certificate().serialNumber);s.destroy()});' +
      "s.on('error',e=>r('error '+(e.code||e.message)))});console.log(host.split('.')[0]+' '+serial)}",
  );
  return Object.fromEntries(out.split('\n').map((l) => l.split(' ', 2) as [string, string]));
}

const secretSerial = (name: string) =>
  new X509Certificate(Buffer.from(json<any>(['get', 'secret', name, '-n', ns]).data['tls.crt'], 'base64'))
    .serialNumber;

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

  it('runs the Erlang distribution between the brokers over TLS, and a CLI run in the pod with it', () => {
    for (const pod of podStates(ns, BROKERS).map((p) => p.name)) {
      const r = execIn(ns, pod, ['rabbitmqctl', '-q', 'eval', 'init:get_argument(proto_dist).']);
      expect({ pod, out: r.stdout.trim() }).toEqual({ pod, out: '{ok,[["inet_tls"]]}' });
    }
  });

  it("refuses a plaintext client; the app's amqps:// URL gets in only by checking the chain and the name", () => {
    expect(amqpOutcome("url.href.replace(/^amqps:/,'amqp:')", '{}')).not.toBe('connected');
    expect(amqpOutcome('url.href', '{ca:[ca]}')).toBe('connected');
    // Without the app's CA the broker's certificate is not trusted (it sends its CA along).
    expect(amqpOutcome('url.href', '{}')).toBe('SELF_SIGNED_CERT_IN_CHAIN');
  });

  it('serves a certificate the operator issues again on every broker under publishing: nothing fails, no broker restarts', async () => {
    const uids = () =>
      kubectl(['get', 'pods', '-n', ns, '-l', BROKERS, '-o', 'jsonpath={.items[*].metadata.uid}']);
    const before = uids();
    // Container restarts too: the liveness probe (an HTTPS GET of the management listener) runs
    // four times per broker in this window, under publishing, and must never fail three in a row.
    const restarts = () => podStates(ns, BROKERS).map((p) => `${p.name} ${p.containers[0]!.restarts}`);
    const restartsBefore = restarts();
    const old = secretSerial(`${APP}-mq-tls`);
    expect(Object.values(servedSerials())).toEqual([old, old, old]);
    const load = publishFor(ns, WRITER, LEDGER, RENEWAL_WRITE_SECONDS);
    // The manual way to rotate (docs): delete the Secret; the operator issues a new one from the same CA.
    kubectl(['delete', 'secret', `${APP}-mq-tls`, '-n', ns]);
    const deletedAt = Date.now();
    const renewed = await eventually(
      'the new certificate served by every broker',
      () => {
        const served = Object.values(servedSerials());
        return served.length === 3 && served.every((s) => s === served[0] && s !== old) && served[0];
      },
      (RENEWAL_WRITE_SECONDS - 10) * 1000,
      3000,
    );
    const servedAfter = Math.round((Date.now() - deletedAt) / 1000);
    const w = await load;
    console.log(
      `renewed broker certificate served by all 3 brokers ${servedAfter} s after the Secret was deleted; ` +
        `${w.ackedCount} publishes confirmed meanwhile, ${w.failed} failed, longest gap ${w.longestGapMs} ms`,
    );
    expect(renewed).toBe(secretSerial(`${APP}-mq-tls`));
    expect(w.failed).toBe(0);
    expect(uids()).toBe(before);
    expect(restarts()).toEqual(restartsBefore);
    const drained = await drainQueue(ns, WRITER, LEDGER);
    expect(lost(w.acked, drained.ids)).toEqual([]);
  }, 400_000);

  // Last: the writer pod keeps the URL it started with, whose user is gone afterwards.
  it("rotates the app's queue password under publishing: the publisher is never cut off, the old user goes once its connection closed, no broker restarts", async () => {
    const uids = () =>
      kubectl(['get', 'pods', '-n', ns, '-l', BROKERS, '-o', 'jsonpath={.items[*].metadata.uid}']);
    const restarts = () => podStates(ns, BROKERS).map((p) => `${p.name} ${p.containers[0]!.restarts}`);
    const [before, restartsBefore] = [uids(), restarts()];
    const queueUrl = () =>
      decodeSecret(json<any>(['get', 'secret', `${APP}-connection`, '-n', ns])).QUEUE_URL!;
    const oldUrl = queueUrl();
    const load = publishFor(ns, WRITER, LEDGER, ROTATION_WRITE_SECONDS);
    await sleep(2000);
    kubectl([
      'patch',
      'secret',
      `${APP}-mq-credentials`,
      '-n',
      ns,
      '--type',
      'merge',
      '-p',
      JSON.stringify({ stringData: { password: 'rotated queue/1' } }),
    ]);
    const patchedAt = Date.now();
    const newUrl = await eventually(
      'QUEUE_URL to name the other user',
      () => queueUrl() !== oldUrl && queueUrl(),
      60_000,
      1000,
    );
    const switchedAfter = Math.round((Date.now() - patchedAt) / 1000);
    expect(new URL(newUrl).username).toBe(`${new URL(oldUrl).username}-alt`);
    expect(decodeURIComponent(new URL(newUrl).password)).toBe('rotated queue/1');
    // Both users get in while the app's pods roll; the publisher keeps its connection.
    expect(amqpOutcome(JSON.stringify(newUrl), '{ca:[ca]}')).toBe('connected');
    expect(amqpOutcome(JSON.stringify(oldUrl), '{ca:[ca]}')).toBe('connected');
    const w = await load;
    // The publisher's connection closed with its run: then the old user goes.
    await eventually(
      'the old user refused',
      () => amqpOutcome(JSON.stringify(oldUrl), '{ca:[ca]}').includes('ACCESS_REFUSED'),
      60_000,
      2000,
    );
    const retiredAfter = Math.round((Date.now() - patchedAt) / 1000);
    console.log(
      `queue login rotated under publishing: the URL switched ${switchedAfter} s after the patch, the old user ` +
        `was deleted ${retiredAfter} s after it (the publisher ran ${ROTATION_WRITE_SECONDS} s); ` +
        `${w.ackedCount} publishes confirmed, ${w.failed} failed, longest gap ${w.longestGapMs} ms`,
    );
    expect(w.failed).toBe(0);
    // One of each; the apiserver lists Events in no particular order.
    expect(
      eventsOf(ns, APP)
        .filter((e) => e.startsWith('CredentialsRotat'))
        .sort(),
    ).toEqual([
      expect.stringMatching(
        /^CredentialsRotated: Secret orders-mq-credentials: the previous queue login is deleted/,
      ),
      expect.stringMatching(/^CredentialsRotating: Secret orders-mq-credentials key password changed/),
    ]);
    expect(uids()).toBe(before);
    expect(restarts()).toEqual(restartsBefore);
    const drained = await drainQueue(ns, WRITER, LEDGER, newUrl);
    expect(lost(w.acked, drained.ids)).toEqual([]);
  }, 300_000);
});
