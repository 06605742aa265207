// The management API client against a fake HTTP server on loopback that answers as RabbitMQ does
// (the shapes were taken from rabbitmq-server 3.10; server-tests/queue.test.ts runs the real one).
import { eventually } from '../../../e2e/support/eventually.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { freePort } from '../../../e2e/support/free-port.ts';
import { issueCa, issueServerCert, type KeyPair } from '../../tls/certificates.ts';
import { BrokerApiError, brokerAdmin } from './admin.ts';

const USER = 'ops';
const PASSWORD = 'pa:ss/wörd';

type Seen = { method: string; url: string; authorization?: string; body: string };
type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server;
let handler: Handler;
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, authorization: req.headers.authorization, body };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => (seen.length = 0));

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const admin = (timeoutMs?: number) =>
  brokerAdmin({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    user: USER,
    password: PASSWORD,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
/** The error a promise fails with. */
const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err as BrokerApiError,
  );

describe('brokerAdmin', () => {
  it('reads ready and unacknowledged messages and consumers of a queue, authenticated', async () => {
    handler = (_req, res) =>
      json(res, 200, {
        name: 'photos:big',
        vhost: '/',
        type: 'quorum',
        messages_ready: 7,
        messages_unacknowledged: 3,
        messages: 10,
        consumers: 2,
      });
    expect(await admin().queueDepth('photos:big')).toEqual({ ready: 7, unacknowledged: 3, consumers: 2 });
    expect(seen[0]!.method).toBe('GET');
    expect(seen[0]!.url).toBe('/api/queues/%2F/photos%3Abig');
    expect(seen[0]!.authorization).toBe(`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`);
    await admin().queueDepth('q', 'other');
    expect(seen[1]!.url).toBe('/api/queues/other/q');
  });

  it('does not answer 0 for a queue without statistics yet', async () => {
    // What RabbitMQ answers for a quorum queue right after it was declared.
    handler = (_req, res) => json(res, 200, { name: 'photos', vhost: '/', type: 'quorum', members: [] });
    const err = await failure(admin().queueDepth('photos'));
    expect(err).toBeInstanceOf(BrokerApiError);
    expect(err.message).toBe('queue "photos" in vhost "/" has no statistics yet');
  });

  it('says which queue does not exist', async () => {
    handler = (_req, res) => json(res, 404, { error: 'Object Not Found', reason: 'Not Found' });
    const err = await failure(admin().queueDepth('nope'));
    expect(err.status).toBe(404);
    expect(err.message).toBe('queue "nope" in vhost "/" does not exist');
  });

  it('names the status, never the generated username or password, when the login is refused', async () => {
    handler = (_req, res) => json(res, 401, { error: 'not_authorized', reason: 'Login failed' });
    const err = await failure(admin().clusterNodes());
    expect(err.status).toBe(401);
    expect(err.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/api\/nodes: HTTP 401 \(the login from the credentials was refused\): Login failed$/,
    );
    expect(err.message).not.toContain(PASSWORD);
    expect(err.message).not.toContain(USER);
  });

  it('lists the running nodes, sorted', async () => {
    handler = (_req, res) =>
      json(res, 200, [
        { name: 'rabbit@b', running: true },
        { name: 'rabbit@c', running: false },
        { name: 'rabbit@a', running: true },
      ]);
    expect(await admin().clusterNodes()).toEqual(['rabbit@a', 'rabbit@b']);
  });

  it('gives up after its timeout', async () => {
    handler = () => {}; // never answers
    const err = await failure(admin(200).clusterNodes());
    expect(err).toBeInstanceOf(BrokerApiError);
    expect(err.message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/api\/nodes: no answer within 200 ms/);
    expect(err.status).toBeUndefined();
  });

  it('says so when nothing listens', async () => {
    const port = await freePort();
    const closed = brokerAdmin({ baseUrl: `http://127.0.0.1:${port}`, user: USER, password: PASSWORD });
    const err = await failure(closed.clusterNodes());
    expect(err.message).toBe(`GET http://127.0.0.1:${port}/api/nodes: fetch failed (ECONNREFUSED)`);
    expect(err.cause).toBeDefined();
  });

  it('refuses a base URL that carries credentials', () => {
    expect(() => brokerAdmin({ baseUrl: 'http://u:p@h:15672', user: USER, password: PASSWORD })).toThrow(
      /must not carry credentials/,
    );
  });

  it('asks an https API only with a CA to trust, and a CA only of an https API', () => {
    const login = { user: USER, password: PASSWORD };
    expect(() => brokerAdmin({ baseUrl: 'https://h:15672', ...login })).toThrow(/needs the CA to trust/);
    expect(() => brokerAdmin({ baseUrl: 'http://h:15672', ca: 'pem', ...login })).toThrow(
      /only for an https baseUrl/,
    );
  });
});

describe('the management API over TLS', () => {
  const NAME = 'shop-mq.prod.svc';
  let tlsServer: HttpsServer;
  let ca: KeyPair;
  let handshakes = 0;
  let origin: string;

  beforeAll(async () => {
    const now = new Date();
    ca = await issueCa('admin test CA', now);
    const pair = await issueServerCert(ca, [NAME], now);
    tlsServer = createHttpsServer({ cert: pair.cert, key: pair.key }, (_req, res) =>
      json(res, 200, [{ name: 'rabbit@a', running: true }]),
    );
    tlsServer.on('secureConnection', () => handshakes++);
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    origin = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    tlsServer.closeAllConnections();
    await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
  });

  const over = (trusted: string, servername = NAME) =>
    brokerAdmin({ baseUrl: origin, user: USER, password: PASSWORD, ca: trusted, servername });

  it('trusts the given CA and checks the name; the polls of one admin share one connection', async () => {
    const admin = over(ca.cert);
    const before = handshakes;
    for (let i = 0; i < 5; i++) expect(await admin.clusterNodes()).toEqual(['rabbit@a']);
    // No TLS session per poll (undici may open a second connection while it settles, never more).
    expect(handshakes - before).toBeLessThanOrEqual(2);
    const open = () => new Promise<number>((resolve) => tlsServer.getConnections((_e, n) => resolve(n)));
    expect(await open()).toBeGreaterThan(0);
    await admin.close();
    // Closed, it holds no socket: the server sees its connections end.
    await eventually('the admin to close its connections', async () => (await open()) === 0, 10_000, 20);
  });

  it('refuses a server its CA did not sign, or that another name', async () => {
    const other = await issueCa('another', new Date());
    expect((await failure(over(other.cert).clusterNodes())).message).toMatch(
      /fetch failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)$/,
    );
    expect((await failure(over(ca.cert, 'other.prod.svc').clusterNodes())).message).toMatch(
      /fetch failed \(ERR_TLS_CERT_ALTNAME_INVALID\)$/,
    );
  });
});
