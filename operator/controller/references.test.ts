import { parseApp } from '../api/testdata/apps.ts';
import { referencedSecrets } from './references.ts';

describe('referencedSecrets', () => {
  it('lists the TLS Secret and every secretKeyRef of web and consumers, with their field paths', () => {
    const app = parseApp({
      web: {
        image: 'x',
        expose: { type: 'Ingress', host: 'shop.example.com', tlsSecretName: 'shop-tls' },
        env: [
          { name: 'MODE', value: 'prod' },
          { name: 'API_KEY', secretKeyRef: { name: 'keys', key: 'api' } },
        ],
      },
      queue: { queues: [{ name: 'orders' }] },
      consumers: [
        { name: 'a', image: 'a', queue: 'orders', autoscaling: { maxReplicas: 1 } },
        {
          name: 'b',
          image: 'b',
          queue: 'orders',
          autoscaling: { maxReplicas: 1 },
          env: [
            { name: 'LEVEL', value: 'debug' },
            { name: 'TOKEN', secretKeyRef: { name: 'worker-secrets', key: 'token' } },
          ],
        },
      ],
    });
    expect(referencedSecrets(app)).toEqual([
      { name: 'shop-tls', field: 'spec.web.expose.tlsSecretName' },
      { name: 'keys', key: 'api', field: 'spec.web.env[1].secretKeyRef' },
      { name: 'worker-secrets', key: 'token', field: 'spec.consumers[1].env[1].secretKeyRef' },
    ]);
  });

  it('requires no particular key of the TLS Secret', () => {
    const [tls] = referencedSecrets(
      parseApp({
        web: { image: 'x', expose: { type: 'Ingress', host: 'h.example.com', tlsSecretName: 't' } },
      }),
    );
    expect(tls).not.toHaveProperty('key');
  });

  it('is empty when the spec references no Secret (literal env values are not references)', () => {
    expect(referencedSecrets(parseApp({ web: { image: 'x', env: [{ name: 'A', value: 'b' }] } }))).toEqual(
      [],
    );
    expect(referencedSecrets(parseApp({ database: {} }))).toEqual([]);
  });
});
