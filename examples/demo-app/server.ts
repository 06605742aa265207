// The demo app's web tier: `node dist/examples/demo-app/server.js` in the image, or
// `node examples/demo-app/server.ts` from a checkout. Configuration comes from the environment only
// (config.ts): the `<app>-connection` Secret the operator mounts, PORT and a few optional knobs.
//
// SIGTERM (a rollout, a scale-down): readiness fails at once so the pod leaves the Service, requests
// keep being served for SHUTDOWN_DELAY_SECONDS while every proxy catches up, then the listener closes,
// requests in flight finish (at most SHUTDOWN_TIMEOUT_SECONDS), every client closes, and the process
// exits 0, all within the pod's 30 s grace period.
import { readFileSync } from 'node:fs';
import { createApp } from './app.ts';
import { describeAmqp, describePg, describeRedis, serverConfig, type ServerConfig } from './config.ts';
import { createLogger, errorText } from './log.ts';

function main(): void {
  let config: ServerConfig;
  try {
    config = serverConfig(process.env, (path) => readFileSync(path, 'utf8'));
  } catch (err) {
    // A configuration that cannot work: say why and stop (the pod's status shows the crash loop).
    createLogger('demo-app', []).error('bad configuration', { error: (err as Error).message });
    process.exitCode = 2;
    return;
  }
  const log = createLogger('demo-app', config.secrets);

  // Never crash on a stray error from a client library: log it and keep serving.
  process.on('unhandledRejection', (err) =>
    log.error('unhandled rejection', { error: errorText(err, config.secrets) }),
  );
  process.on('uncaughtException', (err) =>
    log.error('uncaught exception', { error: errorText(err, config.secrets) }),
  );

  const app = createApp(config, log);
  app.server.on('error', (err) => {
    log.error('cannot listen', { port: config.port, error: errorText(err, config.secrets) });
    process.exitCode = 2;
    void app.close(0).finally(() => process.exit());
  });
  app.server.listen(
    { port: config.port, ...(config.listenAddress ? { host: config.listenAddress } : {}) },
    () => {
      log.info('listening', {
        port: config.port,
        healthPath: config.healthPath,
        // Where each tier is, never a login.
        tiers: {
          database: config.database
            ? { primary: describePg(config.database.primary), replica: describePg(config.database.replica) }
            : null,
          cache: config.cache ? describeRedis(config.cache) : null,
          sessions: config.sessions ? describeRedis(config.sessions.store) : null,
          shards: config.shards ? config.shards.mapPath : null,
          edgeCache: config.assets.edgeConfigured
            ? `${config.assets.basePath} v${config.assets.version}`
            : null,
          queue: config.queue ? describeAmqp(config.queue.broker) : null,
        },
      });
    },
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal, delayMs: config.shutdownDelayMs });
    app.startDraining();
    await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
    await app.close(config.shutdownTimeoutMs);
    log.info('stopped');
    // Reconnect timers of a tier that is down would keep the event loop alive: exit explicitly.
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main();
