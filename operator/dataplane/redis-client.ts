// Connections to the cache's servers (Valkey, or Redis) through node-redis, the maintained client,
// set up the way the operator and the tests use them: one connection per use, never reconnecting,
// no offline queue, and a deadline on connecting and on every command, so a node that stalls fails
// the call instead of holding it. A refused command rejects with node-redis's ErrorReply, whose
// message starts with the server's error code (`NOAUTH ...`, `OOM ...`).
import { createClient, ErrorReply } from 'redis';

export { ErrorReply };

export type RedisConnection = {
  host: string;
  port: number;
  /** AUTH as this user (default: the `default` user). */
  username?: string;
  /** AUTH with this password. */
  password?: string;
  /** For connecting and for each command. Default 2000 ms. */
  timeoutMs?: number;
  /** Over TLS, the server's certificate checked against `ca` and the name `servername`. */
  tls?: { ca: string; servername: string };
};

export async function connectRedis(o: RedisConnection) {
  const timeoutMs = o.timeoutMs ?? 2000;
  const client = createClient({
    socket: {
      host: o.host,
      port: o.port,
      connectTimeout: timeoutMs,
      reconnectStrategy: false,
      ...(o.tls ? { tls: true as const, ca: o.tls.ca, servername: o.tls.servername } : {}),
    },
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    // RESP2: INFO and the other replies are plain strings, as every server version sends them.
    RESP: 2,
    disableOfflineQueue: true,
    // No CLIENT SETINFO at connect: a server older than 7.2 refuses it, and nothing here needs it.
    disableClientInfo: true,
    commandOptions: { timeout: timeoutMs },
  });
  // A broken connection also rejects the pending call, which is where the caller hears of it.
  client.on('error', () => {});
  await client.connect();
  return client;
}

export type RedisClient = Awaited<ReturnType<typeof connectRedis>>;

/** Runs `fn` on a fresh connection and closes it, also when `fn` fails. */
export async function withRedis<T>(o: RedisConnection, fn: (c: RedisClient) => Promise<T>): Promise<T> {
  const client = await connectRedis(o);
  try {
    return await fn(client);
  } finally {
    client.destroy();
  }
}

/** The server's error code of a refused command (`NOAUTH`, `OOM`, `WRONGPASS`), or undefined. */
export const errorCode = (err: unknown): string | undefined =>
  err instanceof ErrorReply ? err.message.split(' ', 1)[0] : undefined;
