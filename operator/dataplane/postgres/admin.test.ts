import { createServer, type AddressInfo, type Server } from 'node:net';
import { conninfoHost, formatLsn, parseLsn, pgAdmin, primaryConninfo } from './admin.ts';

describe('primaryConninfo', () => {
  it('is what the instance script writes: no password, the standby name as application_name', () => {
    expect(
      primaryConninfo({ name: 'db-0', host: 'db-0.db-headless.ns.svc', port: 5432 }, 'db-1', 'replicator'),
    ).toBe('host=db-0.db-headless.ns.svc port=5432 user=replicator application_name=db-1');
  });

  it('quotes values that are not plain words', () => {
    expect(primaryConninfo({ name: 'x', host: "a b'c", port: 1 }, 'n\\m', 'r')).toBe(
      "host='a b\\'c' port=1 user=r application_name='n\\\\m'",
    );
  });
});

describe('conninfoHost', () => {
  it("reads back the host primaryConninfo wrote: a standby's stream host, plain or quoted", () => {
    for (const host of ['db-0.db-headless.ns.svc', '10.1.2.3', "a b'c\\d", '']) {
      const text = primaryConninfo({ name: 'db-0', host: 'ignored', port: 5432, streamHost: host }, 's', 'r');
      expect(conninfoHost(text)).toBe(host || undefined);
    }
  });

  it('streams from the address the node is reached at when it has no stream host (loopback)', () => {
    expect(conninfoHost(primaryConninfo({ name: 'db-0', host: '127.0.0.1', port: 1 }, 's', 'r'))).toBe(
      '127.0.0.1',
    );
  });

  it('finds none in an empty primary_conninfo (a primary), nor in another keyword that ends in host', () => {
    expect(conninfoHost('')).toBeUndefined();
    expect(conninfoHost('port=5432 hostaddr=10.0.0.1')).toBeUndefined();
    expect(conninfoHost('port=5432  host = db-1 user=r')).toBe('db-1');
  });
});

describe('LSNs', () => {
  it('are byte positions: the high word shifted by 32 bits', () => {
    expect(parseLsn('0/3000148')).toBe(0x3000148n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) + 0xb374d848n);
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
    expect(() => parseLsn('16-B3')).toThrow(/not an LSN/);
  });
});

describe('pgAdmin.ping', () => {
  const admin = pgAdmin({ superuserPassword: 'x', timeoutMs: 500 });

  it('is false, never an exception, for a node without an address (a pod not yet scheduled)', async () => {
    expect(await admin.ping({ name: 'db-0', host: '', port: 5432 })).toBe(false);
  });

  it('is false for a port that accepts connections but never answers', async () => {
    // Holds sockets open without a word: the connect timeout must end the ping.
    const server: Server = createServer(() => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      expect(await admin.ping({ name: 'db-0', host: '127.0.0.1', port })).toBe(false);
    } finally {
      server.close();
    }
  });

  it('fails the other calls with the node named and the cause kept', async () => {
    await expect(admin.state({ name: 'db-0', host: '', port: 5432 })).rejects.toMatchObject({
      message: 'postgres node db-0 (:5432): reading the WAL position failed',
      cause: new Error('no address'),
    });
  });
});
