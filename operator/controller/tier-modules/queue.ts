import type { V1Pod } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import { APP_LOGIN_KEYS } from '../../server-config/app-login-keys.ts';
import { AMQP_PORT, CREDENTIAL_FILES, appPermissions } from '../../server-config/rabbitmq.ts';
import { selectorLabels } from '../../tiers/labels.ts';
import {
  QUEUE,
  mqCredentialsName,
  mqManagementUrl,
  mqName,
  mqServerNames,
  mqTlsSecretName,
  queueObjects,
  queueTls,
} from '../../tiers/queue.ts';
import { generatedSecret } from '../generated-secrets.ts';
import { issuedCertificates } from '../issued-certificates.ts';
import { brokersOnOtherDistribution } from '../broker-distribution.ts';
import { noDecisions, type Decisions, type TierContext, type TierModule } from '../tier-module.ts';
import { appRotationScope, rotationDecisions } from './rotation-decisions.ts';
import { diagnosed, podsOf, statefulSetReadiness } from '../tier-status.ts';

/** The message queue: a RabbitMQ cluster with quorum queues. */
export const queueTier: TierModule = {
  tier: 'queue',
  present: (app) => app.spec.queue !== undefined,
  async gather(ctx, app, earlier) {
    const f = CREDENTIAL_FILES;
    const k = APP_LOGIN_KEYS;
    const {
      values: [username, password, monitoringUsername, monitoringPassword, operatorPassword, erlangCookie],
      records: [login, loginPassword, retiring],
    } = await generatedSecret(
      ctx,
      app.metadata.namespace ?? '',
      mqCredentialsName(app),
      [
        f.username,
        f.password,
        f.monitoringUsername,
        f.monitoringPassword,
        f.operatorPassword,
        f.erlangCookie,
      ],
      // The rotation's record (the operator writes it).
      [k.login, k.password, k.retiring],
    );
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
          operatorPassword: operatorPassword!,
          erlangCookie: erlangCookie!,
          ...(login && loginPassword
            ? { appLogin: { name: login, password: loginPassword, ...(retiring ? { retiring } : {}) } }
            : {}),
        },
      },
    };
  },
  // Not a primary to move, but pods to restart together when the distribution's kind changes, and
  // the next step of a rotation of the app's login.
  decide: async (ctx, app, facts) =>
    rotateQueueLogin(ctx, app, {
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
  forget: (ctx, key) => ctx.queueLogins?.forget(key),
};

/** The next step of a rotation of the app's queue login (queue-login-rotation.ts). */
async function rotateQueueLogin(ctx: TierContext, app: ScalableApp, d: Decisions): Promise<Decisions> {
  const rotation = ctx.queueLogins;
  const credentials = d.facts.queueCredentials;
  if (!rotation || !credentials) return d;
  const secret = mqCredentialsName(app);
  return rotationDecisions(
    d,
    secret,
    () =>
      rotation.step({
        ...appRotationScope(ctx, app, d.facts, secret),
        credentials,
        brokers: ctx.children.select(
          'Pod',
          app.metadata.namespace ?? '',
          selectorLabels(app, QUEUE),
        ) as V1Pod[],
        replicas: app.spec.queue!.replicas,
        permissions: appPermissions(app.spec.queue!.queues),
        broker: { baseUrl: mqManagementUrl(app), ...(queueTls(app) ? { ca: d.facts.tls?.ca.cert } : {}) },
      }),
    (facts, queueCredentials) => ({ ...facts, queueCredentials }),
  );
}
