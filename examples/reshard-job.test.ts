// The example resharding Job (examples/reshard-job.yaml) against what the operator builds for its app:
// its pods are admitted to the shards and to no other data tier, it runs under the restricted Pod
// Security Standard, and every name it refers to (Secret keys, ConfigMap, entry point) exists.
// e2e/real-reshard.test.ts runs it on the real node.
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { V1Job } from '@kubernetes/client-node';
import { parseApp } from '../operator/api/testdata/apps.ts';
import { networkPolicies } from '../operator/tiers/network-policies.ts';
import { connectionEntries, connectionSecretName } from '../operator/tiers/connection.ts';
import { ALL_FACTS } from '../operator/tiers/testdata/facts.ts';
import { TLS_KEYS, caConfigMapName } from '../operator/tiers/tls.ts';
import { shardMapName, SHARD_MOVER } from '../operator/tiers/shards.ts';
import { SHARD_MAP_KEY } from '../operator/sharding/shard-map.ts';
import { restrictedViolations } from '../operator/tiers/testdata/restricted-pss.ts';

const job = parse(readFileSync(new URL('./reshard-job.yaml', import.meta.url), 'utf8')) as V1Job;
const pod = job.spec!.template;
const [container] = pod.spec!.containers;
const app = parseApp(
  {
    web: { image: 'shop:1' },
    database: {},
    shards: { count: 2, key: 'user_id' },
  },
  'shop',
);

/** A NetworkPolicy as the operator writes it (plain JSON: `from`, which client-node calls `_from`). */
type Policy = {
  metadata: { name: string };
  spec: {
    ingress?: {
      from?: { podSelector?: { matchLabels?: Record<string, string> }; namespaceSelector?: unknown }[];
      ports?: { port: number }[];
    }[];
  };
};
const policy = (name: string) =>
  (networkPolicies(app) as unknown as Policy[]).find((p) => p.metadata.name === name)!;

/** Whether a policy's ingress admits a pod with these labels in the same namespace, on `port`. */
const admits = (p: Policy, labels: Record<string, string>, port: number) =>
  (p.spec.ingress ?? []).some(
    (rule) =>
      rule.ports?.some((x) => x.port === port) &&
      rule.from?.some(
        (f) =>
          !f.namespaceSelector &&
          Object.entries(f.podSelector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
      ),
  );

describe('the example resharding Job', () => {
  const labels = pod.metadata!.labels!;

  it("is labelled as the app's shard mover, which the shards admit on the Postgres port", () => {
    expect(labels).toEqual({
      'app.kubernetes.io/instance': 'shop',
      'app.kubernetes.io/component': SHARD_MOVER,
    });
    expect(admits(policy('shop-allow-shards-ingress'), labels, 5432)).toBe(true);
  });

  it('is admitted to no other data tier', () => {
    expect(admits(policy('shop-allow-database-ingress'), labels, 5432)).toBe(false);
  });

  it('passes every rule of the restricted Pod Security Standard', () => {
    expect(restrictedViolations(pod.spec!)).toEqual([]);
  });

  it("reads the shards' login from the app's connection Secret and the published map from its ConfigMap", () => {
    const refs = container!.env!.map((e) => [
      e.name,
      e.valueFrom?.secretKeyRef?.name,
      e.valueFrom?.secretKeyRef?.key,
    ]);
    expect(refs).toEqual([
      ['SHARDS_USER', connectionSecretName(app), 'SHARDS_USER'],
      ['SHARDS_PASSWORD', connectionSecretName(app), 'SHARDS_PASSWORD'],
      ['SHARDS_SSLMODE', connectionSecretName(app), 'SHARDS_SSLMODE'],
      ['SHARDS_SSLROOTCERT', connectionSecretName(app), 'SHARDS_SSLROOTCERT'],
    ]);
    // Every key it names is one the operator puts in the connection Secret (TLS on, the default).
    const entries = connectionEntries(app, ALL_FACTS);
    for (const [name] of refs) expect(entries).toHaveProperty(name as string);
    expect(pod.spec!.volumes).toEqual([
      { name: 'shard-map', configMap: { name: shardMapName(app) } },
      { name: 'ca', configMap: { name: caConfigMapName(app), optional: true } },
    ]);
    const [mount, caMount] = container!.volumeMounts!;
    expect(container!.args!.slice(1, 3)).toEqual(['--map', `${mount!.mountPath}/${SHARD_MAP_KEY}`]);
    // The CA where SHARDS_SSLROOTCERT says it is.
    expect(`${caMount!.mountPath}/${TLS_KEYS.ca}`).toBe(entries.SHARDS_SSLROOTCERT);
  });

  it("runs the mover compiled into the operator's image", () => {
    const entry = container!.command!.at(-1)!;
    expect(entry).toMatch(/^\/app\/dist\/operator\/.+\.js$/);
    // tools/images.sh compiles operator/<path>.ts to /app/dist/operator/<path>.js.
    const source = entry.replace(/^\/app\/dist\//, '').replace(/\.js$/, '.ts');
    expect(existsSync(new URL(`../${source}`, import.meta.url))).toBe(true);
  });
});
