// The broker configuration the operator ships is valid for the image the pods run (RabbitMQ 3.10,
// Debian bookworm's, installed here by tools/dataplane-deps.sh) and for the nearest release to the
// operator's default image, rabbitmq:4.1-management, that an allowed registry serves (4.0, Debian
// trixie's, fetched by tools/rabbitmq-schemas.sh). Every rabbitmq.conf key must match a mapping of
// a cuttlefish schema of that release (a key no schema maps stops the node at boot), every plugin in
// enabled_plugins must ship with it, and every advanced.config setting must be read by its rabbit
// application's code. The pods themselves run 3.10 only (e2e/real-queue.test.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseApp } from '../operator/api/testdata/apps.ts';
import { mqConfigMap } from '../operator/tiers/queue.ts';
import { CONFIG_FILES } from '../operator/server-config/rabbitmq.ts';

interface Release {
  readonly name: string;
  /** Every cuttlefish mapping's key pattern, split on dots (`$name` matches one segment). */
  readonly patterns: string[][];
  readonly plugins: Set<string>;
  /** The rabbit application's compiled modules, as bytes (their atoms include every setting read). */
  readonly rabbitCode: Buffer[];
}

const mappings = (schemaDir: string) =>
  readdirSync(schemaDir)
    .filter((f) => f.endsWith('.schema'))
    .flatMap((f) => [...readFileSync(join(schemaDir, f), 'utf8').matchAll(/\{mapping,\s*"([^"]+)"/g)])
    .map((m) => m[1]!.split('.'));

const beams = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.beam'))
    .map((f) => readFileSync(join(dir, f)));

/** The installed 3.10: its plugins directory holds each plugin with its schema and the rabbit app. */
function installed(): Release {
  const base = '/usr/lib/rabbitmq/lib';
  const server = readdirSync(base).find((d) => d.startsWith('rabbitmq_server-'));
  if (!server) throw new Error(`no rabbitmq_server-* in ${base}: run tools/dataplane-deps.sh`);
  const pluginDir = join(base, server, 'plugins');
  const dirs = readdirSync(pluginDir).filter((d) => !d.endsWith('.ez'));
  const rabbit = dirs.find((d) => /^rabbit-\d/.test(d))!;
  return {
    name: server.replace('rabbitmq_server-', ''),
    patterns: dirs.flatMap((d) =>
      [join(pluginDir, d, 'priv', 'schema'), join(pluginDir, d, 'priv')]
        .filter((p) => existsSync(p))
        .flatMap(mappings),
    ),
    plugins: new Set(readdirSync(pluginDir).map((d) => d.replace(/-\d[^/]*$/, ''))),
    rabbitCode: beams(join(pluginDir, rabbit, 'ebin')),
  };
}

/** 4.0, as tools/rabbitmq-schemas.sh keeps it. */
function fetched(): Release {
  const dir = execFileSync('bash', [new URL('../tools/rabbitmq-schemas.sh', import.meta.url).pathname], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return {
    name: dir.split('/').at(-1)!,
    patterns: mappings(join(dir, 'schema')),
    plugins: new Set(readFileSync(join(dir, 'plugins.txt'), 'utf8').split('\n').filter(Boolean)),
    rabbitCode: beams(join(dir, 'rabbit-ebin')),
  };
}

const matches = (key: string, pattern: string[]) => {
  const parts = key.split('.');
  return parts.length === pattern.length && pattern.every((p, i) => p.startsWith('$') || p === parts[i]);
};
const unknownKeys = (r: Release, keys: string[]) =>
  keys.filter((k) => !r.patterns.some((p) => matches(k, p)));

// The queue tier's ConfigMap for a 3-node cluster with a memory limit: every optional line present.
const app = parseApp({
  queue: {
    replicas: 3,
    queues: [{ name: 'jobs' }],
    storage: { size: '2Gi' },
    resources: { limits: { memory: '1Gi' } },
  },
});
const files = mqConfigMap(app).data!;
const confKeys = files[CONFIG_FILES.conf]!.split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => l.split('=')[0]!.trim());
const plugins = [...files[CONFIG_FILES.plugins]!.matchAll(/[a-z0-9_]+/g)].map((m) => m[0]);
// advanced.config: [{rabbit, [{setting, value}, ...]}]. The settings are the atoms after `{`.
const advanced = [...files[CONFIG_FILES.advanced]!.matchAll(/\{([a-z_]+),\s*[^\s[]/g)].map((m) => m[1]!);

describe.each([
  ['the image the pods run', installed],
  ["the nearest release to the default image's", fetched],
])('the broker configuration against %s', (_, load) => {
  const release = load();

  it('has every rabbitmq.conf key mapped by a schema of that release', () => {
    expect(confKeys.length).toBeGreaterThan(8);
    expect({ release: release.name, unknown: unknownKeys(release, confKeys) }).toEqual({
      release: release.name,
      unknown: [],
    });
  });

  it('would reject a key no schema maps (the check can fail)', () => {
    expect(unknownKeys(release, ['management.tcp.portt', 'listeners.tcpp.default'])).toEqual([
      'management.tcp.portt',
      'listeners.tcpp.default',
    ]);
  });

  it('ships every plugin enabled_plugins names', () => {
    expect(plugins).toEqual(['rabbitmq_management']);
    expect(plugins.filter((p) => !release.plugins.has(p))).toEqual([]);
  });

  it("has every advanced.config setting read by that release's rabbit application", () => {
    expect(advanced).toEqual(['quorum_tick_interval']);
    for (const setting of advanced)
      expect({ setting, read: release.rabbitCode.some((b) => b.includes(setting)) }).toEqual({
        setting,
        read: true,
      });
    expect(release.rabbitCode.some((b) => b.includes('quorum_tick_intervall'))).toBe(false);
  });
});
