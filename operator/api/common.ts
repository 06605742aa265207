import { z } from 'zod';
import { doc } from './meta.ts';
import { quantityFraction } from '../tiers/resources.ts';

/**
 * The Kubernetes resource.Quantity grammar ("250m", "1.5Gi", 2), narrowed to what a child takes: no
 * sign (every quantity here is a size, a request or a limit, which Kubernetes refuses below zero) and
 * whole exponents ("1e3"; Kubernetes' parser refuses "1e2.5", which the full grammar allows).
 */
export const QUANTITY_PATTERN =
  '^\\+?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$';

export const quantity = (description: string) =>
  doc(
    z.union([z.number().int().min(0), z.string().max(64).regex(new RegExp(QUANTITY_PATTERN))]),
    description,
    {
      intOrString: true,
    },
  );

/** RFC 1123 label: what a name must be when it becomes part of a Service or pod name. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dnsLabel = (description: string, max = 40) =>
  doc(z.string().min(1).max(max).regex(DNS_LABEL), description);

export const image = (description: string) =>
  doc(
    z
      .string()
      .min(1)
      .max(512)
      .regex(/^[^\s]+$/),
    description,
  );

/** A tier's default resources: what each quantity the user does not give comes to. */
export interface ResourceDefaults {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly memory: string };
}

const resourceList = (what: string, defaults: { cpu?: string; memory?: string }) => {
  const q = (name: 'cpu' | 'memory', example: string) => {
    const d = defaults[name];
    const field = quantity(
      `${name === 'cpu' ? 'CPU' : 'Memory'} ${what}, e.g. ${example}.${d ? ` Default ${d}.` : ''}`,
    );
    return d ? field.default(d) : field.optional();
  };
  return doc(
    z.object({ cpu: q('cpu', '250m or 2'), memory: q('memory', '256Mi') }),
    `Resource ${what}; each quantity not given keeps its default.`,
  );
};

/**
 * Per-quantity request-versus-limit rule: a request above its limit is refused by the apiserver when
 * the pod is created, long after the ScalableApp was admitted; here it is refused at admission, with
 * the defaults applied (a limit given alone below the default request is named too).
 */
const requestWithinLimit = (name: 'cpu' | 'memory') => ({
  // The has() on requests and limits: the apiserver checks this rule against the bare default `{}`.
  rule: `!has(self.requests) || !has(self.limits) || !has(self.requests.${name}) || !has(self.limits.${name}) || quantity(string(self.requests.${name})).compareTo(quantity(string(self.limits.${name}))) <= 0`,
  message: requestWithinLimitMessage(name),
  fieldPath: `.requests.${name}`,
});

/** What the apiserver (and each chart) says of a request above its limit. */
export const requestWithinLimitMessage = (name: 'cpu' | 'memory') =>
  `requests.${name} must not exceed limits.${name} (a limit given alone is compared with the default request)`;

/**
 * Requests and limits of a tier's containers, merged with the tier's defaults quantity by quantity:
 * a user who sets only `limits.memory` keeps the default requests (as a Helm values file merges).
 * A request above its limit is refused at admission by CEL, and by the schema itself (so the
 * operator refuses it too, with an InvalidSpec condition naming the field). `admission: false`
 * leaves the CEL rule out where the apiserver's cost budget cannot afford it (the consumers list:
 * a quantity of unknown length per item, twenty items).
 */
export const resources = (
  description: string,
  defaults: ResourceDefaults,
  { admission = true }: { admission?: boolean } = {},
) =>
  doc(
    z
      .object({
        requests: resourceList('requests', defaults.requests).prefault({}),
        limits: resourceList('limits', defaults.limits).prefault({}),
      })
      .superRefine((r, ctx) => {
        for (const name of ['cpu', 'memory'] as const) {
          const [request, limit] = [r.requests[name], r.limits[name]];
          if (request === undefined || limit === undefined) continue;
          const [a, b] = [quantityFraction(request), quantityFraction(limit)];
          if (a && b && a.num * b.den > b.num * a.den)
            ctx.addIssue({
              code: 'custom',
              path: ['requests', name],
              message: requestWithinLimitMessage(name),
            });
        }
      }),
    `${description} Each quantity not given keeps its default; a request may not exceed its limit${admission ? '' : ' (refused by the operator with an InvalidSpec condition, not at admission)'}. Changed in place (vertical scaling): the pods roll with the new values.`,
    admission ? { cel: [requestWithinLimit('cpu'), requestWithinLimit('memory')] } : {},
  ).prefault({});

const isZero = (q: string | number) => {
  const f = quantityFraction(q);
  return !!f && f.num === 0n;
};

export const storage = (what: string, defaultSize: string) =>
  doc(
    z.object({
      size: quantity(`Size of each ${what} volume, e.g. 20Gi. Greater than zero; may grow, never shrink.`)
        .refine((q) => !isZero(q), 'size must be greater than zero')
        .default(defaultSize),
      storageClassName: doc(
        z.string().min(1).max(253),
        'StorageClass of the volumes; the cluster default when omitted. Fixed after creation.',
      ).optional(),
    }),
    `Persistent volumes of the ${what}. The size may grow, never shrink.`,
    {
      cel: [
        {
          rule: "quantity(string(self.size)).compareTo(quantity('0')) > 0",
          message: 'size must be greater than zero',
          fieldPath: '.size',
        },
        {
          // A volume cannot shrink: Kubernetes refuses it for every PVC, long after admission.
          rule: 'quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0',
          message: 'size may grow but never shrink: a volume cannot give back space its data may use',
          fieldPath: '.size',
          reason: 'FieldValueForbidden',
        },
        {
          rule: "(has(self.storageClassName) ? self.storageClassName : '') == (has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')",
          message: 'storageClassName is immutable: existing volumes cannot move to another storage class',
          fieldPath: '.storageClassName',
          reason: 'FieldValueForbidden',
        },
      ],
    },
  );

export const envVar = doc(
  z.object({
    name: doc(
      z
        .string()
        .min(1)
        .max(253)
        .regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/),
      'Name of the environment variable.',
    ),
    value: doc(z.string().max(32768), 'Literal value.').optional(),
    secretKeyRef: doc(
      z.object({
        name: doc(z.string().min(1).max(253), "Name of a Secret in the app's namespace."),
        key: doc(z.string().min(1).max(253), 'Key inside that Secret.'),
      }),
      'Take the value from a Secret key. The operator checks the Secret exists before rolling pods.',
    ).optional(),
  }),
  'An environment variable: a literal value or a reference to a Secret key.',
  {
    cel: [
      {
        rule: 'has(self.value) != has(self.secretKeyRef)',
        message: 'set exactly one of value or secretKeyRef',
        reason: 'FieldValueInvalid',
      },
    ],
  },
);

export const envList = (who: string) =>
  doc(z.array(envVar).max(64), `Extra environment variables for the ${who} containers.`, {
    listType: 'map',
    listMapKeys: ['name'],
  }).default([]);
