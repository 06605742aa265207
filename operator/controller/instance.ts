// Operator instances, like IngressClass: which ScalableApps one operator acts on (docs/adr/0012).

/** The label that hands a ScalableApp to the operator started with `--instance <value>`. */
export const INSTANCE_LABEL = 'scalableapp.io/instance';

/** A Kubernetes label value: at most 63 characters, alphanumeric at both ends, `-_.` inside. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** A DNS-1123 subdomain (a Lease name). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The operator's instance from its flag: `undefined` for none (empty), the value when it is a valid
 * label value; otherwise an error naming the flag.
 */
export function parseInstance(value: string | undefined, flag = '--instance'): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 63 || !LABEL_VALUE.test(value)) {
    throw new Error(
      `${flag} must be a label value (at most 63 characters: letters, digits, '-', '_' and '.', ` +
        `beginning and ending with a letter or digit), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * The label selector of the ScalableApps an operator acts on, for both the list and the watch: with
 * no instance, the apps without the label; with one, the apps labelled with exactly it. Every app
 * matches exactly one operator's selector, so two instances never act on one app.
 */
export function appSelector(instance: string | undefined): string {
  return instance ? `${INSTANCE_LABEL}=${instance}` : `!${INSTANCE_LABEL}`;
}

/**
 * The default leader-election Lease of an instance: instances are separate controllers, each with its
 * own leader (sharing one Lease, one instance would never run). `undefined` when the instance cannot
 * be part of a Lease name (upper case or `_`): the caller then asks for `--leader-election-id`.
 */
export function defaultLeaseName(instance: string | undefined): string | undefined {
  const name = instance ? `scalableapp-operator-${instance}` : 'scalableapp-operator';
  return name.length <= 253 && DNS_SUBDOMAIN.test(name) ? name : undefined;
}
