// A chart as a release on the local cluster: install, upgrade and test with the helm that
// tools/toolchain.sh built, against the cluster's kubeconfig, and what a test looks for afterwards.
// `helm test` on KWOK: see settleTestPod in charts/test/helm.ts.
import {
  buildDependencies,
  chartPath,
  helmAsync,
  runHelm,
  settleTestPod,
  valuesFile,
  type HelmResult,
} from '../../charts/test/helm.ts';
import { eventually, json, KUBECONFIG, kubectl } from './kube.ts';

/** helm against the local cluster; the outcome, so a test can expect failure. */
export const helmIn = (args: readonly string[]): HelmResult => runHelm([...args, '--kubeconfig', KUBECONFIG]);

/** `helm test` started in the background: the test pod has to be settled while it waits. */
const helmTestIn = (release: string, ns: string): Promise<HelmResult> =>
  helmAsync(['test', release, '-n', ns, '--timeout', '2m', '--kubeconfig', KUBECONFIG]);

/** `helm install --wait` of one chart of charts/ with the given values. */
export function installChart(
  chart: string,
  release: string,
  ns: string,
  values: object,
  extra: string[] = [],
): HelmResult {
  buildDependencies(chart);
  const file = valuesFile(values);
  try {
    return helmIn([
      'install',
      release,
      chartPath(chart),
      '-n',
      ns,
      '-f',
      file.path,
      '--wait',
      '--timeout',
      '5m',
      ...extra,
    ]);
  } finally {
    file.remove();
  }
}

/** `helm upgrade --wait` keeping the release's values, with changes on top. */
export function upgradeChart(chart: string, release: string, ns: string, changes: string[]): HelmResult {
  buildDependencies(chart);
  return helmIn([
    'upgrade',
    release,
    chartPath(chart),
    '-n',
    ns,
    '--reuse-values',
    '--wait',
    '--timeout',
    '5m',
    ...changes,
  ]);
}

/** The object `kind/name` of the namespace, or undefined (`get` by name fails when it is absent). */
export function namedObject(ns: string, kindName: string): any {
  const [kind, name] = kindName.split('/');
  return json<{ items: unknown[] }>(['get', kind!, '-n', ns, '--field-selector', `metadata.name=${name}`])
    .items[0];
}

export const objectExists = (ns: string, kindName: string): boolean =>
  namedObject(ns, kindName) !== undefined;

/**
 * `helm test` whose test pod ends as `outcome` (settleTestPod: KWOK never ends it); helm's verdict,
 * and the test pod as helm created it (its delete policy may remove it afterwards).
 */
export async function helmTest(
  ns: string,
  release: string,
  testPod: string,
  outcome: 'Succeeded' | 'Failed',
  /** Called with the test pod before it ends: what must hold while a test runs. */
  whileRunning: (pod: any) => void = () => {},
): Promise<{ result: HelmResult; pod: any }> {
  // A failed run leaves its pod, which helm replaces: wait for the new one.
  const previous: string | undefined = namedObject(ns, `pod/${testPod}`)?.metadata.uid;
  const running = helmTestIn(release, ns);
  const pod = await eventually(`a new ${testPod}`, () => {
    const p = namedObject(ns, `pod/${testPod}`);
    return p?.metadata.uid !== previous && p;
  });
  whileRunning(pod);
  await settleTestPod(kubectl, ns, testPod, outcome, previous);
  return { result: await running, pod };
}
