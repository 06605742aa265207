// What #17 asks of every rendered object, the operator's (every sample, with every credential) and
// the charts' (every sample through the umbrella chart): no data tier admits a whole namespace or
// anyone at all, no broker login is an administrator but the operator's own user administrator
// (ADR 0027), which may open no vhost, and no cache user may run everything. And what
// #16 asks of every PodDisruptionBudget: a pod that is not Ready never blocks a node drain.
import type { RenderedObject } from './helm.ts';
import { renderChart } from './helm.ts';
import { validCorpus } from '../../operator/api/testdata/corpus.ts';
import { parseApp } from '../../operator/api/testdata/apps.ts';
import { TIERS } from '../../operator/api/spec.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { ALL_FACTS } from '../../operator/tiers/testdata/facts.ts';
import { QUEUE_OPERATOR_USER } from '../../operator/server-config/rabbitmq.ts';

type Obj = { kind?: string; metadata?: { name?: string }; spec?: any; data?: Record<string, string> };

const DATA_TIER_INGRESS = /-allow-(database|cache|shards|queue)-ingress$/;

/** Everything in `objects` that breaks least privilege, one line each; counts what it looked at. */
export function leastPrivilegeProblems(objects: readonly Obj[]) {
  const problems: string[] = [];
  let policies = 0;
  for (const o of objects) {
    const name = `${o.kind}/${o.metadata?.name}`;
    if (o.kind === 'NetworkPolicy' && DATA_TIER_INGRESS.test(o.metadata?.name ?? '')) {
      policies++;
      for (const rule of o.spec?.ingress ?? []) {
        if (!rule.from) problems.push(`${name}: a rule without "from" admits every pod`);
        for (const peer of rule.from ?? [])
          if (!peer.podSelector || peer.ipBlock)
            problems.push(`${name}: a peer admits more than pods by label: ${JSON.stringify(peer)}`);
      }
    }
    if (o.kind === 'ConfigMap')
      for (const [file, text] of Object.entries(o.data ?? {})) {
        for (const [user] of text.matchAll(/\{[^{}]*"tags":\s*\[[^\]]*"administrator"[^{}]*\}/g))
          if (/"name":\s*"([^"]*)"/.exec(user)?.[1] !== QUEUE_OPERATOR_USER)
            problems.push(`${name}: ${file} makes a broker login an administrator`);
        if (text.includes(`"user": "${QUEUE_OPERATOR_USER}"`))
          problems.push(`${name}: ${file} lets the operator's user administrator into a vhost`);
      }
    if (o.kind === 'Secret' && o.data?.['auth.conf']) {
      const conf = Buffer.from(o.data['auth.conf'], 'base64').toString();
      for (const line of conf.split('\n').filter((l) => l.startsWith('user ')))
        if (/\bnopass\b/.test(line) || (/\+@all\b/.test(line) && !/-@admin\b.*-@dangerous\b/.test(line)))
          problems.push(`${name}: auth.conf lets a cache user run everything: ${line.split(' ')[1]}`);
    }
  }
  return { problems, policies };
}

/** The PodDisruptionBudgets in `objects` that let a not-Ready pod hold the budget; counts them all. */
export function drainBlockers(objects: readonly Obj[]) {
  const budgets = objects.filter((o) => o.kind === 'PodDisruptionBudget');
  return {
    budgets: budgets.length,
    blockers: budgets
      .filter((o) => o.spec?.unhealthyPodEvictionPolicy !== 'AlwaysAllow')
      .map((o) => `${o.kind}/${o.metadata?.name}`),
  };
}

const samples = validCorpus()
  .filter((c) => c.object.kind === 'ScalableApp')
  .map((c) => ({
    file: c.file,
    name: c.object.metadata.name as string,
    spec: c.object.spec as any,
  }));

/** The umbrella chart's values for a spec: the spec and which tiers it declares (passwords generated). */
const stackValues = (spec: any) => ({
  ...structuredClone(spec),
  tiers: Object.fromEntries(
    TIERS.map((t) => [t, t === 'consumers' ? (spec.consumers?.length ?? 0) > 0 : spec[t] !== undefined]),
  ),
});

const dataTiers = (spec: any) => ['database', 'cache', 'shards', 'queue'].filter((t) => spec[t]).length;

describe('least privilege in every rendered object', () => {
  it.each(samples)("the operator's objects for $file", ({ name, spec }) => {
    const r = leastPrivilegeProblems(desiredState(parseApp(spec, name, 'prod'), ALL_FACTS) as Obj[]);
    expect(r.problems).toEqual([]);
    expect(r.policies).toBe(dataTiers(spec));
  });

  it.each(samples)("the umbrella chart's objects for $file", ({ name, spec }) => {
    const objects: RenderedObject[] = renderChart('stack', {
      release: name,
      namespace: 'prod',
      values: stackValues(spec),
    });
    const r = leastPrivilegeProblems(objects as Obj[]);
    expect(r.problems).toEqual([]);
    expect(r.policies).toBe(dataTiers(spec));
  });

  it.each(samples)(
    "every PodDisruptionBudget of $file, the operator's and the chart's, lets a not-Ready pod go",
    ({ name, spec }) => {
      const ours = drainBlockers(desiredState(parseApp(spec, name, 'prod'), ALL_FACTS) as Obj[]);
      const charts = drainBlockers(
        renderChart('stack', { release: name, namespace: 'prod', values: stackValues(spec) }) as Obj[],
      );
      expect({ ours: ours.blockers, charts: charts.blockers }).toEqual({ ours: [], charts: [] });
      expect(ours.budgets).toBeGreaterThan(0);
      expect(charts.budgets).toBe(ours.budgets);
    },
  );

  it('finds a budget that lets a not-Ready pod block a drain', () => {
    const pdb = (policy?: string) => ({
      kind: 'PodDisruptionBudget',
      metadata: { name: policy ?? 'default' },
      spec: { maxUnavailable: 1, ...(policy ? { unhealthyPodEvictionPolicy: policy } : {}) },
    });
    expect(drainBlockers([pdb(), pdb('IfHealthyBudget'), pdb('AlwaysAllow')])).toEqual({
      budgets: 3,
      blockers: ['PodDisruptionBudget/default', 'PodDisruptionBudget/IfHealthyBudget'],
    });
  });

  it('finds each kind of problem (so finding none above means something)', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const policy = (from: unknown) => ({
      kind: 'NetworkPolicy',
      metadata: { name: 'shop-allow-cache-ingress' },
      spec: { ingress: [from === undefined ? { ports: [] } : { from: [from] }] },
    });
    const r = leastPrivilegeProblems([
      policy({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ops' } } }),
      policy(undefined),
      policy({ ipBlock: { cidr: '0.0.0.0/0' }, podSelector: {} }),
      {
        kind: 'ConfigMap',
        metadata: { name: 'mq' },
        data: { 'd.json': '{"users":[{"tags": ["administrator"]}]}' },
      },
      {
        kind: 'ConfigMap',
        metadata: { name: 'mq-op' },
        data: {
          // The operator's user administrator is allowed; letting it into a vhost is not.
          'start.sh': `{"name": "${QUEUE_OPERATOR_USER}", "tags": ["administrator"]} {"user": "${QUEUE_OPERATOR_USER}", "vhost": "/"}`,
        },
      },
      {
        kind: 'Secret',
        metadata: { name: 'c' },
        data: { 'auth.conf': b64('user default on nopass ~* +@all\n') },
      },
      {
        kind: 'Secret',
        metadata: { name: 'd' },
        data: { 'auth.conf': b64('user x on #ab ~* +@all -@admin\n') },
      },
    ]);
    expect(r.problems).toHaveLength(7);
  });
});
