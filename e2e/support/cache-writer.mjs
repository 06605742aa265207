// A client that writes sessions through the cache's primary Service (CACHE_URL) for a bounded time
// and says which writes were acknowledged, and when. It runs inside a pod of the demo image (its
// /app/node_modules has `redis`), fed on stdin by e2e/support/cache-load.ts after writer-common.mjs.
//
// Modes (WRITER_MODE):
//   write  - one key `<PREFIX>:<id>` per attempt, ids 1, 2, ... for WRITE_SECONDS; a SET counts as
//            acknowledged only when the server answered OK. Prints one JSON line: the acknowledged ids
//            as ranges with the time of each acknowledgement (ms since the epoch, in id order), the
//            attempts, the failed attempts and the longest time between two acknowledgements.
//   stored - prints which of the ids 1..MAX_ID exist, as ranges (read through the same Service).
/* global ranges, writeLoop -- from writer-common.mjs, put before this text */
import { readFileSync } from 'node:fs';
import { createClient } from 'redis';

const url = process.env.CACHE_URL;
if (!url) throw new Error('CACHE_URL is not set');
const PREFIX = process.env.WRITER_PREFIX ?? 'session';

async function connect() {
  const c = createClient({
    url,
    // A killed or held server must fail the attempt quickly; the next connects through the Service
    // again, which the operator repoints.
    disableOfflineQueue: true,
    commandOptions: { timeout: 2000 },
    socket: {
      connectTimeout: 2000,
      reconnectStrategy: false,
      // rediss:// (TLS, the default): the certificate checked against the app's CA (CACHE_CA_FILE,
      // mounted) and the URL's host name.
      ...(process.env.CACHE_CA_FILE ? { ca: readFileSync(process.env.CACHE_CA_FILE, 'utf8') } : {}),
    },
  });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function write(seconds) {
  let client;
  const result = await writeLoop(
    seconds,
    0,
    async (id) => {
      client ??= await connect();
      // Anything but OK (READONLY from a held or demoted server, a reset, a timeout) throws.
      if ((await client.set(`${PREFIX}:${id}`, String(id))) !== 'OK') throw new Error('not OK');
      return true;
    },
    () => {
      client?.destroy();
      client = undefined;
    },
  );
  client?.destroy();
  return result;
}

async function stored(maxId) {
  const c = await connect();
  const have = [];
  for (let first = 1; first <= maxId; first += 500) {
    const ids = Array.from({ length: Math.min(500, maxId - first + 1) }, (_, i) => first + i);
    const values = await c.mGet(ids.map((i) => `${PREFIX}:${i}`));
    ids.forEach((i, n) => values[n] !== null && have.push(i));
  }
  c.destroy();
  return { ids: ranges(have), count: have.length };
}

const mode = process.env.WRITER_MODE ?? 'write';
const result =
  mode === 'stored'
    ? await stored(Number(process.env.MAX_ID))
    : await write(Number(process.env.WRITE_SECONDS ?? '30'));
console.log(JSON.stringify(result));
