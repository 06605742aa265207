// The kubelet's probes and Prometheus' scrapes: /healthz (liveness), /readyz (readiness), /metrics.
// Liveness should fail only when restarting the process would help; readiness only gates traffic.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** true when healthy; false, or a reason, when not. A throw counts as unhealthy with its message. */
export type CheckResult = boolean | string;
export type HealthCheck = () => CheckResult | Promise<CheckResult>;

export interface HealthServerOptions {
  /** Served at /metrics. Without it /metrics is 404. */
  registry?: Registry;
  /** /readyz is 200 only when this returns true. Default: always ready. */
  readiness?: HealthCheck;
  /** /healthz is 200 unless this fails. Default: alive while the process serves requests. */
  liveness?: HealthCheck;
}

export interface HealthServer {
  /** Listens on `port` (0 picks a free one) and `host` (default all interfaces); returns the port. */
  start(port: number, host?: string): Promise<number>;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

async function runCheck(
  check: HealthCheck | undefined,
  failure: string,
): Promise<{ ok: boolean; text: string }> {
  if (!check) return { ok: true, text: 'ok' };
  try {
    const result = await check();
    if (result === true) return { ok: true, text: 'ok' };
    return { ok: false, text: typeof result === 'string' && result !== '' ? result : failure };
  } catch (err) {
    return { ok: false, text: `${failure}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

export function createHealthServer(options: HealthServerOptions = {}): HealthServer {
  const reply = (
    res: ServerResponse,
    status: number,
    body: string,
    contentType = 'text/plain; charset=utf-8',
  ) => {
    res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      reply(res, 405, 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz': {
        const { ok, text } = await runCheck(options.liveness, 'not alive');
        reply(res, ok ? 200 : 503, `${text}\n`);
        return;
      }
      case '/readyz': {
        const { ok, text } = await runCheck(options.readiness, 'not ready');
        reply(res, ok ? 200 : 503, `${text}\n`);
        return;
      }
      case '/metrics':
        if (options.registry) {
          reply(res, 200, await options.registry.metrics(), options.registry.contentType);
          return;
        }
        break;
    }
    reply(res, 404, 'not found\n');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Only the metrics collection can get here; a scrape failure must not take the process down.
      if (!res.headersSent) reply(res, 500, `${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });

  return {
    start(port, host = '0.0.0.0') {
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void =>
          reject(new Error(`health server: listen on ${host}:${port}`, { cause: err }));
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    close() {
      return new Promise((resolve, reject) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close((err) => (err ? reject(new Error('health server: close', { cause: err })) : resolve()));
        // Keep-alive connections from probes or scrapers would otherwise hold close() open.
        server.closeAllConnections();
      });
    },
  };
}
