import { AMQP_PORT, CREDENTIAL_FILES } from '../../server-config/rabbitmq.ts';
import { selectorLabels } from '../../tiers/labels.ts';
import {
  QUEUE,
  mqCredentialsName,
  mqName,
  mqServerNames,
  mqTlsSecretName,
  queueObjects,
  queueTls,
} from '../../tiers/queue.ts';
import { generatedSecret } from '../generated-secrets.ts';
import { issuedCertificates } from '../issued-certificates.ts';
import { brokersOnOtherDistribution } from '../broker-distribution.ts';
import { noDecisions, type TierModule } from '../tier-module.ts';
import { diagnosed, podsOf, statefulSetReadiness } from '../tier-status.ts';

/** The message queue: a RabbitMQ cluster with quorum queues. */
export const queueTier: TierModule = {
  tier: 'queue',
  present: (app) => app.spec.queue !== undefined,
  async gather(ctx, app, earlier) {
    const f = CREDENTIAL_FILES;
    const {
      values: [username, password, monitoringUsername, monitoringPassword, erlangCookie],
    } = await generatedSecret(ctx, app.metadata.namespace ?? '', mqCredentialsName(app), [
      f.username,
      f.password,
      f.monitoringUsername,
      f.monitoringPassword,
      f.erlangCookie,
    ]);
    // The app's CA, shared with the other TLS tiers, and the broker's certificate.
    const tls = queueTls(app)
      ? {
          tls: await issuedCertificates(ctx, app, earlier.tls, [
            // Each broker shows it to the others as a client too (the distribution over TLS).
            { secret: mqTlsSecretName(app), dnsNames: mqServerNames(app), use: { clientAuth: true } },
          ]),
        }
      : {};
    // Generated apart, so the two user names differ (the start script refuses one name for both).
    return {
      facts: {
        ...tls,
        queueCredentials: {
          username: username!,
          password: password!,
          monitoringUsername: monitoringUsername!,
          monitoringPassword: monitoringPassword!,
          erlangCookie: erlangCookie!,
        },
      },
    };
  },
  // Not a primary to move, but pods to restart together when the distribution's kind changes.
  decide: async (ctx, app, facts) => ({
    ...noDecisions(facts),
    restart: brokersOnOtherDistribution(app, ctx.children),
  }),
  objects: (app, facts) => queueObjects(app, facts),
  // The broker's volumes are always retained (its spec has no deletionPolicy), and so is its login.
  retainedSecrets: (app) => [mqCredentialsName(app)],
  readiness(app, children, _facts, now) {
    const ns = app.metadata.namespace ?? '';
    return diagnosed(
      statefulSetReadiness(children, ns, mqName(app)),
      podsOf(children, ns, selectorLabels(app, QUEUE)),
      now,
    );
  },
  endpoints: (app) => ({ queue: `${mqName(app)}.${app.metadata.namespace}.svc:${AMQP_PORT}` }),
};
