import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { isNotFound } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import type { DatabaseCredentials } from '../tiers/objects.ts';
import type { TierContext } from './tier-module.ts';
import { CREDENTIAL_FILES } from '../server-config/postgres-instance-script.ts';
import { APP_LOGIN_KEYS } from '../server-config/app-login-keys.ts';
import { SERVER_PASSWORD_KEYS } from '../server-config/postgres-passfile.ts';

/**
 * A Secret's values for `keys` as the informer's cache holds them or, when `usable` refuses those
 * (the cache may lag our own create or update), as the apiserver itself does. Undefined: no value.
 */
export async function liveSecretValues(
  ctx: Pick<TierContext, 'kube' | 'children'>,
  ns: string,
  name: string,
  keys: readonly string[],
  usable: (values: (string | undefined)[]) => boolean,
): Promise<(string | undefined)[]> {
  const read = (s: V1Secret | undefined) =>
    keys.map((k) => (s?.data?.[k] ? Buffer.from(s.data[k], 'base64').toString() : undefined));
  let values = read(ctx.children.get('Secret', ns, name) as V1Secret | undefined);
  if (!usable(values)) {
    try {
      values = read(await ctx.kube.get<V1Secret>(`${collectionPath('v1', 'secrets', ns)}/${name}`));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return values;
}

/** A generated Secret's values: the passwords, and the operator's records kept beside them. */
export interface GeneratedValues {
  /** One per key asked for, generated where the Secret has none. */
  readonly values: string[];
  /** One per record key asked for, as the Secret has it (never generated). */
  readonly records: (string | undefined)[];
}

/**
 * Values of a Secret of generated passwords, and of records the operator keeps in it, from one read
 * (so a record is never older than the passwords beside it). A value is generated only when the
 * apiserver itself (not just the cache, which may lag our own create) has none, so a password never
 * changes.
 */
export async function generatedSecret(
  ctx: Pick<TierContext, 'kube' | 'children'>,
  ns: string,
  name: string,
  keys: readonly string[],
  recordKeys: readonly string[] = [],
): Promise<GeneratedValues> {
  const read = await liveSecretValues(ctx, ns, name, [...keys, ...recordKeys], (v) =>
    v.slice(0, keys.length).every((x) => x !== undefined),
  );
  return {
    values: read.slice(0, keys.length).map((v) => v ?? randomBytes(24).toString('base64url')),
    records: read.slice(keys.length),
  };
}

/** A Postgres cluster's four generated logins (database tier and shards alike). */
export async function pgCredentials(
  ctx: Pick<TierContext, 'kube' | 'children'>,
  ns: string,
  secret: string,
): Promise<DatabaseCredentials> {
  const f = CREDENTIAL_FILES;
  const k = APP_LOGIN_KEYS;
  const s = SERVER_PASSWORD_KEYS;
  const {
    values: [superuser, replication, app, monitor],
    records: [name, password, retiring, serverSuperuser, serverReplication, previousSuperuser],
  } = await generatedSecret(
    ctx,
    ns,
    secret,
    [f.superuserPassword, f.replicationPassword, f.appPassword, f.monitorPassword],
    // The rotations' records (the operator writes them): the app's login, the servers' passwords.
    [k.login, k.password, k.retiring, s.superuser, s.replication, s.previousSuperuser],
  );
  return {
    superuser: superuser!,
    replication: replication!,
    app: app!,
    monitor: monitor!,
    ...(name && password ? { appLogin: { name, password, ...(retiring ? { retiring } : {}) } } : {}),
    ...(serverSuperuser && serverReplication
      ? {
          servers: {
            superuser: serverSuperuser,
            replication: serverReplication,
            ...(previousSuperuser ? { previousSuperuser } : {}),
          },
        }
      : {}),
  };
}
