import { z } from 'zod';
import { doc } from './meta.ts';
import { envList, image, resources } from './common.ts';

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
      'How the web tier is reached: ClusterIP (inside the cluster only), LoadBalancer, Ingress or Gateway (a Gateway API HTTPRoute).',
    ).default('ClusterIP'),
    host: doc(
      z
        .string()
        .min(1)
        .max(253)
        .regex(/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/),
      'Public host name. Required for Ingress and Gateway.',
    ).optional(),
    tlsSecretName: doc(
      z.string().min(1).max(253),
      "A kubernetes.io/tls Secret in the app's namespace that terminates TLS for `host` (Ingress only).",
    ).optional(),
    ingressClassName: doc(
      z.string().min(1).max(253),
      'IngressClass to use; the cluster default when omitted (Ingress only).',
    ).optional(),
    gateway: doc(
      z.object({
        name: doc(z.string().min(1).max(253), 'Name of the Gateway.'),
        namespace: doc(
          z.string().min(1).max(63),
          "Namespace of the Gateway; the app's namespace when omitted.",
        ).optional(),
      }),
      'The Gateway the HTTPRoute attaches to (Gateway only).',
    ).optional(),
  }),
  'Exposure of the web tier. Only this entry point is reachable from outside the app; every other tier stays ClusterIP.',
  {
    cel: [
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
    resources: resources('CPU and memory for each web container.', {
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    }),
    expose: expose.default({ type: 'ClusterIP' }),
    healthCheck: doc(
      z.object({
        path: doc(
          z.string().min(1).max(1024).regex(/^\//),
          'HTTP path that answers 2xx when the app can serve.',
        ).default('/healthz'),
        livenessPath: doc(
          z.string().min(1).max(1024).regex(/^\//),
          "HTTP path that answers 2xx while the process itself works, whatever its dependencies do: failing it restarts the container. Defaults to `path`. Set it when `path` checks the app's dependencies, so an outage of one takes the pods out of the Service without restarting them all.",
        ).optional(),
        periodSeconds: doc(z.number().int().min(1).max(300), 'How often to probe.').default(10),
        failureThreshold: doc(
          z.number().int().min(1).max(30),
          'Failures in a row before the pod is taken out of the Service; liveness allows twice as many before a restart.',
        ).default(3),
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
);
