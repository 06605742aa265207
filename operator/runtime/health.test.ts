import { Counter, Registry } from 'prom-client';
import { createHealthServer, type HealthServer, type HealthServerOptions } from './health.ts';

describe('health server (over loopback HTTP)', () => {
  let server: HealthServer | undefined;
  let base = '';

  async function serve(options: HealthServerOptions): Promise<void> {
    server = createHealthServer(options);
    const port = await server.start(0, '127.0.0.1');
    base = `http://127.0.0.1:${port}`;
  }

  async function get(
    path: string,
    init?: RequestInit,
  ): Promise<{ status: number; text: string; type: string }> {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
  }

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('start(0) binds a free port and returns it', async () => {
    await serve({});
    expect(Number(new URL(base).port)).toBeGreaterThan(0);
    expect(await get('/healthz')).toMatchObject({ status: 200, text: 'ok\n' });
  });

  it('/readyz follows the readiness callback and says why it is not ready', async () => {
    let ready: boolean | string = 'informer cache not synced';
    await serve({ readiness: () => ready });
    expect(await get('/readyz')).toMatchObject({ status: 503, text: 'informer cache not synced\n' });
    ready = false;
    expect(await get('/readyz')).toMatchObject({ status: 503, text: 'not ready\n' });
    ready = true;
    expect(await get('/readyz')).toMatchObject({ status: 200, text: 'ok\n' });
    expect((await get('/healthz')).status).toBe(200); // not ready is still alive
  });

  it('treats a throwing or rejecting check as failing, with its message', async () => {
    await serve({
      readiness: async () => Promise.reject(new Error('apiserver unreachable')),
      liveness: () => {
        throw new Error('worker stuck');
      },
    });
    expect(await get('/readyz')).toMatchObject({ status: 503, text: 'not ready: apiserver unreachable\n' });
    expect(await get('/healthz')).toMatchObject({ status: 503, text: 'not alive: worker stuck\n' });
  });

  it('/healthz fails when the liveness check does', async () => {
    let alive = true;
    await serve({ liveness: async () => alive });
    expect((await get('/healthz')).status).toBe(200);
    alive = false;
    expect(await get('/healthz')).toMatchObject({ status: 503, text: 'not alive\n' });
  });

  it("/metrics serves the registry's text exposition", async () => {
    const registry = new Registry();
    new Counter({ name: 'test_things_total', help: 'Things', registers: [registry] }).inc(3);
    await serve({ registry });
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toBe(registry.contentType);
    expect(res.text).toContain('# TYPE test_things_total counter\ntest_things_total 3\n');
  });

  it('answers 404 to unknown paths (and /metrics without a registry) and 405 to other methods', async () => {
    await serve({});
    expect((await get('/metrics')).status).toBe(404);
    expect((await get('/')).status).toBe(404);
    expect((await get('/healthz', { method: 'POST' })).status).toBe(405);
  });

  it('answers 500 when collecting metrics fails, and keeps serving', async () => {
    const registry = new Registry();
    new Counter({
      name: 'broken_total',
      help: 'Fails to collect',
      registers: [registry],
      collect() {
        throw new Error('collector broke');
      },
    });
    await serve({ registry });
    expect(await get('/metrics')).toMatchObject({ status: 500, text: 'collector broke\n' });
    expect((await get('/healthz')).status).toBe(200);
  });

  it('close() stops listening and drops connections, even one waiting on a hung check', async () => {
    let checked: () => void = () => {};
    const checking = new Promise<void>((resolve) => (checked = resolve));
    await serve({
      readiness: () => {
        checked();
        return new Promise<boolean>(() => {}); // never answers
      },
    });
    await get('/healthz'); // fetch keeps this connection alive
    const hung = fetch(`${base}/readyz`);
    await checking;
    await server!.close();
    server = undefined;
    await expect(hung).rejects.toThrow();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('start() rejects with the cause when the port is taken', async () => {
    await serve({});
    const other = createHealthServer({});
    const err = await other.start(Number(new URL(base).port), '127.0.0.1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).cause).toMatchObject({ code: 'EADDRINUSE' });
    await other.close();
  });
});
