import { parseApp } from '../api/testdata/apps.ts';
import { INJECTED_ENV } from '../api/common.ts';
import { ALL_FACTS } from './testdata/facts.ts';
import { NO_FACTS } from './objects.ts';
import type { V1Deployment } from '@kubernetes/client-node';
import { type ScalableApp } from '../api/scalable-app.ts';
import { connectionEntries, connectionHash, connectionSecret } from './connection.ts';
import { desiredState } from '../controller/desired-state.ts';

const ingressApp = (host: string) =>
  parseApp({ web: { image: 'x', expose: { type: 'Ingress', host, tlsSecretName: 'tls' } } });

const decode = (data: Record<string, string>) =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

describe('connection Secret', () => {
  it('injects exactly the names the schema keeps users from shadowing (INJECTED_ENV)', () => {
    const app = parseApp({
      web: { image: 'x', sessions: 'cache' },
      cache: {},
      database: {},
      shards: { count: 2, key: 'user_id' },
      queue: { queues: [{ name: 'q' }] },
      consumers: [{ name: 'c', image: 'w', queue: 'q' }],
      edgeCache: {},
    });
    const consumer = desiredState(app, ALL_FACTS).find(
      (o) => o.kind === 'Deployment' && o.metadata.name === 'shop-c',
    ) as V1Deployment | undefined;
    const injected = [
      ...Object.keys(connectionEntries(app, ALL_FACTS)),
      ...(consumer?.spec?.template.spec?.containers[0]?.env ?? []).map((e) => e.name),
    ];
    expect(new Set(injected)).toEqual(new Set(INJECTED_ENV));
  });

  it('carries every entry base64-encoded in data (never stringData)', () => {
    const app = ingressApp('shop.example.com');
    const secret = connectionSecret(app, NO_FACTS);
    expect(secret).not.toHaveProperty('stringData');
    expect(decode(secret.data!)).toEqual(connectionEntries(app, NO_FACTS));
    expect(decode(secret.data!)).toEqual({ SCALABLEAPP_NAME: 'shop', WEB_URL: 'https://shop.example.com' });
  });

  it('lists its keys in sorted order, so equal entries always serialise the same way', () => {
    const keys = Object.keys(connectionSecret(ingressApp('shop.example.com'), NO_FACTS).data!);
    expect(keys).toEqual([...keys].sort());
  });

  it('is named after the app and lives in its namespace', () => {
    const secret = connectionSecret(parseApp({ web: { image: 'x' } }), NO_FACTS);
    expect(secret.metadata.name).toBe('shop-connection');
    expect(secret.metadata.namespace).toBe('prod');
  });
});

describe('connectionHash', () => {
  it('changes when an entry changes', () => {
    const a = connectionHash(connectionSecret(ingressApp('a.example.com'), NO_FACTS));
    const b = connectionHash(connectionSecret(ingressApp('b.example.com'), NO_FACTS));
    expect(a).not.toBe(b);
  });

  it('is stable for the same entries, whatever else the Secret object carries', () => {
    const first = connectionSecret(ingressApp('shop.example.com'), NO_FACTS);
    const second = connectionSecret(ingressApp('shop.example.com'), NO_FACTS);
    expect(connectionHash(first)).toBe(connectionHash(second));
    const withLiveMetadata = { ...second, metadata: { ...second.metadata, resourceVersion: '42' } };
    expect(connectionHash(withLiveMetadata)).toBe(connectionHash(first));
  });

  it('changes with a single changed value even when the keys stay the same', () => {
    const secret = connectionSecret(ingressApp('shop.example.com'), NO_FACTS);
    const edited = {
      ...secret,
      data: { ...secret.data, SCALABLEAPP_NAME: Buffer.from('other').toString('base64') },
    };
    expect(connectionHash(edited)).not.toBe(connectionHash(secret));
  });
});

describe('the web pods follow the connection Secret', () => {
  const deploymentOf = (app: ScalableApp) =>
    desiredState(app, { gatewayApi: false }).find((o) => o.kind === 'Deployment') as unknown as V1Deployment;
  const templateHash = (app: ScalableApp) =>
    deploymentOf(app).spec?.template.metadata?.annotations?.['scalableapp.io/connection-hash'];

  it("the pod template annotation is the hash of the desired connection Secret's data", () => {
    const app = ingressApp('shop.example.com');
    expect(templateHash(app)).toBe(connectionHash(connectionSecret(app, NO_FACTS)));
  });

  it('a change of a connection entry changes the pod template, so the pods roll', () => {
    expect(templateHash(ingressApp('a.example.com'))).not.toBe(templateHash(ingressApp('b.example.com')));
  });

  it('an unchanged connection leaves the pod template annotation unchanged', () => {
    expect(templateHash(ingressApp('shop.example.com'))).toBe(templateHash(ingressApp('shop.example.com')));
  });
});
