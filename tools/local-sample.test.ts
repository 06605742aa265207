// What the local real node runs instead of a sample's public images and resources, and nothing else.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { scalableApp } from '../operator/api/scalable-app.ts';
import {
  LOCAL_POSTGRES_MAJOR,
  LOCAL_STORAGE_CLASS,
  localize,
  readImagesEnv,
  readLocalImages,
  type LocalImages,
} from './local-sample.ts';

const images: LocalImages = {
  IMAGE_POSTGRES: 'localhost/scalableapp/postgres:15',
  IMAGE_CACHE: 'localhost/scalableapp/cache:7',
  IMAGE_RABBITMQ: 'localhost/scalableapp/rabbitmq:3',
  IMAGE_NGINX: 'localhost/scalableapp/nginx:1',
  IMAGE_DEMO_APP: 'localhost/scalableapp/demo-app:x',
  IMAGE_DEMO_CONSUMER: 'localhost/scalableapp/demo-consumer:x',
  IMAGE_POSTGRES_EXPORTER: 'localhost/scalableapp/postgres-exporter:0',
  IMAGE_CACHE_EXPORTER: 'localhost/scalableapp/cache-exporter:1',
  IMAGE_NGINX_EXPORTER: 'localhost/scalableapp/nginx-exporter:0',
};
const dir = new URL('../manifests/samples/', import.meta.url);
const sample = (file: string) => parse(readFileSync(new URL(file, dir), 'utf8')) as Record<string, any>;

describe('localize', () => {
  const full = localize(sample('12-full-stack.yaml'), images) as any;

  it('runs every tier from the local images, Postgres at the local major', () => {
    expect(full.spec.web.image).toBe(images.IMAGE_DEMO_APP);
    expect(full.spec.consumers.map((c: any) => c.image)).toEqual([
      images.IMAGE_DEMO_CONSUMER,
      images.IMAGE_DEMO_CONSUMER,
    ]);
    expect(full.spec.cache.image).toBe(images.IMAGE_CACHE);
    expect(full.spec.queue.image).toBe(images.IMAGE_RABBITMQ);
    expect(full.spec.edgeCache.image).toBe(images.IMAGE_NGINX);
    // The sample turns monitoring on: its exporters are the local builds too.
    expect(full.spec.monitoring).toEqual({
      enabled: true,
      exporterImages: {
        postgres: images.IMAGE_POSTGRES_EXPORTER,
        cache: images.IMAGE_CACHE_EXPORTER,
        edgeCache: images.IMAGE_NGINX_EXPORTER,
      },
    });
    for (const pg of [full.spec.database, full.spec.shards]) {
      expect(pg).toMatchObject({ image: images.IMAGE_POSTGRES, version: LOCAL_POSTGRES_MAJOR });
      expect(pg.storage.storageClassName).toBe(LOCAL_STORAGE_CLASS);
    }
    expect(full.spec.queue.storage.storageClassName).toBe(LOCAL_STORAGE_CLASS);
  });

  it('keeps memory as the sample has it and only lowers CPU requests', () => {
    expect(full.spec.web.resources).toEqual({
      requests: { cpu: '10m', memory: '256Mi' },
      limits: { memory: '512Mi' },
    });
  });

  it('tells the demo app the port and health path the sample declares, keeping the sample env', () => {
    const withHealth = localize(sample('02-web-autoscaling.yaml'), images) as any;
    expect(withHealth.spec.web.env).toEqual(
      expect.arrayContaining([{ name: 'HEALTH_PATH', value: withHealth.spec.web.healthCheck.path }]),
    );
    const withEnv = localize(sample('03-web-ingress.yaml'), images) as any;
    expect(withEnv.spec.web.env).toEqual([{ name: 'LOG_LEVEL', value: 'info' }]);
  });

  it('serves the liveness path when it differs (readiness may be a path the app does not serve)', () => {
    const app = sample('01-web-only.yaml');
    app.spec.web.healthCheck = { path: '/readyz', livenessPath: '/alive' };
    const local = localize(app, images) as any;
    expect(local.spec.web.env).toEqual(expect.arrayContaining([{ name: 'HEALTH_PATH', value: '/alive' }]));
  });

  it("leaves the demo's liveness path alone when the spec probes its readiness endpoint, /readyz", () => {
    const app = sample('01-web-only.yaml');
    app.spec.web.healthCheck = { path: '/readyz' };
    const local = localize(app, images) as any;
    expect((local.spec.web.env ?? []).filter((e: any) => e.name === 'HEALTH_PATH')).toEqual([]);
  });

  it('tells the demo consumer the port its healthCheck probes', () => {
    const app = sample('12-full-stack.yaml');
    app.spec.consumers[0].healthCheck = { port: 8081 };
    const local = localize(app, images) as any;
    expect(local.spec.consumers[0].env).toEqual(
      expect.arrayContaining([{ name: 'HEALTH_PORT', value: '8081' }]),
    );
    expect(local.spec.consumers[1]?.env ?? []).not.toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'HEALTH_PORT' })]),
    );
  });

  it('refuses a consumer healthCheck path the demo consumer does not serve, naming the field', () => {
    const app = sample('12-full-stack.yaml');
    app.spec.consumers[0].healthCheck = { port: 8081, path: '/live' };
    expect(() => localize(app, images)).toThrow(/consumers\[photo-processor\]\.healthCheck\.path.*\/live/);
  });

  it('leaves the input alone and yields a spec the API admits, for every sample', () => {
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
      const before = sample(file);
      const copy = structuredClone(before);
      const local = localize(before, images);
      expect(before).toEqual(copy);
      expect(
        scalableApp.safeParse({ ...local, metadata: { ...(local.metadata as object), namespace: 'x' } })
          .error,
      ).toBeUndefined();
    }
  });
});

describe('readImagesEnv / readLocalImages', () => {
  const dirOf = mkdtempSync(join(tmpdir(), 'scalableapp-images-env-'));
  afterAll(() => rmSync(dirOf, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dirOf, name);
    writeFileSync(p, text);
    return p;
  };

  it('reads every KEY=value line, a value may hold "=", comments and blank lines skipped', () => {
    const p = file(
      'all.env',
      `# written by tools/images.sh\n\n${Object.entries(images)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\nIMAGE_TOOLBOX=localhost/scalableapp/toolbox:a=b\n`,
    );
    expect(readImagesEnv(['IMAGE_TOOLBOX'], p).IMAGE_TOOLBOX).toBe('localhost/scalableapp/toolbox:a=b');
    expect(readLocalImages(p)).toEqual(images);
  });

  it('names the file, the missing keys and the command that writes them', () => {
    const p = file('partial.env', 'IMAGE_POSTGRES=pg\nIMAGE_CACHE=\n');
    expect(() => readLocalImages(p)).toThrow(
      `${p} lacks IMAGE_CACHE, IMAGE_RABBITMQ, IMAGE_NGINX, IMAGE_DEMO_APP, IMAGE_DEMO_CONSUMER, IMAGE_POSTGRES_EXPORTER, IMAGE_CACHE_EXPORTER, IMAGE_NGINX_EXPORTER: run tools/images.sh build`,
    );
    expect(() => readImagesEnv([], join(dirOf, 'absent.env'))).toThrow(
      `no local images at ${join(dirOf, 'absent.env')}: run tools/images.sh build first`,
    );
  });
});
