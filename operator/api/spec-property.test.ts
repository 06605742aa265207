// The invariant of issue 14 in milliseconds, against the model of the apiserver's checks (zod and the
// CRD's CEL rules, testdata/validate.ts): every spec the model admits builds, desiredState() never
// throws on it, and the children's names fit Kubernetes' limits. e2e/spec-property.test.ts draws
// from the same generator against the real apiserver, with a server-side dry run of every child.
import fc from 'fast-check';
import { specArbitrary } from './testdata/arbitrary.ts';
import { specErrors } from './testdata/validate.ts';
import { scalableApp } from './scalable-app.ts';
import { desiredState } from '../controller/desired-state.ts';
import { ALL_FACTS } from '../tiers/testdata/facts.ts';

const SEED = 1412;
const RUNS = 300;

const DNS_1035 = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** What Kubernetes requires of a child's name, by kind, beyond a DNS subdomain. */
function nameProblem(kind: string, name: string): string | undefined {
  if (name.length > 253) return 'longer than 253 characters';
  if (kind === 'Service' && !DNS_1035.test(name)) return 'not a DNS-1035 label (a Service name)';
  // Its pods carry controller-revision-hash = <name>-<up to 10 characters>, a label value (<= 63).
  if (kind === 'StatefulSet' && name.length > 52) return 'longer than 52 characters (a StatefulSet)';
  return undefined;
}

it(`every spec the schema and its rules admit builds children with valid names (${RUNS} draws)`, () => {
  let admitted = 0;
  fc.assert(
    fc.property(
      specArbitrary(),
      fc.constantFrom('shop', 'a-thirty-three-character-app-name'),
      (spec, name) => {
        if (specErrors(spec).length > 0) return;
        const app = scalableApp.safeParse({
          apiVersion: 'scalableapp.io/v1alpha1',
          kind: 'ScalableApp',
          metadata: { name, namespace: 'prod', uid: 'u-1' },
          spec,
        });
        if (!app.success) return; // the name alone is refused (hot keys and a long name)
        admitted++;
        const problems = desiredState(app.data, ALL_FACTS)
          .map((c) => [c.kind, c.metadata.name, nameProblem(c.kind, c.metadata.name)] as const)
          .filter(([, , p]) => p);
        expect(problems).toEqual([]);
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
  // A generator whose draws are all refused would prove nothing. Every resources block a draw fills
  // in may make it invalid (a request above its limit): about one draw in five is admitted.
  expect(admitted).toBeGreaterThanOrEqual(RUNS / 6);
});
