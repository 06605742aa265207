// charts/stack on the local cluster, without the operator: the one documented command,
// tools/install-stack.sh, installs manifests/samples/12-full-stack.yaml's spec (every tier) as release
// `millions` into a namespace it creates with the restricted Pod Security Standard enforced. Every
// workload and volume becomes ready, the tiers and the connection Secret share the logins the
// umbrella generated once, running the command again keeps them, the spec's rule that shards cannot
// be removed holds, `helm test` runs every tier's hook, and uninstall keeps the volumes and the
// credentials they need.
//
// What `helm test` proves here: KWOK runs no container and never completes a bare pod, so the test
// plays each hook pod's exit (settleTestPod in charts/test/helm.ts). That proves every tier's hooks
// are admitted under the restricted profile and that helm's verdict covers them all; not that any
// server answers.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { helmAsync, settleTestPod } from '../charts/test/helm.ts';
import { KUBECONFIG, deleteNamespace, eventually, json, kubectl } from './support/kube.ts';
import { readyEndpoints } from './support/pods.ts';
import { helmIn, objectExists } from './support/helm-releases.ts';

const release = 'millions';
const ns = `chart-stack-${randomBytes(3).toString('hex')}`;
const sample = new URL('../manifests/samples/12-full-stack.yaml', import.meta.url);
const dir = mkdtempSync(join(tmpdir(), 'scalableapp-stack-'));
const valuesFile = join(dir, 'values.yaml');

/** The one documented command, as a user runs it. */
const installStack = () =>
  spawnSync(
    'bash',
    [new URL('../tools/install-stack.sh', import.meta.url).pathname, release, valuesFile, ns],
    { encoding: 'utf8', env: { ...process.env, KUBECONFIG } },
  );

beforeAll(() => {
  writeFileSync(valuesFile, stringify((parse(readFileSync(sample, 'utf8')) as { spec: unknown }).spec));
});
afterAll(() => {
  helmIn(['uninstall', release, '-n', ns]);
  deleteNamespace(ns);
  rmSync(dir, { recursive: true, force: true });
});

const secret = (name: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(json<any>(['get', 'secret', name, '-n', ns]).data as Record<string, string>).map(
      ([k, v]) => [k, Buffer.from(v, 'base64').toString()],
    ),
  );
const items = (kind: string) => json<{ items: any[] }>(['get', kind, '-n', ns]).items;
const claims = () =>
  items('pvc')
    .map((c) => [c.metadata.name, c.status.phase, c.metadata.uid])
    .sort();
const connectionHash = (deployment: string) =>
  json<any>(['get', 'deployment', deployment, '-n', ns]).spec.template.metadata.annotations[
    'scalableapp.io/connection-hash'
  ];

describe('the whole stack installed without the operator', () => {
  let firstClaims: string[][];

  it('installs with one command into a namespace it creates under the restricted Pod Security Standard', () => {
    const r = installStack();
    expect([r.status, r.stderr]).toEqual([
      0,
      expect.stringContaining('tiers web cache database shards queue consumers edgeCache'),
    ]);
    expect(r.stdout).toContain('STATUS: deployed');
    expect(json<any>(['get', 'namespace', ns]).metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
  });

  it('every workload of every tier becomes ready, with its volumes bound', async () => {
    const workloads = () => [...items('deployments'), ...items('statefulsets')];
    expect(
      workloads()
        .map((w) => `${w.kind}/${w.metadata.name}`)
        .sort(),
    ).toEqual(
      [
        'Deployment/millions-edge',
        'Deployment/millions-mailer',
        'Deployment/millions-photo-processor',
        'Deployment/millions-web',
        'StatefulSet/millions-cache',
        'StatefulSet/millions-db',
        'StatefulSet/millions-mq',
        ...[0, 1, 2, 3].map((i) => `StatefulSet/millions-shard-${i}`),
        expect.stringMatching(/^StatefulSet\/millions-shard-hot-[0-9a-f]{8}$/),
      ].sort(),
    );
    await eventually('every workload ready at its replica count', () =>
      workloads().every((w) => w.spec.replicas > 0 && w.status.readyReplicas === w.spec.replicas),
    );
    // The chart leaves the web tier's replicas to its autoscaler, which raises them to its minimum.
    await eventually('the web tier at its autoscaling minimum', () => {
      const web = json<any>(['get', 'deployment', 'millions-web', '-n', ns]);
      return web.spec.replicas === 3 && web.status.readyReplicas === 3;
    });

    // One claim per instance of every StatefulSet with volumes, each bound.
    const expected = items('statefulsets').flatMap((s) =>
      (s.spec.volumeClaimTemplates ?? []).flatMap((t: any) =>
        Array.from({ length: s.spec.replicas }, (_, i) => `${t.metadata.name}-${s.metadata.name}-${i}`),
      ),
    );
    firstClaims = claims();
    expect(firstClaims.map(([name, phase]) => [name, phase])).toEqual(
      expected.sort().map((n) => [n, 'Bound']),
    );
    expect(expected).toEqual(
      expect.arrayContaining(['data-millions-db-0', 'data-millions-mq-0', 'data-millions-shard-0-0']),
    );

    await eventually('the database primary behind the read-write Service', () =>
      readyEndpoints(ns, 'millions-db-rw').includes('millions-db-0'),
    );
    expect(readyEndpoints(ns, 'millions-db-rw')).toEqual(['millions-db-0']);
    // The app-wide policies exist once, beside every tier's own.
    const policies = items('networkpolicies').map((p) => p.metadata.name);
    expect(
      policies.filter((p) => p === 'millions-default-deny' || p === 'millions-allow-dns').sort(),
    ).toEqual(['millions-allow-dns', 'millions-default-deny']);
  });

  it("the connection Secret holds the very logins the tiers' Secrets hold, which nothing else shows", () => {
    const connection = secret('millions-connection');
    const cache = secret('millions-cache-auth').password!;
    const db = secret('millions-db-credentials');
    const shards = secret('millions-shards-credentials');
    const mq = secret('millions-mq-credentials');
    // TLS by default: rediss:// with the app's CA in CACHE_CA_FILE (Redis URLs carry no CA), and
    // verify-full against the same CA for Postgres; the stack renders it once.
    expect(connection.CACHE_URL).toBe(`rediss://:${cache}@millions-cache.${ns}.svc:6379/0`);
    expect(connection.CACHE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    expect(secret('millions-cache-tls')['ca.crt']).toBe(secret('millions-ca')['tls.crt']);
    expect(connection.DATABASE_URL).toBe(
      `postgresql://app:${db['app-password']}@millions-db-rw.${ns}.svc:5432/app?sslmode=verify-full&sslrootcert=/etc/scalableapp/ca/ca.crt`,
    );
    expect([connection.SHARDS_SSLMODE, connection.SHARDS_SSLROOTCERT]).toEqual([
      'verify-full',
      '/etc/scalableapp/ca/ca.crt',
    ]);
    expect(connection.SHARDS_PASSWORD).toBe(shards['app-password']);
    // The queue too: amqps:// with the same CA in QUEUE_CA_FILE (AMQP URIs carry no CA).
    expect(connection.QUEUE_URL).toBe(`amqps://${mq.username}:${mq.password}@millions-mq.${ns}.svc:5672/%2F`);
    expect(connection.QUEUE_CA_FILE).toBe('/etc/scalableapp/ca/ca.crt');
    expect(secret('millions-mq-tls')['ca.crt']).toBe(secret('millions-ca')['tls.crt']);
    const elsewhere = kubectl([
      'get',
      'configmaps,statefulsets,deployments,pods,services',
      '-n',
      ns,
      '-o',
      'json',
    ]);
    for (const login of [cache, db['app-password']!, shards['app-password']!, mq.password!])
      expect(elsewhere).not.toContain(login);
  });

  it('running the command again keeps every login, and so rolls no pod', () => {
    const before = ['millions-connection', 'millions-cache-auth', 'millions-db-credentials'].map(secret);
    const hashes = ['millions-web', 'millions-mailer'].map(connectionHash);
    const r = installStack();
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    expect(r.stdout).toContain('REVISION: 2');
    expect(['millions-connection', 'millions-cache-auth', 'millions-db-credentials'].map(secret)).toEqual(
      before,
    );
    expect(['millions-web', 'millions-mailer'].map(connectionHash)).toEqual(hashes);
  });

  it('refuses to remove the shards, as the spec does: the data lives on them', () => {
    const { shards: _shards, ...spec } = parse(readFileSync(valuesFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(valuesFile, stringify(spec));
    const r = installStack();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      'shards: shards cannot be removed once created: the data lives on them (reshard into the database first)',
    );
    expect(objectExists(ns, 'statefulset/millions-shard-0')).toBe(true);
    expect(helmIn(['status', release, '-n', ns]).stdout).toContain('REVISION: 2');
  });

  it("`helm test` runs every tier's hooks and passes when each test pod succeeds", async () => {
    const hooks = parseAllDocuments(helmIn(['get', 'hooks', release, '-n', ns]).stdout)
      .map((d) => d.toJS() as any)
      .filter((o) => o?.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test')
      .map((o) => o.metadata.name as string)
      .sort();
    expect(hooks).toEqual(
      ['cache', 'consumers', 'db', 'edge', 'mq', 'shards', 'web'].map((t) => `millions-${t}-test`).sort(),
    );
    const running = helmAsync(['test', release, '-n', ns, '--timeout', '2m', '--kubeconfig', KUBECONFIG]);
    await Promise.all(hooks.map((pod) => settleTestPod(kubectl, ns, pod, 'Succeeded')));
    const result = await running;
    expect([result.ok, result.ok || result.stderr]).toEqual([true, true]);
    for (const pod of hooks)
      expect(result.stdout).toMatch(new RegExp(`TEST SUITE:\\s+${pod}\\n[^]*?Phase:\\s+Succeeded`));
  });

  it('uninstall keeps the volumes and the credentials they need, and nothing else', () => {
    const un = helmIn(['uninstall', release, '-n', ns, '--wait']);
    expect(un.ok).toBe(true);
    for (const kept of ['millions-db-credentials', 'millions-shards-credentials', 'millions-mq-credentials'])
      expect(un.stdout).toContain(`[Secret] ${kept}`);
    expect(claims()).toEqual(firstClaims);
    expect([...items('deployments'), ...items('statefulsets')]).toEqual([]);
    expect(objectExists(ns, 'secret/millions-connection')).toBe(false);
    expect(objectExists(ns, 'secret/millions-cache-auth')).toBe(false);
  });
});
