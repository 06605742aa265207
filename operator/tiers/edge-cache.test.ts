import type { V1ConfigMap, V1Deployment, V1Ingress } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { edgeCacheObjects } from './edge-cache.ts';
import { webRoute } from './web.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';

const spec = (assetVersion: string) => ({
  web: { image: 'x', expose: { type: 'Ingress' as const, host: 'a.example.com' } },
  edgeCache: { assetVersion, cacheSize: '256m' },
});
const objects = (v: string) => edgeCacheObjects(parseApp(spec(v)));
const deployment = (v: string) => objects(v).find((o) => o.kind === 'Deployment') as unknown as V1Deployment;

describe('edge cache objects', () => {
  it('runs nginx with the generated config in pods that pass the restricted Pod Security Standard', () => {
    const d = deployment('1');
    expect(restrictedViolations(d.spec!.template.spec!)).toEqual([]);
    expect(d.spec!.template.spec!.containers[0]!.command).toEqual([
      'nginx',
      '-c',
      '/config/nginx.conf',
      '-e',
      'stderr',
      '-g',
      'daemon off;',
    ]);
    // The cache lives in the writable emptyDir, sized for max_size plus temp files.
    expect(d.spec!.template.spec!.volumes!.find((v) => v.name === 'tmp')!.emptyDir!.sizeLimit).toBe('512Mi');
    const conf = (objects('1').find((o) => o.kind === 'ConfigMap') as unknown as V1ConfigMap).data![
      'nginx.conf'
    ]!;
    expect(conf).toContain('shop-web.prod.svc.cluster.local:80');
  });

  it('rolls the proxies when the asset version changes', () => {
    const hash = (v: string) =>
      deployment(v).spec!.template.metadata!.annotations!['scalableapp.io/config-hash'];
    expect(hash('1')).toBe(hash('1'));
    expect(hash('2')).not.toBe(hash('1'));
  });

  it('routes only the static path of the Ingress through the edge cache', () => {
    const ingress = webRoute(parseApp(spec('1')), { gatewayApi: false }) as unknown as V1Ingress;
    expect(ingress.spec!.rules![0]!.http!.paths.map((p) => [p.path, p.backend.service!.name])).toEqual([
      ['/static', 'shop-edge'],
      ['/', 'shop-web'],
    ]);
  });

  it('builds nothing without a web tier to sit in front of', () => {
    expect(edgeCacheObjects(parseApp({ edgeCache: {} }))).toEqual([]);
  });
});
