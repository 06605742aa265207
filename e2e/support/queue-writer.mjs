// A publisher with confirms, through the queue's Service (QUEUE_URL from the app's connection
// Secret), that says which messages the broker confirmed, and when. It runs inside a pod of the demo
// image (its /app/node_modules has `amqplib`), fed on stdin by e2e/support/queue-load.ts after
// writer-common.mjs.
//
// Modes (WRITER_MODE), on the queue WRITER_QUEUE:
//   write   - one persistent message per attempt, ids 1, 2, ... for WRITE_SECONDS; a message counts
//             as acknowledged only when the broker confirmed it (for a quorum queue: once a majority
//             of its members wrote it). A nack, a closed channel or no confirm within 5 s is a failed
//             attempt (its outcome unknown), and the next one reconnects. Prints one JSON line as
//             writeLoop says.
//   publish - COUNT messages as fast as confirms allow, then prints how many were confirmed.
//   drain   - takes every message off the queue (acknowledged) until it stays empty for 3 s, and
//             prints their ids as ranges, with how many came more than once.
/* global ranges, writeLoop, sleep -- from writer-common.mjs, put before this text */
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';

const url = process.env.QUEUE_URL;
// amqps:// (TLS, the default): the broker's certificate checked against the app's CA (QUEUE_CA_FILE,
// mounted from <app>-ca-cert) and its name against the URL's host.
const tls = process.env.QUEUE_CA_FILE ? { ca: [readFileSync(process.env.QUEUE_CA_FILE, 'utf8')] } : {};
if (!url) throw new Error('QUEUE_URL is not set');
const QUEUE = process.env.WRITER_QUEUE;
const CONFIRM_TIMEOUT_MS = 5000;

async function open() {
  const conn = await amqp.connect(url, { timeout: 3000, ...tls });
  conn.on('error', () => {});
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  return { conn, ch };
}

const close = (s) => void s?.conn.close().catch(() => {});

/** Publishes one message and resolves once the broker confirmed it; rejects on a nack, a loss or no answer. */
function publish(s, id) {
  return new Promise((resolve, reject) => {
    const lostChannel = () => done(new Error('channel closed'));
    const timer = setTimeout(() => done(new Error('no confirm')), CONFIRM_TIMEOUT_MS);
    function done(err) {
      clearTimeout(timer);
      s.ch.off('close', lostChannel);
      if (err) reject(err);
      else resolve(true);
    }
    s.ch.once('close', lostChannel);
    s.ch.sendToQueue(QUEUE, Buffer.from(String(id)), { persistent: true, messageId: String(id) }, done);
  });
}

async function write(seconds) {
  let s;
  const result = await writeLoop(
    seconds,
    0,
    async (id) => {
      s ??= await open();
      return publish(s, id);
    },
    () => {
      close(s);
      s = undefined;
    },
  );
  close(s);
  return result;
}

async function publishCount(count) {
  const s = await open();
  for (let id = 1; id <= count; id++) s.ch.sendToQueue(QUEUE, Buffer.from(String(id)), { persistent: true });
  await s.ch.waitForConfirms();
  close(s);
  return { confirmed: count };
}

async function drain() {
  const s = await open();
  const seen = new Set();
  let duplicates = 0;
  let quietSince = Date.now();
  // Bounded: a queue that never empties stops this after two minutes.
  const deadline = Date.now() + 120_000;
  while (Date.now() - quietSince < 3000 && Date.now() < deadline) {
    const m = await s.ch.get(QUEUE, { noAck: true });
    if (!m) {
      await sleep(100);
      continue;
    }
    quietSince = Date.now();
    const id = Number(m.content.toString());
    if (seen.has(id)) duplicates += 1;
    seen.add(id);
  }
  close(s);
  return { ids: ranges([...seen].sort((a, b) => a - b)), count: seen.size, duplicates };
}

const mode = process.env.WRITER_MODE ?? 'write';
const result =
  mode === 'drain'
    ? await drain()
    : mode === 'publish'
      ? await publishCount(Number(process.env.COUNT))
      : await write(Number(process.env.WRITE_SECONDS ?? '30'));
console.log(JSON.stringify(result));
