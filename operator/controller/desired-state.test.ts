import { TEST_TLS } from '../tiers/testdata/facts.ts';
import { parseApp } from '../api/testdata/apps.ts';
import { desiredState } from './desired-state.ts';

/** An app that makes every kind of child this version builds. */
const fullApp = () =>
  parseApp({
    web: {
      image: 'shop:1',
      autoscaling: { maxReplicas: 6 },
      expose: { type: 'Ingress', host: 'shop.example.com', tlsSecretName: 'shop-tls' },
      env: [
        { name: 'MODE', value: 'prod' },
        { name: 'KEY', secretKeyRef: { name: 'keys', key: 'k' } },
      ],
      resources: { requests: { cpu: 1 } },
    },
  });

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

describe('desiredState', () => {
  it('builds the connection Secret, the network policies and every web object', () => {
    const kinds = desiredState(fullApp(), { gatewayApi: false }).map((o) => o.kind);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Secret',
        'NetworkPolicy',
        'Deployment',
        'Service',
        'HorizontalPodAutoscaler',
        'PodDisruptionBudget',
        'Ingress',
      ]),
    );
  });

  it('gives every child exactly one owner reference: the ScalableApp, as controller, blocking deletion', () => {
    const children = desiredState(fullApp(), { gatewayApi: false });
    for (const child of children) {
      expect({ child: `${child.kind}/${child.metadata.name}`, refs: child.metadata.ownerReferences }).toEqual(
        {
          child: `${child.kind}/${child.metadata.name}`,
          refs: [
            {
              apiVersion: 'scalableapp.io/v1alpha1',
              kind: 'ScalableApp',
              name: 'shop',
              uid: 'u1',
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
      );
    }
  });

  it('leaves the credentials of retained volumes unowned, so deleting the app does not lock its data away', () => {
    const facts = {
      gatewayApi: false,
      dbCredentials: { superuser: 's', replication: 'r', app: 'a' },
      shardCredentials: { superuser: 's', replication: 'r', app: 'a' },
      tls: TEST_TLS,
      queueCredentials: {
        username: 'u',
        password: 'p',
        monitoringUsername: 'm',
        monitoringPassword: 'mp',
        erlangCookie: 'c',
      },
    };
    const owned = (spec: Parameters<typeof parseApp>[0]) =>
      Object.fromEntries(
        desiredState(parseApp(spec), facts)
          .filter((o) => o.kind === 'Secret')
          .map((o) => [o.metadata.name, (o.metadata.ownerReferences ?? []).length > 0]),
      );
    expect(
      owned({
        database: {},
        shards: { count: 1, key: 'k', deletionPolicy: 'Delete' },
        queue: { queues: [{ name: 'q' }] },
      }),
    ).toEqual({
      // The CA and the server certificates go with the app: they open no data.
      'shop-ca': true,
      'shop-connection': true,
      'shop-db-credentials': false,
      'shop-db-tls': true,
      'shop-shard-0-tls': true,
      'shop-shards-credentials': true,
      'shop-mq-credentials': false,
      'shop-mq-tls': true,
    });
    expect(owned({ database: { deletionPolicy: 'Delete' } })['shop-db-credentials']).toBe(true);
  });

  it("puts every child in the app's namespace", () => {
    for (const child of desiredState(fullApp(), { gatewayApi: true })) {
      expect(`${child.kind}/${child.metadata.name} in ${child.metadata.namespace}`).toBe(
        `${child.kind}/${child.metadata.name} in prod`,
      );
    }
  });

  it('gives no two children the same kind and name', () => {
    const ids = desiredState(fullApp(), { gatewayApi: false }).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('is deterministic: two calls give deep-equal results', () => {
    const app = fullApp();
    expect(desiredState(app, { gatewayApi: false })).toEqual(desiredState(app, { gatewayApi: false }));
    expect(desiredState(app, { gatewayApi: false })).toEqual(desiredState(fullApp(), { gatewayApi: false }));
  });

  it('does not mutate the app (a deep-frozen app builds, and equals its copy afterwards)', () => {
    const app = fullApp();
    const copy = structuredClone(app);
    deepFreeze(app);
    expect(() => desiredState(app, { gatewayApi: false })).not.toThrow();
    expect(app).toEqual(copy);
  });

  it('follows the observed facts: a Gateway exposure gets an HTTPRoute only when the API is served', () => {
    const app = parseApp({
      web: { image: 'x', expose: { type: 'Gateway', host: 'shop.example.com', gateway: { name: 'gw' } } },
    });
    expect(desiredState(app, { gatewayApi: true }).map((o) => o.kind)).toContain('HTTPRoute');
    expect(desiredState(app, { gatewayApi: false }).map((o) => o.kind)).not.toContain('HTTPRoute');
  });
});
