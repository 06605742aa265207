// A real S3-compatible object store on loopback for the backup tests: versitygw (built by
// tools/toolchain.sh) over a directory, serving TLS with a certificate for `localhost` from a CA of
// its own. pgBackRest 2.45 checks the certificate against DNS names only, so clients reach it as
// `localhost`, never by address.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCa, issueServerCert } from '../../operator/tls/certificates.ts';
import { freePort, portOpen } from '../../e2e/support/free-port.ts';
import { until } from './postgres-local-cluster.ts';

export const STORE_HOST = 'localhost';

/** The versitygw tools/toolchain.sh built (the version pinned in tools/versions.sh); not on PATH. */
function versitygwBinary(): string {
  const toolchain = new URL('../../tools/toolchain.sh', import.meta.url).pathname;
  const path = join(execFileSync('bash', [toolchain, '--print'], { encoding: 'utf8' }).trim(), 'versitygw');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash tools/toolchain.sh\` first`);
  return path;
}

export class LocalObjectStore {
  readonly root: string;
  readonly port: number;
  readonly bucket = 'backups';
  readonly region = 'us-east-1';
  readonly accessKeyId = `test-${randomBytes(4).toString('hex')}`;
  readonly secretAccessKey = randomBytes(24).toString('base64url');
  readonly caFile: string;
  /** Everything the store logged (the last 256 KiB). */
  log = '';
  #proc: ChildProcess | undefined;

  private constructor(root: string, port: number) {
    this.root = root;
    this.port = port;
    this.caFile = join(root, 'tls', 'ca.crt');
  }

  /** A running store with one empty bucket. */
  static async start(): Promise<LocalObjectStore> {
    const root = await mkdtemp(join(tmpdir(), 'object-store-'));
    const store = new LocalObjectStore(root, await freePort());
    // The CA certificate is read by clients of other users (pgBackRest runs as postgres'); the key
    // stays the store's.
    await chmod(root, 0o755);
    await mkdir(join(root, 'tls'), { mode: 0o755 });
    const ca = await issueCa('object store test CA', new Date());
    const cert = await issueServerCert(ca, [STORE_HOST], new Date());
    await writeFile(store.caFile, ca.cert, { mode: 0o644 });
    await writeFile(join(root, 'tls', 'tls.crt'), cert.cert);
    await writeFile(join(root, 'tls', 'tls.key'), cert.key, { mode: 0o600 });
    // A bucket of the posix backend is a top-level directory.
    await mkdir(join(root, 'data', store.bucket), { recursive: true });
    await store.resume();
    return store;
  }

  get running(): boolean {
    return !!this.#proc && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Starts the store again (after stop): the same port, keys and data. */
  async resume(): Promise<void> {
    if (this.running) return;
    const proc = spawn(
      versitygwBinary(),
      [
        '--port',
        `127.0.0.1:${this.port}`,
        // Absolute paths: the posix backend changes into its data directory.
        '--cert',
        join(this.root, 'tls', 'tls.crt'),
        '--key',
        join(this.root, 'tls', 'tls.key'),
        '--region',
        this.region,
        'posix',
        join(this.root, 'data'),
      ],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          ROOT_ACCESS_KEY_ID: this.accessKeyId,
          ROOT_SECRET_ACCESS_KEY: this.secretAccessKey,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.#proc = proc;
    const append = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-256 * 1024);
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    proc.on('error', (err) => append(Buffer.from(`could not run versitygw: ${err.message}\n`)));
    await until(
      `the object store to accept connections on ${this.port}`,
      () => portOpen(this.port),
      30_000,
      () => (this.running ? undefined : `versitygw exited; its log:\n${this.log}`),
    );
  }

  /** Stops the store, as when it becomes unreachable. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (!proc || !this.running) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
    await until(`port ${this.port} to refuse`, async () => !(await portOpen(this.port)));
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.root, { recursive: true, force: true });
  }
}
