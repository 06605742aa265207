// What the local real node runs instead of a sample's public images and resources, and nothing else.
import { readFileSync, readdirSync } from 'node:fs';
import { parse } from 'yaml';
import { scalableApp } from '../operator/api/scalable-app.ts';
import { LOCAL_POSTGRES_MAJOR, LOCAL_STORAGE_CLASS, localize, type LocalImages } from './local-sample.ts';

const images: LocalImages = {
  IMAGE_POSTGRES: 'localhost/scalableapp/postgres:15',
  IMAGE_CACHE: 'localhost/scalableapp/cache:7',
  IMAGE_RABBITMQ: 'localhost/scalableapp/rabbitmq:3',
  IMAGE_NGINX: 'localhost/scalableapp/nginx:1',
  IMAGE_DEMO_APP: 'localhost/scalableapp/demo-app:x',
  IMAGE_DEMO_CONSUMER: 'localhost/scalableapp/demo-consumer:x',
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
