import type { V1ConfigMap, V1Pod } from '@kubernetes/client-node';
import type { ScalableApp } from '../../api/scalable-app.ts';
import { appPodsView, rotationDecisions } from './rotation-decisions.ts';
import {
  LAST_FAILOVER_REASON,
  LAST_FAILOVER_TIME,
  pgConfigName,
  pgPrimary,
  pgServerNames,
  pgTlsSecretName,
  type DatabaseCredentials,
  type PgCluster,
} from '../../tiers/postgres-cluster.ts';
import type { ServerCertRequest } from '../issued-certificates.ts';
import { backupCertificateRequests, backupFacts } from '../../tiers/postgres-base-backup.ts';
import type { LoginScope, RotationStep } from '../app-login-rotation.ts';
import type { ObservedFacts, PgClusterFacts } from '../../tiers/objects.ts';
import { metaTime } from '../conditions.ts';
import type { DatabaseDecision, Restart } from '../database-primary.ts';
import { noDecisions, type Decisions, type Move, type RoleGroup, type TierContext } from '../tier-module.ts';

/**
 * A Postgres cluster's recorded primary and last failover (its ConfigMap), its pods, and with backups
 * its backup Jobs and what the schedule asks for now.
 */
export function clusterFacts(
  ctx: Pick<TierContext, 'children' | 'now'>,
  ns: string,
  c: PgCluster,
): PgClusterFacts {
  const cm = ctx.children.get('ConfigMap', ns, pgConfigName(c)) as V1ConfigMap | undefined;
  const time = cm?.metadata?.annotations?.[LAST_FAILOVER_TIME];
  const reason = cm?.metadata?.annotations?.[LAST_FAILOVER_REASON];
  return {
    ...(cm?.data?.primary ? { primary: cm.data.primary } : {}),
    ...(time && reason ? { lastFailover: { time, reason } } : {}),
    pods: ctx.children.select('Pod', ns, c.selector) as V1Pod[],
    ...(c.spec.backup ? { backups: backupFacts(c, ctx.children, ctx.now()) } : {}),
  };
}

/** The certificates a cluster needs: its server's with TLS, and those of its base backups. */
export const pgCertificateRequests = (c: PgCluster): ServerCertRequest[] => [
  ...(c.spec.tls.enabled ? [pgCertificateRequest(c)] : []),
  ...backupCertificateRequests(c),
];

/** The server certificate a cluster with TLS needs. */
export const pgCertificateRequest = (c: PgCluster): ServerCertRequest => ({
  secret: pgTlsSecretName(c),
  dnsNames: pgServerNames(c),
});

export const pgRoles = (clusters: readonly PgCluster[]): RoleGroup[] =>
  clusters.map((c) => ({ selector: c.selector, primary: pgPrimary(c) }));

/** One Postgres cluster to decide on, and how a moved primary is written into the facts. */
export interface PgChoice {
  readonly name: string;
  decide(facts: ObservedFacts): Promise<DatabaseDecision>;
  moved(facts: ObservedFacts, primary: string, lastFailover: { time: string; reason: string }): ObservedFacts;
}

/**
 * The database tier and each shard are Postgres clusters kept by the same rules (database-primary.ts).
 * One cluster whose servers cannot be asked holds back neither the others nor the rest of the app.
 */
export async function decidePgClusters(
  ctx: TierContext,
  facts: ObservedFacts,
  clusters: readonly PgChoice[],
): Promise<Decisions> {
  let out = facts;
  const moved: Move[] = [];
  const refused: Decisions['refused'][number][] = [];
  const failedChecks: Decisions['failedChecks'][number][] = [];
  const settled: string[] = [];
  const restart: Restart[] = [];
  let recheckMs: number | undefined;
  let switchoverDone: string | undefined;
  const soonest = (ms: number) => (recheckMs = recheckMs === undefined ? ms : Math.min(ms, recheckMs));
  for (const c of clusters) {
    let d: DatabaseDecision;
    try {
      d = await c.decide(out);
    } catch (error) {
      failedChecks.push({ cluster: c.name, error });
      continue;
    }
    if (d.kind !== 'moved' && d.recheckMs !== undefined) soonest(d.recheckMs);
    if (d.kind === 'refused') refused.push({ cluster: c.name, reason: d.reason });
    else settled.push(c.name);
    if (d.kind === 'keep' || d.kind === 'moved') restart.push(...d.restart);
    if ((d.kind === 'keep' || d.kind === 'moved') && d.switchoverDone) switchoverDone = d.switchoverDone;
    if (d.kind !== 'moved') continue;
    out = c.moved(out, d.primary, { time: metaTime(ctx.now()), reason: d.reason });
    moved.push({
      cluster: c.name,
      from: d.previous,
      to: d.primary,
      reason: d.reason,
      what: d.planned ? 'database switchover' : 'database failover',
      event: d.planned ? { type: 'Normal', reason: 'Switchover' } : { type: 'Warning', reason: 'Failover' },
    });
  }
  return {
    ...noDecisions(out),
    moved,
    refused,
    settled,
    failedChecks,
    restart,
    ...(recheckMs !== undefined ? { recheckMs } : {}),
    ...(switchoverDone ? { switchoverDone } : {}),
  };
}

/** One credentials Secret of Postgres clusters, as the database tier or the shards hold it. */
export interface LoginChoice {
  readonly secret: string;
  readonly credentials: (facts: ObservedFacts) => DatabaseCredentials | undefined;
  readonly clusters: (facts: ObservedFacts) => readonly PgCluster[];
  readonly withCredentials: (facts: ObservedFacts, credentials: DatabaseCredentials) => ObservedFacts;
}

/**
 * The next steps of a change of the servers' own passwords (server-password-rotation.ts) and of a
 * rotation of the app's password (app-login-rotation.ts), in that order, after the primaries are
 * decided: each record goes into the facts (applied with the credentials Secret), each Event into
 * the notices, and a failed step into the failed checks, tried again like a primary's.
 */
export async function rotateLogins(
  ctx: TierContext,
  app: ScalableApp,
  d: Decisions,
  choice: LoginChoice,
): Promise<Decisions> {
  const servers = ctx.serverPasswords;
  const afterServers = servers
    ? await rotateWith(ctx, app, d, choice, `${choice.secret} (server passwords)`, (scope) =>
        servers.step(scope),
      )
    : d;
  const logins = ctx.appLogins;
  return logins
    ? rotateWith(ctx, app, afterServers, choice, choice.secret, (scope) => logins.step(scope))
    : afterServers;
}

async function rotateWith(
  ctx: TierContext,
  app: ScalableApp,
  d: Decisions,
  choice: LoginChoice,
  name: string,
  step: (scope: LoginScope) => Promise<RotationStep>,
): Promise<Decisions> {
  const credentials = choice.credentials(d.facts);
  if (!credentials) return d;
  return rotationDecisions(
    d,
    name,
    () =>
      step({
        secret: choice.secret,
        credentials,
        clusters: choice.clusters(d.facts),
        ...appPodsView(ctx, app, d.facts),
      }),
    choice.withCredentials,
  );
}
