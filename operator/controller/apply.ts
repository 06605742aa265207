import type { KubernetesObject } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { ApiError, isNotFound, type Kube } from '../kube/client.ts';
import { OWNED_KINDS, collectionPath } from '../kube/resources.ts';
import type { Child } from '../tiers/objects.ts';
import type { ChildCaches } from './children.ts';
import { desiredHash, drift, firstDifference, overlay } from './drift.ts';
import type { EventRecorder } from './events.ts';
import { REFUSALS, apiserverWords, type Refusal } from './refusal.ts';

interface Log {
  info(msg: string, f?: Record<string, unknown>): void;
}

export interface ApplyDeps {
  readonly kube: Kube;
  readonly children: Pick<ChildCaches, 'get' | 'ownedBy'>;
  readonly events: EventRecorder;
}

export const objectPath = (o: KubernetesObject) =>
  `${collectionPath(o.apiVersion!, pluralOf(o.kind!), o.metadata!.namespace)}/${o.metadata!.name}`;

/** Looked up per child per reconcile: once, not a scan of the list each time. */
const OWNED_BY_KIND = new Map(OWNED_KINDS.map((k) => [k.kind, k]));

function pluralOf(kind: string): string {
  const p = OWNED_BY_KIND.get(kind)?.plural;
  if (!p) throw new Error(`no REST path known for kind ${kind}`);
  return p;
}

/**
 * Applies every drifted child concurrently: children do not depend on each other at apply time
 * (a pod waits for a missing Secret by itself), and one round trip is faster than one per child. The
 * client's rate limiter still bounds the burst. Events are recorded after the applies.
 *
 * `refusedReplace` remembers, per child path, the desired hash whose replace (the fallback of a
 * refused apply) was refused too: the same object is then not replaced again, so each backoff step
 * costs one request, not two.
 */
export async function applyAll(
  d: ApplyDeps,
  app: ScalableApp,
  desired: readonly Child[],
  refusedReplace: Map<string, string>,
  log: Log,
): Promise<{ applied: number; refusals: Refusal[] }> {
  const work = desired
    .map((obj) => {
      const live = d.children.get(obj.kind, obj.metadata.namespace ?? '', obj.metadata.name);
      // A run's record (a Job) that exists is left as it is, whatever the spec says now.
      const createOnly = OWNED_BY_KIND.get(obj.kind)?.createOnly ?? false;
      return { obj, live, why: createOnly && live ? undefined : drift(obj, live) };
    })
    .filter((w) => w.why !== undefined);
  const results = await Promise.allSettled(work.map((w) => applyOne(d.kube, w.obj, w.live, refusedReplace)));
  const done = work.filter((_, i) => results[i]!.status === 'fulfilled');
  for (const { obj, live, why } of done) {
    const verb = live ? 'Updated' : 'Created';
    log.info(`${verb.toLowerCase()} ${obj.kind} ${obj.metadata.name}`, { drift: why });
  }
  await Promise.all(
    done.map(({ obj, live }) => {
      const verb = live ? 'Updated' : 'Created';
      return d.events.record(app, 'Normal', verb, `${verb} ${obj.kind} ${obj.metadata.name}`);
    }),
  );
  const refusals: Refusal[] = [];
  for (const [i, r] of results.entries()) {
    if (r.status === 'fulfilled') continue;
    const e: unknown = r.reason;
    // Anything else (a conflict, throttling, a server error) is the world, not the object: retry.
    if (!(e instanceof ApiError && REFUSALS.has(e.status))) throw e;
    const { obj } = work[i]!;
    refusals.push({
      child: `${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}`,
      status: e.status,
      message: apiserverWords(e),
    });
  }
  return { applied: done.length, refusals };
}

/**
 * Server-side apply; when a hand edit cannot be undone by apply alone (someone else's entry in a
 * keyed list stays theirs, or makes our apply invalid), replace the object with the live one
 * overlaid by ours, guarded by its resourceVersion.
 */
async function applyOne(
  kube: Kube,
  obj: Child,
  live: KubernetesObject | undefined,
  refusedReplace: Map<string, string>,
): Promise<void> {
  const path = objectPath(obj);
  const hash = desiredHash(obj);
  let result: KubernetesObject | undefined;
  try {
    result = await kube.apply(path, obj);
  } catch (e) {
    // A replace that was refused for this very object will be refused again: don't send it.
    if (!(live && e instanceof ApiError && e.status === 422) || refusedReplace.get(path) === hash) throw e;
  }
  if (live && (!result || firstDifference(withoutMetadata(obj), withoutMetadata(result)) !== undefined)) {
    const base = result ?? live;
    try {
      await kube.replace(path, overlay(base, obj));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) refusedReplace.set(path, hash);
      throw e;
    }
  }
  refusedReplace.delete(path);
}

const withoutMetadata = ({ metadata: _m, ...rest }: KubernetesObject) => rest;

/** Children the spec no longer asks for (autoscaling turned off, exposure changed) are deleted; Secrets and volumes never. */
export async function prune(
  d: ApplyDeps,
  app: ScalableApp,
  desired: readonly Child[],
  log: Log,
): Promise<number> {
  const want = new Set(desired.map((o) => `${o.kind}/${o.metadata.name}`));
  let pruned = 0;
  for (const { obj } of d.children.ownedBy(app.metadata.uid ?? '')) {
    const id = `${obj.kind ?? ''}/${obj.metadata?.name}`;
    const kind = obj.kind ?? '';
    // Secrets may hold generated credentials: losing them loses access to data. Never pruned.
    if (!kind || kind === 'Secret' || want.has(id)) continue;
    try {
      await d.kube.delete(objectPath(obj));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    pruned++;
    log.info(`deleted ${id}`);
    await d.events.record(app, 'Normal', 'Deleted', `Deleted ${id}: no longer in the spec`);
  }
  return pruned;
}
