// What the edge-cache chart does that parity cannot show: the builder's refusals of paths nginx must
// not get (the schema's pattern admits them), an origin in another release, restricted pods.
import { EDGE_CACHE_RESOURCES } from '../../operator/api/edge-cache.ts';
import { EXPORTER_RESOURCES } from '../../operator/api/platform.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { restrictedViolations } from '../../operator/tiers/testdata/restricted-pss.ts';
import { renderChart, templateChart } from './helm.ts';
import { podSpecs } from './tier-chart-checks.ts';
import { brokenResourceRules, testCelRules, testMonitoringRules } from './parity.ts';

const render = (values: object) => renderChart('edge-cache', { release: 'shop', namespace: 'prod', values });

describe('paths the nginx config would refuse are refused by the schema, in the operator and the chart', () => {
  // Once admitted and refused by the config generator only, on every reconcile (the property test
  // found "/"): the schema says it now, so the CRD refuses them at admission.
  it.each(['/', '///', '//static', '/static/./v1', '/static/../admin'])('%j', (p) => {
    expect(() => parseApp({ web: { image: 'x' }, edgeCache: { pathPrefix: p } })).toThrow(/pathPrefix/);
    const r = templateChart('edge-cache', { release: 'shop', namespace: 'prod', values: { pathPrefix: p } });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain('/pathPrefix');
  });

  it.each([
    [{ cacheSize: '1G' }, '/cacheSize'],
    [{ pathPrefix: 'static' }, '/pathPrefix'],
    [{ assetVersion: 'v 2' }, '/assetVersion'],
    [{ web: { port: 80 } }, '/web/port'],
    [{ web: { release: 'Shop' } }, '/web/release'],
  ])('the schema rejects %j naming %s', (values, field) => {
    const r = templateChart('edge-cache', { release: 'shop', namespace: 'prod', values });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(field);
  });
});

describe("the spec's rules the schema cannot say", () => {
  testCelRules(
    'edge-cache',
    {},
    brokenResourceRules((resources) => ({ resources }), EDGE_CACHE_RESOURCES.memoryFloor),
  );

  // The operator's rules on spec.monitoring, which the chart checks only with monitoring on.
  testMonitoringRules('edge-cache', {}, EXPORTER_RESOURCES.memoryFloor);
});

describe('an origin installed as another release', () => {
  it('proxies to that release’s web Service and may reach only its web pods', () => {
    const objects = render({ web: { release: 'shop-web', port: 9000 } });
    const conf = (objects.find((o) => o.kind === 'ConfigMap') as any).data['nginx.conf'] as string;
    expect(conf.match(/proxy_pass [^;]+;/g)).toEqual([
      'proxy_pass http://shop-web-web.prod.svc.cluster.local:80;',
      'proxy_pass http://shop-web-web.prod.svc.cluster.local:80;',
    ]);
    const egress = objects.find((o) => o.metadata.name === 'shop-allow-edge-egress') as any;
    expect(egress.spec.egress).toEqual([
      {
        to: [
          {
            podSelector: {
              matchLabels: { 'app.kubernetes.io/instance': 'shop-web', 'app.kubernetes.io/component': 'web' },
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: 9000 }],
      },
    ]);
  });
});

describe('pods', () => {
  it('pass the restricted Pod Security Standard, the helm test pod included', () => {
    // With monitoring, so the exporter container is judged too.
    const objects = render({ monitoring: { enabled: true } });
    expect(JSON.stringify(objects)).toContain('"name":"metrics"');
    const pods = podSpecs(objects);
    expect(pods.map(([name]) => name).sort()).toEqual(['Deployment/shop-edge', 'Pod/shop-edge-test']);
    for (const [name, spec] of pods) expect([name, restrictedViolations(spec)]).toEqual([name, []]);
  });

  it('the helm test checks the asset version literally (a dot in it is no wildcard)', () => {
    const pod = render({ assetVersion: '1.2' }).find((o) => o.kind === 'Pod') as any;
    expect(pod.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(pod.spec.containers[0].command[2]).toContain("grep -qi '^ *X-Edge-Asset-Version: 1\\.2\\r\\?$'");
  });
});
