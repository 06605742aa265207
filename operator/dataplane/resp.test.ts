import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { encodeCommand, parseReply, RespClient, RespError } from './resp.ts';

describe('encodeCommand', () => {
  it('writes an array of bulk strings with byte lengths', () => {
    expect(encodeCommand(['SET', 'k', 'é']).toString()).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
  });
});

describe('parseReply', () => {
  const parse = (s: string) => parseReply(Buffer.from(s));

  it.each<[string, unknown]>([
    ['+OK\r\n', 'OK'],
    [':42\r\n', 42],
    [':-1\r\n', -1],
    ['$5\r\nhello\r\n', 'hello'],
    ['$0\r\n\r\n', ''],
    ['$-1\r\n', null],
    ['*-1\r\n', null],
    ['*0\r\n', []],
    [
      '*3\r\n$6\r\nmaster\r\n:3129\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$4\r\n3129\r\n',
      ['master', 3129, [['127.0.0.1', '9001', '3129']]],
    ],
  ])('parses %j', (wire, value) => {
    expect(parse(wire)).toEqual({ value, end: Buffer.byteLength(wire) });
  });

  it('keeps bulk strings with CRLF inside whole, since their length is in bytes', () => {
    expect(parse('$4\r\na\r\nb\r\n')?.value).toBe('a\r\nb');
  });

  it('turns error replies into RespError values with their code', () => {
    const v = parse('-NOREPLICAS Not enough good replicas to write.\r\n')?.value;
    expect(v).toBeInstanceOf(RespError);
    expect(v).toMatchObject({ code: 'NOREPLICAS', message: 'NOREPLICAS Not enough good replicas to write.' });
  });

  it('asks for more data when a reply is incomplete', () => {
    for (const partial of ['', '+OK', '$5\r\nhel', '*2\r\n:1\r\n', '*2\r\n:1\r\n$3\r\nab']) {
      expect(parse(partial)).toBeUndefined();
    }
  });

  it('rejects what is not RESP', () => {
    expect(() => parse('HTTP/1.1 400\r\n')).toThrow(/protocol error/);
  });
});

/** A server that answers each received command with the next scripted reply, split into single bytes. */
async function scriptedServer(
  reply: (args: string, socket: Socket) => string | undefined,
): Promise<{ server: Server; port: number; received: string[] }> {
  const received: string[] = [];
  const server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (let cmd = parseReply(buf); cmd; cmd = parseReply(buf)) {
        buf = buf.subarray(cmd.end);
        const args = (cmd.value as string[]).join(' ');
        received.push(args);
        const answer = reply(args, socket);
        // Byte by byte, to prove the client reassembles replies across chunks.
        if (answer !== undefined) for (const b of Buffer.from(answer)) socket.write(Buffer.from([b]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, received };
}

describe('RespClient', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('authenticates first, then returns replies in order, errors as rejections', async () => {
    const { server, port, received } = await scriptedServer((args) =>
      args.startsWith('AUTH')
        ? '+OK\r\n'
        : args === 'GET k'
          ? '$5\r\nvalue\r\n'
          : "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    );
    servers.push(server);
    const client = await RespClient.connect({ host: '127.0.0.1', port, password: 'pw' });
    try {
      // Two commands issued at once still get their own replies: they are serialised.
      const [get, set] = await Promise.allSettled([
        client.command(['GET', 'k']),
        client.command(['SET', 'k', 'v']),
      ]);
      expect(get).toEqual({ status: 'fulfilled', value: 'value' });
      expect(set).toMatchObject({ status: 'rejected', reason: { code: 'OOM' } });
      expect(await client.command(['GET', 'k'])).toBe('value');
      await expect(client.command(['SET', 'k', 'v'])).rejects.toMatchObject({ code: 'OOM' });
      expect(received).toEqual(['AUTH pw', 'GET k', 'SET k v', 'GET k', 'SET k v']);
    } finally {
      client.close();
    }
  });

  it('fails to connect when AUTH is refused', async () => {
    const { server, port } = await scriptedServer(() => '-WRONGPASS invalid username-password pair\r\n');
    servers.push(server);
    await expect(RespClient.connect({ host: '127.0.0.1', port, password: 'nope' })).rejects.toMatchObject({
      code: 'WRONGPASS',
    });
  });

  it('times out a command that gets no reply, and is unusable afterwards', async () => {
    const { server, port } = await scriptedServer(() => undefined);
    servers.push(server);
    const client = await RespClient.connect({ host: '127.0.0.1', port, timeoutMs: 50 });
    await expect(client.command(['PING'])).rejects.toThrow(/PING timed out after 50ms/);
    await expect(client.command(['PING'])).rejects.toThrow(/timed out/);
    client.close();
  });

  it('rejects the command in flight when the server closes the connection', async () => {
    const { server, port } = await scriptedServer((_args, socket) => {
      socket.destroy();
      return undefined;
    });
    servers.push(server);
    const client = await RespClient.connect({ host: '127.0.0.1', port });
    await expect(client.command(['PING'])).rejects.toThrow(/connection closed/);
    client.close();
  });

  it('fails to connect where nothing listens, with the cause', async () => {
    const { server, port } = await scriptedServer(() => undefined);
    await new Promise((resolve) => server.close(resolve));
    await expect(RespClient.connect({ host: '127.0.0.1', port })).rejects.toMatchObject({
      message: `redis 127.0.0.1:${port}: cannot connect`,
      cause: expect.objectContaining({ code: 'ECONNREFUSED' }),
    });
  });
});
