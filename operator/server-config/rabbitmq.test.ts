// The broker's generated texts, and the start script run with sh against a stub rabbitmq-server that
// records what it was started with: milliseconds, no broker. The data-plane tests
// (server-tests/queue.test.ts) run the same files with the real rabbitmq-server.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CONFIG_FILES,
  CREDENTIAL_FILES,
  MEMORY_HIGH_WATERMARK_PERCENT,
  advancedConfig,
  brokerConfigFiles,
  brokerNodeName,
  appPermissionsJson,
  brokerStartScript,
  definitionsJson,
  diskFreeLimitBytes,
  memoryHighWatermarkBytes,
  QUEUE_OPERATOR_USER,
  rabbitmqConf,
} from './rabbitmq.ts';
import { APP_LOGIN_KEYS } from './app-login-keys.ts';

const NODES = [
  'rabbit@mq-0.mq-headless.ns.svc',
  'rabbit@mq-1.mq-headless.ns.svc',
  'rabbit@mq-2.mq-headless.ns.svc',
];
const base = { nodes: NODES, definitionsFile: '/run/rabbitmq/definitions.json', diskFreeLimitBytes: 1 << 30 };
const lines = (text: string) => text.split('\n');

describe('rabbitmqConf', () => {
  it('clusters every node by classic_config, pausing a minority from three nodes on', () => {
    const conf = lines(rabbitmqConf(base));
    expect(conf).toEqual(
      expect.arrayContaining([
        'cluster_formation.peer_discovery_backend = classic_config',
        'cluster_formation.classic_config.nodes.1 = rabbit@mq-0.mq-headless.ns.svc',
        'cluster_formation.classic_config.nodes.2 = rabbit@mq-1.mq-headless.ns.svc',
        'cluster_formation.classic_config.nodes.3 = rabbit@mq-2.mq-headless.ns.svc',
        // Queues are declared only once the whole cluster is up: otherwise the first node would
        // create them with itself as the only replica.
        'cluster_formation.target_cluster_size_hint = 3',
        'cluster_partition_handling = pause_minority',
      ]),
    );
    const single = rabbitmqConf({ ...base, nodes: NODES.slice(0, 1) });
    expect(single).not.toContain('cluster_partition_handling');
    expect(single).toContain('cluster_formation.target_cluster_size_hint = 1');
  });

  it('imports the definitions file at boot, listens everywhere by default, logs to the console only', () => {
    const conf = lines(rabbitmqConf(base));
    expect(conf).toEqual(
      expect.arrayContaining([
        'definitions.import_backend = local_filesystem',
        'definitions.local.path = /run/rabbitmq/definitions.json',
        'definitions.skip_if_unchanged = true',
        'listeners.tcp.default = 5672',
        'management.tcp.port = 15672',
        'loopback_users.guest = true',
        'log.file = false',
        'log.console = true',
      ]),
    );
    expect(conf.some((l) => l.startsWith('management.tcp.ip'))).toBe(false);
    const local = lines(
      rabbitmqConf({ ...base, listenAddress: '127.0.0.1', amqpPort: 5001, managementPort: 5002 }),
    );
    expect(local).toEqual(
      expect.arrayContaining([
        'listeners.tcp.local = 127.0.0.1:5001',
        'management.tcp.port = 5002',
        'management.tcp.ip = 127.0.0.1',
      ]),
    );
  });

  it('never carries a login', () => {
    expect(rabbitmqConf(base)).not.toMatch(/default_user|default_pass/);
  });

  it('refreshes statistics every second everywhere the queue depth comes from', () => {
    const conf = lines(rabbitmqConf(base));
    expect(conf).toEqual(
      expect.arrayContaining([
        'collect_statistics_interval = 1000',
        'management.sample_retention_policies.basic.minute = 1',
      ]),
    );
    // Setting one retention policy replaces all three: none may be left empty.
    for (const section of ['global', 'basic', 'detailed']) {
      expect(conf.some((l) => l.startsWith(`management.sample_retention_policies.${section}.`))).toBe(true);
    }
    expect(advancedConfig()).toBe('[{rabbit, [{quorum_tick_interval, 1000}]}].\n');
    expect(lines(rabbitmqConf({ ...base, statsIntervalMs: 5000 }))).toContain(
      'management.sample_retention_policies.basic.minute = 5',
    );
  });

  it('sets the alarms from the container budget', () => {
    const conf = lines(rabbitmqConf({ ...base, memoryHighWatermarkBytes: 429496729 }));
    expect(conf).toContain('vm_memory_high_watermark.absolute = 429496729');
    expect(conf).toContain('disk_free_limit.absolute = 1073741824');
    expect(rabbitmqConf(base)).not.toContain('vm_memory_high_watermark');
  });

  it('refuses what would corrupt the file or the cluster', () => {
    expect(() => rabbitmqConf({ ...base, nodes: [] })).toThrow(/at least one node/);
    expect(() => rabbitmqConf({ ...base, nodes: ['rabbit@a', 'rabbit@a'] })).toThrow(/duplicate/);
    expect(() => rabbitmqConf({ ...base, nodes: ['no-at-sign'] })).toThrow(/bad node name/);
    expect(() => rabbitmqConf({ ...base, nodes: ['rabbit@a\nlog.file = true'] })).toThrow(/bad node name/);
    expect(() => rabbitmqConf({ ...base, definitionsFile: 'relative.json' })).toThrow(/absolute path/);
    expect(() => rabbitmqConf({ ...base, definitionsFile: '/a b' })).toThrow(/absolute path/);
    expect(() => rabbitmqConf({ ...base, listenAddress: '256.0.0.1' })).toThrow(/IPv4/);
    expect(() => rabbitmqConf({ ...base, amqpPort: 70000 })).toThrow(/bad amqpPort/);
    expect(() => rabbitmqConf({ ...base, diskFreeLimitBytes: 0 })).toThrow(/positive integer/);
  });
});

describe('alarm arithmetic', () => {
  it(`puts the memory watermark at ${MEMORY_HIGH_WATERMARK_PERCENT}% of the limit, exactly`, () => {
    expect(memoryHighWatermarkBytes('1Gi')).toBe(Math.floor((1073741824 * 40) / 100));
    expect(memoryHighWatermarkBytes('512Mi')).toBe(214748364);
    expect(memoryHighWatermarkBytes('1.5G')).toBe(600000000);
    expect(memoryHighWatermarkBytes(undefined)).toBeUndefined();
    expect(() => memoryHighWatermarkBytes('lots')).toThrow(/not a quantity/);
    expect(() => memoryHighWatermarkBytes('1')).toThrow(/too small/);
  });

  it('keeps as much disk free as the node has memory, at most half the volume', () => {
    expect(diskFreeLimitBytes('5Gi', '1Gi')).toBe(1073741824);
    expect(diskFreeLimitBytes('1Gi', '1Gi')).toBe(536870912);
    expect(diskFreeLimitBytes('20Gi', undefined)).toBe(1073741824);
    expect(() => diskFreeLimitBytes('', '1Gi')).toThrow(/required/);
  });
});

describe('definitionsJson', () => {
  it('declares every spec queue as a durable quorum queue in /, and no user', () => {
    const text = definitionsJson([{ name: 'photos' }, { name: 'mail.out' }]);
    expect(text.startsWith('{')).toBe(true);
    const d = JSON.parse(text);
    expect(d).toEqual({
      vhosts: [{ name: '/' }],
      queues: [
        {
          name: 'photos',
          vhost: '/',
          durable: true,
          auto_delete: false,
          arguments: { 'x-queue-type': 'quorum' },
        },
        {
          name: 'mail.out',
          vhost: '/',
          durable: true,
          auto_delete: false,
          arguments: { 'x-queue-type': 'quorum' },
        },
      ],
    });
  });

  it('refuses duplicates and names the API would not accept', () => {
    expect(() => definitionsJson([{ name: 'a' }, { name: 'a' }])).toThrow(/declared twice/);
    expect(() => definitionsJson([{ name: 'a b' }])).toThrow(/bad queue name/);
  });
});

describe('appPermissionsJson', () => {
  it("grants the app's own queues, escaped and anchored, and publishing through the default exchange", () => {
    const text = appPermissionsJson([{ name: 'photos' }, { name: 'mail.out' }]);
    expect(text.startsWith('{')).toBe(true);
    const p = JSON.parse(text);
    expect(p).toEqual({
      configure: '^(photos|mail\\.out)$',
      write: '^(photos|mail\\.out|amq\\.default)$',
      read: '^(photos|mail\\.out)$',
    });
    const own = new RegExp(p.configure);
    expect(['photos', 'mail.out'].map((n) => own.test(n))).toEqual([true, true]);
    // Neither a longer name, nor one the dot would match as "any character", nor an exchange.
    expect(['photos2', 'xphotos', 'mailXout', 'amq.default', 'amq.topic'].some((n) => own.test(n))).toBe(
      false,
    );
    expect(new RegExp(p.write).test('amq.topic')).toBe(false);
  });

  it('refuses what definitionsJson refuses', () => {
    expect(() => appPermissionsJson([{ name: 'a' }, { name: 'a' }])).toThrow(/declared twice/);
    expect(() => appPermissionsJson([{ name: 'a|.*' }])).toThrow(/bad queue name/);
  });
});

describe('brokerNodeName', () => {
  it('is the long name every pod resolves through the headless Service', () => {
    expect(brokerNodeName('shop-mq-2', 'shop-mq-headless', 'prod')).toBe(
      'rabbit@shop-mq-2.shop-mq-headless.prod.svc',
    );
    expect(() => brokerNodeName('a b', 'h', 'ns')).toThrow(/bad node name/);
  });
});

describe('brokerConfigFiles', () => {
  it('holds every file the start script and rabbitmq-server read, without the login', () => {
    const files = brokerConfigFiles({ ...base, queues: [{ name: 'photos' }] });
    // The distribution's TLS options only with TLS.
    const plain = Object.values(CONFIG_FILES).filter((f) => f !== CONFIG_FILES.interNodeTls);
    expect(Object.keys(files).sort()).toEqual(plain.sort());
    expect(files[CONFIG_FILES.plugins]).toBe('[rabbitmq_management].\n');
    const tls = { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', caFile: '/tls/ca.crt' };
    const withTls = brokerConfigFiles({ ...base, queues: [{ name: 'photos' }], tls });
    expect(Object.keys(withTls).sort()).toEqual(Object.values(CONFIG_FILES).sort());
    expect(withTls[CONFIG_FILES.interNodeTls]).toContain('{server, [{cacertfile, "/tls/ca.crt"}');
    expect(() => brokerConfigFiles({ ...base, queues: [], tls: { ...tls, keyFile: 'relative' } })).toThrow(
      /tls.keyFile must be an absolute path/,
    );
  });
});

// --- the start script, against a stub rabbitmq-server ----------------------------------------------

const LOGIN = { username: 'app"user\\', password: `p"a\\ss'w:o@rd/%` };
const MONITORING = { username: 'mon"itor\\', password: `m"o\\n'pw` };
const COOKIE = 'COOKIEVALUE123';
// The stub records the environment it got and the cookie's mode, as rabbitmq-server would read them.
const STUB = `#!/bin/sh
{
  echo "RABBITMQ_CONFIG_FILE=$RABBITMQ_CONFIG_FILE"
  echo "RABBITMQ_ADVANCED_CONFIG_FILE=$RABBITMQ_ADVANCED_CONFIG_FILE"
  echo "RABBITMQ_ENABLED_PLUGINS_FILE=$RABBITMQ_ENABLED_PLUGINS_FILE"
  echo "RABBITMQ_CONFIG_FILES=$RABBITMQ_CONFIG_FILES"
  echo "RABBITMQ_CONF_ENV_FILE=$RABBITMQ_CONF_ENV_FILE"
  echo "RABBITMQ_NODENAME=$RABBITMQ_NODENAME"
  echo "ERL_CRASH_DUMP=$ERL_CRASH_DUMP"
  echo "args=$*"
  env | grep -c -F 'w:o@rd/%' || true
} >"$STUB_OUT"
`;

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function setUp(
  credentials: Partial<Record<keyof typeof CREDENTIAL_FILES, string>> = {},
  /** Other keys of the Secret: the operator's record. */
  record: Record<string, string> = {},
) {
  const root = mkdtempSync(join(tmpdir(), 'broker-script-'));
  roots.push(root);
  const dirs = {
    bin: join(root, 'bin'),
    config: join(root, 'config'),
    credentials: join(root, 'credentials'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d);
  writeFileSync(join(dirs.bin, 'rabbitmq-server'), STUB);
  chmodSync(join(dirs.bin, 'rabbitmq-server'), 0o755);
  const files = brokerConfigFiles({
    ...base,
    definitionsFile: join(root, 'home', 'definitions.json'),
    queues: [{ name: 'photos' }],
  });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dirs.config, f), text);
  const values = {
    username: LOGIN.username,
    password: LOGIN.password,
    monitoringUsername: MONITORING.username,
    monitoringPassword: `${MONITORING.password}\n`,
    erlangCookie: `${COOKIE}\n`,
    ...credentials,
  };
  for (const [key, file] of Object.entries(CREDENTIAL_FILES)) {
    const v = values[key as keyof typeof values];
    if (v !== undefined) writeFileSync(join(dirs.credentials, file), v, { mode: 0o440 });
  }
  for (const [file, v] of Object.entries(record))
    writeFileSync(join(dirs.credentials, file), v, { mode: 0o440 });
  return { root, ...dirs, home: join(root, 'home') };
}

function run(s: ReturnType<typeof setUp>, env: Record<string, string> = {}) {
  const r = spawnSync('sh', [join(s.config, CONFIG_FILES.startScript)], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      STUB_OUT: join(s.root, 'started'),
      HOME: s.home,
      RABBITMQ_NODENAME: NODES[0],
      RABBITMQ_USE_LONGNAME: 'true',
      RABBITMQ_BIN: s.bin,
      CONFIG_DIR: s.config,
      CREDENTIALS_DIR: s.credentials,
      ...env,
    },
  });
  let started: Record<string, string> | undefined;
  try {
    const out = readFileSync(join(s.root, 'started'), 'utf8').split('\n');
    started = Object.fromEntries(
      out
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    started.envLinesWithPassword = out[out.length - 2]!;
  } catch {
    started = undefined;
  }
  return { status: r.status, stderr: r.stderr, started };
}

describe('brokerStartScript', () => {
  it('is valid POSIX sh', () => {
    expect(spawnSync('sh', ['-n'], { input: brokerStartScript() }).status).toBe(0);
  });

  it('writes the definitions with the two logins into the private file rabbitmq.conf names', () => {
    const s = setUp();
    const r = run(s);
    expect(r.stderr).not.toContain('error');
    expect(r.status).toBe(0);
    const file = join(s.home, 'definitions.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      // The application: no tag (no management API), its own queue only. Monitoring: read-only
      // management views, no messaging at all. No administrator.
      users: [
        { name: LOGIN.username, password: LOGIN.password, tags: [] },
        { name: MONITORING.username, password: MONITORING.password, tags: ['monitoring'] },
      ],
      permissions: [
        {
          user: LOGIN.username,
          vhost: '/',
          configure: '^(photos)$',
          write: '^(photos|amq\\.default)$',
          read: '^(photos)$',
        },
        { user: MONITORING.username, vhost: '/', configure: '^$', write: '^$', read: '^$' },
      ],
      ...JSON.parse(definitionsJson([{ name: 'photos' }])),
    });
  });

  it("gives the app the login the operator recorded, and the operator's own login administration only", () => {
    const s = setUp(
      { operatorPassword: 'op"pw\\' },
      { [APP_LOGIN_KEYS.login]: `${LOGIN.username}-alt`, [APP_LOGIN_KEYS.password]: 'new"pw' },
    );
    const r = run(s);
    expect(r.stderr).not.toContain('error');
    expect(r.status).toBe(0);
    const { users, permissions } = JSON.parse(readFileSync(join(s.home, 'definitions.json'), 'utf8'));
    // Not the Secret's username and password: what the user asks for reaches the brokers through
    // the operator's rotation, which records it only once the brokers have it.
    expect(users).toEqual([
      { name: `${LOGIN.username}-alt`, password: 'new"pw', tags: [] },
      { name: MONITORING.username, password: MONITORING.password, tags: ['monitoring'] },
      { name: QUEUE_OPERATOR_USER, password: 'op"pw\\', tags: ['administrator'] },
    ]);
    // The operator's login may publish, consume and declare nothing.
    expect(permissions.map((p: { user: string }) => p.user)).toEqual([
      `${LOGIN.username}-alt`,
      MONITORING.username,
    ]);
    expect(permissions[0]).toMatchObject({ configure: '^(photos)$' });
  });

  it("refuses an app or monitoring login named like the operator's", () => {
    const r = run(setUp({ operatorPassword: 'op', monitoringUsername: QUEUE_OPERATOR_USER }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/the login scalableapp-operator is the operator's/);
    expect(r.started).toBeUndefined();
    const empty = run(setUp({ operatorPassword: '' }));
    expect(empty.stderr).toMatch(/operator-password is empty/);
  });

  it('refuses one user name for both logins: one user cannot have two sets of permissions', () => {
    const r = run(setUp({ monitoringUsername: LOGIN.username }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/username and monitoring-username must differ/);
    expect(r.started).toBeUndefined();
  });

  it('copies the Erlang cookie into HOME, readable by its owner only, also over an earlier copy', () => {
    const s = setUp();
    expect(run(s).status).toBe(0);
    // A restarted container finds its 0400 copy from the last start in the emptyDir.
    const r = run(s);
    expect(r.status).toBe(0);
    const cookie = join(s.home, '.erlang.cookie');
    expect(statSync(cookie).mode & 0o777).toBe(0o400);
    expect(readFileSync(cookie, 'utf8')).toBe(COOKIE);
  });

  it('starts rabbitmq-server on our files only, with the login in no variable or argument', () => {
    const s = setUp();
    const r = run(s);
    expect(r.started).toMatchObject({
      RABBITMQ_CONFIG_FILE: join(s.config, CONFIG_FILES.conf),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(s.config, CONFIG_FILES.advanced),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(s.config, CONFIG_FILES.plugins),
      // Not /etc/rabbitmq/conf.d, whose image defaults let guest in from anywhere.
      RABBITMQ_CONFIG_FILES: join(s.config, 'conf.d/*.conf'),
      RABBITMQ_CONF_ENV_FILE: join(s.config, 'rabbitmq-env.conf'),
      RABBITMQ_NODENAME: NODES[0],
      ERL_CRASH_DUMP: join(s.home, 'erl_crash.dump'),
      args: '',
      envLinesWithPassword: '0',
    });
    expect(r.stderr).not.toContain(LOGIN.password);
    expect(r.stderr).not.toContain(MONITORING.password);
  });

  it('fails, naming the cause, without a complete Secret or a sane login', () => {
    const missing = run(setUp({ erlangCookie: undefined }));
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/erlang-cookie is missing or unreadable/);
    expect(missing.started).toBeUndefined();
    const empty = run(setUp({ password: '' }));
    expect(empty.stderr).toMatch(/password is empty/);
    expect(run(setUp({ monitoringPassword: undefined })).stderr).toMatch(
      /monitoring-password is missing or unreadable/,
    );
    const newline = run(setUp({ password: 'a\nb' }));
    expect(newline.status).not.toBe(0);
    expect(newline.stderr).toMatch(/password must not contain control characters/);
    expect(newline.stderr).not.toContain('a\nb');
    expect(newline.started).toBeUndefined();
  });

  describe('beside the server, grows the quorum queues onto the node', () => {
    // The server stub stays up until a CLI stub says the grow has nothing left to do (at most 20 s),
    // as a real server outlives it; the CLI stubs record their arguments.
    const SERVER = `#!/bin/sh
i=0
while [ ! -e "$STUB_DONE" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
`;
    const CTL = `#!/bin/sh
echo "rabbitmqctl $* as $RABBITMQ_NODENAME" >>"$CLI_OUT"
status=\${CTL_STATUS:-0}
[ "$status" = 0 ] || : >"$STUB_DONE"
exit "$status"
`;
    // The first call reports a queue that could not grow (its leader away), the second none.
    const QUEUES = `#!/bin/sh
echo "rabbitmq-queues $*" >>"$CLI_OUT"
if [ ! -e "$CLI_OUT.tried" ]; then
  : >"$CLI_OUT.tried"
  printf 'vhost\tname\tsize\tresult\n/\tphotos\t1\t{error,timeout}\n'
  exit 0
fi
: >"$STUB_DONE"
printf '\n'
`;
    function stubbed(env: Record<string, string> = {}) {
      const s = setUp();
      for (const [name, text] of Object.entries({
        'rabbitmq-server': SERVER,
        rabbitmqctl: CTL,
        'rabbitmq-queues': QUEUES,
      })) {
        writeFileSync(join(s.bin, name), text);
        chmodSync(join(s.bin, name), 0o755);
      }
      const cliOut = join(s.root, 'cli');
      const r = run(s, { CLI_OUT: cliOut, STUB_DONE: join(s.root, 'grown'), ...env });
      const calls = (() => {
        try {
          return readFileSync(cliOut, 'utf8').trim().split('\n');
        } catch {
          return [];
        }
      })();
      return { ...r, calls };
    }

    it('once the node has booted, retrying while a queue cannot grow yet', () => {
      const r = stubbed();
      expect(r.status).toBe(0);
      const grow = `rabbitmq-queues -q grow ${NODES[0]} all --errors-only`;
      expect(r.calls).toEqual([`rabbitmqctl -q await_startup --timeout 60 as ${NODES[0]}`, grow, grow]);
      expect(r.stderr).toMatch(/start\.sh rabbit@mq-0\S*: a member of every quorum queue/);
    }, 30_000);

    it('not at all when the server exits before it finished booting, and says so', () => {
      const r = stubbed({ CTL_STATUS: '1' });
      // Retried while the server runs (the stub stops a moment after the first failure); never grown.
      expect(new Set(r.calls)).toEqual(new Set([`rabbitmqctl -q await_startup --timeout 60 as ${NODES[0]}`]));
      expect(r.stderr).toMatch(/quorum queues not grown: rabbitmq-server exited before it finished booting/);
    }, 30_000);
  });

  it('fails without its required environment', () => {
    const r = run(setUp(), { RABBITMQ_USE_LONGNAME: '' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/RABBITMQ_USE_LONGNAME is required/);
  });

  it('fails when rabbitmq.conf names no definitions file', () => {
    const s = setUp();
    writeFileSync(join(s.config, CONFIG_FILES.conf), '# no definitions\n');
    const r = run(s);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/names no absolute definitions.local.path/);
  });
});
