import type { V1ContainerStatus, V1ConfigMap, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { parseApp } from '../api/testdata/apps.ts';
import { databaseEntries, databaseObjects, dbConfigHash, dbReadEndpoints } from './database.ts';
import type { ObservedFacts } from './objects.ts';
import { restrictedViolations } from './testdata/restricted-pss.ts';

const credentials = { superuser: 'su-pw', replication: 'repl-pw', app: 'app/pw' };
const facts: ObservedFacts = { gatewayApi: false, dbCredentials: credentials };
const app = parseApp({
  web: { image: 'x' },
  database: { replicas: 2, synchronousReplicas: 1, storage: { size: '5Gi', storageClassName: 'fast' } },
});
const find = <T>(kind: string, f = facts) =>
  databaseObjects(app, f).find((o) => o.kind === kind) as unknown as T;
const pod = (name: string, ready: boolean, ip: string): V1Pod => ({
  metadata: { name },
  status: {
    podIP: ip,
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    containerStatuses: [{ name: 'postgres', ready } as V1ContainerStatus],
  },
});

describe('database objects', () => {
  it('runs 1 + replicas instances under the restricted profile, as the image user, with retained volumes', () => {
    const sts = find<V1StatefulSet>('StatefulSet');
    expect(sts.spec!.replicas).toBe(3);
    expect(restrictedViolations(sts.spec!.template.spec!)).toEqual([]);
    expect(sts.spec!.template.spec!.securityContext).toMatchObject({
      runAsUser: 999,
      fsGroup: 999,
      runAsNonRoot: true,
    });
    expect(sts.spec!.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: 'Retain',
      whenScaled: 'Retain',
    });
    expect(sts.spec!.volumeClaimTemplates![0]!.spec).toMatchObject({
      storageClassName: 'fast',
      resources: { requests: { storage: '5Gi' } },
    });
    const deleting = parseApp({ database: { deletionPolicy: 'Delete' } });
    const s2 = databaseObjects(deleting, facts).find(
      (o) => o.kind === 'StatefulSet',
    ) as unknown as V1StatefulSet;
    expect(s2.spec!.persistentVolumeClaimRetentionPolicy!.whenDeleted).toBe('Delete');
  });

  it('reads the recorded primary from the ConfigMap at container start, never bakes it into the pod', () => {
    const env = find<V1StatefulSet>('StatefulSet').spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === 'PRIMARY_NAME')!.valueFrom!.configMapKeyRef).toEqual({
      name: 'shop-db-config',
      key: 'primary',
    });
    expect(find<V1ConfigMap>('ConfigMap').data!.primary).toBe('shop-db-0');
    expect(find<V1ConfigMap>('ConfigMap', { ...facts, dbPrimary: 'shop-db-2' }).data!.primary).toBe(
      'shop-db-2',
    );
  });

  it('gives starting an hour (a clone of a large database) before liveness may restart the container', () => {
    const c = find<V1StatefulSet>('StatefulSet').spec!.template.spec!.containers[0]!;
    const window = (p: typeof c.livenessProbe) => (p!.periodSeconds ?? 10) * (p!.failureThreshold ?? 3);
    expect(c.startupProbe!.exec).toEqual(c.livenessProbe!.exec);
    expect(window(c.startupProbe)).toBeGreaterThanOrEqual(3600);
    // Liveness counts from a started server only: no initial delay to guess.
    expect(c.livenessProbe!.initialDelaySeconds).toBeUndefined();
    expect(window(c.livenessProbe)).toBeLessThan(window(c.startupProbe));
  });

  it('does not restart the instances when only the primary moves', () => {
    expect(dbConfigHash(app, { ...facts, dbPrimary: 'shop-db-1' })).toBe(dbConfigHash(app, facts));
    expect(dbConfigHash(parseApp({ database: { replicas: 2, synchronousReplicas: 2 } }), facts)).not.toBe(
      dbConfigHash(parseApp({ database: { replicas: 2 } }), facts),
    );
  });

  it('configures ANY k synchronous replication over every instance name', () => {
    expect(find<V1ConfigMap>('ConfigMap').data!['postgresql.conf']).toContain(
      "synchronous_standby_names = 'ANY 1 (",
    );
  });

  it('keeps every password in the Secret only', () => {
    const secret = find<V1Secret>('Secret');
    expect(Object.keys(secret.data!).sort()).toEqual([
      'app-password',
      'replication-password',
      'superuser-password',
    ]);
    const others = JSON.stringify(databaseObjects(app, facts).filter((o) => o.kind !== 'Secret'));
    for (const pw of Object.values(credentials)) expect(others).not.toContain(pw);
  });

  it('publishes ready replicas as read endpoints, and the primary when none is ready', () => {
    const names = (pods: V1Pod[]) =>
      (
        dbReadEndpoints(app, { ...facts, dbPods: pods }) as unknown as {
          endpoints: { targetRef: { name: string } }[];
        }
      ).endpoints.map((e) => e.targetRef.name);
    const primary = pod('shop-db-0', true, '10.0.0.1');
    expect(names([primary, pod('shop-db-1', true, '10.0.0.2'), pod('shop-db-2', false, '10.0.0.3')])).toEqual(
      ['shop-db-1'],
    );
    expect(names([primary, pod('shop-db-1', false, '10.0.0.2')])).toEqual(['shop-db-0']);
    expect(names([pod('shop-db-0', false, '10.0.0.1')])).toEqual([]);
  });

  it('gives the app a read-write and a read-only URL with the password URL-encoded', () => {
    expect(databaseEntries(app, facts)).toEqual({
      DATABASE_URL: 'postgresql://app:app%2Fpw@shop-db-rw.prod.svc:5432/app',
      DATABASE_READ_URL: 'postgresql://app:app%2Fpw@shop-db-ro.prod.svc:5432/app',
    });
  });
});
