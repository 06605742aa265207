// The demo app's queue consumer: `node dist/examples/demo-app/consumer.js` in the image, or
// `node examples/demo-app/consumer.ts` from a checkout. The consumers tier runs it with QUEUE_NAME and
// QUEUE_URL (plus the rest of the connection Secret) and scales it on the queue's depth.
//
// Each message is acknowledged only after it was processed, and at most PREFETCH are in hand at once,
// so a consumer that dies loses nothing: the broker redelivers what it had not acknowledged.
// Processing here = add the message id to the cache set `demo:consumed:<queue>` (when CACHE_URL is
// set; the web tier's GET /queue/:name/consumed/:id reads it) and log one JSON line with the id.
// A broker that goes away is reconnected to with exponential backoff; SIGTERM stops consuming,
// finishes the messages in hand, closes, and exits 0. With HEALTH_PORT, GET /healthz on it answers
// 200 while a broker session is open and 503 otherwise (the consumers tier's healthCheck probes it).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type * as amqp from 'amqplib';
import { ConsumedLog, RedisTier } from './cache.ts';
import { consumerConfig, describeAmqp, describeRedis, type ConsumerConfig } from './config.ts';
import { createLogger, errorText, type Logger } from './log.ts';
import { backoffMs, connectBroker, messageIdOf } from './queue.ts';

/** After a failed message, wait this long before handing it back, so a down cache is not hammered. */
const RETRY_DELAY_MS = 1000;

type Session = { conn: amqp.ChannelModel; ch: amqp.Channel; consumerTag: string };

class Consumer {
  readonly #config: ConsumerConfig;
  readonly #log: Logger;
  readonly #redis: RedisTier | undefined;
  readonly #consumed: ConsumedLog | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #session: Session | undefined;
  #stopping = false;
  /** Wakes the reconnect loop's sleep when we stop. */
  #wake: (() => void) | undefined;
  #count = 0;

  /** A broker session is open and we are not stopping: what the health endpoint reports. */
  get consuming(): boolean {
    return this.#session !== undefined && !this.#stopping;
  }

  constructor(config: ConsumerConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.#redis = config.cache && new RedisTier(config.cache, 'cache', log, config.secrets);
    this.#consumed = this.#redis && new ConsumedLog(this.#redis);
  }

  /** Consumes until stop(): one broker session at a time, reconnecting with backoff in between. */
  async run(): Promise<void> {
    const { queueName, broker, cache, prefetch } = this.#config;
    this.#log.info('starting', {
      queue: queueName,
      broker: describeAmqp(broker),
      cache: cache ? describeRedis(cache) : null,
      prefetch,
    });
    let attempt = 0;
    while (!this.#stopping) {
      let connected = false;
      try {
        await this.#consume(() => {
          connected = true;
          attempt = 0;
        });
      } catch (err) {
        this.#log.throttled('amqp-connect', 10_000, 'broker session failed', {
          error: errorText(err, this.#config.secrets),
        });
      }
      if (this.#stopping) break;
      const delay = backoffMs(attempt++);
      this.#log.info('reconnecting', { inMs: delay, afterConnected: connected });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** One broker session: resolves when its connection closes (or rejects when it cannot be opened). */
  async #consume(onConnected: () => void): Promise<void> {
    const { queueName, broker, prefetch } = this.#config;
    const conn = await connectBroker(broker, `demo-consumer ${queueName}`);
    const closed = new Promise<Error | undefined>((resolve) => conn.on('close', resolve));
    conn.on('error', () => undefined); // 'close' follows
    try {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      // The broker closed the channel (e.g. the queue was deleted): end the session, reconnect.
      ch.on('close', () => void conn.close().catch(() => undefined));
      await ch.prefetch(prefetch);
      const { consumerTag } = await ch.consume(
        queueName,
        (msg) => {
          // null: the broker cancelled us (the queue went away); reconnect, which checks it again.
          if (msg === null) {
            void conn.close().catch(() => undefined);
            return;
          }
          const done = this.#handle(ch, msg).finally(() => this.#inFlight.delete(done));
          this.#inFlight.add(done);
        },
        { noAck: false },
      );
      this.#session = { conn, ch, consumerTag };
      onConnected();
      this.#log.info('consuming', { queue: queueName, prefetch });
      // stop() came while we were connecting: it found no session to close, so close this one.
      if (this.#stopping) {
        await this.#cancel();
        await conn.close().catch(() => undefined);
      }
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
    const err = await closed;
    this.#session = undefined;
    if (!this.#stopping)
      this.#log.warn('broker connection lost', err ? { error: errorText(err, this.#config.secrets) } : {});
  }

  async #handle(ch: amqp.Channel, msg: amqp.ConsumeMessage): Promise<void> {
    const queue = this.#config.queueName;
    const id = messageIdOf(msg.properties, msg.content);
    if (this.#stopping) {
      // Arrived after we asked to stop: hand it straight back for another consumer.
      settle(() => ch.nack(msg, false, true));
      return;
    }
    try {
      if (this.#config.workMs > 0) await new Promise((r) => setTimeout(r, this.#config.workMs));
      if (id !== undefined && this.#consumed) await this.#consumed.add(queue, id);
      // After the record: a crash between the two redelivers the message, and a set ignores the repeat.
      if (!settle(() => ch.ack(msg))) return;
      this.#count++;
      this.#log.info('consumed', { queue, id: id ?? null, redelivered: msg.fields.redelivered });
    } catch (err) {
      this.#log.warn('processing failed; handing the message back', {
        queue,
        id: id ?? null,
        error: errorText(err, this.#config.secrets),
      });
      await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      settle(() => ch.nack(msg, false, true));
    }
  }

  async #cancel(): Promise<void> {
    const s = this.#session;
    if (s) await s.ch.cancel(s.consumerTag).catch(() => undefined);
  }

  /** Stops consuming, waits for the messages in hand (bounded), closes everything. */
  async stop(signal: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#wake?.();
    this.#log.info('shutting down', { signal, inFlight: this.#inFlight.size });
    await this.#cancel();
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      Promise.allSettled([...this.#inFlight]).then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.#config.shutdownTimeoutMs))),
    ]);
    clearTimeout(timer);
    if (late)
      this.#log.warn('messages still in hand at the deadline; the broker will redeliver them', {
        inFlight: this.#inFlight.size,
      });
    const s = this.#session;
    await s?.ch.close().catch(() => undefined);
    await s?.conn.close().catch(() => undefined);
    await this.#redis?.close();
    this.#log.info('stopped', { consumed: this.#count });
  }
}

/** GET /healthz: 200 while `consuming()`, 503 otherwise; anything else 404. */
function healthServer(
  port: number,
  consuming: () => boolean,
  log: Logger,
  secrets: readonly string[],
): Server {
  const server = createServer((req, res) => {
    const ok = req.method === 'GET' && req.url === '/healthz';
    res.statusCode = !ok ? 404 : consuming() ? 200 : 503;
    res.end();
  });
  server.on('error', (err) => log.error('health endpoint failed', { error: errorText(err, secrets) }));
  server.listen(port);
  return server;
}

/** Acks or nacks; false when the channel is already gone (the broker then redelivers the message). */
function settle(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch {
    return false;
  }
}

function main(): void {
  let config: ConsumerConfig;
  try {
    config = consumerConfig(process.env, (path) => readFileSync(path, 'utf8'));
  } catch (err) {
    createLogger('demo-consumer', []).error('bad configuration', { error: (err as Error).message });
    process.exitCode = 2;
    return;
  }
  const log = createLogger('demo-consumer', config.secrets);
  process.on('unhandledRejection', (err) =>
    log.error('unhandled rejection', { error: errorText(err, config.secrets) }),
  );
  process.on('uncaughtException', (err) =>
    log.error('uncaught exception', { error: errorText(err, config.secrets) }),
  );

  const consumer = new Consumer(config, log);
  const running = consumer.run();
  const health =
    config.healthPort && healthServer(config.healthPort, () => consumer.consuming, log, config.secrets);
  const stop = async (signal: string) => {
    await consumer.stop(signal);
    if (health) health.close();
    // The loop ends once its session is closed; a connect under way ends within its own timeout.
    await Promise.race([running, new Promise((r) => setTimeout(r, 10_000))]);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main();
