import type { KubernetesObject } from '@kubernetes/client-node';
import {
  desiredHash,
  drift,
  firstDifference,
  overlay,
  recordSecretReads,
  stamped,
  withReadVersion,
} from './drift.ts';

const HASH = 'scalableapp.io/applied-hash';

describe('firstDifference', () => {
  it('ignores fields only live has (defaults, status, other managers)', () => {
    const desired = { spec: { replicas: 2, template: { image: 'x' } } };
    const live = {
      spec: { replicas: 2, revisionHistoryLimit: 10, template: { image: 'x', pullPolicy: 'Always' } },
      status: { readyReplicas: 2 },
    };
    expect(firstDifference(desired, live)).toBeUndefined();
  });

  it('reports the path of a changed scalar', () => {
    expect(firstDifference({ spec: { replicas: 2 } }, { spec: { replicas: 3 } })).toBe('.spec.replicas');
  });

  it('reports the path of a field live is missing', () => {
    expect(firstDifference({ spec: { a: 1, b: { c: 'x' } } }, { spec: { a: 1 } })).toBe('.spec.b');
  });

  it('takes an empty list or object as equal to one the apiserver stored as nothing', () => {
    // An EndpointSlice with no endpoints reads back as `endpoints: null`.
    expect(firstDifference({ endpoints: [] }, { endpoints: null })).toBeUndefined();
    expect(firstDifference({ spec: { selector: {} } }, { spec: {} })).toBeUndefined();
    expect(firstDifference({ endpoints: [] }, { endpoints: [{ addresses: ['10.0.0.1'] }] })).toBe(
      '.endpoints',
    );
    expect(firstDifference({ endpoints: [{ addresses: ['10.0.0.1'] }] }, { endpoints: null })).toBe(
      '.endpoints',
    );
    expect(firstDifference({ data: { key: '' } }, { data: null })).toBe('.data');
  });

  it('reports a changed field inside a list item with its index', () => {
    const desired = { spec: { containers: [{ name: 'web', image: 'new' }] } };
    const live = { spec: { containers: [{ name: 'web', image: 'old', imagePullPolicy: 'Always' }] } };
    expect(firstDifference(desired, live)).toBe('.spec.containers[0].image');
  });

  it('treats an extra list entry (added by hand) as drift', () => {
    const desired = { spec: { ports: [{ port: 80 }] } };
    const live = { spec: { ports: [{ port: 80 }, { port: 8443 }] } };
    expect(firstDifference(desired, live)).toBe('.spec.ports');
  });

  it('treats a list where live has an object (or nothing) as drift', () => {
    expect(firstDifference({ a: [1] }, { a: { 0: 1 } })).toBe('.a');
    expect(firstDifference({ a: { b: 1 } }, { a: [1] })).toBe('.a');
  });

  describe('quantities', () => {
    const res = (requests: Record<string, unknown>, limits: Record<string, unknown> = {}) => ({
      spec: { containers: [{ resources: { requests, limits } }] },
    });

    it('compares requests and limits by value: "1000m" equals "1", "1Gi" equals "1024Mi"', () => {
      expect(firstDifference(res({ cpu: '1000m' }), res({ cpu: '1' }))).toBeUndefined();
      expect(firstDifference(res({}, { memory: '1Gi' }), res({}, { memory: '1024Mi' }))).toBeUndefined();
    });

    it('compares a numeric desired quantity with the string the apiserver returns', () => {
      expect(firstDifference(res({ cpu: 2 }), res({ cpu: '2' }))).toBeUndefined();
    });

    it('still reports a quantity whose value differs', () => {
      expect(firstDifference(res({ cpu: '500m' }), res({ cpu: '1' }))).toBe(
        '.spec.containers[0].resources.requests.cpu',
      );
      expect(firstDifference(res({}, { memory: '1Gi' }), res({}, { memory: '1G' }))).toBe(
        '.spec.containers[0].resources.limits.memory',
      );
    });

    it('compares an emptyDir sizeLimit by value', () => {
      const vol = (sizeLimit: string) => ({ spec: { volumes: [{ name: 'tmp', emptyDir: { sizeLimit } }] } });
      expect(firstDifference(vol('256Mi'), vol('0.25Gi'))).toBeUndefined();
      expect(firstDifference(vol('256Mi'), vol('512Mi'))).toBe('.spec.volumes[0].emptyDir.sizeLimit');
    });

    it('does not compare by value anywhere else ("1000m" is not "1" in a label)', () => {
      expect(
        firstDifference({ metadata: { labels: { v: '1000m' } } }, { metadata: { labels: { v: '1' } } }),
      ).toBe('.metadata.labels.v');
      expect(firstDifference({ spec: { size: '1Gi' } }, { spec: { size: '1024Mi' } })).toBe('.spec.size');
    });

    // Floating point would make 0.7 and 0.7000000000000001 differ and re-apply the Deployment forever.
    it('compares decimal CPU values exactly: "0.7" equals the canonical "700m"', () => {
      expect(firstDifference(res({ cpu: '0.7' }), res({ cpu: '700m' }))).toBeUndefined();
      expect(firstDifference(res({ cpu: '1.5' }), res({ cpu: '1500m' }))).toBeUndefined();
      expect(firstDifference(res({ memory: '1.5Gi' }), res({ memory: '1536Mi' }))).toBeUndefined();
      expect(firstDifference(res({ cpu: '0.7' }), res({ cpu: '701m' }))).toBe(
        '.spec.containers[0].resources.requests.cpu',
      );
    });
  });
});

describe('drift', () => {
  const desired = (): KubernetesObject & { spec: Record<string, unknown> } =>
    stamped({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop-web', namespace: 'prod', labels: { app: 'shop' } },
      spec: { replicas: 2, template: { spec: { containers: [{ name: 'web', image: 'x' }] } } },
    });

  it('is "missing" when there is no live object', () => {
    expect(drift(desired(), undefined)).toBe('missing');
  });

  it('is "spec changed" when the applied hash on live differs from the desired one', () => {
    const live = desired();
    const next = stamped({ ...desired(), spec: { ...desired().spec, replicas: 3 } });
    expect(drift(next, live)).toBe('spec changed');
  });

  it('is "spec changed" when live has no applied hash (never applied by this operator)', () => {
    const live = { ...desired(), metadata: { ...desired().metadata, annotations: {} } };
    expect(drift(desired(), live)).toBe('spec changed');
  });

  it('is undefined when live holds everything desired, plus its own fields', () => {
    const d = desired();
    const live = {
      ...d,
      metadata: {
        ...d.metadata,
        uid: 'x',
        resourceVersion: '9',
        annotations: { ...d.metadata!.annotations, other: 'y' },
      },
      spec: { ...d.spec, revisionHistoryLimit: 10 },
      status: { readyReplicas: 2 },
    };
    expect(drift(d, live)).toBeUndefined();
  });

  it('reports the path of a hand edit of a field the operator sets, even with the same hash', () => {
    const d = desired();
    const live = { ...d, spec: { ...d.spec, replicas: 7 } };
    expect(drift(d, live)).toBe('.spec.replicas');
  });

  it('reports a hand edit of metadata under .metadata', () => {
    const d = desired();
    const live = { ...d, metadata: { ...d.metadata, labels: { app: 'other' } } };
    expect(drift(d, live)).toBe('.metadata.labels.app');
  });
});

describe('stamped', () => {
  const obj = (): KubernetesObject & { spec: unknown } => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 's', annotations: { keep: 'me' } },
    spec: { type: 'ClusterIP', ports: [{ port: 80, name: 'http' }] },
  });

  it('adds the applied-hash annotation and keeps the others', () => {
    const s = stamped(obj());
    expect(s.metadata?.annotations?.[HASH]).toEqual(expect.any(String));
    expect(s.metadata?.annotations?.keep).toBe('me');
  });

  it('gives equal objects the same hash whatever their key order', () => {
    const reordered: KubernetesObject & { spec: unknown } = {
      spec: { ports: [{ name: 'http', port: 80 }], type: 'ClusterIP' },
      metadata: { annotations: { keep: 'me' }, name: 's' },
      kind: 'Service',
      apiVersion: 'v1',
    };
    expect(stamped(reordered).metadata?.annotations?.[HASH]).toBe(
      stamped(obj()).metadata?.annotations?.[HASH],
    );
    expect(desiredHash(reordered)).toBe(desiredHash(obj()));
  });

  it('gives a different hash when a value changes, including inside a list', () => {
    const changed = { ...obj(), spec: { type: 'ClusterIP', ports: [{ port: 81, name: 'http' }] } };
    expect(stamped(changed).metadata?.annotations?.[HASH]).not.toBe(
      stamped(obj()).metadata?.annotations?.[HASH],
    );
  });

  it('does not change the object it stamps', () => {
    const o = obj();
    stamped(o);
    expect(o).toEqual(obj());
  });
});

describe('overlay', () => {
  it("lays desired's fields over live and keeps live's other fields", () => {
    const live = {
      metadata: { name: 'a', resourceVersion: '7', labels: { mine: 'x', theirs: 'y' } },
      spec: { replicas: 5, paused: false },
      status: { ready: 1 },
    };
    const desired = { metadata: { name: 'a', labels: { mine: 'z' } }, spec: { replicas: 2 } };
    expect(overlay(live, desired)).toEqual({
      metadata: { name: 'a', resourceVersion: '7', labels: { mine: 'z', theirs: 'y' } },
      spec: { replicas: 2, paused: false },
      status: { ready: 1 },
    });
  });

  it("replaces live's lists with desired's, dropping entries added by hand and fields inside them", () => {
    const live = {
      spec: {
        ports: [
          { port: 80, nodePort: 30080 },
          { port: 8443, name: 'hand-added' },
        ],
      },
    };
    const desired = { spec: { ports: [{ port: 80 }] } };
    expect(overlay(live, desired)).toEqual({ spec: { ports: [{ port: 80 }] } });
  });

  it('does not change live', () => {
    const live = { spec: { replicas: 5, ports: [1, 2] } };
    overlay(live, { spec: { replicas: 2, ports: [1] } });
    expect(live).toEqual({ spec: { replicas: 5, ports: [1, 2] } });
  });
});

describe('a Secret written back at the version read', () => {
  const secret = (rv?: string, password = 'a'): KubernetesObject & { data: Record<string, string> } => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 's', namespace: 'ns', ...(rv ? { resourceVersion: rv } : {}) },
    data: { password },
  });

  it('records the version of the first read of each Secret, and of nothing else', () => {
    const live = new Map<string, KubernetesObject>([
      ['Secret', secret('7')],
      ['ConfigMap', { kind: 'ConfigMap', metadata: { name: 's', namespace: 'ns', resourceVersion: '3' } }],
    ]);
    const read = new Map<string, string>();
    const children = recordSecretReads(
      { get: (kind: string, _ns: string, _name: string) => live.get(kind) },
      read,
    );
    children.get('ConfigMap', 'ns', 's');
    children.get('Secret', 'ns', 's');
    live.set('Secret', secret('8'));
    children.get('Secret', 'ns', 's');
    expect([...read]).toEqual([['ns/s', '7']]);
  });

  it('carries that version as a precondition, which the applied hash leaves out (no write loop)', () => {
    const read = new Map([['ns/s', '7']]);
    const sent = stamped(withReadVersion(secret(), read));
    expect(sent.metadata?.resourceVersion).toBe('7');
    expect(sent.metadata?.annotations).toEqual(stamped(secret()).metadata?.annotations);
    expect(withReadVersion(secret(), new Map()).metadata?.resourceVersion).toBeUndefined();
    // Unchanged since the read: nothing to write. Changed since: drift, and the write names '7'.
    expect(drift(sent, { ...sent })).toBeUndefined();
    expect(drift(sent, { ...sent, metadata: { ...sent.metadata, resourceVersion: '8' } })).toBe(
      '.metadata.resourceVersion',
    );
  });
});
