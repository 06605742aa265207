// A change between the Erlang distribution over TLS and the plain one cannot roll through the
// brokers one at a time: a node of one kind cannot reach the other kind, so the first broker the
// StatefulSet restarts waits for peers it can never reach (Mnesia's table wait, then a crash loop)
// and the rolling update never goes on. Once one broker runs the new kind, the others are restarted
// together: a full-cluster restart, which RabbitMQ supports (quorum queues and their messages are on
// the volumes), and after which every node speaks the same distribution.
import type { V1StatefulSet } from '@kubernetes/client-node';
import type { ScalableApp } from '../api/scalable-app.ts';
import { selectorLabels } from '../tiers/labels.ts';
import { QUEUE, mqName, queueTls } from '../tiers/queue.ts';
import { podServesTls, specServesTls } from '../tiers/tls.ts';
import type { Restart } from './database-primary.ts';
import { podsOf, type ChildLookup } from './tier-status.ts';

const distribution = (tls: boolean) => (tls ? 'over TLS' : 'in plaintext');

/**
 * The brokers to restart so that the cluster speaks one Erlang distribution again: those still on
 * the other kind, once a broker runs the one the spec asks for. Nothing while every broker runs the
 * old kind (the StatefulSet restarts the first one itself), nor before the StatefulSet controller
 * has seen the template that asks for the new kind (a broker deleted earlier would come back as it
 * was), nor for a pod already going away. A single broker has no peer to disagree with.
 */
export function brokersOnOtherDistribution(app: ScalableApp, children: ChildLookup): Restart[] {
  const q = app.spec.queue;
  if (!q || q.replicas < 2) return [];
  const ns = app.metadata.namespace ?? '';
  const sts = children.get('StatefulSet', ns, mqName(app)) as V1StatefulSet | undefined;
  const wanted = queueTls(app);
  const templateTls = specServesTls(sts?.spec?.template.spec);
  const seen = (sts?.status?.observedGeneration ?? 0) >= (sts?.metadata?.generation ?? 1);
  if (!sts || templateTls !== wanted || !seen) return [];
  const live = podsOf(children, ns, selectorLabels(app, QUEUE)).filter((p) => !p.metadata?.deletionTimestamp);
  const onWanted = live.filter((p) => podServesTls(p) === wanted);
  if (onWanted.length === 0) return [];
  const why = (pod: string) =>
    `${pod} speaks the Erlang distribution ${distribution(!wanted)} and ${onWanted.map((p) => p.metadata!.name).join(', ')} ` +
    `${distribution(wanted)} (spec.queue.tls): they cannot cluster, so the brokers on the old one restart together`;
  return live
    .filter((p) => podServesTls(p) !== wanted)
    .map((p) => ({ pod: p.metadata!.name!, why: why(p.metadata!.name!) }));
}
