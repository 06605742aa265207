import type { ScalableApp } from '../api/scalable-app.ts';
import { isNotFound, type Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import { ROLE_LABEL } from '../tiers/labels.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import type { TierContext } from './tier-module.ts';
import { TIER_MODULES } from './tier-modules/index.ts';

interface Log {
  info(msg: string, f?: Record<string, unknown>): void;
}

/**
 * Primary and replica Services select a data tier's pods by a role label only the operator sets.
 * Returns how many pods it relabelled.
 */
export async function labelRoles(
  d: { readonly kube: Kube; readonly children: TierContext['children'] },
  app: ScalableApp,
  facts: ObservedFacts,
  log: Log,
): Promise<number> {
  const ns = app.metadata.namespace ?? '';
  let changed = 0;
  const groups = TIER_MODULES.flatMap((m) => (m.present(app) ? (m.roles?.(app, facts) ?? []) : []));
  for (const { selector, primary } of groups) {
    for (const pod of d.children.select('Pod', ns, selector)) {
      const role = pod.metadata?.name === primary ? 'primary' : 'replica';
      if (pod.metadata?.labels?.[ROLE_LABEL] === role) continue;
      try {
        await d.kube.mergePatch(`${collectionPath('v1', 'pods', ns)}/${pod.metadata!.name}`, {
          metadata: { labels: { [ROLE_LABEL]: role } },
        });
      } catch (e) {
        if (isNotFound(e)) continue; // restarted meanwhile: its successor is labelled on its own event
        throw e;
      }
      log.info(`labelled pod ${pod.metadata!.name} ${role}`);
      changed++;
    }
  }
  return changed;
}
