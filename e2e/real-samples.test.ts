// Every sample, with the images built here, reaches Ready on the real node under the operator running
// in the cluster from its own image (--data-plane real): every container really running, every probe
// really passing, in a namespace that enforces the restricted Pod Security Standard. The samples are
// what a new user applies first; here they run, not only converge on simulated nodes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { stringify } from 'yaml';
import { eventually, kubectl } from './support/kube.ts';
import {
  awaitReady,
  createRealNamespace,
  deleteNamespace,
  describeReal,
  installInClusterOperator,
  localSample,
  podStates,
} from './support/real-node.ts';

const dir = new URL('../manifests/samples/', import.meta.url);
const samples = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const REAL_NODE = readFileSync(new URL('../tools/node-env.sh', import.meta.url), 'utf8').match(
  /^NODE_NAME=(\S+)$/m,
)![1];

/** A self-signed certificate for an Ingress sample's TLS Secret (the user's to provide). */
function createTlsSecret(ns: string, name: string, host: string): void {
  const d = mkdtempSync(join(tmpdir(), 'scalableapp-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${host}`,
        '-keyout',
        join(d, 'tls.key'),
        '-out',
        join(d, 'tls.crt'),
      ],
      { stdio: 'ignore' },
    );
    kubectl([
      'create',
      'secret',
      'tls',
      name,
      '-n',
      ns,
      '--cert',
      join(d, 'tls.crt'),
      '--key',
      join(d, 'tls.key'),
    ]);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

/** What one sample came to: its app once Ready, and its pods then. */
interface Outcome {
  readonly ready: any;
  readonly pods: ReturnType<typeof podStates>;
}

/**
 * Applies one sample in its own namespace and waits for it, then deletes the namespace (without
 * holding the event loop, so the other samples' waits go on meanwhile).
 */
async function runSample(file: string): Promise<Outcome> {
  const app = localSample(new URL(file, dir).pathname);
  const name = app.metadata.name as string;
  const ns = createRealNamespace(`real-${name}`);
  try {
    const expose = app.spec.web?.expose;
    if (expose?.tlsSecretName) createTlsSecret(ns, expose.tlsSecretName, expose.host ?? 'localhost');
    // No instance label: the operator in the cluster (the default instance) owns it.
    kubectl(['apply', '-n', ns, '-f', '-'], stringify(app));
    const ready = await awaitReady(ns, name, `${name} Ready on the real node`);
    // Ready says every tier is available; a rollout or a replica still catching up may trail it.
    // Every pod there is (a consumer scaled to zero has none) must come to run with every
    // container ready, on the real node.
    const selector = `app.kubernetes.io/part-of=${name}`;
    const pods = await eventually(
      `every pod of ${name} running and ready`,
      () => {
        const all = podStates(ns, selector);
        return all.length > 0 && all.every((p) => p.phase === 'Running' && p.ready) && all;
      },
      180_000,
      2000,
    ).catch(() => podStates(ns, selector));
    return { ready, pods };
  } finally {
    await deleteNamespace(ns);
  }
}

/**
 * Samples run side by side, this many at a time: each spends most of its time waiting (images
 * unpacked, servers initialised, probes' periods), and one after another they took half an hour of
 * a CI run. Four at once stays well inside the real node's 2 cores and memory.
 */
const AT_ONCE = 4;

describeReal('the samples on the real node', () => {
  const outcomes = new Map<string, Promise<Outcome>>();
  beforeAll(() => {
    installInClusterOperator();
    const slot = pLimit(AT_ONCE);
    for (const file of samples) {
      const run = slot(() => runSample(file));
      run.catch(() => undefined); // its test reports the failure; until then it is not unhandled
      outcomes.set(file, run);
    }
  });
  afterAll(() => Promise.allSettled(outcomes.values()));

  it.each(samples)(
    '%s runs: Ready, every container running and ready',
    async (file) => {
      const { ready, pods } = await outcomes.get(file)!;
      const tiers = ready.status.conditions.filter(
        (c: any) => /^[A-Z][A-Za-z]*Ready$/.test(c.type) && c.type !== 'Ready',
      );
      expect(tiers.filter((c: any) => c.status !== 'True')).toEqual([]);
      expect(pods.length).toBeGreaterThan(0);
      for (const p of pods) {
        expect({ pod: p.name, node: p.node }).toEqual({ pod: p.name, node: REAL_NODE });
        expect({ pod: p.name, phase: p.phase, ready: p.ready }).toEqual({
          pod: p.name,
          phase: 'Running',
          ready: true,
        });
        for (const c of p.containers)
          expect({ pod: p.name, ...c }).toMatchObject({ running: true, ready: true });
      }
    },
    // A sample waits behind those started before it: at most 10 minutes each for Ready, 3 for pods.
    1_800_000,
  );
});
