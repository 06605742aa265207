// The queue tier (RabbitMQ, amqplib). The web tier publishes through a confirm channel: a publish
// returns only once the broker has taken responsibility for the message (for a quorum queue: a
// majority of its replicas has it on disk). The consumer (consumer.ts) shares the connection setup.
//
// The queues are declared by the broker at boot (quorum queues from spec.queue.queues), so the app
// never declares one: a declare with other arguments would fail, and a typo would create a stray
// queue. Messages are published `mandatory`, so one sent to a queue that does not exist comes back
// and is reported as a 404 instead of vanishing.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import * as amqp from 'amqplib';
import { describeAmqp, type AmqpTarget } from './config.ts';
import { TierError, within } from './http.ts';
import { errorText, type Logger } from './log.ts';

const CONNECT_TIMEOUT_MS = 5000;
const CONFIRM_TIMEOUT_MS = 5000;
/** Seconds between heartbeats: a broker that vanished without closing the socket is noticed in ~2x this. */
export const HEARTBEAT_SECONDS = 10;

/**
 * Connects with a connect timeout and heartbeats; the URL keeps its own query (e.g. a frame_max).
 * With amqps:// the broker's certificate must chain to the target's CA and name its host (amqplib
 * checks the URL's host name).
 */
export async function connectBroker(target: AmqpTarget, clientName: string): Promise<amqp.ChannelModel> {
  const url = new URL(target.url);
  if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(HEARTBEAT_SECONDS));
  return amqp.connect(url.toString(), {
    timeout: CONNECT_TIMEOUT_MS,
    clientProperties: { connection_name: `${clientName} ${hostname()}` },
    ...(target.ca ? { ca: [target.ca] } : {}),
  });
}

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential from `baseMs`, capped at
 * `maxMs`, with jitter down to half, so consumers restarted together do not reconnect in lockstep.
 */
export function backoffMs(attempt: number, baseMs = 500, maxMs = 30_000, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** What the demo publishes: a JSON body with its id, also the AMQP message-id. */
export type DemoMessage = { id: string; payload: unknown; publishedAt: string; publishedBy: string };

export function newMessage(payload: unknown): DemoMessage {
  return { id: randomUUID(), payload, publishedAt: new Date().toISOString(), publishedBy: hostname() };
}

/**
 * The id of a delivered message: its AMQP message-id, else the `id` of its JSON body, else
 * undefined (a message published by someone else; the consumer still acknowledges it).
 */
export function messageIdOf(properties: { messageId?: unknown }, content: Buffer): string | undefined {
  if (typeof properties.messageId === 'string' && properties.messageId) return properties.messageId;
  try {
    const body = JSON.parse(content.toString('utf8')) as { id?: unknown };
    if (typeof body.id === 'string' && body.id) return body.id;
    if (typeof body.id === 'number') return String(body.id);
  } catch {
    // Not JSON.
  }
  return undefined;
}

/** One connection and one confirm channel, opened on first use and again after either is lost. */
export class Publisher {
  readonly target: AmqpTarget;
  readonly #log: Logger;
  readonly #secrets: readonly string[];
  #open: Promise<{ conn: amqp.ChannelModel; ch: amqp.ConfirmChannel }> | undefined;
  /** Message ids the broker returned as unroutable (no such queue), until their confirm arrives. */
  readonly #returned = new Set<string>();
  #closed = false;

  constructor(target: AmqpTarget, log: Logger, secrets: readonly string[]) {
    this.target = target;
    this.#log = log;
    this.#secrets = secrets;
  }

  #channel(): Promise<{ conn: amqp.ChannelModel; ch: amqp.ConfirmChannel }> {
    if (this.#open) return this.#open;
    const opened: Promise<{ conn: amqp.ChannelModel; ch: amqp.ConfirmChannel }> = (async () => {
      const conn = await within(
        'queue',
        CONNECT_TIMEOUT_MS + 1000,
        'connecting to the broker',
        connectBroker(this.target, 'demo-app'),
      );
      const lost = (what: string) => (err?: Error) => {
        if (this.#open === opened) this.#open = undefined;
        // A channel the broker closed (e.g. after an error) takes its connection along: one of each.
        conn.close().catch(() => undefined);
        if (!this.#closed)
          this.#log.throttled('amqp-publisher', 10_000, `broker ${what} lost`, {
            server: describeAmqp(this.target),
            ...(err ? { error: errorText(err, this.#secrets) } : {}),
          });
      };
      conn.on('error', () => undefined); // 'close' follows; handled there
      conn.on('close', lost('connection'));
      conn.on('blocked', (reason: string) =>
        this.#log.warn('broker blocked publishing (resource alarm)', { reason }),
      );
      try {
        const ch = await conn.createConfirmChannel();
        ch.on('error', () => undefined); // 'close' follows
        ch.on('close', lost('channel'));
        ch.on('return', (msg: amqp.Message) => {
          const id: unknown = msg.properties.messageId;
          if (typeof id === 'string') this.#returned.add(id);
        });
        return { conn, ch };
      } catch (err) {
        await conn.close().catch(() => undefined);
        throw err;
      }
    })();
    this.#open = opened;
    // A failed open is forgotten, so the next publish tries again.
    opened.catch(() => {
      if (this.#open === opened) this.#open = undefined;
    });
    return opened;
  }

  /** Publishes a persistent message and resolves when the broker confirmed it; 404 when the queue is unknown. */
  async publish(queue: string, message: DemoMessage): Promise<void> {
    if (this.#closed) throw new TierError('queue', 503, 'shutting down');
    try {
      const { ch } = await this.#channel();
      const confirmed = new Promise<void>((resolve, reject) => {
        ch.sendToQueue(
          queue,
          Buffer.from(JSON.stringify(message)),
          {
            persistent: true,
            mandatory: true,
            messageId: message.id,
            contentType: 'application/json',
            timestamp: Math.floor(Date.now() / 1000),
            appId: 'demo-app',
          },
          (err: unknown) =>
            err ? reject(err instanceof Error ? err : new Error(`nacked: ${String(err)}`)) : resolve(),
        );
      });
      await within('queue', CONFIRM_TIMEOUT_MS, 'waiting for the broker to confirm', confirmed);
    } catch (err) {
      this.#returned.delete(message.id);
      if (err instanceof TierError) throw err;
      throw new TierError('queue', 503, `publishing to ${queue} failed: ${errorText(err, this.#secrets)}`, {
        cause: err,
      });
    }
    // The broker sends basic.return before the confirm, so a returned message is known by now.
    if (this.#returned.delete(message.id))
      throw new TierError('queue', 404, `the broker has no queue ${queue} (spec.queue.queues declares them)`);
  }

  /** Opens the connection and channel if needed (readiness). */
  async ping(): Promise<void> {
    if (this.#closed) throw new TierError('queue', 503, 'shutting down');
    try {
      await this.#channel();
    } catch (err) {
      if (err instanceof TierError) throw err;
      throw new TierError('queue', 503, `connecting to the broker failed: ${errorText(err, this.#secrets)}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const open = this.#open;
    this.#open = undefined;
    if (!open) return;
    await open
      .then(
        ({ conn }) => within('queue', 2000, 'closing the broker connection', conn.close()),
        () => undefined,
      )
      .catch(() => undefined);
  }
}
