import { parseApp } from '../api/testdata/apps.ts';
import type {
  V1Deployment,
  V1LabelSelector,
  V1NetworkPolicy,
  V1NetworkPolicyPeer,
} from '@kubernetes/client-node';
import { type ScalableApp } from '../api/scalable-app.ts';
import { networkPolicies } from './network-policies.ts';
import { OPERATOR_POD_LABELS } from './labels.ts';
import { webDeployment } from './web.ts';

/** matchLabels semantics (this module uses no matchExpressions). */
function selects(selector: V1LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector?.matchExpressions?.length) throw new Error('matchExpressions not supported by this helper');
  return Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);
}

const webPodLabels = (app: ScalableApp) =>
  (webDeployment(app, { name: 'c', hash: 'h' }) as V1Deployment).spec!.template.metadata!.labels!;

const allowsIngress = (p: V1NetworkPolicy) => (p.spec?.ingress?.length ?? 0) > 0;

describe('network policies of the queue and the shards', () => {
  const app = parseApp({
    shards: { count: 2, key: 'k' },
    queue: { queues: [{ name: 'q' }] },
    consumers: [{ name: 'w', image: 'w', queue: 'q' }],
  });
  const byName = (n: string) =>
    (
      networkPolicies(app) as unknown as (V1NetworkPolicy & {
        spec: {
          ingress?: { from?: { podSelector?: V1LabelSelector }[]; ports?: { port: number }[] }[];
        };
      })[]
    ).find((p) => p.metadata!.name === n)!;

  it('lets consumers, web pods and the operator speak AMQP, only the operator the management API, only brokers clustering', () => {
    const [clients, operator, peers] = byName('shop-allow-queue-ingress').spec.ingress!;
    expect(clients!.ports!.map((p) => p.port)).toEqual([5672]);
    expect(
      clients!.from!.map((f) => f.podSelector?.matchLabels?.['app.kubernetes.io/component'] ?? 'operator'),
    ).toEqual(['web', 'consumer', 'operator']);
    expect(operator!.ports!.map((p) => p.port)).toEqual([15672]);
    expect(operator!.from!.map((f) => f.podSelector?.matchLabels)).toEqual([OPERATOR_POD_LABELS]);
    expect(peers!.from).toEqual([
      {
        podSelector: {
          matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'queue' },
        },
      },
    ]);
    expect(peers!.ports!.map((p) => p.port)).toEqual([5672, 4369, 25672]);
    // The app's pods are let out to the brokers on AMQP (and the brokers to each other), not 15672.
    const egress = byName('shop-allow-queue-egress').spec as { egress: { ports: { port: number }[] }[] };
    expect(egress.egress[0]!.ports.map((p) => p.port)).toEqual([5672, 4369, 25672]);
  });

  it('lets the app reach every shard on the Postgres port', () => {
    const ingress = byName('shop-allow-shards-ingress');
    expect(ingress.spec.podSelector).toEqual({
      matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'shard' },
    });
    expect(ingress.spec.ingress![0]!.ports).toEqual([{ protocol: 'TCP', port: 5432 }]);
    // The resharding Job's pods too (labelled as the app's shard mover), and on no other data tier.
    const components = (name: string) =>
      byName(name).spec.ingress![0]!.from!.map(
        (f) => f.podSelector?.matchLabels?.['app.kubernetes.io/component'],
      );
    expect(components('shop-allow-shards-ingress')).toContain('shard-mover');
    expect(components('shop-allow-queue-ingress')).not.toContain('shard-mover');
    expect(ingress.spec.ingress![0]!.from).toContainEqual({
      podSelector: {
        matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'shard-mover' },
      },
    });
    expect(byName('shop-allow-shards-egress').spec.egress![0]!.ports).toEqual([
      { protocol: 'TCP', port: 5432 },
    ]);
  });
});

describe('network policies', () => {
  const app = parseApp({ web: { image: 'x', port: 9090 } });
  const policies = networkPolicies(app) as unknown as V1NetworkPolicy[];

  it("denies all ingress and egress by default for every one of the app's pods", () => {
    const deny = policies.find(
      (p) => !p.spec?.ingress?.length && !p.spec?.egress?.length && p.spec?.policyTypes?.length === 2,
    );
    expect(deny).toBeDefined();
    expect(deny!.spec?.policyTypes).toEqual(expect.arrayContaining(['Ingress', 'Egress']));
    expect(selects(deny!.spec?.podSelector, webPodLabels(app))).toBe(true);
  });

  it("does not select another app's pods in the same namespace", () => {
    const otherPods = webPodLabels(parseApp({ web: { image: 'x' } }, 'other'));
    for (const p of policies) expect(selects(p.spec?.podSelector, otherPods)).toBe(false);
  });

  it("lets every one of the app's pods resolve names over DNS (UDP and TCP 53)", () => {
    const dns = policies.find((p) => p.spec?.egress?.some((e) => e.ports?.some((port) => port.port === 53)));
    expect(dns).toBeDefined();
    expect(dns!.spec?.policyTypes).toEqual(['Egress']);
    expect(selects(dns!.spec?.podSelector, webPodLabels(app))).toBe(true);
    const ports = dns!.spec!.egress!.flatMap((e) => e.ports ?? []);
    expect(ports).toEqual(
      expect.arrayContaining([
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ]),
    );
    expect(ports.every((p) => p.port === 53)).toBe(true);
  });

  it('lets traffic reach the web pods only on the app port', () => {
    const ingressAllows = policies.filter(allowsIngress);
    expect(ingressAllows).toHaveLength(1);
    const web = ingressAllows[0]!;
    expect(selects(web.spec?.podSelector, webPodLabels(app))).toBe(true);
    expect(web.spec?.policyTypes).toEqual(['Ingress']);
    expect(web.spec?.ingress?.flatMap((r) => r.ports ?? [])).toEqual([{ protocol: 'TCP', port: 9090 }]);
  });

  it('allows no ingress from outside the app when there is no web tier', () => {
    const noWeb = networkPolicies(
      parseApp({ shards: { count: 1, key: 'k' }, queue: { queues: [{ name: 'q' }] } }),
    ) as unknown as V1NetworkPolicy[];
    // Every rule names its sources (pods of the app, or the operator's namespace): none is open to all.
    const open = noWeb
      .flatMap((p) => p.spec?.ingress ?? [])
      .filter((r) => !(r as { from?: unknown[] }).from?.length);
    expect(open).toEqual([]);
    // The default deny and DNS egress still apply.
    expect(noWeb.some((p) => p.spec?.policyTypes?.includes('Ingress') && !allowsIngress(p))).toBe(true);
    expect(noWeb.some((p) => p.spec?.egress?.length)).toBe(true);
  });

  it('lets only the web tier, consumers, the instances themselves and the operator reach the database', () => {
    const db = networkPolicies(
      parseApp({ web: { image: 'x' }, database: {} }),
    ) as unknown as (V1NetworkPolicy & {
      spec: { ingress?: { from?: unknown[] }[] };
    })[];
    const ingress = db.find((p) => p.metadata?.name === 'shop-allow-database-ingress')!;
    expect(ingress.spec.ingress).toHaveLength(1);
    expect(ingress.spec.ingress![0]!.from).toEqual([
      {
        podSelector: {
          matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'web' },
        },
      },
      {
        podSelector: {
          matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'consumer' },
        },
      },
      {
        podSelector: {
          matchLabels: { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/component': 'database' },
        },
      },
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'scalableapp-system' } },
        podSelector: { matchLabels: { 'scalableapp.io/operator': 'true' } },
      },
    ]);
  });

  it('admit from the operator namespace only the pods carrying the operator label, never the whole namespace', () => {
    const every = networkPolicies(
      parseApp({
        web: { image: 'x' },
        database: {},
        cache: {},
        shards: { count: 2, key: 'k' },
        queue: { queues: [{ name: 'q' }] },
      }),
    ) as unknown as V1NetworkPolicy[];
    const fromNamespaces = every.flatMap((p) =>
      (p.spec?.ingress ?? []).flatMap((r) =>
        ((r as { from?: V1NetworkPolicyPeer[] }).from ?? []).filter((f) => f.namespaceSelector),
      ),
    );
    expect(fromNamespaces.length).toBe(5); // database, cache, shards, queue (AMQP and management)
    for (const f of fromNamespaces) expect(f.podSelector).toEqual({ matchLabels: OPERATOR_POD_LABELS });
  });

  it('are all in the app namespace with distinct names', () => {
    expect(policies.every((p) => p.metadata?.namespace === 'prod')).toBe(true);
    const names = policies.map((p) => p.metadata?.name);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('allowedClients of a standalone data tier', () => {
  const ingressOf = (spec: Record<string, unknown>, tier: string) =>
    (networkPolicies(parseApp(spec)) as unknown as V1NetworkPolicy[]).find(
      (p) => p.metadata?.name === `shop-allow-${tier}-ingress`,
    )!.spec!.ingress as unknown as { from: V1NetworkPolicyPeer[]; ports: { port: number }[] }[];
  const reporting = { podSelector: { matchLabels: { app: 'reporting' } } };
  const etl = {
    podSelector: { matchLabels: { app: 'etl' } },
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'analytics' } },
  };

  it('admits exactly the pods named, on the client port only, beside the operator', () => {
    const rules = ingressOf({ database: { allowedClients: [reporting, etl] } }, 'database');
    expect(rules.at(-1)).toEqual({
      from: [reporting, etl],
      ports: [{ protocol: 'TCP', port: 5432 }],
    });
  });

  it('gives a client of the broker AMQP only, never the management API or the peer ports', () => {
    const rules = ingressOf({ queue: { queues: [{ name: 'q' }], allowedClients: [reporting] } }, 'queue');
    expect(rules.at(-1)).toEqual({ from: [reporting], ports: [{ protocol: 'TCP', port: 5672 }] });
  });

  it('adds no rule when none are named: a standalone tier admits only its members and the operator', () => {
    for (const [spec, tier] of [
      [{ cache: {} }, 'cache'],
      [{ shards: { count: 2, key: 'k' } }, 'shards'],
    ] as const) {
      const from = ingressOf(spec, tier).flatMap((r) => r.from);
      expect(
        from.every(
          (f) => f.namespaceSelector === undefined || f.podSelector?.matchLabels?.['scalableapp.io/operator'],
        ),
      ).toBe(true);
      expect(
        ingressOf({ ...spec, [tier]: { ...spec[tier], allowedClients: [reporting] } } as never, tier).length,
      ).toBe(ingressOf(spec, tier).length + 1);
    }
  });
});
