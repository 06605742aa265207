// spec.<tier>.allowedClients on the real node: a standalone cache (no web tier, no consumers) admits
// exactly the pods its spec names, probed with real connections from pods that are and are not named.
import { stringify } from 'yaml';
import { getApp, isReadyAtGeneration } from './support/apps.ts';
import { eventually, kubectl } from './support/kube.ts';
import {
  allPodsReady,
  connectFrom,
  createRealNamespace,
  deleteNamespaceAndWait,
  describeReal,
  installInClusterOperator,
  startProbe,
  localApp,
} from './support/real-node.ts';

const APP = 'standalone';
let ns: string;
let elsewhere: string;

beforeAll(async () => {
  installInClusterOperator();
  ns = createRealNamespace('real-clients');
  elsewhere = createRealNamespace('real-clients-elsewhere');
  const app = localApp(APP, {
    cache: {
      replicas: 0,
      allowedClients: [
        // Without a namespaceSelector: pods of the app's namespace only.
        { podSelector: { matchLabels: { app: 'reporting' } } },
        {
          podSelector: { matchLabels: { app: 'etl' } },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': elsewhere } },
        },
      ],
    },
  });
  kubectl(['apply', '-n', ns, '-f', '-'], stringify(app));
  startProbe(ns, 'reporting', { app: 'reporting' });
  startProbe(ns, 'stranger', { app: 'stranger' });
  startProbe(elsewhere, 'etl', { app: 'etl' });
  // Named like the first client, but in another namespace: that entry covers the app's namespace only.
  startProbe(elsewhere, 'reporting', { app: 'reporting' });
  await eventually(
    'the standalone cache Ready on the real node',
    () => isReadyAtGeneration(getApp(ns, APP)),
    300_000,
    2000,
  );
  await allPodsReady(ns, 'app in (reporting,stranger)', 2);
  await allPodsReady(elsewhere, 'app in (etl,reporting)', 2);
}, 420_000);

afterAll(() => {
  if (ns) deleteNamespaceAndWait(ns);
  if (elsewhere) deleteNamespaceAndWait(elsewhere);
});

describeReal('allowedClients of a standalone data tier, probed with real connections', () => {
  const cache = () => ({ host: `${APP}-cache.${ns}.svc.cluster.local`, port: 6379 });
  const outcome = (namespace: string, pod: string) => connectFrom(namespace, pod, cache()).stdout.trim();

  it('a pod named in the app namespace reaches the cache', () => {
    expect(outcome(ns, 'reporting')).toBe('open');
  });

  it('a pod named with its namespace reaches it from that namespace', () => {
    expect(outcome(elsewhere, 'etl')).toBe('open');
  });

  it('a pod of the app namespace that is not named cannot', () => {
    expect(outcome(ns, 'stranger')).not.toBe('open');
  });

  it('a pod with the named labels in another namespace cannot, when its entry names no namespace', () => {
    expect(outcome(elsewhere, 'reporting')).not.toBe('open');
  });
});
