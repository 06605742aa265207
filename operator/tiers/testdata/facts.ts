// What the controller knows of an app whose every tier exists: generated credentials, the Gateway
// API served, the operator's namespace. For tests that build every child of any spec.
import { steadyCachePassword, type ObservedFacts, type TlsFacts } from '../objects.ts';

/**
 * Certificates as the builders see them: text they carry into Secrets and never parse, so any text
 * does here. Every server Secret name finds the same pair (real ones are issued per cluster by
 * controller/issued-certificates.ts, tested there).
 */
export const TEST_TLS: TlsFacts = {
  ca: { cert: 'test-ca-cert', key: 'test-ca-key' },
  servers: new Proxy({} as Record<string, { cert: string; key: string }>, {
    get: (_t, name) => (typeof name === 'string' ? { cert: `${name}-cert`, key: `${name}-key` } : undefined),
  }),
};

export const ALL_FACTS: ObservedFacts = {
  gatewayApi: true,
  operatorNamespace: 'scalableapp-system',
  cachePassword: steadyCachePassword('cache-password'),
  cacheLogins: { operator: 'cache-operator-password', replication: 'cache-replication-password' },
  dbCredentials: { superuser: 's', replication: 'r', app: 'a' },
  shardCredentials: { superuser: 's', replication: 'r', app: 'a' },
  tls: TEST_TLS,
  queueCredentials: {
    username: 'app',
    password: 'p',
    monitoringUsername: 'monitor',
    monitoringPassword: 'm',
    erlangCookie: 'cookie',
  },
};
