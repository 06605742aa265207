import { z } from 'zod';
import { doc } from './meta.ts';

/** The Kubernetes resource.Quantity grammar ("250m", "1.5Gi", 2). */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

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

const resourceList = (what: string) =>
  doc(
    z.object({
      cpu: quantity(`CPU ${what}, e.g. 250m or 2.`).optional(),
      memory: quantity(`Memory ${what}, e.g. 256Mi.`).optional(),
    }),
    `Resource ${what}.`,
  );

export const resources = (description: string) =>
  doc(
    z.object({
      requests: resourceList('requests').optional(),
      limits: resourceList('limits').optional(),
    }),
    `${description} Changed in place (vertical scaling): the pods roll with the new values.`,
  );

export const storage = (what: string, defaultSize: string) =>
  doc(
    z.object({
      size: quantity(`Size of each ${what} volume, e.g. 20Gi.`).default(defaultSize),
      storageClassName: doc(
        z.string().min(1).max(253),
        'StorageClass of the volumes; the cluster default when omitted. Fixed after creation.',
      ).optional(),
    }),
    `Persistent volumes of the ${what}.`,
    {
      cel: [
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
