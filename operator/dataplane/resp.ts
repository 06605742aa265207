// A minimal RESP2 client: enough for the operator to administer cache nodes (INFO, REPLICAOF, PING)
// and for the data-plane tests to read and write keys, without a Redis client dependency. One
// connection, one command in flight at a time, strings in and out.
import { connect, type Socket } from 'node:net';

/** An error reply (`-ERR ...`). `code` is its first word: ERR, NOAUTH, OOM, NOREPLICAS, READONLY... */
export class RespError extends Error {
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = 'RespError';
    this.code = /^\S+/.exec(message)?.[0] ?? 'ERR';
  }
}

/** A reply: simple strings and bulk strings are strings, nil is null, errors inside arrays are values. */
export type RespValue = string | number | null | RespError | RespValue[];

/** The wire form of a command. Lengths are in bytes, not characters. */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

/**
 * Parses one reply starting at `start`; undefined when the buffer does not hold all of it yet.
 * Re-parsing from the start on every chunk is quadratic, which is fine for admin-sized replies.
 */
export function parseReply(buf: Buffer, start = 0): { value: RespValue; end: number } | undefined {
  const lineEnd = buf.indexOf('\r\n', start);
  if (lineEnd < 0) return undefined;
  const type = buf[start];
  const line = buf.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case 0x2b /* + */:
      return { value: line, end: next };
    case 0x2d /* - */:
      return { value: new RespError(line), end: next };
    case 0x3a /* : */:
      return { value: Number(line), end: next };
    case 0x24 /* $ */: {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case 0x2a /* * */: {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, end);
        if (!item) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`RESP protocol error: unexpected type byte ${type} in ${JSON.stringify(line)}`);
  }
}

export type RespOptions = {
  host: string;
  port: number;
  /** Sent with AUTH right after connecting. */
  password?: string;
  /** Bounds connecting and every command; a timed-out connection is closed (its state is unknown). */
  timeoutMs?: number;
};

type Pending = { resolve: (v: RespValue) => void; reject: (e: Error) => void };

export class RespClient {
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  readonly #where: string;
  #buffer: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed: Error | undefined;

  private constructor(socket: Socket, timeoutMs: number, where: string) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    this.#where = where;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new Error(`${where}: connection error`, { cause: err })));
    socket.on('close', () => this.#fail(new Error(`${where}: connection closed`)));
  }

  /** Connects (and authenticates when a password is given). */
  static async connect(o: RespOptions): Promise<RespClient> {
    const timeoutMs = o.timeoutMs ?? 5000;
    const where = `redis ${o.host}:${o.port}`;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: o.host, port: o.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`${where}: connect timed out after ${timeoutMs}ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${where}: cannot connect`, { cause: err }));
      });
    });
    socket.setNoDelay(true);
    const client = new RespClient(socket, timeoutMs, where);
    if (o.password !== undefined) {
      try {
        await client.command(['AUTH', o.password]);
      } catch (err) {
        client.close();
        throw err;
      }
    }
    return client;
  }

  /** Sends one command and resolves with its reply; an error reply rejects with a RespError. */
  command(args: readonly string[]): Promise<RespValue> {
    // Serialised: replies come back in order, and one outstanding request keeps the parser simple.
    const run = this.#queue.then(() => this.#send(args));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.#closed ??= new Error(`${this.#where}: client closed`);
    this.#socket.destroy();
  }

  #send(args: readonly string[]): Promise<RespValue> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The reply may still arrive and would be taken for the next command's: drop the connection.
        this.#fail(new Error(`${this.#where}: ${args[0]} timed out after ${this.#timeoutMs}ms`));
        this.#socket.destroy();
      }, this.#timeoutMs);
      this.#pending = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#socket.write(encodeCommand(args));
    });
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    let reply;
    try {
      reply = parseReply(this.#buffer);
    } catch (err) {
      this.#fail(err as Error);
      this.#socket.destroy();
      return;
    }
    if (!reply) return;
    this.#buffer = this.#buffer.subarray(reply.end);
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) {
      this.#fail(new Error(`${this.#where}: unexpected reply without a command`));
      this.#socket.destroy();
    } else if (reply.value instanceof RespError) pending.reject(reply.value);
    else pending.resolve(reply.value);
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(err);
  }
}

/** Connects, runs `fn`, and closes whatever happens. */
export async function withRespClient<T>(o: RespOptions, fn: (c: RespClient) => Promise<T>): Promise<T> {
  const client = await RespClient.connect(o);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
