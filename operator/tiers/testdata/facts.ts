// What the controller knows of an app whose every tier exists: generated credentials, the Gateway
// API served, the operator's namespace. For tests that build every child of any spec.
import type { ObservedFacts } from '../objects.ts';

export const ALL_FACTS: ObservedFacts = {
  gatewayApi: true,
  operatorNamespace: 'scalableapp-system',
  cachePassword: 'cache-password',
  cacheLogins: { operator: 'cache-operator-password', replication: 'cache-replication-password' },
  dbCredentials: { superuser: 's', replication: 'r', app: 'a' },
  shardCredentials: { superuser: 's', replication: 'r', app: 'a' },
  queueCredentials: {
    username: 'app',
    password: 'p',
    monitoringUsername: 'monitor',
    monitoringPassword: 'm',
    erlangCookie: 'cookie',
  },
};
