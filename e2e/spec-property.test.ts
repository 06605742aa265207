// The invariant of issue 14, drawn generatively: for every spec drawn from the CRD's schema, either
// the apiserver refuses the ScalableApp, or the operator's desiredState() builds children without
// throwing and the apiserver's server-side dry run accepts every one of them. A fixed seed and a
// bounded count keep the run repeatable; a counterexample is printed whole (no shrinking: each run
// is two round trips to the apiserver).
import fc from 'fast-check';
import { stringify } from 'yaml';
import { specArbitrary } from '../operator/api/testdata/arbitrary.ts';
import { scalableApp } from '../operator/api/scalable-app.ts';
import { IMAGE_MAJOR_MESSAGE } from '../operator/api/database.ts';
import { desiredState } from '../operator/controller/desired-state.ts';
import { ALL_FACTS } from '../operator/tiers/testdata/facts.ts';
import { createNamespace, deleteNamespace, tryKubectl } from './support/kube.ts';

const SEED = 1412;
const RUNS = 60;

/**
 * The rules only the operator's schema checks (InvalidSpec, before anything is applied), because CEL
 * cannot: a hash of the hot keys, a regex built from the version, the consumers' quantities (the
 * apiserver's cost budget cannot afford twenty of them).
 */
function operatorOnly(path: string[], message: string): boolean {
  return (
    message.includes('would share the shard name') ||
    message === IMAGE_MAJOR_MESSAGE ||
    // A cron expression's ranges and names (the CRD's pattern checks its characters and fields).
    (path.at(-1) === 'schedule' && message.startsWith('backup.schedule is not a cron schedule')) ||
    (path[1] === 'consumers' && path.includes('resources'))
  );
}

let ns: string;
// The CRD is installed by the cluster tests' global setup (e2e/support/global-setup.ts).
beforeAll(() => {
  ns = createNamespace('property');
});
afterAll(() => deleteNamespace(ns));

it(`every admitted spec builds children the apiserver admits (${RUNS} draws, seed ${SEED})`, () => {
  const outcomes = { refused: 0, admitted: 0, operatorRefused: 0 };
  let n = 0;
  fc.assert(
    fc.property(specArbitrary(), (spec) => {
      const name = `prop-${n++}`;
      const manifest = {
        apiVersion: 'scalableapp.io/v1alpha1',
        kind: 'ScalableApp',
        metadata: { name, namespace: ns },
        spec,
      };
      const created = tryKubectl(
        ['create', '--dry-run=server', '-o', 'json', '-f', '-'],
        stringify(manifest),
      );
      if (!created.ok) {
        outcomes.refused++;
        return;
      }
      outcomes.admitted++;
      // What the apiserver stored (its defaults applied) is what the operator would read.
      const stored = JSON.parse(created.stdout) as Record<string, unknown>;
      const parsed = scalableApp.safeParse({ ...stored, metadata: { name, namespace: ns, uid: 'u-1' } });
      if (!parsed.success) {
        // Admitted, refused by the operator before anything is applied (InvalidSpec): allowed only
        // for the rules CEL cannot judge. Any other disagreement between the CRD and the schema fails.
        const unexpected = parsed.error.issues.filter((i) => !operatorOnly(i.path.map(String), i.message));
        if (unexpected.length)
          throw new Error(`admitted, but the operator's schema refuses it: ${JSON.stringify(unexpected)}`);
        outcomes.operatorRefused++;
        return;
      }
      const children = desiredState(parsed.data, ALL_FACTS);
      const list = { apiVersion: 'v1', kind: 'List', items: children };
      const applied = tryKubectl(
        ['apply', '--server-side', '--dry-run=server', '--field-manager=scalableapp-operator', '-f', '-'],
        JSON.stringify(list),
      );
      if (!applied.ok) throw new Error(`a child was refused:\n${applied.stderr}`);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  console.log(
    `spec property: ${outcomes.admitted} admitted (${outcomes.operatorRefused} of them InvalidSpec in the operator), ${outcomes.refused} refused by the CRD`,
  );
  // The property says nothing if (almost) every draw is refused: keep the generator honest.
  expect(outcomes.admitted - outcomes.operatorRefused).toBeGreaterThanOrEqual(RUNS / 5);
});
