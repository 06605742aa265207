import { z } from 'zod';
import { doc } from './meta.ts';
import { compareQuantities } from './quantity.ts';

/**
 * The Kubernetes resource.Quantity grammar ("250m", "1.5Gi", 2), narrowed to what a child takes: no
 * sign (every quantity here is a size, a request or a limit, which Kubernetes refuses below zero) and
 * whole exponents ("1e3"; Kubernetes' parser refuses "1e2.5", which the full grammar allows).
 */
export const QUANTITY_PATTERN =
  '^\\+?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$';

/**
 * A quantity of bytes: no milli, micro or nano suffix and no negative exponent ("500m" of memory is
 * half a byte, which the kubelet rounds and Kubernetes only warns about).
 */
export const BYTES_PATTERN =
  '^\\+?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[kMGTPE]|([eE]\\+?[0-9]+))?$';

/** The largest memory limit or volume the operator takes: far beyond any node, well inside 2^53. */
export const MAX_BYTES = '1Pi';

export const quantity = (description: string, { bytes = false }: { bytes?: boolean } = {}) =>
  doc(
    z.union([
      z.number().int().min(0),
      z
        .string()
        .max(64)
        .regex(new RegExp(bytes ? BYTES_PATTERN : QUANTITY_PATTERN)),
    ]),
    description,
    {
      intOrString: true,
    },
  );

/** RFC 1123 label: what a name must be when it becomes part of a Service or pod name. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dnsLabel = (description: string, max = 40) =>
  doc(z.string().min(1).max(max).regex(DNS_LABEL), description);

/** RFC 1123 subdomain: what the name of a Secret, a StorageClass, an IngressClass or a Gateway must be. */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const dnsSubdomain = (description: string) =>
  doc(z.string().min(1).max(253).regex(DNS_SUBDOMAIN), description);

/**
 * An image reference as the kubelet parses it (the distribution/reference grammar): an optional
 * registry host and port, lowercase path components, an optional tag and digest. The apiserver
 * admits any string without spaces; the kubelet refuses the rest with InvalidImageName, pod by pod.
 */
const DOMAIN_PART = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const PATH_PART = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
export const IMAGE_REFERENCE = new RegExp(
  `^(?:${DOMAIN_PART}(?:\\.${DOMAIN_PART})*(?::[0-9]+)?/)?${PATH_PART}(?:/${PATH_PART})*` +
    '(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$',
);

export const image = (description: string) =>
  doc(
    z.string().min(1).max(512).regex(IMAGE_REFERENCE),
    `${description} A reference the kubelet can pull: [registry[:port]/]lowercase/path[:tag][@digest].`,
  );

/** A tier's default resources: what each quantity the user does not give comes to. */
export interface ResourceDefaults {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly memory: string };
  /**
   * The smallest memory limit the tier's server starts in, and its name: a smaller limit is admitted
   * by Kubernetes and fails at the container runtime (below 6Mi) or in the server (shared_buffers,
   * maxmemory, the broker's watermark), so it is refused at admission.
   */
  readonly memoryFloor: { readonly min: string; readonly server: string };
}

const resourceList = (what: string, defaults: { cpu?: string; memory?: string }) => {
  const q = (name: 'cpu' | 'memory', example: string) => {
    const d = defaults[name];
    const field = quantity(
      `${name === 'cpu' ? 'CPU' : 'Memory (bytes)'} ${what}, e.g. ${example}.${d ? ` Default ${d}.` : ''}`,
      { bytes: name === 'memory' },
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

/** What the apiserver (and each chart) says of a memory limit out of the tier's bounds. */
export const memoryLimitMessage = (floor: ResourceDefaults['memoryFloor']) =>
  `limits.memory must be between ${floor.min} (${floor.server} does not start in less) and ${MAX_BYTES}`;

const memoryLimitBounds = (floor: ResourceDefaults['memoryFloor']) => ({
  rule: `!has(self.limits) || !has(self.limits.memory) || (quantity(string(self.limits.memory)).compareTo(quantity('${floor.min}')) >= 0 && quantity(string(self.limits.memory)).compareTo(quantity('${MAX_BYTES}')) <= 0)`,
  message: memoryLimitMessage(floor),
  fieldPath: '.limits.memory',
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
          if (compareQuantities(request, limit) === 1)
            ctx.addIssue({
              code: 'custom',
              path: ['requests', name],
              message: requestWithinLimitMessage(name),
            });
        }
        const limit = r.limits.memory;
        if (limit === undefined) return;
        const [low, high] = [
          compareQuantities(limit, defaults.memoryFloor.min),
          compareQuantities(limit, MAX_BYTES),
        ];
        if (low === -1 || high === 1)
          ctx.addIssue({
            code: 'custom',
            path: ['limits', 'memory'],
            message: memoryLimitMessage(defaults.memoryFloor),
          });
      }),
    `${description} Each quantity not given keeps its default; a request may not exceed its limit, and the memory limit is at least ${defaults.memoryFloor.min}${admission ? '' : ' (both refused by the operator with an InvalidSpec condition, not at admission)'}. Changed in place (vertical scaling): the pods roll with the new values.`,
    admission
      ? {
          cel: [
            requestWithinLimit('cpu'),
            requestWithinLimit('memory'),
            memoryLimitBounds(defaults.memoryFloor),
          ],
        }
      : {},
  ).prefault({});

/** The smallest volume: below it no server here can even initialise its data directory. */
export const MIN_VOLUME = '1Mi';
export const volumeSizeMessage = `size must be between ${MIN_VOLUME} and ${MAX_BYTES}`;

const volumeInBounds = (q: string | number) =>
  compareQuantities(q, MIN_VOLUME) !== -1 && compareQuantities(q, MAX_BYTES) !== 1;

export const storage = (what: string, defaultSize: string) =>
  doc(
    z.object({
      size: quantity(
        `Size of each ${what} volume, e.g. 20Gi. Between ${MIN_VOLUME} and ${MAX_BYTES}; may grow, never shrink.`,
        { bytes: true },
      )
        .refine(volumeInBounds, volumeSizeMessage)
        .default(defaultSize),
      storageClassName: dnsSubdomain(
        'StorageClass of the volumes; the cluster default when omitted. Fixed after creation.',
      ).optional(),
    }),
    `Persistent volumes of the ${what}. The size may grow, never shrink: a larger size grows each claim in place when its StorageClass allows expansion (the pods keep running), and is reported as ChildRefused when it does not.`,
    {
      cel: [
        {
          rule: `quantity(string(self.size)).compareTo(quantity('${MIN_VOLUME}')) >= 0 && quantity(string(self.size)).compareTo(quantity('${MAX_BYTES}')) <= 0`,
          message: volumeSizeMessage,
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

/** A key of a Secret in the app's namespace: what a value the spec must not hold is taken from. */
export const secretKeySelector = (description: string) =>
  doc(
    z.object({
      name: dnsSubdomain("Name of a Secret in the app's namespace."),
      // As Kubernetes checks a key: not `.` or `..`, nor starting with `..` (a path upwards).
      key: doc(
        z
          .string()
          .min(1)
          .max(253)
          .regex(/^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$/),
        'Key inside that Secret (letters, digits, -, _ and .; not . or .., nor starting with ..).',
      ),
    }),
    description,
  );

/**
 * The variables the operator hands every app container (the connection Secret, mounted with envFrom,
 * and a consumer's QUEUE_NAME). A user variable of the same name would silently win over the
 * operator's (an explicit env beats envFrom), so the app would talk to the wrong place: refused.
 * operator/tiers/connection.test.ts keeps this list equal to what the builders inject.
 */
export const INJECTED_ENV = [
  'SCALABLEAPP_NAME',
  'WEB_URL',
  'CACHE_URL',
  'CACHE_REPLICAS_URL',
  'CACHE_DEFAULT_TTL_SECONDS',
  'SESSION_STORE',
  'SESSION_STORE_URL',
  'SESSION_TTL_SECONDS',
  'ASSET_BASE_PATH',
  'ASSET_VERSION',
  'DATABASE_URL',
  'DATABASE_READ_URL',
  'SHARD_MAP_CONFIGMAP',
  'SHARD_MAP_PATH',
  'SHARD_KEY',
  'SHARDS_USER',
  'SHARDS_PASSWORD',
  'SHARDS_SSLMODE',
  'SHARDS_SSLROOTCERT',
  'CACHE_CA_FILE',
  'QUEUE_URL',
  'QUEUE_CA_FILE',
  'QUEUE_NAME',
] as const;

export const injectedEnvMessage =
  'name is one the operator sets (the connection Secret or QUEUE_NAME): an env of that name would hide it';

export const envVar = doc(
  z.object({
    name: doc(
      z
        .string()
        .min(1)
        .max(253)
        .regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/)
        .refine((n) => !(INJECTED_ENV as readonly string[]).includes(n), injectedEnvMessage),
      `Name of the environment variable; not one the operator sets (${INJECTED_ENV.join(', ')}).`,
    ),
    value: doc(z.string().max(32768), 'Literal value.').optional(),
    secretKeyRef: secretKeySelector(
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
      {
        rule: `!(self.name in [${INJECTED_ENV.map((n) => `'${n}'`).join(', ')}])`,
        message: injectedEnvMessage,
        fieldPath: '.name',
        reason: 'FieldValueForbidden',
      },
    ],
  },
);

export const envList = (who: string) =>
  doc(z.array(envVar).max(64), `Extra environment variables for the ${who} containers.`, {
    listType: 'map',
    listMapKeys: ['name'],
  }).default([]);

/** A label key: an optional DNS prefix and /, then a name of at most 63 characters. */
export const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A label value: empty, or at most 63 characters of alphanumerics, '-', '_' and '.', alphanumeric at both ends. */
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const MAX_MATCH_LABELS = 8;
export const LABEL_KEYS_MESSAGE =
  'every key must be a label key (an optional DNS prefix and /, then a name of at most 63 characters)';

/**
 * A NetworkPolicy selector's matchLabels, checked as the apiserver checks labels. Keys are checked
 * by a refinement and CEL, not a key schema: neither a CRD nor a chart's values schema can name a
 * bad key's field (the CRD drops `propertyNames`; Helm reports it at a wrong path).
 */
export const matchLabels = (description: string, min: number) =>
  doc(
    z
      .record(z.string(), z.string().max(63).regex(LABEL_VALUE))
      .refine((m) => Object.keys(m).every((k) => k.length <= 317 && LABEL_KEY.test(k)), LABEL_KEYS_MESSAGE)
      .refine((m) => Object.keys(m).length >= min, `at least ${min} label`)
      .refine((m) => Object.keys(m).length <= MAX_MATCH_LABELS, `at most ${MAX_MATCH_LABELS} labels`),
    description,
    {
      properties: { min, max: MAX_MATCH_LABELS },
      cel: [
        {
          rule: `self.all(k, size(k) <= 317 && k.matches('${LABEL_KEY.source.replaceAll('\\', '\\\\')}'))`,
          message: LABEL_KEYS_MESSAGE,
        },
      ],
    },
  );

/**
 * Pods that may reach some port, by label: each entry names pods; a namespaceSelector widens it to
 * those pods in the namespaces it selects. Pods, not namespaces: a whole namespace is never trusted.
 * `who` names them in the descriptions ("client", "scraper").
 */
export const podPeers = (who: string, description: string) =>
  doc(
    z
      .array(
        doc(
          z.object({
            podSelector: doc(
              z.object({ matchLabels: matchLabels(`Labels the ${who} pods carry (at least one).`, 1) }),
              `The ${who} pods, by label.`,
            ),
            namespaceSelector: doc(
              z.object({ matchLabels: matchLabels(`Labels of the namespaces the ${who} pods run in.`, 1) }),
              `The namespaces the ${who} pods run in, by label; the app's namespace when omitted.`,
            ).optional(),
          }),
          'Pods that may connect, by label, in the app namespace or in the namespaces selected.',
        ),
      )
      .max(16),
    description,
  );

/**
 * Pods besides the app's web and consumer pods that may connect to a data tier: a standalone tier
 * (no web tier, no consumers) admits no one else.
 */
export const allowedClients = (tier: string, ports: string) =>
  podPeers(
    'client',
    `Pods besides the app's web and consumer pods that may connect to the ${tier} (${ports} only), e.g. a job or another app's pods; a NetworkPolicy admits exactly these.`,
  ).default([]);

export type AllowedClient = z.infer<ReturnType<typeof allowedClients>>[number];

/**
 * A data tier's encryption in transit (ADR 0023), on by default: `enabled` says what it means for
 * the tier's servers and clients.
 */
export const tlsSetting = (enabled: string) =>
  doc(
    z.object({ enabled: doc(z.boolean(), enabled).default(true) }),
    "Encryption in transit, with a server certificate the operator issues from the app's own CA and renews 30 days before it expires.",
  ).default({ enabled: true });

/**
 * The timing fields of a probe the user configures (web healthCheck, consumer healthCheck): how often,
 * and how many failures in a row count. `failedMeans` completes "Failures in a row before ...".
 */
export const probeTiming = (failedMeans: string) => ({
  periodSeconds: doc(z.number().int().min(1).max(300), 'How often to probe.').default(10),
  failureThreshold: doc(z.number().int().min(1).max(30), `Failures in a row before ${failedMeans}`).default(
    3,
  ),
});
