// The passfile functions the start script and the readiness probe share, run with sh over a
// credentials directory like the kubelet's: what they write, and that the probe's frequent refresh
// writes nothing while the passwords stay the same.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_PASSWORD_FILES, SERVER_PASSWORD_KEYS, passfileFunctions } from './postgres-passfile.ts';

let root: string;
let credentials: string;
let passfile: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'passfile-'));
  credentials = join(root, 'credentials');
  mkdirSync(credentials);
  passfile = join(root, 'pgpass');
  writeFileSync(join(credentials, SERVER_PASSWORD_FILES.superuser), 'su:1');
  writeFileSync(join(credentials, SERVER_PASSWORD_FILES.replication), 'repl\\2');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function sh(call: string) {
  const r = spawnSync('sh', ['-euc', `credentials_dir='${credentials}'\n${passfileFunctions()}\n${call}`], {
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const LINES = '*:*:*:postgres:su\\:1\n*:*:*:replicator:repl\\\\2\n';

describe('the passfile', () => {
  it('is written 0600 with both roles’ lines, escaped', () => {
    expect(sh(`write_passfile '${passfile}'`)).toMatchObject({ status: 0, stdout: '' });
    expect(readFileSync(passfile, 'utf8')).toBe(LINES);
    expect(statSync(passfile).mode & 0o777).toBe(0o600);
  });

  it('is refreshed only when the text changes: an unchanged file is not rewritten, nothing is said', () => {
    expect(sh(`refresh_passfile '${passfile}'`).stdout).toBe(
      "the passfile follows the servers' changed passwords\n",
    );
    const first = statSync(passfile);
    const again = sh(`refresh_passfile '${passfile}'`);
    expect(again).toMatchObject({ status: 0, stdout: '' });
    const second = statSync(passfile);
    // Written by rename: an untouched file keeps its inode and its change time.
    expect([second.ino, second.ctimeMs]).toEqual([first.ino, first.ctimeMs]);
  });

  it('follows the operator’s record once it is there', () => {
    sh(`write_passfile '${passfile}'`);
    writeFileSync(join(credentials, SERVER_PASSWORD_KEYS.replication), 'new-r');
    const r = sh(`refresh_passfile '${passfile}'`);
    expect(r.stdout).toContain('follows');
    expect(readFileSync(passfile, 'utf8')).toBe('*:*:*:postgres:su\\:1\n*:*:*:replicator:new-r\n');
  });

  it('a missing password fails and leaves the file as it was', () => {
    sh(`write_passfile '${passfile}'`);
    rmSync(join(credentials, SERVER_PASSWORD_FILES.superuser));
    expect(sh(`refresh_passfile '${passfile}'`).status).not.toBe(0);
    expect(readFileSync(passfile, 'utf8')).toBe(LINES);
  });
});
