// A real Prometheus on the real node (the `prometheus` image of tools/images.sh), scraping an app's
// tiers and the operator with docs/monitoring.md's scrape config and evaluating the operator's alert
// rules (operator/monitoring/alert-rules.ts), for e2e/real-prometheus.test.ts. It runs in a restricted
// namespace of its own, labelled as the app's spec.monitoring.scrapers admits (SCRAPER_LABELS), with
// the least RBAC Kubernetes pod discovery needs: get/list/watch pods in the app's namespace and in
// scalableapp-system, nothing cluster-wide. Its HTTP API is asked from a probe pod of the demo image
// in the same namespace (node's fetch; the Prometheus image has no curl).
//
// Debian's prometheus 2.42 is built without the Kubernetes service discovery (`kubernetes_sd_configs`
// is not a field it knows: client-go is not packaged), so the pod has a sidecar of the demo image,
// POD_SD_SCRIPT, that does what `kubernetes_sd_configs: [{role: pod}]` does for these jobs — list the
// pods of a namespace with the pod's service account, one target per container port (or per
// container without ports) with the same `__meta_kubernetes_*` labels — and serves that as HTTP
// service discovery on 127.0.0.1. The relabelling is docs/monitoring.md's, unchanged.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { stringify } from 'yaml';
import { alertRuleGroups } from '../../operator/monitoring/alert-rules.ts';
import { kubectl } from './kube.ts';
import {
  allPodsReady,
  createRealNamespace,
  deleteNamespaceAndWait,
  execIn,
  localImages,
  RESTRICTED_CONTAINER,
  RESTRICTED_POD,
  startProbe,
} from './real-node.ts';

/** The operator's namespace (manifests/operator). */
export const OPERATOR_NAMESPACE = 'scalableapp-system';
/** The Prometheus pod's labels: what the app's spec.monitoring.scrapers entry selects. */
export const SCRAPER_LABELS = { role: 'prometheus' };
const NAME = 'prometheus';
const PROBE = 'prom-client';
const PORT = 9090;
/** Scrape and evaluation interval: short, so an alert fires within seconds of its condition. */
export const INTERVAL = '5s';
/**
 * Every rule's `for`, replaced: this suite asks whether each alert fires on a real cluster's series,
 * with the labels the rules name. The `for` durations themselves are tested by promtool
 * (server-tests/alert-rules.test.ts), and waiting them out (up to 1h) has no place here.
 */
export const SHORT_FOR = '10s';

/** IMAGE_PROMETHEUS from images.env (tools/images.sh; not one of the images localize() knows). */
export function prometheusImage(): string {
  const cache = process.env.SCALABLEAPP_CACHE ?? `${homedir()}/.cache/scalableapp`;
  const env = readFileSync(`${cache}/images/images.env`, 'utf8');
  const m = /^IMAGE_PROMETHEUS=(.+)$/m.exec(env);
  if (!m)
    throw new Error(
      `no IMAGE_PROMETHEUS in ${cache}/images/images.env: run tools/images.sh build prometheus`,
    );
  return m[1]!.trim();
}

const SD_PORT = 8089;
/** The service-discovery sidecar: `GET /pods?namespace=NS` → http_sd target groups, as pod SD makes them. */
export const POD_SD_SCRIPT = `
const fs = require('fs'), https = require('https'), http = require('http');
const dir = '/var/run/secrets/kubernetes.io/serviceaccount';
const host = process.env.KUBERNETES_SERVICE_HOST, port = process.env.KUBERNETES_SERVICE_PORT;
const clean = (k) => k.replace(/[^a-zA-Z0-9_]/g, '_');
function list(ns) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host, port, path: '/api/v1/namespaces/' + encodeURIComponent(ns) + '/pods',
      ca: fs.readFileSync(dir + '/ca.crt'), timeout: 5000,
      headers: { authorization: 'Bearer ' + fs.readFileSync(dir + '/token', 'utf8').trim() } }, (res) => {
      let body = ''; res.on('data', (c) => (body += c));
      res.on('end', () => res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(res.statusCode + ' ' + body)));
    });
    req.on('timeout', () => req.destroy(new Error('timeout'))); req.on('error', reject);
  });
}
function groups(pods) {
  const out = [];
  for (const p of pods.items) {
    if (!p.status.podIP) continue;
    const ready = (p.status.conditions || []).some((c) => c.type === 'Ready' && c.status === 'True');
    const base = { __meta_kubernetes_namespace: p.metadata.namespace, __meta_kubernetes_pod_name: p.metadata.name,
      __meta_kubernetes_pod_ip: p.status.podIP, __meta_kubernetes_pod_phase: p.status.phase,
      __meta_kubernetes_pod_ready: String(ready), __meta_kubernetes_pod_node_name: p.spec.nodeName || '' };
    for (const [k, v] of Object.entries(p.metadata.labels || {})) base['__meta_kubernetes_pod_label_' + clean(k)] = v;
    for (const [k, v] of Object.entries(p.metadata.annotations || {})) base['__meta_kubernetes_pod_annotation_' + clean(k)] = v;
    for (const c of p.spec.containers) {
      const ports = c.ports || [];
      if (ports.length === 0) out.push({ targets: [p.status.podIP], labels: { ...base, __meta_kubernetes_pod_container_name: c.name } });
      for (const cp of ports) out.push({ targets: [p.status.podIP + ':' + cp.containerPort], labels: { ...base,
        __meta_kubernetes_pod_container_name: c.name, __meta_kubernetes_pod_container_port_name: cp.name || '',
        __meta_kubernetes_pod_container_port_number: String(cp.containerPort),
        __meta_kubernetes_pod_container_port_protocol: cp.protocol || 'TCP' } });
    }
  }
  return out;
}
http.createServer((req, res) => {
  const ns = new URL(req.url, 'http://sd').searchParams.get('namespace');
  list(ns).then((pods) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(groups(pods))); },
    (err) => { console.error('pod discovery in ' + ns + ': ' + err.message); res.statusCode = 500; res.end(); });
}).listen(${SD_PORT}, '127.0.0.1', () => console.log('pod discovery on 127.0.0.1:${SD_PORT}'));
`;

/** Kubernetes pod discovery of one namespace, through the sidecar (see POD_SD_SCRIPT). */
const podDiscovery = (namespace: string) => [
  { url: `http://127.0.0.1:${SD_PORT}/pods?namespace=${namespace}`, refresh_interval: INTERVAL },
];

/** docs/monitoring.md's scrape config, each job limited to the namespaces its RBAC covers. */
export function prometheusConfig(appNamespace: string): Record<string, unknown> {
  return {
    global: { scrape_interval: INTERVAL, evaluation_interval: INTERVAL, scrape_timeout: '4s' },
    rule_files: ['/config/rules.yaml'],
    scrape_configs: [
      {
        job_name: 'scalableapp',
        // kubernetes_sd_configs: [{ role: pod }] in docs/monitoring.md, limited to the app's namespace.
        http_sd_configs: podDiscovery(appNamespace),
        relabel_configs: [
          {
            source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_scrape'],
            regex: 'true',
            action: 'keep',
          },
          {
            source_labels: ['__address__', '__meta_kubernetes_pod_annotation_prometheus_io_port'],
            regex: '([^:]+)(?::\\d+)?;(\\d+)',
            replacement: '$1:$2',
            target_label: '__address__',
          },
          {
            source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_path'],
            target_label: '__metrics_path__',
          },
          { source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'], target_label: 'app' },
          {
            source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_component'],
            target_label: 'tier',
          },
          { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
          { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
        ],
      },
      {
        // The operator's own series carry the app's namespace: keep it (honor_labels).
        job_name: 'scalableapp-operator',
        honor_labels: true,
        // kubernetes_sd_configs: [{ role: pod, namespaces: { names: [scalableapp-system] } }].
        http_sd_configs: podDiscovery(OPERATOR_NAMESPACE),
        relabel_configs: [
          {
            source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name'],
            regex: 'scalableapp-operator',
            action: 'keep',
          },
          { source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: 'metrics', action: 'keep' },
        ],
      },
    ],
  };
}

/** alertRuleGroups() with every `for` set to SHORT_FOR (see there why). */
export function shortenedRules(): ReturnType<typeof alertRuleGroups> {
  const g = alertRuleGroups();
  return { groups: g.groups.map((x) => ({ ...x, rules: x.rules.map((r) => ({ ...r, for: SHORT_FOR })) })) };
}

function objects(ns: string, appNamespace: string): Record<string, unknown>[] {
  const role = (namespace: string) => [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: `${ns}-pod-discovery`, namespace },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: `${ns}-pod-discovery`, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${ns}-pod-discovery` },
      subjects: [{ kind: 'ServiceAccount', name: NAME, namespace: ns }],
    },
  ];
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: NAME, namespace: ns } },
    ...role(appNamespace),
    ...role(OPERATOR_NAMESPACE),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: NAME, namespace: ns },
      data: {
        'prometheus.yaml': stringify(prometheusConfig(appNamespace)),
        'rules.yaml': stringify(shortenedRules(), { lineWidth: 0 }),
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: NAME, namespace: ns, labels: SCRAPER_LABELS },
      spec: {
        serviceAccountName: NAME,
        securityContext: RESTRICTED_POD,
        containers: [
          {
            name: NAME,
            image: prometheusImage(),
            imagePullPolicy: 'Never',
            args: [
              '--config.file=/config/prometheus.yaml',
              '--storage.tsdb.path=/prometheus',
              '--storage.tsdb.retention.time=1h',
              `--web.listen-address=:${PORT}`,
            ],
            ports: [{ name: 'http', containerPort: PORT }],
            readinessProbe: { httpGet: { path: '/-/ready', port: PORT }, periodSeconds: 2 },
            resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '512Mi' } },
            securityContext: RESTRICTED_CONTAINER,
            volumeMounts: [
              { name: 'config', mountPath: '/config', readOnly: true },
              { name: 'data', mountPath: '/prometheus' },
            ],
          },
          {
            name: 'pod-sd',
            image: localImages().IMAGE_DEMO_APP,
            command: ['node', '-e', POD_SD_SCRIPT],
            resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
            securityContext: RESTRICTED_CONTAINER,
          },
        ],
        volumes: [
          { name: 'config', configMap: { name: NAME } },
          { name: 'data', emptyDir: { sizeLimit: '1Gi' } },
        ],
      },
    },
  ];
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt: string;
  value: string;
}
export interface Target {
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

/** A Prometheus of its own namespace scraping `appNamespace` and the operator's. */
export class Prometheus {
  readonly ns: string;
  readonly appNamespace: string;
  private ip = '';
  private constructor(ns: string, appNamespace: string) {
    this.ns = ns;
    this.appNamespace = appNamespace;
  }

  /** Creates its namespace, RBAC, config, pod and a client pod; waits until both are ready. */
  static async deploy(appNamespace: string): Promise<Prometheus> {
    const ns = createRealNamespace('real-prometheus-server');
    const p = new Prometheus(ns, appNamespace);
    kubectl(
      ['apply', '-f', '-'],
      objects(ns, appNamespace)
        .map((o) => stringify(o))
        .join('---\n'),
    );
    startProbe(ns, PROBE, { role: 'prometheus-client' });
    await allPodsReady(ns, `role in (${SCRAPER_LABELS.role},prometheus-client)`, 2);
    p.ip = kubectl(['get', 'pod', NAME, '-n', ns, '-o', 'jsonpath={.status.podIP}']).trim();
    return p;
  }

  /** GET of the HTTP API from the client pod, bounded to 10 s: its `data`. */
  api<T>(path: string): T {
    const url = `http://${this.ip}:${PORT}${path}`;
    const script =
      `fetch(${JSON.stringify(url)},{signal:AbortSignal.timeout(10000)})` +
      `.then(r=>r.text()).then(t=>process.stdout.write(t))` +
      `.catch(e=>{console.log('error '+(e.cause?.code??e.name));process.exit(1)})`;
    const r = execIn(this.ns, PROBE, ['node', '-e', script]);
    if (!r.ok) throw new Error(`GET ${path} from ${this.ns}/${PROBE}: ${r.stdout}${r.stderr}`);
    const body = JSON.parse(r.stdout) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`GET ${path}: ${body.error ?? r.stdout}`);
    return body.data;
  }

  /** An instant query: its result vector. */
  query(expr: string): Sample[] {
    const d = this.api<{ resultType: string; result: Sample[] }>(
      `/api/v1/query?query=${encodeURIComponent(expr)}`,
    );
    return d.result;
  }

  /** The alerts in the firing state (pending ones with `all`). */
  alerts(all = false): Alert[] {
    const a = this.api<{ alerts: Alert[] }>('/api/v1/alerts').alerts;
    return all ? a : a.filter((x) => x.state === 'firing');
  }

  /** The active targets, with their health. */
  targets(): Target[] {
    return this.api<{ activeTargets: Target[] }>('/api/v1/targets?state=active').activeTargets;
  }

  /** The log of the server (for a failure's message). */
  log(): string {
    return kubectl(['logs', '-n', this.ns, NAME, '--tail=40']);
  }

  /** Deletes its namespace and the RoleBindings and Roles it was given elsewhere. */
  cleanup(): void {
    for (const namespace of [this.appNamespace, OPERATOR_NAMESPACE])
      kubectl([
        'delete',
        'rolebinding,role',
        `${this.ns}-pod-discovery`,
        '-n',
        namespace,
        '--ignore-not-found',
      ]);
    deleteNamespaceAndWait(this.ns);
  }
}
