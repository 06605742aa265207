// The edge-cache chart renders the operator's edge cache: for each input set, `helm template` of
// charts/edge-cache and edgeCacheObjects() + networkPolicies() for a ScalableApp of the same name,
// namespace, spec.edgeCache and spec.web.port agree object by object.
import { parseApp } from '../../operator/api/testdata/apps.ts';
import type { ScalableAppInput } from '../../operator/api/scalable-app.ts';
import { edgeCacheObjects } from '../../operator/tiers/edge-cache.ts';
import { networkPolicies } from '../../operator/tiers/network-policies.ts';
import { parity, type Exclusion, TWO_SCRAPERS } from './parity.ts';
import { appWideExclusions } from './tier-chart-checks.ts';

type Spec = NonNullable<ScalableAppInput['spec']>;

interface InputSet {
  readonly title: string;
  readonly release: string;
  readonly namespace: string;
  readonly edgeCache: NonNullable<Spec['edgeCache']>;
  /** spec.web.port: the origin pods' port (the chart's web.port). */
  readonly webPort?: number;
  readonly topology?: Spec['topology'];
  readonly appWide?: boolean;
  /** spec.monitoring: what the edge cache uses of it is the chart's `monitoring`. */
  readonly monitoring?: Spec['monitoring'];
}

const INPUT_SETS: InputSet[] = [
  { title: 'the defaults', release: 'shop', namespace: 'prod', edgeCache: {} },
  {
    title: 'every field set',
    release: 'shop',
    namespace: 'prod',
    edgeCache: {
      image: 'registry.example/nginx-unprivileged:1.27.4',
      replicas: 6,
      pathPrefix: '/assets/v2/',
      ttlSeconds: 31536000,
      staleIfErrorSeconds: 0,
      assetVersion: '2024.06.01-rc_1',
      cacheSize: '2g',
      resources: { requests: { cpu: 1, memory: 268435456 }, limits: { cpu: '1500m', memory: '512Mi' } },
    },
    webPort: 9090,
    topology: { spreadAcrossZones: true, zoneKey: 'example.com/zone', whenUnsatisfiable: 'ScheduleAnyway' },
  },
  {
    title: 'odd values: one replica, kilobyte cache, short prefix, no spread, no app-wide policies',
    release: 'a',
    namespace: 'x-y',
    edgeCache: { replicas: 1, cacheSize: '100k', pathPrefix: '/s', ttlSeconds: 1, resources: {} },
    webPort: 65535,
    topology: {
      spreadAcrossZones: false,
      zoneKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'DoNotSchedule',
    },
    appWide: false,
  },
  {
    title: 'monitoring with its defaults',
    release: 'shop',
    namespace: 'prod',
    edgeCache: {},
    monitoring: { enabled: true },
  },
  {
    title: 'monitoring with everything given: an exporter image, its resources, two scrapers',
    release: 'storefront',
    namespace: 'retail-eu',
    edgeCache: { replicas: 3, pathPrefix: '/assets' },
    webPort: 9090,
    monitoring: {
      enabled: true,
      scrapers: TWO_SCRAPERS,
      exporterImages: { edgeCache: 'registry.example.com/nginx-prometheus-exporter:1.4.2' },
      resources: { requests: { cpu: '20m' }, limits: { cpu: 1, memory: '96Mi' } },
    },
  },
  {
    title: 'monitoring with no scrapers',
    release: 'shop',
    namespace: 'prod',
    edgeCache: {},
    monitoring: { enabled: true, scrapers: [] },
  },
];

/** The spec's monitoring as the edge-cache chart takes it: the fields the edge cache uses. */
const monitoringValues = (m: NonNullable<Spec['monitoring']>) => {
  const { podMonitors: _podMonitors, exporterImages, ...rest } = m;
  return {
    ...rest,
    ...(exporterImages?.edgeCache ? { exporterImages: { edgeCache: exporterImages.edgeCache } } : {}),
  };
};

const values = (s: InputSet) => ({
  ...s.edgeCache,
  ...(s.webPort ? { web: { port: s.webPort } } : {}),
  ...(s.topology ? { platform: { topology: s.topology } } : {}),
  ...(s.appWide === undefined ? {} : { networkPolicies: { appWide: s.appWide } }),
  ...(s.monitoring ? { monitoring: monitoringValues(s.monitoring) } : {}),
});

function operatorObjects(s: InputSet) {
  // The operator builds an edge cache only in front of a web tier: the spec has one, as it must.
  const app = parseApp(
    {
      web: { image: 'registry.example/shop:1', ...(s.webPort ? { port: s.webPort } : {}) },
      edgeCache: s.edgeCache,
      ...(s.topology ? { topology: s.topology } : {}),
      ...(s.monitoring ? { monitoring: s.monitoring } : {}),
    },
    s.release,
    s.namespace,
  );
  return [...edgeCacheObjects(app), ...networkPolicies(app)];
}

const exclusions = (s: InputSet): Exclusion[] => [
  {
    object: `NetworkPolicy/${s.release}-allow-web-ingress`,
    onlyIn: 'operator',
    reason: "the web tier's own policy: the web chart renders it",
  },
  { object: `Pod/${s.release}-edge-test`, onlyIn: 'chart', reason: 'the helm test hook' },
  ...(s.appWide === false ? appWideExclusions(s.release) : []),
];

describe.each(INPUT_SETS)('charts/edge-cache with $title', (s) => {
  it('renders the objects the operator builds', () => {
    const report = parity({
      chart: 'edge-cache',
      release: s.release,
      namespace: s.namespace,
      values: values(s),
      operator: operatorObjects(s),
      exclusions: exclusions(s),
    });
    expect(report.differences).toEqual([]);
    const edge = `${s.release}-edge`;
    expect(report.compared).toEqual(
      expect.arrayContaining([
        `ConfigMap/${edge}-config`,
        `Deployment/${edge}`,
        `Service/${edge}`,
        `PodDisruptionBudget/${edge}`,
        `NetworkPolicy/${s.release}-allow-edge-ingress`,
        `NetworkPolicy/${s.release}-allow-edge-egress`,
      ]),
    );
  });
});
