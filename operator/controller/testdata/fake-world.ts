// A Reconciler wired to an in-memory apiserver and caches, for unit tests of what it writes: every
// request is recorded, applies land in the cache at once, and a test may refuse any of them.
import type { PostgresRoles } from '../../dataplane/postgres/roles.ts';
import { AppLoginRotation } from '../app-login-rotation.ts';
import { ServerPasswordRotation } from '../server-password-rotation.ts';
import { CachePasswordRotation } from '../cache-password-rotation.ts';
import type { CacheUsers } from '../../dataplane/redis-admin.ts';
import type { PostgresArchiver } from '../../dataplane/postgres/archiver.ts';
import type { BrokerUsers } from '../../dataplane/rabbitmq/users.ts';
import { QueueLoginRotation } from '../queue-login-rotation.ts';
import type {
  KubernetesObject,
  V1DeploymentStatus,
  V1PersistentVolumeClaim,
  V1Pod,
} from '@kubernetes/client-node';
import { API_VERSION, KIND, type ScalableAppStatus } from '../../api/scalable-app.ts';
import { ApiError, type Kube } from '../../kube/client.ts';
import type { Informer } from '../../kube/informer.ts';
import { NO_FACTS } from '../../tiers/objects.ts';
import type { ChildCaches } from '../children.ts';
import type { CachePrimary } from '../cache-primary.ts';
import type { DatabasePrimary } from '../database-primary.ts';
import { EventRecorder } from '../events.ts';
import { Reconciler, appPath } from '../reconciler.ts';

export type Obj = KubernetesObject & { status?: unknown };

/**
 * An image named by digest: the worlds whose Warnings a test counts use these, so the advice on
 * unpinned images (condition ImagesPinned) is not among them.
 */
export const pinned = (image: string) => `${image}@sha256:${'0'.repeat(64)}`;
export type Verb = 'apply' | 'status' | 'create' | 'replace' | 'patch' | 'delete';
export interface Write {
  verb: Verb;
  path: string;
  body: Record<string, unknown>;
}

export interface WorldOptions {
  spec: unknown;
  pods?: V1Pod[];
  /** The status every applied Deployment shows in the cache. Default: none (not rolled out). */
  deploymentStatus?: V1DeploymentStatus;
  /** Refuses a write with this error (it is still recorded, as the apiserver still saw it). */
  refuse?: (verb: Verb, body: Obj) => ApiError | undefined;
  now?: number;
  /** The database primary's decisions (default: the reconciler runs without failover). */
  databasePrimary?: DatabasePrimary;
  /** The cache primary's decisions (default: none). */
  cachePrimary?: CachePrimary;
  /** What the apiserver stores of an applied object (default: the object as sent). */
  stored?: (body: Obj) => Obj;
  /** PersistentVolumeClaims in the namespace (listed, and grown by merge patches). */
  claims?: V1PersistentVolumeClaim[];
  /** The Postgres logins a rotation of the app's password uses (default: no rotation runs). */
  logins?: PostgresRoles;
  /** The cache servers' passwords a rotation of the app's cache password sets (default: none runs). */
  cacheUsers?: CacheUsers;
  /** The broker's logins a rotation of the app's queue password uses (default: none runs). */
  queueUsers?: BrokerUsers;
  /** How archiving goes on the primaries (default: the reconciler does not ask). */
  archiver?: PostgresArchiver;
  /** Secrets the user made, by name: their data (default: none exists). */
  secrets?: Record<string, Record<string, string>>;
}

const key = (kind: string, ns: string, name: string) => `${kind}/${ns}/${name}`;

/** The apiserver's answer to an object it will not take. */
export const invalid = (kind: string, name: string, message: string) =>
  new ApiError('PATCH', `/${kind}/${name}`, 422, {
    kind: 'Status',
    reason: 'Invalid',
    message: `${kind} "${name}" is invalid: ${message}`,
  });

export function fakeWorld(o: WorldOptions) {
  const children = new Map<string, Obj>();
  let pods = o.pods ?? [];
  const writes: Write[] = [];
  const claims = o.claims ?? [];
  const raw: Obj & { spec: unknown; status?: ScalableAppStatus } = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'shop', namespace: 'prod', uid: 'u1', generation: 1, resourceVersion: '1' },
    spec: o.spec,
  };
  const write = (verb: Verb, path: string, body: Obj) => {
    writes.push({ verb, path, body: body as never });
    const refused = o.refuse?.(verb, body);
    if (refused) throw refused;
  };
  const land = (sent: Obj) => {
    const body = o.stored ? o.stored(sent) : sent;
    const k = key(body.kind!, body.metadata!.namespace!, body.metadata!.name!);
    // A Secret carries a version (each write a new one) and a write naming another is refused, as
    // the apiserver does: the operator writes a Secret back only at the version it read.
    const previous = children.get(k)?.metadata?.resourceVersion;
    if (
      body.kind === 'Secret' &&
      body.metadata?.resourceVersion &&
      body.metadata.resourceVersion !== previous
    )
      throw new ApiError('PATCH', k, 409, { reason: 'Conflict', message: 'the object has been modified' });
    const live: Obj =
      body.kind === 'Deployment'
        ? {
            ...body,
            metadata: { ...body.metadata, generation: 1 },
            ...(o.deploymentStatus ? { status: o.deploymentStatus } : {}),
          }
        : body.kind === 'Secret'
          ? { ...body, metadata: { ...body.metadata, resourceVersion: String(Number(previous ?? 0) + 1) } }
          : body;
    children.set(k, live);
  };
  const kube = {
    get: async (path: string) => {
      const m = /\/namespaces\/prod\/secrets\/([^/]+)$/.exec(path);
      const data = m ? o.secrets?.[m[1]!] : undefined;
      if (data)
        return { apiVersion: 'v1', kind: 'Secret', metadata: { name: m![1], namespace: 'prod' }, data };
      throw new ApiError('GET', path, 404, {});
    },
    apply: async (path: string, body: Obj, opts?: { subresource?: string }) => {
      write(opts?.subresource === 'status' ? 'status' : 'apply', path, body);
      if (opts?.subresource === 'status') {
        raw.status = body.status as ScalableAppStatus;
        raw.metadata = {
          ...raw.metadata,
          resourceVersion: String(Number(raw.metadata!.resourceVersion) + 1),
        };
      } else land(body);
      return body;
    },
    create: async (path: string, body: Obj) => {
      write('create', path, body);
      return body;
    },
    replace: async (path: string, body: Obj) => {
      write('replace', path, body);
      land(body);
      return body;
    },
    mergePatch: async (path: string, body: Obj) => {
      write('patch', path, body);
      const claim = claims.find((c) => path.endsWith(`/persistentvolumeclaims/${c.metadata?.name}`));
      const storage = (body as { spec?: { resources?: { requests?: { storage?: string } } } }).spec?.resources
        ?.requests?.storage;
      if (claim && storage) claim.spec = { ...claim.spec, resources: { requests: { storage } } };
      return body;
    },
    /** Only the switchover request's removal is sent as a JSON patch: applied to the app. */
    jsonPatch: async (path: string, ops: { op: string; path: string; value?: unknown }[]) => {
      write('patch', path, { ops } as unknown as Obj);
      const annotations = raw.metadata!.annotations ?? {};
      const name = (p: string) => p.split('/').pop()!.replace(/~1/g, '/').replace(/~0/g, '~');
      for (const op of ops) {
        if (op.op === 'test' && annotations[name(op.path)] !== op.value)
          throw new ApiError('PATCH', path, 422, { reason: 'Invalid', message: 'the test operation failed' });
      }
      for (const op of ops) if (op.op === 'remove') delete annotations[name(op.path)];
      return raw;
    },
    list: async (path: string) => ({
      metadata: { resourceVersion: '1' },
      items: path.endsWith('/persistentvolumeclaims') ? claims : [],
    }),
    delete: async (path: string, propagation?: string) => {
      write('delete', path, (propagation ? { propagationPolicy: propagation } : {}) as Obj);
    },
  } as unknown as Kube;
  const caches = {
    get: (kind: string, ns: string, name: string) =>
      kind === 'Pod' ? pods.find((p) => p.metadata?.name === name) : children.get(key(kind, ns, name)),
    select: (kind: string, ns: string, labels: Record<string, string>) =>
      (kind === 'Pod' ? (pods as Obj[]) : [...children.values()].filter((c) => c.kind === kind)).filter(
        (c) =>
          c.metadata?.namespace === ns &&
          Object.entries(labels).every(([k, v]) => c.metadata?.labels?.[k] === v),
      ),
    ownedBy: (uid: string) =>
      [...children.values()]
        .filter((c) => c.metadata?.ownerReferences?.some((r) => r.uid === uid))
        .map((obj) => ({ obj })),
  } as unknown as ChildCaches;
  let present = true;
  const logged: string[] = [];
  const log = {
    info: (msg: string) => void logged.push(`info: ${msg}`),
    warn: (msg: string) => void logged.push(`warn: ${msg}`),
  };
  const reconciler = new Reconciler({
    kube,
    apps: { get: () => (present ? raw : undefined) } as unknown as Informer,
    children: caches,
    events: new EventRecorder(kube, (err) => {
      throw err;
    }),
    facts: () => NO_FACTS,
    ...(o.databasePrimary ? { databasePrimary: o.databasePrimary } : {}),
    ...(o.cachePrimary ? { cachePrimary: o.cachePrimary } : {}),
    ...(o.logins
      ? {
          appLogins: new AppLoginRotation({
            rolesFor: () => o.logins!,
            pods: (ns, labels) => caches.select('Pod', ns, labels) as V1Pod[],
          }),
          serverPasswords: new ServerPasswordRotation({
            rolesFor: () => o.logins!,
            pods: (ns, labels) => caches.select('Pod', ns, labels) as V1Pod[],
          }),
        }
      : {}),
    ...(o.cacheUsers ? { cachePasswords: new CachePasswordRotation({ usersFor: () => o.cacheUsers! }) } : {}),
    ...(o.queueUsers ? { queueLogins: new QueueLoginRotation({ usersFor: () => o.queueUsers! }) } : {}),
    ...(o.archiver
      ? {
          archiving: {
            archiverFor: () => o.archiver!,
            pods: (ns: string, labels: Record<string, string>) => caches.select('Pod', ns, labels) as V1Pod[],
          },
        }
      : {}),
    log,
    now: () => new Date(o.now ?? Date.parse('2025-06-01T12:00:00Z')),
  });
  const events = (type: string) =>
    writes
      .filter((w) => w.verb === 'create' && w.body.type === type)
      .map((w) => `${w.body.reason}: ${w.body.message}`);
  return {
    raw,
    writes,
    /** Puts an object in the cache as if someone else had written it. */
    setLive: (obj: Obj) => children.set(key(obj.kind!, obj.metadata!.namespace!, obj.metadata!.name!), obj),
    /** Takes an object out of the cache, as its deletion's watch event does. */
    removeLive: (kind: string, name: string) => children.delete(key(kind, 'prod', name)),
    live: (kind: string, name: string) => children.get(key(kind, 'prod', name)),
    claims,
    reconcile: () => reconciler.reconcile('prod/shop'),
    /** Takes the app out of the cache, as its deletion's watch event does. */
    deleteApp: () => (present = false),
    setPods: (p: V1Pod[]) => (pods = p),
    statusWrites: () =>
      writes.filter((w) => w.verb === 'status' && w.path === appPath('prod', 'shop')).length,
    /** Writes other than to Events: the ones that change the app's children or status. */
    childWrites: () => writes.filter((w) => w.verb !== 'status' && !w.path.includes('/events')),
    /** The operator's log lines, `level: message`. */
    logged: () => [...logged],
    warnings: () => events('Warning'),
    normals: () => events('Normal'),
    /** Event updates (a repeat raises the count of the first). */
    eventPatches: () => writes.filter((w) => w.verb === 'patch' && w.path.includes('/events')).length,
    condition: (type: string) => raw.status?.conditions?.find((c) => c.type === type),
  };
}
