// The start script's decisions, run with sh against stub binaries that record how they were called:
// milliseconds, no Postgres. The data-plane tests (server-tests/postgres.test.ts) run the same script
// with the real binaries.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CREDENTIAL_FILES, instanceStartScript } from './postgres-instance-script.ts';
import { FENCED_HBA_FILE, STARTED_FENCED_HBA_FILE, STARTED_HBA_FILE } from './postgres-ready-script.ts';
import { SERVER_PASSWORD_KEYS } from './postgres-passfile.ts';
import { identConfig } from './postgres.ts';

const PASSWORDS = { superuser: `s:u\\p'er"1`, replication: `r:e\\p'l"2`, app: `a'p"p:3` };

// Each stub appends its name and arguments to $STUB_DIR/calls, one call per line.
const record = `
echo "$(basename "$0") $* PGPASSFILE=\${PGPASSFILE:-}" >>"$STUB_DIR/calls"
dir=
prev=
for a; do [ "$prev" = -D ] && dir=$a; prev=$a; done
`;
const STUBS: Record<string, string> = {
  initdb: `${record}mkdir -p "$dir"; echo 15 >"$dir/PG_VERSION"`,
  pg_basebackup: `${record}[ "\${BASEBACKUP_FAILS:-}" = yes ] && exit 1
mkdir -p "$dir"; echo 15 >"$dir/PG_VERSION"; echo cloned >"$dir/marker"
echo "primary_conninfo = 'from the source'" >"$dir/postgresql.auto.conf"`,
  // A dry run says what REWIND_CHECK_SAYS (default: nothing to do), changes nothing.
  pg_rewind: `${record}case " $* " in *" --dry-run "*)
  [ "\${REWIND_CHECK_FAILS:-}" = yes ] && { echo "pg_rewind: error: target server must be shut down cleanly" >&2; exit 1; }
  echo "pg_rewind: \${REWIND_CHECK_SAYS:-no rewind required}" >&2; exit 0 ;; esac
[ "\${REWIND_FAILS:-}" = yes ] && exit 1
echo rewound >"$dir/marker"`,
  psql: `${record}[ "\${PSQL_FAILS:-}" = yes ] && exit 1
if [ "\${PSQL_FAILS_ONCE:-}" = yes ] && [ ! -e "$STUB_DIR/psql-failed" ]; then : >"$STUB_DIR/psql-failed"; exit 1; fi
exit 0`,
  postgres: `${record}case " $* " in *" --single "*) cat >"$STUB_DIR/single.sql"; exit 0 ;; esac
{ if [ -f "$dir/standby.signal" ]; then echo standby; elif [ -f "$dir/recovery.signal" ]; then echo recovering; else echo primary; fi; cat "$dir/postgresql.auto.conf" 2>/dev/null || true; } >"$STUB_DIR/final"`,
};

type Run = {
  status: number | null;
  stderr: string;
  calls: string[];
  final?: string;
  sql?: string;
  root: string;
  pgdata: string;
};

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function setUp() {
  const root = mkdtempSync(join(tmpdir(), 'instance-script-'));
  roots.push(root);
  const bin = join(root, 'bin');
  mkdirSync(bin);
  for (const [name, body] of Object.entries(STUBS)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  mkdirSync(join(root, 'config'));
  writeFileSync(join(root, 'config', 'postgresql.conf'), '# ours\n');
  writeFileSync(join(root, 'config', 'pg_hba.conf'), '# our hba\n');
  writeFileSync(join(root, 'config', FENCED_HBA_FILE), '# our fenced hba\n');
  mkdirSync(join(root, 'credentials'));
  writeFileSync(join(root, 'credentials', CREDENTIAL_FILES.superuserPassword), `${PASSWORDS.superuser}\n`);
  writeFileSync(join(root, 'credentials', CREDENTIAL_FILES.replicationPassword), PASSWORDS.replication);
  writeFileSync(join(root, 'credentials', CREDENTIAL_FILES.appPassword), PASSWORDS.app);
  writeFileSync(join(root, 'start.sh'), instanceStartScript({ appUser: 'app', appDatabase: 'appdb' }));
  return { root, pgdata: join(root, 'volume', 'pgdata') };
}

function run(s: { root: string; pgdata: string }, env: Record<string, string>): Run {
  const r = spawnSync('sh', [join(s.root, 'start.sh')], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      STUB_DIR: s.root,
      PG_BIN: join(s.root, 'bin'),
      PGDATA: s.pgdata,
      PGPORT: '5433',
      PRIMARY_HOST: 'db-0.db.ns.svc',
      PRIMARY_PORT: '5432',
      CONFIG_DIR: join(s.root, 'config'),
      CREDENTIALS_DIR: join(s.root, 'credentials'),
      RUN_DIR: join(s.root, 'run'),
      ...env,
    },
  });
  const read = (f: string) =>
    existsSync(join(s.root, f)) ? readFileSync(join(s.root, f), 'utf8') : undefined;
  return {
    status: r.status,
    stderr: r.stderr,
    calls: (read('calls') ?? '').split('\n').filter(Boolean),
    final: read('final'),
    sql: read('single.sql'),
    ...s,
  };
}

const names = (r: Run) => r.calls.map((c) => c.split(' ')[0]);
const primaryEnv = { INSTANCE_NAME: 'db-0', PRIMARY_NAME: 'db-0' };
const standbyEnv = { INSTANCE_NAME: 'db-1', PRIMARY_NAME: 'db-0' };

describe('instanceStartScript', () => {
  it('is valid POSIX sh', () => {
    const script = instanceStartScript({ appUser: 'app', appDatabase: 'appdb' });
    expect(spawnSync('sh', ['-n'], { input: script }).status).toBe(0);
  });

  it('refuses role and database names that would need quoting', () => {
    expect(() => instanceStartScript({ appUser: 'app"; DROP', appDatabase: 'appdb' })).toThrow(
      /plain identifier/,
    );
  });

  it('empty data directory on the recorded primary: initdb, roles and database, then postgres', () => {
    const r = run(setUp(), primaryEnv);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    expect(names(r)).toEqual(['initdb', 'postgres', 'postgres']);
    expect(r.calls[0]).toContain('--pwfile=');
    expect(r.calls[0]).toContain('--data-checksums');
    expect(r.calls[0]).toContain('--auth=scram-sha-256');
    // The SQL went through stdin, quotes doubled.
    expect(r.sql).toContain(`CREATE ROLE "replicator" WITH LOGIN REPLICATION PASSWORD 'r:e\\p''l"2';`);
    expect(r.sql).toContain(`CREATE ROLE "app" WITH LOGIN PASSWORD 'a''p"p:3';`);
    expect(r.sql).toContain('CREATE DATABASE "appdb" OWNER "app";');
    expect(r.calls[2]).toMatch(/^postgres -D \S+\/pgdata PGPASSFILE=/);
    expect(r.final?.split('\n')[0]).toBe('primary');
    // Our config replaced initdb's, and the half-built directory was renamed into place.
    // The instance's port and socket directory are appended: the last occurrence wins.
    expect(readFileSync(join(r.pgdata, 'postgresql.conf'), 'utf8')).toBe(
      `# ours\n# Appended by start.sh for this instance:\nport = 5433\nunix_socket_directories = '${r.root}/run'\n`,
    );
    expect(readFileSync(join(r.pgdata, 'pg_hba.conf'), 'utf8')).toBe('# our hba\n');
    expect(existsSync(`${r.pgdata}.new`)).toBe(false);
  });

  it('with the operator’s record of the servers’ passwords (ADR 0028): initdb and the passfile take those, not keys changed since', () => {
    const s = setUp();
    writeFileSync(join(s.root, 'credentials', SERVER_PASSWORD_KEYS.superuser), 'given-s');
    writeFileSync(join(s.root, 'credentials', SERVER_PASSWORD_KEYS.replication), 'given:r');
    const r = run(s, primaryEnv);
    expect(r.status).toBe(0);
    expect(r.calls[0]).toContain(`--pwfile=${join(r.root, 'credentials', SERVER_PASSWORD_KEYS.superuser)}`);
    expect(r.sql).toContain(`CREATE ROLE "replicator" WITH LOGIN REPLICATION PASSWORD 'given:r';`);
    expect(readFileSync(join(r.root, 'run', 'pgpass'), 'utf8')).toBe(
      '*:*:*:postgres:given-s\n*:*:*:replicator:given\\:r\n',
    );
  });

  it('maps the container’s user to the superuser on its own socket (pg_ident.conf beside pg_hba.conf)', () => {
    const r = run(setUp(), primaryEnv);
    expect(readFileSync(join(r.pgdata, 'pg_ident.conf'), 'utf8')).toBe(identConfig());
  });

  it('passwords travel in a 0600 passfile, escaped, never in arguments or logs', () => {
    const r = run(setUp(), primaryEnv);
    const passfile = join(r.root, 'run', 'pgpass');
    expect(statSync(passfile).mode & 0o777).toBe(0o600);
    expect(readFileSync(passfile, 'utf8')).toBe(
      `*:*:*:postgres:s\\:u\\\\p'er"1\n*:*:*:replicator:r\\:e\\\\p'l"2\n`,
    );
    for (const c of r.calls) expect(c).toContain(`PGPASSFILE=${passfile}`);
    for (const p of Object.values(PASSWORDS)) {
      expect(r.calls.join('\n')).not.toContain(p);
      expect(r.stderr).not.toContain(p);
    }
  });

  it('empty data directory elsewhere: a clone of the primary, started as its standby', () => {
    const r = run(setUp(), standbyEnv);
    expect(r.status).toBe(0);
    expect(names(r)).toEqual(['pg_basebackup', 'postgres']);
    expect(r.calls[0]).toMatch(/-d host=db-0\.db\.ns\.svc port=5432 user=replicator -w -X stream/);
    expect(r.final).toBe(
      "standby\nprimary_conninfo = 'host=db-0.db.ns.svc port=5432 user=replicator application_name=db-1'\n",
    );
  });

  it("a standby already, on the primary's history: a dry run of pg_rewind, then only primary_conninfo changes", () => {
    const s = setUp();
    run(s, standbyEnv);
    const r = run(s, { ...standbyEnv, PRIMARY_NAME: 'db-2', PRIMARY_HOST: 'db-2.db.ns.svc' });
    expect(names(r).slice(2)).toEqual(['psql', 'pg_rewind', 'postgres']);
    expect(r.calls[3]).toMatch(/--source-server=host=db-2\.db\.ns\.svc .* --dry-run --no-ensure-shutdown/);
    expect(existsSync(join(r.pgdata, 'marker'))).toBe(true); // the clone's, untouched
    expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('cloned\n');
    expect(r.stderr).toMatch(/on db-2's history: following it/);
    expect(r.final).toBe(
      "standby\nprimary_conninfo = 'host=db-2.db.ns.svc port=5432 user=replicator application_name=db-1'\n",
    );
  });

  it("a standby whose history forked from the primary's before its end is rewound, then follows", () => {
    const s = setUp();
    run(s, standbyEnv);
    const r = run(s, {
      ...standbyEnv,
      REWIND_CHECK_SAYS: 'servers diverged at WAL location 0/5000000 on timeline 2',
    });
    expect(names(r).slice(2)).toEqual(['psql', 'pg_rewind', 'psql', 'pg_rewind', 'postgres']);
    expect(r.calls[5]).not.toContain('--dry-run');
    expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('rewound\n');
    expect(r.stderr).toMatch(/went past where db-0's timeline forked/);
    expect(r.final?.split('\n')[0]).toBe('standby');
  });

  it('a forked standby whose rewind fails midway is cloned afresh', () => {
    const s = setUp();
    run(s, standbyEnv);
    const r = run(s, { ...standbyEnv, REWIND_CHECK_SAYS: 'servers diverged', REWIND_FAILS: 'yes' });
    expect(names(r).slice(2)).toEqual([
      'psql',
      'pg_rewind',
      'psql',
      'pg_rewind',
      'pg_basebackup',
      'postgres',
    ]);
    expect(r.final?.split('\n')[0]).toBe('standby');
  });

  it.each([
    // Waited for (REWIND_WAITS times, 2 s apart) before it gives up.
    ['the primary does not answer', { PSQL_FAILS: 'yes', REWIND_WAITS: '1' }, ['psql', 'psql', 'postgres']],
    ['it was not shut down cleanly', { REWIND_CHECK_FAILS: 'yes' }, ['psql', 'pg_rewind', 'postgres']],
  ])(
    'a standby that cannot be compared (%s) starts as it is, without rewinding or cloning',
    (_why, env, calls) => {
      const s = setUp();
      run(s, standbyEnv);
      const r = run(s, { ...standbyEnv, ...env });
      expect(names(r).slice(2)).toEqual(calls);
      expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('cloned\n');
      expect(r.stderr).toMatch(/could not compare histories now/);
      expect(r.final?.split('\n')[0]).toBe('standby');
    },
  );

  it('a forked standby whose primary answers late (a new pod not yet let through) is still compared and rewound', () => {
    const s = setUp();
    run(s, standbyEnv);
    const r = run(s, { ...standbyEnv, PSQL_FAILS_ONCE: 'yes', REWIND_CHECK_SAYS: 'servers diverged' });
    expect(names(r).slice(2)).toEqual(['psql', 'psql', 'pg_rewind', 'psql', 'pg_rewind', 'postgres']);
    expect(r.stderr).toMatch(/db-0 does not answer yet; comparing histories again in 2s/);
    expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('rewound\n');
    expect(r.final?.split('\n')[0]).toBe('standby');
  });

  it('a former primary: pg_rewind from the new primary as the superuser, then a standby', () => {
    const s = setUp();
    run(s, primaryEnv);
    const r = run(s, { INSTANCE_NAME: 'db-0', PRIMARY_NAME: 'db-1', PRIMARY_HOST: 'db-1.db.ns.svc' });
    expect(names(r).slice(3)).toEqual(['psql', 'pg_rewind', 'postgres']);
    // A checkpoint first, so pg_rewind sees the new primary's timeline.
    expect(r.calls[3]).toContain(
      '-d host=db-1.db.ns.svc port=5432 user=postgres dbname=postgres -c CHECKPOINT',
    );
    expect(r.calls[4]).toContain(
      '--source-server=host=db-1.db.ns.svc port=5432 user=postgres dbname=postgres',
    );
    expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('rewound\n');
    expect(r.final?.split('\n')[0]).toBe('standby');
  });

  it('a former primary that cannot be rewound is replaced by a fresh clone', () => {
    const s = setUp();
    run(s, primaryEnv);
    const r = run(s, { INSTANCE_NAME: 'db-0', PRIMARY_NAME: 'db-1', REWIND_FAILS: 'yes' });
    expect(names(r).slice(3)).toEqual(['psql', 'pg_rewind', 'pg_basebackup', 'postgres']);
    expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('cloned\n');
    expect(r.final?.split('\n')[0]).toBe('standby');
  });

  it('a former primary whose new primary cannot checkpoint is cloned rather than left diverged, after waiting for it', () => {
    const s = setUp();
    run(s, primaryEnv);
    const r = run(s, { INSTANCE_NAME: 'db-0', PRIMARY_NAME: 'db-1', PSQL_FAILS: 'yes', REWIND_WAITS: '1' });
    expect(names(r).slice(3)).toEqual(['psql', 'psql', 'pg_basebackup', 'postgres']);
    expect(r.stderr).toMatch(/db-1 does not answer yet; retrying the rewind in 2s/);
  });

  it('a former primary whose new primary answers late is rewound, not cloned', () => {
    const s = setUp();
    run(s, primaryEnv);
    // The first checkpoint request finds no one (a new pod's network not yet let through).
    const r = run(s, { INSTANCE_NAME: 'db-0', PRIMARY_NAME: 'db-1', PSQL_FAILS_ONCE: 'yes' });
    expect(names(r).slice(3)).toEqual(['psql', 'psql', 'pg_rewind', 'postgres']);
    expect(readFileSync(join(r.pgdata, 'marker'), 'utf8')).toBe('rewound\n');
  });

  it('a standby recorded as the primary starts promoted (to a new timeline) and unfenced', () => {
    const s = setUp();
    run(s, standbyEnv);
    writeFileSync(
      join(s.pgdata, 'postgresql.auto.conf'),
      "default_transaction_read_only = 'on'\nwork_mem = '8MB'\n",
    );
    const r = run(s, { INSTANCE_NAME: 'db-1', PRIMARY_NAME: 'db-1' });
    expect(names(r).slice(2)).toEqual(['postgres']);
    expect(r.calls[2]).toMatch(/ -c restore_command=false /);
    expect(r.final).toBe("recovering\nwork_mem = '8MB'\n");
  });

  it('leaves a directory it did not create alone', () => {
    const s = setUp();
    mkdirSync(s.pgdata, { recursive: true });
    writeFileSync(join(s.pgdata, 'precious'), 'x');
    const r = run(s, primaryEnv);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/holds files but no PG_VERSION/);
    expect(r.calls).toEqual([]);
  });

  it('fails before touching anything when a credential or a variable is missing', () => {
    const s = setUp();
    rmSync(join(s.root, 'credentials', CREDENTIAL_FILES.replicationPassword));
    const r = run(s, primaryEnv);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/replication-password is missing/);
    expect(r.calls).toEqual([]);
    expect(run(setUp(), { INSTANCE_NAME: 'db-0' }).stderr).toMatch(/PRIMARY_NAME is required/);
    expect(run(setUp(), { ...standbyEnv, PRIMARY_HOST: "x' sslmode=disable" }).stderr).toMatch(
      /PRIMARY_HOST must match/,
    );
  });

  describe('with TLS (TLS_CA_FILE)', () => {
    const withCa = (s: { root: string }) => {
      writeFileSync(join(s.root, 'ca.crt'), 'a CA\n');
      return { TLS_CA_FILE: join(s.root, 'ca.crt') };
    };

    it('clones, streams and rewinds with the certificate and name of the primary verified', () => {
      const s = setUp();
      const tls = withCa(s);
      const verify = `sslmode=verify-full sslrootcert=${tls.TLS_CA_FILE}`;
      const clone = run(s, { ...standbyEnv, ...tls });
      expect(clone.calls[0]).toContain(`-d host=db-0.db.ns.svc port=5432 user=replicator ${verify} -w`);
      expect(clone.final).toBe(
        `standby\nprimary_conninfo = 'host=db-0.db.ns.svc port=5432 user=replicator application_name=db-1 ${verify}'\n`,
      );
      const p = setUp();
      const ptls = withCa(p);
      run(p, { ...primaryEnv, ...ptls });
      const r = run(p, {
        INSTANCE_NAME: 'db-0',
        PRIMARY_NAME: 'db-1',
        PRIMARY_HOST: 'db-1.db.ns.svc',
        ...ptls,
      });
      expect(r.calls[4]).toContain(
        `--source-server=host=db-1.db.ns.svc port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${ptls.TLS_CA_FILE}`,
      );
    });

    it('refuses a CA file it cannot read or a path that would need quoting, before touching anything', () => {
      const s = setUp();
      const missing = run(s, { ...standbyEnv, TLS_CA_FILE: join(s.root, 'nowhere.crt') });
      expect(missing.status).toBe(1);
      expect(missing.stderr).toMatch(/TLS_CA_FILE .* is missing or unreadable/);
      expect(missing.calls).toEqual([]);
      const quoted = run(setUp(), { ...standbyEnv, TLS_CA_FILE: "/tls/ca.crt' sslmode=disable" });
      expect(quoted.stderr).toMatch(/TLS_CA_FILE must match/);
    });
  });

  it('keeps the pg_hba.conf files the server starts with, for ready.sh: a later ConfigMap is not in force until a restart', () => {
    const s = setUp();
    expect(run(s, primaryEnv).status).toBe(0);
    expect(readFileSync(join(s.root, 'run', STARTED_HBA_FILE), 'utf8')).toBe('# our hba\n');
    expect(readFileSync(join(s.root, 'run', STARTED_FENCED_HBA_FILE), 'utf8')).toBe('# our fenced hba\n');
  });
});
