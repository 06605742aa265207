// `tools/images.sh smoke`: the pods the operator builds, run from the local images without a cluster.
//
// desiredState() of a sample ScalableApp (every tier, pointing at the local images) gives the
// StatefulSets and Deployments; for the first pod of each, this does what a kubelet and runc would:
// the ConfigMap, Secret, emptyDir and volume-claim volumes as directories with the kubelet's
// ownership (fsGroup) and modes, the container's environment (image Env, env, envFrom, $(VAR)
// expansion, HOSTNAME), its command, its uid/gid and supplementary fsGroup, a read-only root, and
// /etc/hosts naming every Service and pod (each Service on a loopback address of its own, forwarded to
// its target port: a stand-in for cluster DNS and kube-proxy). Then it waits for each container's
// readiness probe (tcpSocket, httpGet or exec, run the same way), runs its liveness probe once, and
// talks to each server as its clients would: SQL as the app user, SET/GET with the cache password,
// the broker's management API with its generated login, a cached asset twice through the edge.
//
// Everything runs in a network namespace of its own (tools/images.sh puts it there): no traffic
// leaves loopback. Run as root (mounts, chroot). Arguments: a JSON file naming, per image, its
// reference, an extracted root filesystem and its image config; a work directory; the images to run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer as httpServer, request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { join, posix } from 'node:path';
import pg from 'pg';
import { parseAllDocuments } from 'yaml';
import type {
  V1Container,
  V1PodSpec,
  V1Probe,
  V1Secret,
  V1ConfigMap,
  V1Service,
} from '@kubernetes/client-node';
import { scalableApp } from '../../operator/api/scalable-app.ts';
import { desiredState } from '../../operator/controller/desired-state.ts';
import { steadyCachePassword, type ObservedFacts } from '../../operator/tiers/objects.ts';
import { databaseCluster } from '../../operator/tiers/database.ts';
import { pgServerNames, pgTlsSecretName } from '../../operator/tiers/postgres-cluster.ts';
import { verifiedTls } from '../../operator/dataplane/postgres/admin.ts';
import { issueCa, issueServerCert } from '../../operator/tls/certificates.ts';
import { withRedis } from '../../operator/dataplane/redis-client.ts';

type ImageConfig = {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
};
type Image = { ref: string; rootfs: string; config: ImageConfig };
type Workload = {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: Record<string, unknown>;
};

const [manifestPath, work, ...wanted] = process.argv.slice(2);
if (!manifestPath || !work) throw new Error('usage: smoke.ts <images.json> <work dir> [image...]');
const workDir: string = work;
const images: Record<string, Image> = JSON.parse(readFileSync(manifestPath, 'utf8'));
const imagesSh = new URL('../images.sh', import.meta.url).pathname;
const NS = 'prod';
/** Nothing listens there: the operator's first request to the apiserver is refused. */
const APISERVER_PORT = 6443;
const started = Date.now();
const log = (msg: string) =>
  process.stderr.write(`[smoke ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the sample app: every tier, on the local images; one pod each is enough to run the images.
const ref = (name: string) => images[name]?.ref ?? `missing.local/${name}:0`;
const app = scalableApp.parse({
  apiVersion: 'scalableapp.io/v1alpha1',
  kind: 'ScalableApp',
  metadata: { name: 'shop', namespace: NS, uid: 'smoke' },
  spec: {
    web: {
      image: ref('demo-app'),
      replicas: 1,
      port: 8081,
      sessions: 'cache',
      env: [{ name: 'PORT', value: '8081' }],
    },
    cache: { image: ref('cache'), replicas: 0 },
    database: { version: '15', image: ref('postgres'), replicas: 0 },
    queue: { image: ref('rabbitmq'), replicas: 1, queues: [{ name: 'jobs' }] },
    consumers: [{ name: 'worker', image: ref('demo-consumer'), queue: 'jobs' }],
    edgeCache: { image: ref('nginx'), replicas: 1 },
  },
});
// Passwords as the controller makes them (randomBytes(24) in base64url).
const secret = (tag: string) => `${tag}-${Buffer.from(tag.repeat(8)).toString('base64url').slice(0, 24)}`;
const facts: ObservedFacts = {
  gatewayApi: false,
  operatorNamespace: 'scalableapp-system',
  cachePassword: steadyCachePassword(secret('cache')),
  cacheLogins: { operator: secret('cache-op'), replication: secret('cache-repl') },
  dbCredentials: { superuser: secret('super'), replication: secret('repl'), app: secret('app') },
  tls: await smokeCertificates(),
  queueCredentials: {
    username: 'smoke-app',
    password: secret('mq'),
    monitoringUsername: 'smoke-monitor',
    monitoringPassword: secret('monitor'),
    erlangCookie: secret('cookie').toUpperCase(),
  },
} as ObservedFacts;
const objects = desiredState(app, facts) as unknown as Workload[];

/** The app's CA and the database's certificate, issued as the controller issues them. */
async function smokeCertificates(): Promise<ObservedFacts['tls']> {
  const now = new Date();
  const ca = await issueCa(`${NS}/shop ScalableApp CA`, now);
  const db = databaseCluster(app, { gatewayApi: false });
  return { ca, servers: { [pgTlsSecretName(db)]: await issueServerCert(ca, pgServerNames(db), now) } };
}
const byName = <T>(kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as T | undefined;

// ---- Services: each on a loopback address of its own, forwarded to its pods' target port.
const services = objects.filter((o) => o.kind === 'Service') as unknown as V1Service[];
const hosts: string[] = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
const forwards: { address: string; port: number; target: number }[] = [];
// A Service whose ports all equal their targets is the pods' own address (they listen on every
// address, so a forwarder could not bind the port); one that maps a port gets an address and a
// forwarder of its own.
services.forEach((s, i) => {
  const name = s.metadata!.name!;
  const ports = (s.spec?.ports ?? []).map((p) => {
    const target =
      typeof p.targetPort === 'number'
        ? p.targetPort
        : p.targetPort
          ? targetPortByName(s, p.targetPort)
          : p.port;
    return { port: p.port, target: target ?? p.port };
  });
  const mapped = ports.some((p) => p.port !== p.target);
  const address = mapped ? `127.0.1.${i + 1}` : '127.0.0.1';
  hosts.push(`${address}\t${name}.${NS}.svc.cluster.local ${name}.${NS}.svc ${name}.${NS} ${name}`);
  if (mapped) for (const p of ports) forwards.push({ address, ...p });
});
/** A Service's named target port, in the containers of the pods its selector picks. */
function targetPortByName(service: V1Service, name: string): number | undefined {
  const selector = Object.entries(service.spec?.selector ?? {});
  for (const w of objects) {
    const template = (
      w.spec as
        { template?: { metadata?: { labels?: Record<string, string> }; spec?: V1PodSpec } } | undefined
    )?.template;
    const labels = template?.metadata?.labels ?? {};
    if (selector.length === 0 || !selector.every(([k, v]) => labels[k] === v)) continue;
    for (const c of template?.spec?.containers ?? []) {
      const port = c.ports?.find((p) => p.name === name);
      if (port) return port.containerPort;
    }
  }
  return undefined;
}

function forward(address: string, port: number, target: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target });
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port }, () => resolve(server));
  });
}

// ---- a container, run as runc would run it (through tools/images.sh run-in).
type Pod = {
  name: string;
  image: string;
  container: V1Container;
  args: string[]; // run-in options, without the command
  env: Record<string, string>;
  proc?: ChildProcess;
  logPath: string;
};

/** A path inside a root filesystem with its symlinks resolved inside it, as runc's securejoin does. */
function inRoot(root: string, path: string): string {
  let resolved = '/';
  const parts = path.split('/').filter(Boolean);
  for (let hops = 0; parts.length;) {
    const part = parts.shift()!;
    const next = posix.join(resolved, part);
    let st;
    try {
      st = lstatSync(join(root, next));
    } catch {
      resolved = posix.join(next, ...parts);
      break;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`too many symlinks in ${path}`);
      const target = readlinkSync(join(root, next));
      parts.unshift(...target.split('/').filter(Boolean));
      if (target.startsWith('/')) resolved = '/';
    } else {
      resolved = next;
    }
  }
  return resolved;
}

const expand = (text: string, env: Record<string, string>) =>
  text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name?: string) =>
    m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m,
  );

function preparePod(
  image: string,
  podName: string,
  subdomain: string | undefined,
  spec: V1PodSpec,
  claims: string[],
): Pod {
  const img = images[image]!;
  const c = spec.containers[0]!;
  const dir = join(workDir, podName);
  mkdirSync(dir, { recursive: true });
  const fsGroup = spec.securityContext?.fsGroup;
  const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
  const gid = c.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup ?? uid;
  if (uid === undefined) throw new Error(`${podName}: no runAsUser`);
  const readOnlyRoot = c.securityContext?.readOnlyRootFilesystem === true;
  if (!readOnlyRoot)
    log(`${podName}: note: the container does not ask for a read-only root; running it read-only anyway`);

  // Volumes, as the kubelet lays them out: with fsGroup, files belong to group fsGroup, which may read
  // them (read-only volumes) or also write them (emptyDir); directories are setgid.
  const volumeDir = (name: string) => join(dir, 'volumes', name);
  const owned = (path: string, mode: number) => {
    chownSync(path, 0, fsGroup ?? 0);
    chmodSync(path, mode);
  };
  for (const v of spec.volumes ?? []) {
    const d = volumeDir(v.name);
    mkdirSync(d, { recursive: true });
    const files: Record<string, Buffer> = {};
    let mode = 0o644;
    if (v.configMap) {
      const cm = byName<V1ConfigMap>('ConfigMap', v.configMap.name!);
      if (!cm) throw new Error(`${podName}: ConfigMap ${v.configMap.name} is not in the desired state`);
      for (const [k, value] of Object.entries(cm.data ?? {})) files[k] = Buffer.from(value);
      mode = v.configMap.defaultMode ?? 0o644;
    } else if (v.secret) {
      const s = byName<V1Secret>('Secret', v.secret.secretName!);
      if (!s) throw new Error(`${podName}: Secret ${v.secret.secretName} is not in the desired state`);
      for (const [k, value] of Object.entries(s.data ?? {})) files[k] = Buffer.from(value, 'base64');
      mode = v.secret.defaultMode ?? 0o644;
    } else if (v.emptyDir) {
      owned(d, fsGroup === undefined ? 0o777 : 0o2777);
      continue;
    } else {
      throw new Error(`${podName}: volume ${v.name} of an unknown kind`);
    }
    for (const [k, content] of Object.entries(files)) {
      writeFileSync(join(d, k), content);
      owned(join(d, k), fsGroup === undefined ? mode : mode | 0o440);
    }
    owned(d, 0o755);
  }
  // Volume claims: a local-path volume is a 0777 directory; the kubelet does not apply fsGroup to it.
  for (const claim of claims) {
    mkdirSync(volumeDir(claim), { recursive: true });
    chmodSync(volumeDir(claim), 0o777);
  }
  const hostsFile = join(dir, 'hosts');
  const fqdn = subdomain ? `${podName}.${subdomain}.${NS}.svc` : undefined;
  writeFileSync(
    hostsFile,
    [...hosts, `127.0.0.1\t${fqdn ? `${fqdn}.cluster.local ${fqdn} ` : ''}${podName}`, ''].join('\n'),
  );
  chmodSync(hostsFile, 0o644);

  const mounts = [`${hostsFile}:/etc/hosts:ro`];
  // The kubelet's service-account token volume, unless the pod opts out (every tier does): a token
  // for no apiserver, a throwaway CA, the namespace; KUBERNETES_SERVICE_* point at a closed port.
  if (spec.automountServiceAccountToken !== false) {
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa, { recursive: true });
    const ca = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        '/dev/null',
        '-subj',
        '/CN=smoke',
        '-days',
        '1',
      ],
      {
        encoding: 'utf8',
      },
    );
    if (ca.status !== 0)
      throw new Error(`${podName}: openssl could not make a CA for the service-account volume`);
    writeFileSync(join(sa, 'ca.crt'), ca.stdout);
    writeFileSync(join(sa, 'token'), 'smoke-token');
    writeFileSync(join(sa, 'namespace'), NS);
    for (const f of ['ca.crt', 'token', 'namespace']) owned(join(sa, f), 0o644);
    const target = inRoot(img.rootfs, '/var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(join(img.rootfs, target), { recursive: true });
    mounts.push(`${sa}:${target}:ro`);
  }
  for (const m of c.volumeMounts ?? []) {
    if (m.subPath) throw new Error(`${podName}: subPath mounts are not emulated`);
    const target = inRoot(img.rootfs, m.mountPath);
    // The mount point: runc creates it before it makes the root read-only.
    mkdirSync(join(img.rootfs, target), { recursive: true });
    mounts.push(`${volumeDir(m.name)}:${target}${m.readOnly ? ':ro' : ''}`);
  }

  // The environment: the image's, then HOSTNAME (containerd's CRI sets it), envFrom, env in order.
  const env: Record<string, string> = {};
  for (const e of img.config.Env ?? []) env[e.slice(0, e.indexOf('='))] = e.slice(e.indexOf('=') + 1);
  env.HOSTNAME = podName;
  if (spec.automountServiceAccountToken !== false) {
    env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
    env.KUBERNETES_SERVICE_PORT = String(APISERVER_PORT);
  }
  const own: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const s = from.secretRef ? byName<V1Secret>('Secret', from.secretRef.name!) : undefined;
    if (from.secretRef && !s)
      throw new Error(`${podName}: Secret ${from.secretRef.name} is not in the desired state`);
    for (const [k, v] of Object.entries(s?.data ?? {})) own[k] = Buffer.from(v, 'base64').toString();
    const cm = from.configMapRef ? byName<V1ConfigMap>('ConfigMap', from.configMapRef.name!) : undefined;
    for (const [k, v] of Object.entries(cm?.data ?? {})) own[k] = v;
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) own[e.name] = expand(e.value, own);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') own[e.name] = podName;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') own[e.name] = NS;
    else if (e.valueFrom?.configMapKeyRef) {
      own[e.name] = byName<V1ConfigMap>('ConfigMap', e.valueFrom.configMapKeyRef.name!)!.data![
        e.valueFrom.configMapKeyRef.key
      ]!;
    } else if (e.valueFrom?.secretKeyRef) {
      const s = byName<V1Secret>('Secret', e.valueFrom.secretKeyRef.name!)!;
      own[e.name] = Buffer.from(s.data![e.valueFrom.secretKeyRef.key]!, 'base64').toString();
    } else if (e.valueFrom)
      own[e.name] = ''; // resourceFieldRef and the like: nothing the images read
    else own[e.name] = '';
  }
  Object.assign(env, own);

  const args = [
    '--rootfs',
    img.rootfs,
    '--user',
    `${uid}:${gid}`,
    '--groups',
    [gid, ...(fsGroup === undefined ? [] : [fsGroup])].join(','),
  ];
  args.push('--workdir', c.workingDir ?? img.config.WorkingDir ?? '/', '--hostname', podName);
  for (const m of mounts) args.push('--mount', m);
  args.push('--mount', '/dev/shm'); // an empty tmpfs, as every container gets one
  for (const [k, v] of Object.entries(env)) args.push('--env', `${k}=${v}`);
  return { name: podName, image, container: c, args, env, logPath: join(dir, 'container.log') };
}

function commandOf(p: Pod): string[] {
  const cfg = images[p.image]!.config;
  const c = p.container;
  const cmd = c.command
    ? [...c.command, ...(c.args ?? [])]
    : [...(cfg.Entrypoint ?? []), ...(c.args ?? cfg.Cmd ?? [])];
  return cmd.map((a) => expand(a, p.env));
}

function start(p: Pod) {
  const out = openSync(p.logPath, 'a');
  p.proc = spawn(imagesSh, ['run-in', ...p.args, '--', ...commandOf(p)], {
    stdio: ['ignore', out, out],
    detached: true,
  });
  log(`${p.name}: started ${images[p.image]!.ref}: ${commandOf(p).join(' ')}`);
}

function stop(p: Pod) {
  if (p.proc?.pid && p.proc.exitCode === null) {
    try {
      process.kill(-p.proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A command in the container's root, mounts, environment and user: an exec probe, kubectl exec. */
function execIn(p: Pod, command: string[], timeoutMs: number, extraEnv: Record<string, string> = {}) {
  const env = Object.entries(extraEnv).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  return spawnSync(imagesSh, ['run-in', ...p.args, ...env, '--', ...command], {
    timeout: timeoutMs,
    encoding: 'utf8',
  });
}

const portOf = (p: Pod, port: number | string | undefined): number => {
  if (typeof port === 'number') return port;
  const found = p.container.ports?.find((x) => x.name === port)?.containerPort;
  if (found === undefined) throw new Error(`${p.name}: no port ${String(port)}`);
  return found;
};

function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

type HttpReply = { status: number; headers: Record<string, string | string[] | undefined>; body: string };
function httpGet(
  port: number,
  path: string,
  o: { host?: string; auth?: string; headers?: Record<string, string> } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: o.host ?? '127.0.0.1',
        port,
        path,
        timeout: 3000,
        headers: o.headers,
        ...(o.auth ? { auth: o.auth } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function probe(p: Pod, pr: V1Probe): Promise<boolean> {
  if (pr.tcpSocket) return tcpOpen(portOf(p, pr.tcpSocket.port));
  if (pr.httpGet) {
    try {
      const r = await httpGet(portOf(p, pr.httpGet.port), pr.httpGet.path ?? '/');
      return r.status >= 200 && r.status < 400;
    } catch {
      return false;
    }
  }
  if (pr.exec?.command)
    return execIn(p, pr.exec.command, (pr.timeoutSeconds ?? 1) * 1000 + 5000).status === 0;
  throw new Error(`${p.name}: a probe of an unknown kind`);
}

async function waitReady(p: Pod, seconds: number): Promise<void> {
  const pr = p.container.readinessProbe;
  if (!pr) return;
  const deadline = Date.now() + seconds * 1000;
  const t0 = Date.now();
  while (Date.now() < deadline) {
    if (p.proc?.exitCode !== null && p.proc?.exitCode !== undefined) {
      throw new Error(
        `${p.name} exited with ${p.proc.exitCode}; its log:\n${readFileSync(p.logPath, 'utf8').slice(-4000)}`,
      );
    }
    if (await probe(p, pr)) {
      log(`${p.name}: ready after ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      return;
    }
    await sleep(500);
  }
  throw new Error(
    `${p.name}: not ready within ${seconds}s; its log:\n${readFileSync(p.logPath, 'utf8').slice(-4000)}`,
  );
}

async function checkLiveness(p: Pod) {
  const pr = p.container.livenessProbe;
  if (!pr) return;
  if (!(await probe(p, pr)))
    throw new Error(
      `${p.name}: the liveness probe fails (${JSON.stringify(pr.exec ?? pr.tcpSocket ?? pr.httpGet)})`,
    );
  log(
    `${p.name}: liveness probe passes (${pr.exec ? pr.exec.command!.join(' ') : pr.httpGet ? `GET ${pr.httpGet.path}` : 'tcp'})`,
  );
}

// ---- the run.
const tiers: { image: string; workload: Workload }[] = [];
for (const w of objects) {
  if (w.kind !== 'StatefulSet' && w.kind !== 'Deployment') continue;
  const spec = (w.spec as { template: { spec: V1PodSpec } }).template.spec;
  const image = Object.keys(images).find((n) => images[n]!.ref === spec.containers[0]!.image);
  if (image && (wanted.length === 0 || wanted.includes(image))) tiers.push({ image, workload: w });
}
// The operator itself, as manifests/operator deploys it, on the local image.
if (images.operator && (wanted.length === 0 || wanted.includes('operator'))) {
  const manifest = new URL('../../manifests/operator/20-deployment.yaml', import.meta.url);
  const deployment = parseAllDocuments(readFileSync(manifest, 'utf8'))
    .map((d) => d.toJS() as Workload)
    .find((o) => o.kind === 'Deployment');
  if (!deployment) throw new Error('manifests/operator/20-deployment.yaml has no Deployment');
  const spec = (deployment.spec as { template: { spec: V1PodSpec } }).template.spec;
  spec.containers[0]!.image = images.operator.ref;
  tiers.push({ image: 'operator', workload: deployment });
}
// Servers first, then their clients.
const order = ['postgres', 'cache', 'rabbitmq', 'demo-app', 'nginx', 'demo-consumer', 'operator'];
tiers.sort((a, b) => order.indexOf(a.image) - order.indexOf(b.image));

const pods: Pod[] = [];
const servers: Server[] = [];
const readyWithin: Record<string, number> = { postgres: 60, cache: 30, rabbitmq: 180, nginx: 30 };
async function main() {
  for (const f of forwards) servers.push(await forward(f.address, f.port, f.target));
  for (const { image, workload } of tiers) {
    const spec = (workload.spec as { template: { spec: V1PodSpec } }).template.spec;
    const sts = workload.kind === 'StatefulSet';
    const claims = sts
      ? (
          (workload.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] })
            .volumeClaimTemplates ?? []
        ).map((t) => t.metadata.name)
      : [];
    const podName = sts ? `${workload.metadata.name}-0` : `${workload.metadata.name}-smoke`;
    const pod = preparePod(
      image,
      podName,
      sts ? (workload.spec as { serviceName?: string }).serviceName : undefined,
      spec,
      claims,
    );
    if (image === 'operator') {
      // It listens on 8080 like the edge cache: the tiers are done, stop them first (one network here).
      for (const x of pods) stop(x);
      await sleep(1000);
    }
    pods.push(pod);
    start(pod);
    if (image === 'operator') {
      await operatorBoots(pod);
      continue;
    }
    await waitReady(pod, readyWithin[image] ?? 60);
    await checkLiveness(pod);
    await exercise(pod);
  }
  log(`all ${pods.length} pods ran: ${pods.map((p) => `${p.name} (${p.image})`).join(', ')}`);
}

/**
 * Without an apiserver the operator cannot become ready: it boots (in-cluster config from the
 * service-account volume, its health and metrics server), asks the apiserver, is refused, and stops.
 */
async function operatorBoots(p: Pod) {
  const deadline = Date.now() + 60000;
  const refused = `ECONNREFUSED 127.0.0.1:${APISERVER_PORT}`;
  let text = '';
  while (Date.now() < deadline) {
    text = readFileSync(p.logPath, 'utf8');
    if (text.includes('serving /healthz') && text.includes(refused)) {
      log(
        `${p.name}: boots as uid ${p.args[p.args.indexOf('--user') + 1]} on a read-only root, serves /healthz, reads its in-cluster config and asks the apiserver (${refused})`,
      );
      return;
    }
    if (p.proc?.exitCode !== null) break;
    await sleep(500);
  }
  throw new Error(`${p.name}: did not boot as expected; its log:\n${text.slice(-4000)}`);
}

async function exercise(p: Pod) {
  switch (p.image) {
    case 'postgres': {
      // Over TLS only, its certificate checked against the CA and a name it holds (the server
      // refuses plaintext).
      const client = new pg.Client({
        host: '127.0.0.1',
        port: 5432,
        user: 'app',
        database: 'app',
        password: facts.dbCredentials!.app,
        ssl: verifiedTls(facts.tls!.ca.cert, pgServerNames(databaseCluster(app, facts))[0]!),
      });
      await client.connect();
      const r = await client.query('SELECT current_user AS u, version() AS v');
      await client.end();
      log(`${p.name}: SQL as ${r.rows[0].u}: ${String(r.rows[0].v).split(' on ')[0]}`);
      const su = execIn(
        p,
        [
          'psql',
          '-X',
          '-w',
          '-h',
          '127.0.0.1',
          '-U',
          'postgres',
          '-d',
          'postgres',
          '-Atc',
          'SHOW data_checksums',
        ],
        20000,
        {
          PGPASSWORD: facts.dbCredentials!.superuser,
        },
      );
      if (su.status !== 0) throw new Error(`${p.name}: psql as the superuser failed: ${su.stderr}`);
      log(`${p.name}: psql in the container as the superuser: data_checksums=${su.stdout.trim()}`);
      break;
    }
    case 'cache': {
      const value = await withRedis(
        { host: '127.0.0.1', port: 6379, password: facts.cachePassword!.current },
        async (c) => {
          await c.sendCommand(['SET', 'smoke', 'ok']);
          return c.sendCommand<string>(['GET', 'smoke']);
        },
      );
      if (value !== 'ok') throw new Error(`${p.name}: GET returned ${String(value)}`);
      log(`${p.name}: AUTH, SET and GET work`);
      break;
    }
    case 'rabbitmq': {
      const q = facts.queueCredentials!;
      const r = await httpGet(15672, '/api/queues/%2F/jobs', {
        auth: `${q.monitoringUsername}:${q.monitoringPassword}`,
      });
      if (r.status !== 200) throw new Error(`${p.name}: management API: ${r.status} ${r.body}`);
      const queue = JSON.parse(r.body) as { type: string; durable: boolean };
      log(`${p.name}: management API lists queue jobs (${queue.type}, durable=${queue.durable})`);
      break;
    }
    case 'nginx': {
      // Through the edge: its own health path, then an asset twice (MISS, then HIT from the cache on
      // /tmp). The origin is the demo app when it runs, else a stand-in on the web tier's port.
      const e = app.spec.edgeCache!;
      const asset = `${e.pathPrefix.replace(/\/+$/, '')}/${e.assetVersion}/app.css`;
      let origin: Server | undefined;
      if (!pods.some((x) => x.image === 'demo-app')) {
        origin = httpServer((_req, res) =>
          res.writeHead(200, { 'content-type': 'text/css' }).end('body {}\n'),
        );
        await new Promise<void>((r) => origin!.listen({ host: '127.0.0.1', port: app.spec.web!.port }, r));
      }
      try {
        const health = await httpGet(portOf(p, 'http'), '/healthz');
        const first = await httpGet(portOf(p, 'http'), asset);
        const second = await httpGet(portOf(p, 'http'), asset);
        const status = (r: HttpReply) => `${r.status} ${String(r.headers['x-cache-status'])}`;
        log(`${p.name}: /healthz ${health.status}; ${asset} ${status(first)}, then ${status(second)}`);
        if (health.status !== 200 || second.headers['x-cache-status'] !== 'HIT') {
          throw new Error(`${p.name}: the edge cache does not cache ${asset}`);
        }
      } finally {
        origin?.close();
      }
      break;
    }
    case 'demo-app': {
      const r = await httpGet(portOf(p, 'http'), p.container.readinessProbe?.httpGet?.path ?? '/healthz');
      log(
        `${p.name}: GET ${p.container.readinessProbe?.httpGet?.path}: ${r.status} ${r.body.slice(0, 300).replace(/\s+/g, ' ')}`,
      );
      break;
    }
    case 'demo-consumer': {
      await sleep(3000);
      if (p.proc?.exitCode !== null)
        throw new Error(`${p.name} exited: ${readFileSync(p.logPath, 'utf8').slice(-3000)}`);
      const q = facts.queueCredentials!;
      const r = await httpGet(15672, '/api/queues/%2F/jobs', {
        auth: `${q.monitoringUsername}:${q.monitoringPassword}`,
      });
      const consumers = (JSON.parse(r.body) as { consumers?: number }).consumers;
      log(`${p.name}: running; queue jobs has ${consumers} consumer(s)`);
      // The demo's own smoke test through the whole stack, when its web pod runs too.
      const web = pods.find((x) => x.image === 'demo-app');
      if (web) {
        const all = await httpGet(portOf(web, 'http'), '/touch-all?queue=jobs');
        log(
          `${web.name}: GET /touch-all?queue=jobs: ${all.status} ${all.body.replace(/\s+/g, ' ').slice(0, 600)}`,
        );
        if (all.status !== 200) throw new Error(`${web.name}: /touch-all answered ${all.status}`);
        // The message it published reaches the consumer, which records it in the cache.
        const id = (JSON.parse(all.body) as { results?: { queue?: { id?: string } } }).results?.queue?.id;
        if (id) {
          const deadline = Date.now() + 15000;
          let seen = false;
          while (!seen && Date.now() < deadline) {
            seen =
              (await httpGet(portOf(web, 'http'), `/queue/jobs/consumed/${encodeURIComponent(id)}`))
                .status === 200;
            if (!seen) await sleep(500);
          }
          if (!seen) throw new Error(`${p.name}: message ${id} was not consumed within 15s`);
          log(`${p.name}: consumed message ${id} (recorded in the cache)`);
        }
      }
      break;
    }
  }
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  log(`FAILED: ${(e as Error).message}`);
} finally {
  for (const p of pods.reverse()) stop(p);
  for (const s of servers) s.close();
  for (const p of pods) log(`${p.name}: log in ${p.logPath}`);
}
process.exitCode = failed ? 1 : 0;
