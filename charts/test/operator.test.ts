// charts/operator against what it must agree with: the generated CRD (byte for byte, rendered with only
// Helm's labels and the keep policy added), manifests/operator's least-privilege RBAC and pod (no drift),
// and the flags operator/main.ts accepts. Rendered with the real helm binary; no cluster.

import {
  ALERT_RULES,
  DEFAULT_THRESHOLDS,
  alertRuleGroups,
  type AlertThresholds,
} from '../../operator/monitoring/alert-rules.ts';
import { DASHBOARDS, grafanaDashboard } from '../../operator/monitoring/dashboards.ts';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { chartPath, renderChart, templateChart, type RenderedObject } from './helm.ts';

const root = new URL('../../', import.meta.url).pathname;
const CRD = 'scalableapps.scalableapp.io';
const CHART_LABEL = 'scalableapp-operator-0.1.0';

type Obj = RenderedObject & Record<string, any>;

/** The documented install: release and namespace named as in manifests/operator. */
const render = (values: unknown = {}, release = 'scalableapp-operator', namespace = 'scalableapp-system') =>
  renderChart('operator', { release, namespace, values }) as Obj[];

const manifest = (file: string) =>
  parseAllDocuments(readFileSync(`${root}manifests/operator/${file}`, 'utf8')).map((d) => d.toJS() as Obj);

function one(objects: Obj[], kind: string, name?: string): Obj {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? `/${name}` : ''}, found ${found.length}`);
  return found[0]!;
}
const kinds = (objects: Obj[]) => objects.map((o) => o.kind);
const deployment = (values: unknown = {}) => one(render(values), 'Deployment');
const args = (values: unknown = {}): string[] => deployment(values).spec.template.spec.containers[0].args;

/** What helm prints when it refuses to render these values. */
function refusal(values: unknown): string {
  const r = templateChart('operator', { release: 'op', namespace: 'ops', values });
  expect(r.ok).toBe(false);
  return r.stderr;
}

describe('the CRD', () => {
  const generatedText = readFileSync(`${root}crds/${CRD}.yaml`, 'utf8');
  const generated = parse(generatedText) as Obj;

  it('is in the chart as the generated crds/ file, byte for byte (tools/generate-crd.ts writes both)', () => {
    expect(readFileSync(`${chartPath('operator')}/files/crds/${CRD}.yaml`, 'utf8')).toBe(generatedText);
  });

  it("renders as the generated CRD with only Helm's labels and the keep policy added", () => {
    const crd = one(render(), 'CustomResourceDefinition');
    const { labels, annotations, ...metadata } = crd.metadata as Record<string, any>;
    const { labels: generatedLabels, ...generatedMetadata } = generated.metadata as Record<string, any>;
    expect({ ...crd, metadata }).toEqual({ ...generated, metadata: generatedMetadata });
    expect(labels).toEqual({
      ...generatedLabels,
      'app.kubernetes.io/instance': 'scalableapp-operator',
      'app.kubernetes.io/version': '0.1.0',
      'app.kubernetes.io/managed-by': 'Helm',
      'helm.sh/chart': CHART_LABEL,
    });
    // Uninstalling must never delete the CRD: that deletes every ScalableApp (docs/adr/0009).
    expect(annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
  });

  it('is left out with crds.install=false, and only the CRD is', () => {
    const all = render();
    const without = render({ crds: { install: false } });
    expect(kinds(without)).not.toContain('CustomResourceDefinition');
    expect(without).toEqual(all.filter((o) => o.kind !== 'CustomResourceDefinition'));
  });
});

describe('RBAC equals manifests/operator/10-rbac.yaml', () => {
  const rbac = manifest('10-rbac.yaml');
  const essentials = (o: Obj) => ({
    kind: o.kind,
    name: o.metadata.name,
    namespace: o.metadata.namespace,
    rules: o.rules,
    roleRef: o.roleRef,
    subjects: o.subjects,
  });

  it("renders the manifest's ServiceAccount, roles and bindings, with the same rules, for the documented release", () => {
    const rendered = render();
    for (const expected of rbac) {
      expect(essentials(one(rendered, expected.kind, expected.metadata.name))).toEqual(essentials(expected));
    }
  });

  it('grants the same rules in one namespace only, with watchNamespace', () => {
    const rendered = render({ watchNamespace: 'team-a' }, 'ops', 'platform');
    const clusterRole = one(rbac, 'ClusterRole');
    expect(kinds(rendered)).not.toContain('ClusterRole');
    expect(kinds(rendered)).not.toContain('ClusterRoleBinding');
    const role = one(rendered, 'Role', 'ops-scalableapp-operator');
    expect(role.metadata.namespace).toBe('team-a');
    expect(role.rules).toEqual(clusterRole.rules);
    const binding = one(rendered, 'RoleBinding', 'ops-scalableapp-operator');
    expect(binding.metadata.namespace).toBe('team-a');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'ops-scalableapp-operator',
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'ops-scalableapp-operator', namespace: 'platform' },
    ]);
    // The lease stays in the operator's own namespace.
    expect(one(rendered, 'Role', 'ops-scalableapp-operator-leader-election').metadata.namespace).toBe(
      'platform',
    );
    expect(args({ watchNamespace: 'team-a' })).toContain('--watch-namespace=team-a');
  });

  it('has no lease permission without leader election', () => {
    const rendered = render({ replicas: 1, leaderElection: { enabled: false } });
    expect(rendered.filter((o) => o.metadata.name.endsWith('-leader-election'))).toEqual([]);
    expect(args({ replicas: 1, leaderElection: { enabled: false } })).not.toContain('--leader-elect');
  });
});

describe('the Deployment', () => {
  const expected = one(manifest('20-deployment.yaml'), 'Deployment');
  const expectedPod = expected.spec.template.spec;
  const expectedContainer = expectedPod.containers[0];

  it("runs the manifest's pod: restricted security contexts, port, probes, resources, environment", () => {
    const pod = deployment().spec.template.spec;
    const container = pod.containers[0];
    expect(pod.securityContext).toEqual(expectedPod.securityContext);
    expect(pod.serviceAccountName).toBe(expectedPod.serviceAccountName);
    expect(pod.terminationGracePeriodSeconds).toBe(expectedPod.terminationGracePeriodSeconds);
    for (const field of [
      'securityContext',
      'ports',
      'readinessProbe',
      'livenessProbe',
      'resources',
      'env',
      'imagePullPolicy',
    ])
      expect([field, container[field]]).toEqual([field, expectedContainer[field]]);
    expect(container.args).toEqual(expect.arrayContaining(expectedContainer.args));
  });

  it('runs two replicas under leader election, with a disruption budget and spread over zones', () => {
    const rendered = render();
    const d = one(rendered, 'Deployment');
    expect(d.spec.replicas).toBe(expected.spec.replicas);
    expect(d.spec.replicas).toBe(2);
    expect(args()).toEqual(
      expect.arrayContaining(['--leader-elect', '--leader-election-id=scalableapp-operator']),
    );
    const pdb = one(rendered, 'PodDisruptionBudget');
    expect(pdb.spec).toEqual({
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
      selector: d.spec.selector,
    });
    expect(
      d.spec.template.spec.topologySpreadConstraints.map((c: { topologyKey: string }) => c.topologyKey),
    ).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
  });

  it('has no disruption budget with one replica (it would block every node drain)', () => {
    expect(kinds(render({ replicas: 1 }))).not.toContain('PodDisruptionBudget');
  });

  it('passes only flags operator/main.ts accepts, with values it accepts', () => {
    // main.ts parses its flags strictly and checks them before it loads the kubeconfig: a run that
    // gets as far as a missing kubeconfig accepted every flag.
    for (const values of [{}, { watchNamespace: 'team-a', dataPlane: 'simulated', logLevel: 'debug' }]) {
      const r = spawnSync(
        process.execPath,
        ['operator/main.ts', ...args(values), '--kubeconfig', '/nonexistent/kubeconfig'],
        { cwd: root, encoding: 'utf8', timeout: 60_000 },
      );
      expect(r.status).not.toBe(0);
      expect(r.stderr).not.toMatch(/Unknown option|must be/);
      expect(r.stderr).toContain('/nonexistent/kubeconfig');
    }
  });

  it('takes the image tag from the appVersion unless set; a digest wins over both', () => {
    const image = (values: unknown) => deployment(values).spec.template.spec.containers[0].image;
    expect(image({})).toBe('scalableapp/operator:0.1.0');
    expect(image({ image: { tag: 'dev' } })).toBe('scalableapp/operator:dev');
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(image({ image: { tag: 'dev', digest } })).toBe(`scalableapp/operator@${digest}`);
  });

  it('refuses what the operator would refuse at start, naming the values', () => {
    expect(refusal({ leaderElection: { enabled: false } })).toContain(
      'replicas: 2 replicas need leaderElection.enabled=true',
    );
    expect(refusal({ leaderElection: { renewDeadlineSeconds: 15 } })).toContain(
      'leaderElection.leaseDurationSeconds (15) must exceed leaderElection.renewDeadlineSeconds (15)',
    );
    expect(refusal({ leaderElection: { retryPeriodSeconds: 9 } })).toContain(
      'leaderElection.renewDeadlineSeconds (10) must exceed 1.2 x leaderElection.retryPeriodSeconds (9)',
    );
    expect(refusal({ podLabels: { 'scalableapp.io/operator': 'false' } })).toContain(
      'podLabels: scalableapp.io/operator is the chart',
    );
  });

  it('labels its pods with the label the data tiers admit them by, beside the podLabels given', () => {
    const labels = deployment({ podLabels: { team: 'platform' } }).spec.template.metadata.labels;
    expect(labels).toMatchObject({ 'scalableapp.io/operator': 'true', team: 'platform' });
    // The install manifests carry it too (the same pods, installed without Helm).
    const manifest = parseAllDocuments(readFileSync(`${root}manifests/operator/20-deployment.yaml`, 'utf8'))
      .map((d) => d.toJS())
      .find((o) => o?.kind === 'Deployment');
    expect(manifest.spec.template.metadata.labels).toMatchObject({ 'scalableapp.io/operator': 'true' });
  });
});

describe('metrics and network access', () => {
  it('serves /metrics through a Service on the pods’ metrics port; a ServiceMonitor only when asked', () => {
    const rendered = render();
    const d = one(rendered, 'Deployment');
    const svc = one(rendered, 'Service', 'scalableapp-operator-metrics');
    expect(svc.spec.selector).toEqual(d.spec.selector.matchLabels);
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics' }]);
    expect(kinds(rendered)).not.toContain('ServiceMonitor');

    const monitor = one(render({ metrics: { serviceMonitor: { enabled: true } } }), 'ServiceMonitor');
    expect(monitor.spec.selector.matchLabels).toEqual(d.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);
  });

  it("ships every dashboard as a ConfigMap for Grafana's sidecar only when asked", () => {
    expect(render().filter((o) => o.kind === 'ConfigMap' && /-dashboard$/.test(o.metadata.name))).toEqual([]);
    const maps = render({ dashboards: { enabled: true, namespace: 'grafana' } }).filter(
      (o) => o.kind === 'ConfigMap' && /-dashboard$/.test(o.metadata.name),
    );
    expect(maps.map((m) => m.metadata.name).sort()).toEqual(
      DASHBOARDS.map((d) => `scalableapp-operator-${d.uid.replace(/^scalableapp-/, '')}-dashboard`).sort(),
    );
    for (const m of maps) {
      expect(m.metadata.namespace).toBe('grafana');
      expect(m.metadata.labels?.grafana_dashboard).toBe('1');
      const [file, text] = Object.entries(m.data as Record<string, string>)[0]!;
      const d = DASHBOARDS.find((x) => `${x.uid}.json` === file)!;
      // The very model of operator/monitoring/dashboards.ts (through the generated files/ copy).
      expect(JSON.parse(text)).toEqual(grafanaDashboard(d));
    }
  });

  it("ships the alerts for every app as a PrometheusRule only when asked, with the user's labels", () => {
    expect(kinds(render())).not.toContain('PrometheusRule');
    const rule = one(
      render({
        metrics: { prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } } },
      }),
      'PrometheusRule',
    );
    expect(rule.metadata.labels?.release).toBe('kube-prometheus-stack');
    // The very group of operator/monitoring/alert-rules.ts (through the generated files/ copy), with
    // the default thresholds of values.yaml put in.
    expect(rule.spec).toEqual(alertRuleGroups());
  });

  it("puts the user's thresholds into the rules, leaves out disabled alerts and adds labels to the rest", () => {
    const thresholds: AlertThresholds = {
      replicationLagMiB: 512,
      replicationLagSeconds: 2.5,
      cacheMemoryRatio: 0.75,
      queueBacklogFor: '3m',
      consumerStuckFor: '90s',
      shardRingPendingFor: '6h',
      tierNotReadyFor: '1h30m',
    };
    const rule = one(
      render({
        metrics: {
          prometheusRule: {
            enabled: true,
            thresholds,
            disabled: ['ScalableAppShardRingPending', 'ScalableAppOperatorReconcileErrors'],
            // severity is the rule's own: a label of that name does not replace it.
            alertLabels: { team: 'payments', severity: 'info' },
          },
        },
      }),
      'PrometheusRule',
    );
    const expected = alertRuleGroups(thresholds).groups.map((g) => ({
      ...g,
      rules: g.rules
        .filter(
          (r) => !['ScalableAppShardRingPending', 'ScalableAppOperatorReconcileErrors'].includes(r.alert),
        )
        .map((r) => ({ ...r, labels: { ...r.labels, team: 'payments' } })),
    }));
    expect(rule.spec).toEqual({ groups: expected });
    expect(JSON.stringify(rule.spec)).not.toMatch(/__[a-zA-Z]+__/);
    const lag = expected[0]!.rules.find((r) => r.alert === 'ScalableAppReplicationLagHigh')!;
    expect(lag.expr).toBe(
      'pg_standby_replay_lag_bytes > 512 * 1048576 or pg_instance_replay_lag_seconds > 2.5',
    );
  });

  it('has a default for every threshold, the ones the alerts were written with', () => {
    const values = parse(readFileSync(`${chartPath('operator')}/values.yaml`, 'utf8'));
    expect(values.metrics.prometheusRule.thresholds).toEqual(DEFAULT_THRESHOLDS);
  });

  it.each([
    [{ disabled: ['ScalableAppNoSuchAlert'] }, 'disabled/0'],
    [{ thresholds: { cacheMemoryRatio: 1.5 } }, 'thresholds/cacheMemoryRatio'],
    [{ thresholds: { replicationLagMiB: 2000000 } }, 'thresholds/replicationLagMiB'],
    [{ thresholds: { tierNotReadyFor: 'soon' } }, 'thresholds/tierNotReadyFor'],
    [{ thresholds: { replicationLagBytes: 1 } }, 'replicationLagBytes'],
  ])('refuses %j, naming the field', (prometheusRule, field) => {
    const r = templateChart('operator', {
      release: 'scalableapp-operator',
      namespace: 'scalableapp-system',
      values: { metrics: { prometheusRule: { enabled: true, ...prometheusRule } } },
    });
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain(field);
  });

  it('lists in its schema exactly the alerts there are', () => {
    const schema = JSON.parse(readFileSync(`${chartPath('operator')}/values.schema.json`, 'utf8'));
    expect(schema.properties.metrics.properties.prometheusRule.properties.disabled.items.enum).toEqual(
      ALERT_RULES.map((r) => r.alert),
    );
  });

  it('lets nothing reach the pods but the metrics port; metricsFrom narrows who, and keeps helm test', () => {
    const policy = one(render(), 'NetworkPolicy');
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toEqual([{ ports: [{ port: 'metrics', protocol: 'TCP' }] }]);

    const monitoring = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
    };
    const narrowed = one(render({ networkPolicy: { metricsFrom: [monitoring] } }), 'NetworkPolicy');
    const test = one(render(), 'Pod');
    expect(narrowed.spec.ingress[0].from).toEqual([
      monitoring,
      {
        podSelector: {
          matchLabels: {
            'app.kubernetes.io/instance': test.metadata.labels!['app.kubernetes.io/instance'],
            'app.kubernetes.io/component': test.metadata.labels!['app.kubernetes.io/component'],
          },
        },
      },
    ]);
  });

  it('has a helm test hook that meets the restricted Pod Security Standard, outside the operator’s selector', () => {
    const rendered = render();
    const pod = one(rendered, 'Pod');
    const selector = one(rendered, 'Deployment').spec.selector.matchLabels as Record<string, string>;
    expect(Object.entries(selector).every(([k, v]) => pod.metadata.labels![k] === v)).toBe(false);
    expect(pod.metadata.annotations!['helm.sh/hook']).toBe('test');
    expect(pod.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const c of pod.spec.containers)
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    expect(pod.spec.containers[0].command.at(-1)).toBe(
      'http://scalableapp-operator-metrics.scalableapp-system.svc:8080/readyz',
    );
  });
});

describe('values.schema.json', () => {
  it.each([
    [{ replicas: 0 }, "at '/replicas': minimum: got 0, want 1"],
    [{ logLevel: 'verbose' }, "at '/logLevel': value must be one of 'debug', 'info', 'warn', 'error'"],
    [{ dataPlane: 'fake' }, "at '/dataPlane': value must be one of 'real', 'simulated'"],
    [{ watchNamespace: 'Team_A' }, "at '/watchNamespace'"],
    [{ image: { digest: 'latest' } }, "at '/image/digest': 'latest' does not match pattern"],
    [{ metrics: { port: 80 } }, "at '/metrics/port': minimum: got 80, want 1,024"],
    [{ resources: { limits: { memory: 'lots' } } }, "at '/resources/limits/memory'"],
    [{ leaderElection: { leaseDurationSeconds: 0 } }, "at '/leaderElection/leaseDurationSeconds'"],
    [{ crds: { install: 'yes' } }, "at '/crds/install': got string, want boolean"],
    [{ extraArgs: ['-v'] }, "at '/extraArgs/0': '-v' does not match pattern"],
    [{ replica: 3 }, "additional properties 'replica' not allowed"],
  ])('rejects %j, naming the field', (values, message) => {
    expect(refusal(values)).toContain(message);
  });
});
