import { applyApp, getApp, readyAt as readyAtGeneration } from './support/apps.ts';
// The operator core and the web tier on the local control plane: children, rollouts, drift,
// garbage collection, refusals, restricted pods, and no writes when nothing changed.
import { createNamespace, deleteNamespace, eventually, json, kubectl, tryKubectl } from './support/kube.ts';
import { startOperator, type OperatorProcess } from './support/operator.ts';

let ns: string;
let op: OperatorProcess;

beforeAll(async () => {
  // Every pod of the app must be admitted under the restricted Pod Security Standard.
  ns = createNamespace('web', {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
  });
  op = await startOperator({ namespace: ns });
});
afterAll(async () => {
  if (process.env.SCALABLEAPP_DUMP_LOGS) console.log(op?.logs.slice(-60).join('\n'));
  await op?.stop();
  deleteNamespace(ns);
});

type Obj = {
  kind?: string;
  metadata: {
    name: string;
    generation?: number;
    resourceVersion?: string;
    uid?: string;
    ownerReferences?: { kind: string; name: string }[];
    managedFields?: { manager: string; operation: string; subresource?: string; time: string }[];
  };
  spec?: any;
  status?: any;
};
type Condition = {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
};

const apply = (name: string, spec: unknown) => applyApp(ns, name, spec);
const app = (name: string): Obj => getApp(ns, name);
const condition = (name: string, type: string) =>
  (app(name).status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
const readyAt = (name: string) => readyAtGeneration(ns, name);
const zoneOf = () =>
  new Map(
    json<{ items: { metadata: { name: string; labels: Record<string, string> } }[] }>([
      'get',
      'nodes',
    ]).items.map((n) => [n.metadata.name, n.metadata.labels['topology.kubernetes.io/zone']]),
  );

describe('a web-only ScalableApp', () => {
  const spec = {
    web: {
      image: 'registry.example/shop:1.0',
      autoscaling: { minReplicas: 3, maxReplicas: 6 },
      expose: { type: 'Ingress', host: 'shop.example.com' },
    },
  };

  it('gets its Deployment, Service, HPA, PDB, Ingress, NetworkPolicies and connection Secret, and becomes Ready', async () => {
    apply('shop', spec);
    const a = await readyAt('shop');
    const owned = (kind: string) =>
      json<{ items: Obj[] }>(['get', kind, '-n', ns, '-l', 'app.kubernetes.io/part-of=shop'])
        .items.map((o) => o.metadata.name)
        .sort();
    expect(owned('deployment')).toEqual(['shop-web']);
    expect(owned('service')).toEqual(['shop-web']);
    expect(owned('hpa')).toEqual(['shop-web']);
    expect(owned('pdb')).toEqual(['shop-web']);
    expect(owned('ingress')).toEqual(['shop-web']);
    expect(owned('secret')).toEqual(['shop-connection']);
    expect(owned('networkpolicy')).toEqual(['shop-allow-dns', 'shop-allow-web-ingress', 'shop-default-deny']);
    for (const kind of ['deployment', 'service', 'hpa', 'pdb', 'secret', 'networkpolicy']) {
      for (const o of json<{ items: Obj[] }>(['get', kind, '-n', ns, '-l', 'app.kubernetes.io/part-of=shop'])
        .items) {
        expect(o.metadata.ownerReferences).toEqual([
          expect.objectContaining({ kind: 'ScalableApp', name: 'shop', controller: true }),
        ]);
      }
    }
    // The HPA owns the replica count: the Deployment was applied without one and the HPA scaled it.
    const deploy = json<Obj>(['get', 'deployment', 'shop-web', '-n', ns]);
    expect(deploy.spec.replicas).toBe(3);
    expect(a.status.web).toEqual({ replicas: 3, readyReplicas: 3 });
    expect(a.status.endpoints.web).toBe('http://shop.example.com');
    expect(a.status.conditions.find((c: Condition) => c.type === 'WebReady')).toMatchObject({
      status: 'True',
      reason: 'Available',
    });
  });

  it('runs Ready pods in 3 zones, admitted under the restricted Pod Security Standard', async () => {
    const pods = await eventually('3 Ready web pods', () => {
      const items = json<{ items: Obj[] }>([
        'get',
        'pods',
        '-n',
        ns,
        '-l',
        'app.kubernetes.io/instance=shop,app.kubernetes.io/component=web',
      ]).items;
      return (
        items.length === 3 &&
        items.every((p) =>
          p.status.conditions?.some((c: Condition) => c.type === 'Ready' && c.status === 'True'),
        ) &&
        items
      );
    });
    const zones = zoneOf();
    expect(new Set(pods.map((p) => zones.get(p.spec.nodeName)))).toEqual(
      new Set(['zone-a', 'zone-b', 'zone-c']),
    );
    // Nothing was refused by admission: no FailedCreate on the ReplicaSet.
    const events = json<{ items: { reason: string; message: string }[] }>([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'reason=FailedCreate',
    ]).items;
    expect(events.map((e) => e.message)).toEqual([]);
  });

  it('records Events for what it did', () => {
    const events = json<{ items: { reason: string; message: string; involvedObject: { name: string } }[] }>([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'involvedObject.kind=ScalableApp,involvedObject.name=shop',
    ]).items;
    expect(events.map((e) => e.message)).toEqual(
      expect.arrayContaining(['Created Deployment shop-web', 'Created Service shop-web']),
    );
  });

  it('makes zero mutating API calls when a reconcile finds nothing to change', async () => {
    const children = () =>
      json<{ items: Obj[] }>([
        'get',
        'deployment,service,hpa,pdb,ingress,secret,networkpolicy',
        '-n',
        ns,
        '-l',
        'app.kubernetes.io/part-of=shop',
      ])
        // Not resourceVersion: the HPA and Deployment controllers write their objects' status on
        // their own (a flake when one did during the wait). The operator's own entries in
        // managedFields, and the generation, change only when the operator (or someone) writes spec.
        .items.map((o) => {
          const ours = (o.metadata.managedFields ?? [])
            .filter((f) => f.manager === 'scalableapp-operator')
            .map((f) => `${f.operation}:${f.subresource ?? ''}:${f.time}`)
            .join(',');
          return `${o.kind}/${o.metadata.name}@${o.metadata.generation ?? '-'} ${ours}`;
        })
        .sort();
    const before = children();
    const statusBefore = app('shop').metadata.resourceVersion;
    const writes = await op.counter('scalableapp_api_requests_total');
    const reconciles = await op.counter('controller_runtime_reconcile_total', { result: 'success' });
    // An annotation does not change the spec (no new generation) but does trigger a reconcile.
    kubectl(['annotate', 'sapp', 'shop', '-n', ns, `poke=${Date.now()}`, '--overwrite']);
    await eventually(
      'a reconcile',
      async () =>
        (await op.counter('controller_runtime_reconcile_total', { result: 'success' })) > reconciles,
    );
    expect(await op.counter('scalableapp_api_requests_total')).toBe(writes);
    expect(children()).toEqual(before);
    expect(app('shop').metadata.resourceVersion).not.toBe(statusBefore); // only our own annotation changed it
  });

  it('makes zero mutating API calls on a full resync after a restart (caches filled by a list)', async () => {
    await op.stop();
    op = await startOperator({ namespace: ns });
    await eventually(
      'leadership and a reconcile',
      async () => (await op.counter('controller_runtime_reconcile_total', { result: 'success' })) > 0,
    );
    expect(await op.counter('scalableapp_api_requests_total')).toBe(0);
  });

  it('rolls out a new image and reports the new generation', async () => {
    apply('shop', { ...spec, web: { ...spec.web, image: 'registry.example/shop:2.0' } });
    await readyAt('shop');
    const deploy = json<Obj>(['get', 'deployment', 'shop-web', '-n', ns]);
    expect(deploy.spec.template.spec.containers[0].image).toBe('registry.example/shop:2.0');
    const pods = json<{ items: Obj[] }>([
      'get',
      'pods',
      '-n',
      ns,
      '-l',
      'app.kubernetes.io/instance=shop',
    ]).items;
    await eventually('only new pods', () => {
      const images = json<{ items: Obj[] }>([
        'get',
        'pods',
        '-n',
        ns,
        '-l',
        'app.kubernetes.io/instance=shop',
      ]).items.map((p) => p.spec.containers[0].image);
      return images.length === 3 && images.every((i) => i === 'registry.example/shop:2.0');
    });
    expect(pods.length).toBeGreaterThan(0);
  });

  it('puts back a child edited by hand', async () => {
    kubectl([
      'patch',
      'service',
      'shop-web',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: { ports: [{ name: 'http', port: 9999, targetPort: 'http', protocol: 'TCP' }] },
      }),
    ]);
    await eventually(
      'the Service port restored',
      () => json<Obj>(['get', 'service', 'shop-web', '-n', ns]).spec.ports[0].port === 80,
    );
    kubectl(['set', 'image', 'deployment/shop-web', '-n', ns, 'web=registry.example/evil:1']);
    await eventually(
      'the image restored',
      () =>
        json<Obj>(['get', 'deployment', 'shop-web', '-n', ns]).spec.template.spec.containers[0].image ===
        'registry.example/shop:2.0',
    );
  });

  it('recreates a deleted child', async () => {
    const uid = json<Obj>(['get', 'pdb', 'shop-web', '-n', ns]).metadata.uid;
    kubectl(['delete', 'pdb', 'shop-web', '-n', ns]);
    await eventually('a new PDB', () => {
      const r = tryKubectl(['get', 'pdb', 'shop-web', '-n', ns, '-o', 'jsonpath={.metadata.uid}']);
      return r.ok && r.stdout !== uid;
    });
  });

  it('deletes children the spec no longer asks for (autoscaling off, exposure changed)', async () => {
    apply('shop', { web: { image: 'registry.example/shop:2.0', replicas: 2 } });
    await readyAt('shop');
    await eventually(
      'HPA and Ingress gone',
      () =>
        !tryKubectl(['get', 'hpa', 'shop-web', '-n', ns]).ok &&
        !tryKubectl(['get', 'ingress', 'shop-web', '-n', ns]).ok,
    );
    expect(json<Obj>(['get', 'deployment', 'shop-web', '-n', ns]).spec.replicas).toBe(2);
  });

  it('garbage-collects every child when the ScalableApp is deleted', async () => {
    kubectl(['delete', 'sapp', 'shop', '-n', ns]);
    await eventually(
      'children gone',
      () =>
        json<{ items: Obj[] }>([
          'get',
          'deployment,service,pdb,secret,networkpolicy,pods',
          '-n',
          ns,
          '-l',
          'app.kubernetes.io/part-of=shop',
        ]).items.length === 0,
    );
  });
});

describe('what only the operator can judge', () => {
  it('refuses to apply anything while a referenced Secret is missing, says why, and proceeds once it exists', async () => {
    apply('needs-secret', {
      web: {
        image: 'registry.example/app:1',
        env: [{ name: 'API_KEY', secretKeyRef: { name: 'api', key: 'key' } }],
      },
    });
    const c = await eventually('a MissingReference condition', () => {
      const ready = condition('needs-secret', 'Ready');
      return ready?.reason === 'MissingReference' && ready;
    });
    expect(c.status).toBe('False');
    expect(c.message).toContain('spec.web.env[0].secretKeyRef');
    expect(c.message).toContain(`Secret ${ns}/api not found`);
    expect(app('needs-secret').status.phase).toBe('Pending');
    expect(tryKubectl(['get', 'deployment', 'needs-secret-web', '-n', ns]).ok).toBe(false);
    const warnings = json<{ items: { type: string; reason: string }[] }>([
      'get',
      'events',
      '-n',
      ns,
      '--field-selector',
      'involvedObject.name=needs-secret,type=Warning',
    ]).items;
    expect(warnings.map((e) => e.reason)).toContain('MissingReference');

    kubectl(['create', 'secret', 'generic', 'api', '-n', ns, '--from-literal=key=s3cr3t-value']);
    await readyAt('needs-secret');
    expect(
      json<Obj>(['get', 'deployment', 'needs-secret-web', '-n', ns]).spec.template.spec.containers[0].env,
    ).toEqual([{ name: 'API_KEY', valueFrom: { secretKeyRef: { name: 'api', key: 'key' } } }]);
    // The value itself never reaches status, events or the operator's logs.
    expect(JSON.stringify(app('needs-secret'))).not.toContain('s3cr3t-value');
    expect(await op.output()).not.toContain('s3cr3t-value');
  });

  it('rolls the web pods when the connection Secret changes', async () => {
    apply('rolls', { web: { image: 'registry.example/app:1', replicas: 1 } });
    await readyAt('rolls');
    const hash = () =>
      json<Obj>(['get', 'deployment', 'rolls-web', '-n', ns]).spec.template.metadata.annotations[
        'scalableapp.io/connection-hash'
      ];
    const first = hash();
    // Exposure changes WEB_URL in the connection Secret, so the pods must pick it up.
    apply('rolls', {
      web: {
        image: 'registry.example/app:1',
        replicas: 1,
        expose: { type: 'Ingress', host: 'rolls.example.com' },
      },
    });
    await readyAt('rolls');
    const secret = json<{ data: Record<string, string> }>(['get', 'secret', 'rolls-connection', '-n', ns]);
    expect(Buffer.from(secret.data.WEB_URL!, 'base64').toString()).toBe('http://rolls.example.com');
    expect(hash()).not.toBe(first);
  });
});
