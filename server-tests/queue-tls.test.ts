// spec.queue.tls (on by default, ADR 0023) against a REAL rabbitmq-server started by the pods' start
// script with the operator's files: AMQP and the management API serve TLS alone on their usual
// ports, a client that verifies chain and name gets in, a plaintext or unverifying-the-wrong-CA
// client does not, and a renewed certificate is served to new connections while open ones go on.
import * as amqp from 'amqplib';
import { X509Certificate } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { eventually } from '../e2e/support/eventually.ts';
import { brokerAdmin } from '../operator/dataplane/rabbitmq/admin.ts';
import { PEM_CACHE_CHECK_MS } from '../operator/server-config/rabbitmq.ts';
import { issueCa, issueServerCert } from '../operator/tls/certificates.ts';
import {
  BROKER_TLS_NAME,
  BROKER_TLS_NAMES,
  MONITORING_PASSWORD,
  MONITORING_USER,
  startBroker,
  type LocalBroker,
} from './support/rabbitmq-local.ts';

const TEST_TIMEOUT = 300_000;
/** Erlang's ssl checks certificate files for changes every PEM_CACHE_CHECK_MS; a deadline, not a goal. */
const RENEWAL_DEADLINE_MS = 3 * PEM_CACHE_CHECK_MS;
let b: LocalBroker;
const connections: amqp.ChannelModel[] = [];

beforeAll(async () => {
  b = await startBroker({ nodes: 1, queues: [{ name: 'photos' }], tls: true });
}, TEST_TIMEOUT);
afterAll(async () => {
  await Promise.all(connections.map((c) => c.close().catch(() => {})));
  await b?.stop();
});

const node = () => b.nodes[0]!;

/** What a client trusting `ca` and checking `servername` meets at the AMQP port: 'connected' or why not. */
async function amqpOutcome(
  url: string,
  ca: string | undefined,
  servername = BROKER_TLS_NAME,
): Promise<string> {
  try {
    const c = await amqp.connect(url, { timeout: 10_000, ...(ca ? { ca: [ca], servername } : {}) });
    c.on('error', () => {});
    await c.close();
    return 'connected';
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code ?? e.message;
  }
}

/** The serial number of the certificate a TLS handshake with the AMQP port is served. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: b.tls!.ca.cert, servername: BROKER_TLS_NAME }, () => {
      const serial = s.getPeerX509Certificate()?.serialNumber;
      s.destroy();
      if (serial) resolve(serial);
      else reject(new Error('no certificate served'));
    });
    s.on('error', reject);
  });
}

/** The first bytes a plaintext AMQP client gets back for its protocol header ('' when the server hangs up). */
function plaintextAnswer(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port }, () =>
      s.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1')),
    );
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    s.setTimeout(5000, () => s.destroy());
    s.on('close', () => resolve(got.toString('latin1')));
    s.on('error', () => {});
  });
}

describe('a broker serving TLS only', () => {
  it('serves AMQP over TLS to a client that checks the chain and the name: the app publishes and consumes', async () => {
    expect(node().amqpUrl).toMatch(/^amqps:\/\//);
    await b.publish('photos', ['over-tls']);
    expect(await b.take('photos', 1)).toEqual(['over-tls']);
  });

  it('refuses a plaintext client before any login: no AMQP answer on the port', async () => {
    const plain = node().amqpUrl.replace(/^amqps:/, 'amqp:');
    expect(await amqpOutcome(plain, undefined)).not.toBe('connected');
    // An AMQP server answers a protocol header with Connection.Start ("\x01\x00\x00" frame); a TLS
    // listener never does.
    expect((await plaintextAnswer(node().amqpPort)).startsWith('\x01\x00\x00')).toBe(false);
  });

  it('is refused by a client that trusts another CA, or expects another name', async () => {
    const other = await issueCa('another CA', new Date());
    // The broker sends its CA along with its certificate: a client that does not trust it says so.
    expect(await amqpOutcome(node().amqpUrl, other.cert)).toBe('SELF_SIGNED_CERT_IN_CHAIN');
    expect(await amqpOutcome(node().amqpUrl, b.tls!.ca.cert, 'someone-else.test')).toBe(
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  });

  it('serves the management API over https only: the operator reads depths with the CA, plain http gets nothing', async () => {
    expect(node().managementUrl).toMatch(/^https:\/\//);
    expect(await node().admin.queueDepth('photos')).toMatchObject({ ready: 0 });
    const plain = brokerAdmin({
      baseUrl: node().managementUrl.replace(/^https:/, 'http:'),
      user: MONITORING_USER,
      password: MONITORING_PASSWORD,
    });
    await expect(plain.clusterNodes()).rejects.toThrow(/fetch failed|socket|other side closed|ECONNRESET/i);
    const other = await issueCa('another CA', new Date());
    const untrusting = brokerAdmin({
      baseUrl: node().managementUrl,
      user: MONITORING_USER,
      password: MONITORING_PASSWORD,
      ca: other.cert,
      servername: BROKER_TLS_NAME,
    });
    await expect(untrusting.clusterNodes()).rejects.toThrow(/SELF_SIGNED_CERT_IN_CHAIN/);
  });

  it(
    'serves a renewed certificate to new connections without a restart; an open connection keeps working',
    async () => {
      const held = await amqp.connect(node().amqpUrl, {
        ca: [b.tls!.ca.cert],
        servername: BROKER_TLS_NAME,
      });
      held.on('error', () => {});
      connections.push(held);
      const channel = await held.createConfirmChannel();
      const before = await servedSerial(node().amqpPort);
      const pair = await issueServerCert(b.tls!.ca, BROKER_TLS_NAMES, new Date(), { clientAuth: true });
      const renewed = new X509Certificate(pair.cert).serialNumber;
      const started = Date.now();
      await b.tls!.renew(pair);
      await eventually(
        'the renewed certificate to be served',
        async () => (await servedSerial(node().amqpPort)) === renewed,
        RENEWAL_DEADLINE_MS,
        1000,
      );
      console.log(
        `a renewed certificate was served ${((Date.now() - started) / 1000).toFixed(1)} s after its files changed`,
      );
      expect(renewed).not.toBe(before);
      // The management listener reads the same files.
      expect(await node().admin.queueDepth('photos')).toMatchObject({ consumers: 0 });
      channel.sendToQueue('photos', Buffer.from('after-renewal'), { persistent: true });
      await channel.waitForConfirms();
      expect(await b.take('photos', 1)).toEqual(['after-renewal']);
    },
    TEST_TIMEOUT,
  );
});

describe('a three-node cluster over TLS', () => {
  let c: LocalBroker;
  beforeAll(async () => {
    c = await startBroker({ nodes: 3, queues: [{ name: 'photos' }], tls: true });
  }, TEST_TIMEOUT);
  afterAll(async () => {
    await c?.stop();
  });

  it('forms one cluster whose nodes speak the Erlang distribution over TLS', async () => {
    expect(await c.admin.clusterNodes()).toHaveLength(3);
    for (const i of [0, 1, 2]) {
      const r = await c.cli(i, 'rabbitmqctl', ['-q', 'eval', 'init:get_argument(proto_dist).']);
      expect({ i, out: r.stdout.trim() }).toEqual({ i, out: '{ok,[["inet_tls"]]}' });
    }
  });

  it('replicates a quorum queue over it: published on one node, taken on another', async () => {
    await c.nodes[1]!.publish('photos', ['replicated']);
    expect(await c.nodes[2]!.take('photos', 1)).toEqual(['replicated']);
  });

  it('lets no plaintext peer in: the CLI without the TLS distribution cannot reach a node', async () => {
    const plain = await c.cli(0, 'rabbitmq-diagnostics', ['-q', 'ping'], {
      RABBITMQ_CTL_ERL_ARGS: undefined,
    });
    expect(plain.code).not.toBe(0);
    expect((await c.cli(0, 'rabbitmq-diagnostics', ['-q', 'ping'])).code).toBe(0);
  });
});
