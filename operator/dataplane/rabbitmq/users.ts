// The app's logins on a RabbitMQ cluster, as the operator rotates them (docs/adr/0027), through the
// management API with the operator's own login (QUEUE_OPERATOR_USER, tagged administrator). Users
// live in the cluster's replicated database: one call reaches every node.
import { createHash, randomBytes } from 'node:crypto';
import { VHOST, type VhostPermissions } from '../../server-config/rabbitmq.ts';
import { BrokerApiError, managementApi, type BrokerAdminOptions } from './admin.ts';

export interface BrokerUsers {
  /**
   * Creates or updates a login of the app: this password, no tags (no management API), these
   * permissions on the vhost. A connection already open with it stays open: RabbitMQ checks a
   * password only when a connection logs in.
   */
  setLogin(name: string, password: string, permissions: VhostPermissions): Promise<void>;
  /** Deletes a login (RabbitMQ closes its connections); one already gone is no error. */
  deleteLogin(name: string): Promise<void>;
  /** How many connections are logged in with the login, on every node. */
  connections(name: string): Promise<number>;
  close(): Promise<void>;
}

const HASHING = 'rabbit_password_hashing_sha256';

/**
 * A password as RabbitMQ stores it with rabbit_password_hashing_sha256: base64 of a 4-byte salt and
 * SHA-256 of the salt and the password. Sent instead of the password, so the password never reaches
 * the broker (nor any log of it); the broker checks a login against it as against one it hashed.
 */
export function rabbitPasswordHash(password: string, salt: Buffer = randomBytes(4)): string {
  if (salt.length !== 4) throw new Error('a RabbitMQ password salt is 4 bytes');
  const digest = createHash('sha256')
    .update(Buffer.concat([salt, Buffer.from(password, 'utf8')]))
    .digest();
  return Buffer.concat([salt, digest]).toString('base64');
}

export function brokerUsers(o: BrokerAdminOptions): BrokerUsers {
  const api = managementApi(o);
  // Paths hold the login's name, which is half of a credential: errors name the step instead.
  const user = (name: string) => `/api/users/${encodeURIComponent(name)}`;
  return {
    async setLogin(name, password, permissions) {
      if (!password) throw new Error("the app's queue password must not be empty");
      await api.put(
        user(name),
        { password_hash: rabbitPasswordHash(password), hashing_algorithm: HASHING, tags: '' },
        "setting the app's queue login",
      );
      await api.put(
        `/api/permissions/${encodeURIComponent(VHOST)}/${encodeURIComponent(name)}`,
        permissions,
        "granting the app's queue login its permissions",
      );
    },
    async deleteLogin(name) {
      try {
        await api.delete(user(name), "deleting the app's retired queue login");
      } catch (err) {
        if (err instanceof BrokerApiError && err.status === 404) return;
        throw err;
      }
    },
    async connections(name) {
      const open = await api.get<{ user?: string }[]>('/api/connections?columns=user');
      return open.filter((c) => c.user === name).length;
    },
    close: () => api.close(),
  };
}
