// Resharding on the real node: 2 shards grow to 3, and the data mover runs as the Job the project
// ships (examples/reshard-job.yaml), from the operator's image, one phase per Job: copy, fence, copy,
// verify, the flip by annotation, delete, unfence. The data set is the same before and after (row
// count and checksum), and every row is then on the shard the new ring names.
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { getApp } from './support/apps.ts';
import { eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { runWriter } from './support/pod-writer.ts';
import {
  allPodsReady,
  applyAndAwaitReady,
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  installInClusterOperator,
  localApp,
  startProbe,
  tierPods,
} from './support/real-node.ts';
import {
  parseShardMap,
  RESHARD_VERIFIED_ANNOTATION,
  SHARD_MAP_KEY,
  type ShardMap,
} from '../operator/sharding/shard-map.ts';
import { SHARD_MOVER } from '../operator/tiers/shards.ts';
import { OPERATOR_NAMESPACE } from '../operator/tiers/network-policies.ts';

// The example's own names, so the Job runs as a user would apply it: only its name, phase and image change.
const APP = 'shop';
const TABLE = 'events';
const KEYS = 1500;
const NEW_SHARD = `${APP}-shard-2`;
const JOB = parse(readFileSync(new URL('../examples/reshard-job.yaml', import.meta.url), 'utf8'));

const app = (count: number) =>
  localApp(APP, { shards: { count, key: 'user_id', replicasPerShard: 0, storage: { size: '1Gi' } } });

/** A pod labelled as the app's shard mover (as the Job's are), to seed and read the table from. */
const READER = 'rows';
const ROWS_SCRIPT = readFileSync(new URL('./support/shard-rows.mjs', import.meta.url), 'utf8');

let ns: string;
beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-reshard');
  await applyAndAwaitReady(ns, app(2), 'shop Ready with 2 shards on the real node');
  await allPodsReady(ns, tierPods(APP, 'shard'), 2);
  startProbe(
    ns,
    READER,
    { 'app.kubernetes.io/instance': APP, 'app.kubernetes.io/component': SHARD_MOVER },
    `${APP}-connection`,
  );
  await allPodsReady(ns, `app.kubernetes.io/component=${SHARD_MOVER}`, 1);
}, 900_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
});

const mapText = () =>
  json<any>(['get', 'configmap', `${APP}-shard-map`, '-n', ns]).data[SHARD_MAP_KEY] as string;
const publishedMap = (): ShardMap => parseShardMap(mapText());

interface Rows {
  rows: Record<string, number>;
  total?: number;
  md5?: string;
  misplaced?: number;
}
const rows = (mode: 'schema' | 'seed' | 'dump') =>
  runWriter<Rows>(ns, READER, ROWS_SCRIPT, {
    ROWS_MODE: mode,
    ROWS_KEYS: String(KEYS),
    SHARD_MAP: mapText(),
  });

/** The running operator's image, read as the example's header tells users to. */
const operatorImage = () =>
  json<any>(['get', 'deployment', '-n', OPERATOR_NAMESPACE, 'scalableapp-operator']).spec.template.spec
    .containers[0].image as string;

let step = 0;
/** Runs one phase as the example Job and returns what it printed; fails with its log when the Job fails. */
async function runPhase(phase: string): Promise<{ result: any; log: string }> {
  const job = structuredClone(JOB);
  job.metadata.name = `${APP}-reshard-${++step}-${phase}`;
  const [container] = job.spec.template.spec.containers;
  container.image = operatorImage();
  expect([container.args[0], container.args.at(-1)]).toEqual(['copy', TABLE]);
  container.args[0] = phase;
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(job));
  const outcome = await eventually(
    `the ${phase} Job finished`,
    () => {
      const conditions: any[] =
        json<any>(['get', 'job', job.metadata.name, '-n', ns]).status?.conditions ?? [];
      return conditions.find((c) => ['Complete', 'Failed'].includes(c.type) && c.status === 'True')?.type;
    },
    300_000,
    1000,
  );
  const log = tryKubectl(['logs', '-n', ns, `job/${job.metadata.name}`]).stdout;
  if (outcome !== 'Complete') throw new Error(`the ${phase} Job failed:\n${log}`);
  // The phase prints its counts as one JSON object (verify adds a line on stderr after it).
  const text = /^\{[\s\S]*^\}/m.exec(log)?.[0];
  return { result: text ? JSON.parse(text) : undefined, log };
}

describeReal('resharding on the real node with the mover as a Job', () => {
  it('moves the rows of 2 shards onto 3 with the same row count and checksum, each row where the new ring says', async () => {
    const seeded = await rows('seed');
    expect(Object.values(seeded.rows).reduce((a, b) => a + b, 0)).toBe(KEYS * 3);
    const before = await rows('dump');
    expect(before).toMatchObject({ total: KEYS * 3, misplaced: 0 });

    // Ready: the new shard runs, and its read-write Service has its primary behind it.
    await applyAndAwaitReady(ns, app(3), 'shop Ready with the third shard');
    const pending = publishedMap().pending!;
    expect(pending.shards).toHaveLength(3);
    // The app's schema on the new shard (its migration), which the mover needs; empty.
    expect((await rows('schema')).rows).toEqual({ ...seeded.rows, [NEW_SHARD]: 0 });
    // Routing has not changed: the data set is where it was.
    expect(await rows('dump')).toEqual(before);

    const copied = (await runPhase('copy')).result;
    expect(copied.movedKeys).toBeGreaterThan(0);
    expect(copied.rowsWritten).toBe(copied.movedKeys * 3);
    await runPhase('fence');
    // Nothing was written in between: the delta copy writes nothing.
    expect((await runPhase('copy')).result.rowsWritten).toBe(0);
    const verified = await runPhase('verify');
    expect(verified.result).toMatchObject({ ok: true, mismatchedKeys: 0, movedKeys: copied.movedKeys });
    expect(verified.log).toContain(`${RESHARD_VERIFIED_ANNOTATION}=${pending.version}`);

    kubectl(['annotate', 'sapp', APP, '-n', ns, `${RESHARD_VERIFIED_ANNOTATION}=${pending.version}`]);
    await eventually('the pending ring routed', () => {
      const m = publishedMap();
      return m.version === pending.version && m.pending === undefined;
    });
    // The old shards still hold their copies of the moved keys; delete drops exactly those.
    const deleted = (await runPhase('delete')).result;
    expect(deleted.rowsDeleted).toBe(copied.rowsWritten);
    expect((await runPhase('unfence')).result.shards).toHaveLength(3);

    const after = await rows('dump');
    console.log(
      `${copied.movedKeys} of ${KEYS} keys (${copied.rowsWritten} rows) moved; rows per shard before ` +
        `${JSON.stringify(before.rows)}, after ${JSON.stringify(after.rows)}; md5 ${before.md5} -> ${after.md5}`,
    );
    expect(after).toMatchObject({ total: before.total, md5: before.md5, misplaced: 0 });
    expect(Object.keys(after.rows)).toHaveLength(3);
    expect(Object.values(after.rows).every((n) => n > 0)).toBe(true);
    await eventually('status showing the new ring and no pending one', () => {
      const shards = getApp(ns, APP).status.shards;
      return shards?.ringVersion === pending.version && shards.pendingRingVersion === undefined;
    });
  });
});
