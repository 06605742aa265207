import { z } from 'zod';
import { doc } from './meta.ts';
import {
  dnsLabel,
  envList,
  image,
  probeTiming,
  resources,
  storage,
  type ResourceDefaults,
  allowedClients,
  tlsSetting,
} from './common.ts';

export const QUEUE_RESOURCES: ResourceDefaults = {
  requests: { cpu: '250m', memory: '512Mi' },
  limits: { memory: '1Gi' },
  memoryFloor: { min: '256Mi', server: 'RabbitMQ' },
};

export const CONSUMER_RESOURCES: ResourceDefaults = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '256Mi' },
  memoryFloor: { min: '16Mi', server: 'a container' },
};

/**
 * Fewer broker nodes would leave every quorum queue with members on nodes that are gone, counted in
 * its majority: it loses its fault tolerance (or its quorum) at once. Shrinking is the operator's to
 * do member by member (rabbitmq-queues shrink), which it does not yet; until then it is refused.
 */
export const BROKER_SHRINK_MESSAGE =
  'replicas may grow but not shrink: the quorum queues keep members on the nodes that would go (shrink their membership first: rabbitmq-queues shrink, then scale down by hand)';

/** RabbitMQ refuses to declare a queue whose name starts with amq. (ACCESS_REFUSED). */
export const RESERVED_QUEUE_MESSAGE = 'name must not start with amq.: the broker reserves that prefix';

export const queue = doc(
  z.object({
    image: image('Container image of the broker (the official RabbitMQ image).').default(
      'rabbitmq:4.1-management',
    ),
    replicas: doc(
      z.number().int().min(1).max(7),
      'Broker nodes: 1, or an odd number >= 3 so quorum queues keep a majority. May grow (each new node joins every quorum queue as a member once it has booted), never shrink.',
    ).default(3),
    resources: resources('CPU and memory for each broker container.', QUEUE_RESOURCES),
    storage: storage('broker', '5Gi').default({ size: '5Gi' }),
    allowedClients: allowedClients('broker', 'AMQP, port 5672'),
    tls: tlsSetting(
      "Serve TLS only: AMQP on 5672 and the management API on 15672 take TLS alone (no plaintext listener), QUEUE_URL is amqps:// with the app's CA in QUEUE_CA_FILE (ConfigMap <app>-ca-cert, mounted in the web and consumer pods), and the operator reads queue depths over https, checking the certificate. The brokers cluster over TLS too (the Erlang distribution, each showing its certificate to the other); changing this restarts all brokers together, since the two kinds cannot cluster. false serves plaintext only.",
    ),
    queues: doc(
      z
        .array(
          doc(
            z.object({
              name: doc(
                z
                  .string()
                  .min(1)
                  .max(200)
                  .regex(/^[A-Za-z0-9_.:-]+$/)
                  .refine((n) => !n.startsWith('amq.'), RESERVED_QUEUE_MESSAGE),
                'Queue name; not starting with amq. (the broker reserves it).',
              ),
            }),
            'A queue, declared as a quorum queue (replicated across broker nodes).',
            {
              cel: [
                {
                  rule: "!self.name.startsWith('amq.')",
                  message: RESERVED_QUEUE_MESSAGE,
                  fieldPath: '.name',
                  reason: 'FieldValueForbidden',
                },
              ],
            },
          ),
        )
        .min(1)
        .max(64),
      'Queues to declare.',
      { listType: 'map', listMapKeys: ['name'] },
    ),
  }),
  'The message queue: a RabbitMQ cluster with quorum queues.',
  {
    cel: [
      {
        rule: 'self.replicas >= oldSelf.replicas',
        message: BROKER_SHRINK_MESSAGE,
        fieldPath: '.replicas',
        reason: 'FieldValueForbidden',
      },
      {
        rule: 'self.replicas == 1 || (self.replicas >= 3 && self.replicas % 2 == 1)',
        message: 'replicas must be 1 or an odd number >= 3 (quorum queues need a majority)',
        fieldPath: '.replicas',
      },
    ],
  },
);

export const consumer = doc(
  z.object({
    name: dnsLabel('Name of the consumer; its Deployment is <app>-<name>.', 30),
    image: image('Container image of the consumer.'),
    queue: doc(
      z
        .string()
        .min(1)
        .max(200)
        .regex(/^[A-Za-z0-9_.:-]+$/),
      'The queue it consumes; must be declared in spec.queue.queues.',
    ),
    resources: resources('CPU and memory for each consumer container.', CONSUMER_RESOURCES, {
      admission: false,
    }),
    env: envList('consumer'),
    healthCheck: doc(
      z.object({
        port: doc(
          z.number().int().min(1024).max(65535),
          'Port of the health endpoint the consumer serves (unprivileged, since pods run as non-root).',
        ),
        path: doc(
          z.string().min(1).max(1024).regex(/^\//),
          'HTTP path that answers 2xx while the consumer can work (e.g. its broker connection is open): readiness. Liveness only asks that the port accepts connections, so a broker outage does not restart every consumer.',
        ).default('/healthz'),
        ...probeTiming(
          'the pod counts as not ready (a rollout waits for it); liveness (the port accepting connections) allows twice as many before a restart.',
        ),
      }),
      'An HTTP health endpoint the consumer serves: readiness asks it, liveness asks that its port accepts connections. Without it the consumer has no probes: a consumer whose process wedges is not restarted, and a rollout cannot tell a working pod from a broken one.',
    ).optional(),
    autoscaling: doc(
      z.object({
        minReplicas: doc(
          z.number().int().min(0).max(1000),
          'Fewest replicas; 0 lets the consumer sleep while the queue is empty.',
        ).default(0),
        maxReplicas: doc(z.number().int().min(1).max(1000), 'Most replicas.'),
        messagesPerReplica: doc(
          z.number().int().min(1).max(1000000),
          'Queue depth (ready + unacknowledged) one replica is expected to handle: desired = ceil(depth / messagesPerReplica).',
        ).default(100),
        cooldownSeconds: doc(
          z.number().int().min(0).max(86400),
          'The queue must stay empty this long before the consumer scales to zero.',
        ).default(300),
        pollIntervalSeconds: doc(
          z.number().int().min(1).max(300),
          'How often the operator reads the queue depth. With the broker publishing its statistics every second, a backlog is seen within about this plus 1.5 s (KEDA polls every 30 s by default).',
        ).default(2),
        scaleDownStabilizationSeconds: doc(
          z.number().int().min(0).max(3600),
          'Scale down only to the highest recommendation of this window, against flapping.',
        ).default(60),
      }),
      'Scaling on queue depth, done by the operator.',
      {
        cel: [
          {
            rule: 'self.minReplicas <= self.maxReplicas',
            message: 'minReplicas must be <= maxReplicas',
            fieldPath: '.minReplicas',
          },
        ],
      },
    ).optional(),
    replicas: doc(
      z.number().int().min(0).max(1000),
      'Fixed replica count when autoscaling is not set.',
    ).default(1),
  }),
  'A consumer Deployment, given the queue URL and name.',
  {
    cel: [
      {
        // The Deployment is <app>-<name>: these would take the web or edge-cache tier's Deployment.
        rule: "!(self.name in ['web', 'edge'])",
        message:
          'name must not be web or edge: its Deployment <app>-<name> would be the web or edge cache tier',
        fieldPath: '.name',
      },
    ],
  },
);

export const consumers = doc(
  z.array(consumer).max(20),
  "Consumers of the queues, each scaled on its queue's depth.",
  {
    listType: 'map',
    listMapKeys: ['name'],
  },
);
