import type { ScalableApp } from '../api/scalable-app.ts';

/** The operator's field manager, and the value of app.kubernetes.io/managed-by on everything it owns. */
export const MANAGER = 'scalableapp-operator';

export const LABEL = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

/**
 * The label every operator pod carries (manifests/operator and the operator chart set it, fixed):
 * the data tiers admit the pods of the operator's namespace that carry it, not the whole namespace.
 */
export const OPERATOR_POD_LABELS = { 'scalableapp.io/operator': 'true' } as const;

/** Pod label the operator sets: which pod the primary Service selects. */
export const ROLE_LABEL = 'scalableapp.io/role';

export const ANNOTATION = {
  /** Hash of the last desired object applied; a change means the operator must apply again. */
  appliedHash: 'scalableapp.io/applied-hash',
  /** Hash of the connection Secret's data on the pod template, so a change rolls the pods. */
  connectionHash: 'scalableapp.io/connection-hash',
  /** Hash of a tier's server configuration on its pod template, so a change restarts the servers. */
  configHash: 'scalableapp.io/config-hash',
} as const;

/** Labels that select one tier's pods. They never change after creation (selectors are immutable). */
export function selectorLabels(app: ScalableApp, component: string): Record<string, string> {
  return { [LABEL.instance]: app.metadata.name, [LABEL.component]: component };
}

/** The recommended app.kubernetes.io labels of one tier's objects. */
export function tierLabels(app: ScalableApp, component: string): Record<string, string> {
  return {
    [LABEL.name]: component,
    ...selectorLabels(app, component),
    [LABEL.partOf]: app.metadata.name,
    [LABEL.managedBy]: MANAGER,
  };
}

/** Names of children: `<app>-<suffix>`, so two apps in a namespace never collide. */
export const childName = (app: ScalableApp, suffix: string) => `${app.metadata.name}-${suffix}`;

/** The metadata of a tier's child: its name, the app's namespace, the tier's labels. */
export const tierMeta = (app: ScalableApp, component: string, name: string) => ({
  name,
  namespace: app.metadata.namespace,
  labels: tierLabels(app, component),
});
