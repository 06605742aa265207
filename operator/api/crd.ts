import { z } from 'zod';
import {
  API_VERSION,
  APP_NAME,
  APP_NAME_MAX,
  appNameMessage,
  appNameRule,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
} from './scalable-app.ts';
import { spec } from './spec.ts';
import { status } from './status.ts';

type Schema = Record<string, unknown>;

const UNSAFE_BOUND = Number.MAX_SAFE_INTEGER;

/**
 * Turns zod's OpenAPI 3.0 output into a structural schema the apiserver accepts: no
 * `additionalProperties: false` (unknown fields are pruned, and kubectl's strict field validation
 * reports them), no `propertyNames`, the int-or-string form for quantities, and no ±2^53 bounds
 * that zod puts on every integer.
 */
export function toStructural(node: Schema): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || key === 'propertyNames' || key === 'id') continue;
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' && value === -UNSAFE_BOUND) || (key === 'maximum' && value === UNSAFE_BOUND))
      continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, toStructural(v)]),
      );
    } else if (key === 'items' || (key === 'additionalProperties' && typeof value === 'object')) {
      out[key] = toStructural(value as Schema);
    } else {
      out[key] = value;
    }
  }
  if (out['x-kubernetes-int-or-string']) {
    // The only anyOf a structural schema allows: the value validations sit at this level.
    const branches = (node.anyOf ?? []) as Schema[];
    const str = branches.find((b) => b.type === 'string') ?? {};
    delete out.anyOf;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
    if (str.pattern) out.pattern = str.pattern;
  } else if (out.anyOf || out.oneOf || out.allOf) {
    throw new Error(
      `a union reached the CRD schema (${JSON.stringify(node).slice(0, 120)}); use an enum or int-or-string`,
    );
  }
  if (out.properties && !out.type) out.type = 'object';
  if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
  return out;
}

const jsonSchema = (s: z.ZodType) =>
  toStructural(z.toJSONSchema(s, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' }) as Schema);

const condition = (type: string) => `.status.conditions[?(@.type=="${type}")]`;

/** The ScalableApp CustomResourceDefinition, derived from the zod schema (the single source of truth). */
export function scalableAppCrd() {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'scalableapp', 'app.kubernetes.io/part-of': 'scalableapp' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: 'scalableapp',
        shortNames: ['sapp'],
        categories: ['scalableapp'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Ready', type: 'string', jsonPath: `${condition('Ready')}.status` },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            {
              name: 'Web',
              type: 'integer',
              description: 'Ready web replicas',
              jsonPath: '.status.web.readyReplicas',
            },
            {
              name: 'Primary',
              type: 'string',
              description: 'Current database primary',
              jsonPath: '.status.database.primary',
            },
            {
              name: 'Shards',
              type: 'integer',
              description: 'Ready shards',
              jsonPath: '.status.shards.ready',
            },
            { name: 'Reason', type: 'string', priority: 1, jsonPath: `${condition('Ready')}.reason` },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'A ScalableApp is a whole application built the way "scale from zero to millions of users" teaches: a web tier behind a load balancer with autoscaling, a cache, a Postgres primary with read replicas and failover, shards, a message queue with consumers, and an edge cache, spread across zones.',
              required: ['spec'],
              'x-kubernetes-validations': [appNameRule],
              properties: {
                apiVersion: { type: 'string', description: `${API_VERSION}` },
                kind: { type: 'string', description: KIND },
                // A CRD may restrict metadata.name (and only it): children add their suffixes to it.
                metadata: {
                  type: 'object',
                  properties: {
                    name: {
                      type: 'string',
                      description: appNameMessage,
                      maxLength: APP_NAME_MAX,
                      pattern: APP_NAME.source,
                    },
                  },
                },
                spec: jsonSchema(spec),
                status: jsonSchema(status),
              },
            },
          },
        },
      ],
    },
  };
}
