// What `kubectl get events` shows of a problem that lasts: one Event whose count grows, as client-go's
// recorder aggregates, never a new Event per reconcile.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { ApiError, type Kube } from '../kube/client.ts';
import { FakeClock } from '../runtime/fake-clock.ts';
import { EventRecorder, REMEMBERED_EVENTS, REPEAT_WINDOW_MS } from './events.ts';

/** Events as the apiserver keeps them, and every write the recorder made. */
type StoredEvent = Record<string, unknown> & { metadata: { name: string }; reason: string };

function apiserver() {
  const events = new Map<string, StoredEvent>();
  const writes: string[] = [];
  const kube = {
    async create(path: string, obj: StoredEvent) {
      writes.push(`create ${obj.reason}`);
      events.set(`${path}/${obj.metadata.name}`, structuredClone(obj));
      return obj;
    },
    async mergePatch(path: string, patch: { count: number }) {
      writes.push(`patch count=${patch.count}`);
      const e = events.get(path);
      if (!e) throw new ApiError('PATCH', path, 404, { reason: 'NotFound' });
      Object.assign(e, patch);
      return e;
    },
  } as unknown as Kube;
  return { kube, events, writes, expire: () => events.clear() };
}

const app = (name = 'shop', uid = 'u1') => ({
  apiVersion: 'scalableapp.io/v1alpha1' as const,
  kind: 'ScalableApp' as const,
  metadata: { name, namespace: 'prod', uid },
});

describe('EventRecorder', () => {
  it('turns repeats within the window into one Event with a count and the latest time', async () => {
    const api = apiserver();
    const clock = new FakeClock();
    const errors: unknown[] = [];
    const r = new EventRecorder(api.kube, (e) => errors.push(e), clock);
    for (let i = 0; i < 5; i++) {
      await r.record(app(), 'Warning', 'FailoverRefused', 'no replica is in sync');
      await clock.advance(2000);
    }
    expect(errors).toEqual([]);
    expect(api.writes).toEqual([
      'create FailoverRefused',
      'patch count=2',
      'patch count=3',
      'patch count=4',
      'patch count=5',
    ]);
    const [e] = [...api.events.values()];
    expect(api.events.size).toBe(1);
    expect(e).toMatchObject({ count: 5, firstTimestamp: '2025-01-01T00:00:00.000Z' });
    expect(e!.lastTimestamp).toBe('2025-01-01T00:00:08.000Z');
  });

  it('writes a new Event for another message, reason, type or app, and after the window', async () => {
    const api = apiserver();
    const clock = new FakeClock();
    const r = new EventRecorder(api.kube, () => {}, clock);
    await r.record(app(), 'Warning', 'FailoverRefused', 'a');
    await r.record(app(), 'Warning', 'FailoverRefused', 'b');
    await r.record(app(), 'Warning', 'PrimaryCheckFailed', 'a');
    await r.record(app(), 'Normal', 'FailoverRefused', 'a');
    await r.record(app('other', 'u2'), 'Warning', 'FailoverRefused', 'a');
    // The same name, recreated: another object, another Event.
    await r.record(app('shop', 'u3'), 'Warning', 'FailoverRefused', 'a');
    expect(api.events.size).toBe(6);
    await clock.advance(REPEAT_WINDOW_MS);
    await r.record(app(), 'Warning', 'FailoverRefused', 'a');
    expect(api.events.size).toBe(7);
    expect(api.writes.filter((w) => w.startsWith('patch'))).toEqual([]);
  });

  it('writes the Event anew when the one it counted has expired', async () => {
    const api = apiserver();
    const clock = new FakeClock();
    const errors: unknown[] = [];
    const r = new EventRecorder(api.kube, (e) => errors.push(e), clock);
    await r.record(app(), 'Warning', 'ImagePullFailed', 'x');
    api.expire();
    await r.record(app(), 'Warning', 'ImagePullFailed', 'x');
    expect(errors).toEqual([]);
    expect(api.writes).toEqual(['create ImagePullFailed', 'patch count=2', 'create ImagePullFailed']);
    expect([...api.events.values()].map((e) => e.count)).toEqual([1]);
  });

  it('never fails the caller: a refused write goes to onError', async () => {
    const errors: unknown[] = [];
    const refused = new ApiError('POST', '/api/v1/namespaces/prod/events', 403, { reason: 'Forbidden' });
    const kube = {
      create: async () => {
        throw refused;
      },
    } as unknown as Kube;
    const r = new EventRecorder(kube, (e) => errors.push(e), new FakeClock());
    await expect(r.record(app(), 'Warning', 'Failover', 'y')).resolves.toBeUndefined();
    expect(errors).toEqual([refused]);
  });

  it('remembers a bounded number of Events, forgetting the least recently recorded', async () => {
    const api = apiserver();
    const r = new EventRecorder(api.kube, () => {}, new FakeClock());
    await r.record(app(), 'Warning', 'Failover', 'first');
    for (let i = 0; i < REMEMBERED_EVENTS; i++) await r.record(app(), 'Warning', 'Failover', `m${i}`);
    await r.record(app(), 'Warning', 'Failover', 'first'); // forgotten: a new Event
    await r.record(app(), 'Warning', 'Failover', `m${REMEMBERED_EVENTS - 1}`); // remembered: counted
    expect(api.writes.slice(-2)).toEqual(['create Failover', 'patch count=2']);
  });
});

describe("the operator's RBAC", () => {
  // The recorder creates an Event and patches its count on a repeat. In the simulated mode the
  // operator runs with the admin's kubeconfig, so a missing verb shows only in the cluster (a 403 on
  // every repeat, found on the real node): the manifest must grant both.
  it('grants every verb the recorder uses on events', async () => {
    const api = apiserver();
    const clock = new FakeClock();
    const r = new EventRecorder(api.kube, () => {}, clock);
    await r.record(app(), 'Warning', 'FailoverRefused', 'no replica is in sync');
    await r.record(app(), 'Warning', 'FailoverRefused', 'no replica is in sync');
    const used = new Set(api.writes.map((w) => w.split(' ')[0]));
    expect([...used].sort()).toEqual(['create', 'patch']);
    const rbac = readFileSync(new URL('../../manifests/operator/10-rbac.yaml', import.meta.url), 'utf8');
    const role = parseAllDocuments(rbac)
      .map((d) => d.toJS())
      .find((o) => o.kind === 'ClusterRole');
    const granted = role.rules
      .filter(
        (rule: { apiGroups: string[]; resources: string[] }) =>
          rule.apiGroups.includes('') && rule.resources.includes('events'),
      )
      .flatMap((rule: { verbs: string[] }) => rule.verbs);
    for (const verb of used)
      expect({ verb, granted: granted.includes(verb) }).toEqual({ verb, granted: true });
  });
});
