import { z } from 'zod';
import { doc } from './meta.ts';
import { compareQuantities } from './quantity.ts';
import {
  dnsLabel,
  dnsSubdomain,
  envList,
  image,
  probeTiming,
  resources,
  type ResourceDefaults,
} from './common.ts';

/** A DNS name (optionally a wildcard), each label at most 63 characters, as Ingress and HTTPRoute take. */
const HOST = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
export const HOST_IP_MESSAGE =
  'host must be a DNS name, not an IP address (Ingress and HTTPRoute refuse one)';

export const WEB_RESOURCES: ResourceDefaults = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '256Mi' },
  memoryFloor: { min: '16Mi', server: 'a container' },
};

export const AUTOSCALING_CPU_MESSAGE =
  'autoscaling aims at a share of the CPU request: requests.cpu must be greater than zero';

export const EXPOSE_TYPES = ['ClusterIP', 'LoadBalancer', 'Ingress', 'Gateway'] as const;

export const webAutoscaling = doc(
  z.object({
    minReplicas: doc(z.number().int().min(1).max(1000), 'Fewest replicas the autoscaler keeps.').default(2),
    maxReplicas: doc(z.number().int().min(1).max(1000), 'Most replicas the autoscaler may run.'),
    targetCPUUtilizationPercentage: doc(
      z.number().int().min(1).max(100),
      'Average CPU utilisation (percent of the CPU request) the autoscaler aims for.',
    ).default(70),
  }),
  'Horizontal autoscaling on CPU (an autoscaling/v2 HorizontalPodAutoscaler). While it is set the autoscaler owns the replica count and `replicas` is ignored.',
  {
    cel: [
      {
        rule: 'self.minReplicas <= self.maxReplicas',
        message: 'minReplicas must be <= maxReplicas',
        fieldPath: '.minReplicas',
      },
    ],
  },
);

export const expose = doc(
  z.object({
    type: doc(
      z.enum(EXPOSE_TYPES),
      'How the web tier is reached: ClusterIP (inside the cluster only), LoadBalancer, Ingress or Gateway (a Gateway API HTTPRoute; the operator needs gateway.networking.k8s.io/v1 served when it starts, and without it the web tier reports GatewayAPIMissing).',
    ).default('ClusterIP'),
    host: doc(
      z
        .string()
        .min(1)
        .max(253)
        .regex(HOST)
        .refine((h) => !/^[0-9.]+$/.test(h), HOST_IP_MESSAGE),
      'Public host name (a DNS name, labels of at most 63 characters, not an IP address). Required for Ingress and Gateway.',
    ).optional(),
    tlsSecretName: dnsSubdomain(
      "A kubernetes.io/tls Secret in the app's namespace that terminates TLS for `host` (Ingress only).",
    ).optional(),
    ingressClassName: dnsSubdomain(
      'IngressClass to use; the cluster default when omitted (Ingress only).',
    ).optional(),
    gateway: doc(
      z.object({
        name: dnsSubdomain('Name of the Gateway.'),
        namespace: dnsLabel("Namespace of the Gateway; the app's namespace when omitted.", 63).optional(),
      }),
      'The Gateway the HTTPRoute attaches to (Gateway only).',
    ).optional(),
  }),
  'Exposure of the web tier. Only this entry point is reachable from outside the app; every other tier stays ClusterIP.',
  {
    cel: [
      {
        rule: "!has(self.host) || !self.host.matches('^[0-9.]+$')",
        message: HOST_IP_MESSAGE,
        fieldPath: '.host',
      },
      {
        rule: "!(self.type in ['Ingress', 'Gateway']) || has(self.host)",
        message: 'host is required when type is Ingress or Gateway',
        fieldPath: '.host',
        reason: 'FieldValueRequired',
      },
      {
        rule: "self.type == 'Gateway' || !has(self.gateway)",
        message: 'gateway may only be set when type is Gateway',
        fieldPath: '.gateway',
        reason: 'FieldValueForbidden',
      },
      {
        rule: "self.type != 'Gateway' || has(self.gateway)",
        message: 'gateway is required when type is Gateway',
        fieldPath: '.gateway',
        reason: 'FieldValueRequired',
      },
      {
        rule: "self.type == 'Ingress' || !has(self.tlsSecretName)",
        message: 'tlsSecretName may only be set when type is Ingress',
        fieldPath: '.tlsSecretName',
        reason: 'FieldValueForbidden',
      },
      {
        rule: "self.type == 'Ingress' || !has(self.ingressClassName)",
        message: 'ingressClassName may only be set when type is Ingress',
        fieldPath: '.ingressClassName',
        reason: 'FieldValueForbidden',
      },
      {
        rule: "self.type in ['Ingress', 'Gateway'] || !has(self.host)",
        message: 'host may only be set when type is Ingress or Gateway',
        fieldPath: '.host',
        reason: 'FieldValueForbidden',
      },
    ],
  },
);

export const web = doc(
  z.object({
    image: image('Container image of the web application.'),
    port: doc(
      z.number().int().min(1024).max(65535),
      'Port the application listens on (unprivileged, since pods run as non-root).',
    ).default(8080),
    replicas: doc(z.number().int().min(0).max(1000), 'Replica count when autoscaling is not set.').default(2),
    autoscaling: webAutoscaling.optional(),
    resources: resources('CPU and memory for each web container.', WEB_RESOURCES),
    expose: expose.default({ type: 'ClusterIP' }),
    healthCheck: doc(
      z.object({
        path: doc(
          z.string().min(1).max(1024).regex(/^\//),
          'HTTP path that answers 2xx when the app can serve.',
        ).default('/healthz'),
        livenessPath: doc(
          z.string().min(1).max(1024).regex(/^\//),
          "HTTP path that answers 2xx while the process itself works, whatever its dependencies do: failing it restarts the container. When omitted the container is alive while it accepts TCP connections on `port`: `path` is never used for liveness, since it may check the app's dependencies and an outage of one would restart every pod at once.",
        ).optional(),
        ...probeTiming(
          'the pod is taken out of the Service; liveness allows twice as many before a restart.',
        ),
      }),
      'Readiness and liveness probes for the web containers.',
    ).default({ path: '/healthz', periodSeconds: 10, failureThreshold: 3 }),
    sessions: doc(
      z.enum(['none', 'cache']),
      'Where sessions live. `cache` hands the web pods the cache tier as a session store, so any replica serves any request (no sticky sessions). Needs spec.cache.',
    ).default('none'),
    env: envList('web'),
  }),
  'The stateless web tier: a Deployment behind a Service, with optional autoscaling and exposure.',
  {
    cel: [
      {
        // The HPA aims at a percentage of the CPU request: without one it cannot compute a utilisation
        // and never scales (FailedGetResourceMetric).
        rule: "!has(self.autoscaling) || !has(self.resources) || !has(self.resources.requests) || !has(self.resources.requests.cpu) || quantity(string(self.resources.requests.cpu)).compareTo(quantity('0')) > 0",
        message: AUTOSCALING_CPU_MESSAGE,
        fieldPath: '.resources.requests.cpu',
      },
    ],
  },
).superRefine((w, ctx) => {
  if (w.autoscaling && compareQuantities(w.resources.requests.cpu ?? 0, 0) !== 1)
    ctx.addIssue({
      code: 'custom',
      path: ['resources', 'requests', 'cpu'],
      message: AUTOSCALING_CPU_MESSAGE,
    });
});
