import type { KubernetesObject } from '@kubernetes/client-node';
import { Informer } from '../kube/informer.ts';
import type { InformerEvent } from '../kube/informer.ts';
import type { Kube } from '../kube/client.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import { OWNED_KINDS, collectionPath, type OwnedKind } from '../kube/resources.ts';
import { KIND } from '../api/scalable-app.ts';
import { LABEL, MANAGER } from '../tiers/labels.ts';
import type { ChildLookup } from './tier-status.ts';

export const MANAGED_SELECTOR = `${LABEL.managedBy}=${MANAGER}`;

/** The ScalableApp that controls `obj`, as a work-queue key, if any. */
export function ownerKey(obj: KubernetesObject): string | undefined {
  const ref = obj.metadata?.ownerReferences?.find((r) => r.controller && r.kind === KIND);
  if (ref) return `${obj.metadata?.namespace ?? ''}/${ref.name}`;
  // Pods belong to their workload, not to the app: they carry the app's labels instead.
  const labels = obj.metadata?.labels ?? {};
  return labels[LABEL.managedBy] === MANAGER && labels[LABEL.partOf]
    ? `${obj.metadata?.namespace ?? ''}/${labels[LABEL.partOf]}`
    : undefined;
}

/** One informer per owned kind, scoped to objects carrying the operator's managed-by label. */
export class ChildCaches implements ChildLookup {
  readonly informers = new Map<string, { kind: OwnedKind; informer: Informer }>();

  constructor(
    kube: Kube,
    kinds: readonly OwnedKind[],
    namespace: string | undefined,
    onEvent: (e: InformerEvent, o: KubernetesObject) => void,
    onError: (kind: string, err: unknown) => void,
  ) {
    for (const kind of kinds) {
      this.informers.set(kind.kind, {
        kind,
        informer: new Informer({
          kube,
          path: collectionPath(kind.apiVersion, kind.plural, namespace),
          labelSelector: MANAGED_SELECTOR,
          onEvent,
          onError: (err) => onError(kind.kind, err),
        }),
      });
    }
  }

  get(kind: string, namespace: string, name: string): KubernetesObject | undefined {
    return this.informers.get(kind)?.informer.get(namespace, name);
  }

  /** Cached objects of one kind in a namespace matching every label given. */
  select(kind: string, namespace: string, labels: Record<string, string>): KubernetesObject[] {
    return (this.informers.get(kind)?.informer.list() ?? []).filter(
      (o) =>
        o.metadata?.namespace === namespace &&
        Object.entries(labels).every(([k, v]) => o.metadata?.labels?.[k] === v),
    );
  }

  /** Every cached child controlled by the app with this uid. */
  ownedBy(uid: string): { kind: OwnedKind; obj: KubernetesObject }[] {
    const out: { kind: OwnedKind; obj: KubernetesObject }[] = [];
    for (const { kind, informer } of this.informers.values()) {
      for (const obj of informer.list()) {
        if (obj.metadata?.ownerReferences?.some((r) => r.controller && r.uid === uid))
          out.push({ kind, obj });
      }
    }
    return out;
  }

  start(): void {
    for (const { informer } of this.informers.values()) informer.start();
  }
  stop(): void {
    for (const { informer } of this.informers.values()) informer.stop();
  }
  hasSynced(): boolean {
    return [...this.informers.values()].every(({ informer }) => informer.hasSynced());
  }
  waitForSync(): Promise<void> {
    return Promise.all([...this.informers.values()].map(({ informer }) => informer.waitForSync())).then(
      () => undefined,
    );
  }
}

/** The kinds to watch: those whose API the cluster serves (facts looked up at start). */
export const ownedKinds = (served: Pick<ObservedFacts, 'gatewayApi' | 'podMonitors'>) =>
  OWNED_KINDS.filter((k) => !k.needs || served[k.needs] === true);
