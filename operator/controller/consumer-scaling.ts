import type { ScalableApp } from '../api/scalable-app.ts';
import { QueueScalers, type DepthSource } from '../autoscaling/queue-poller.ts';
import { scalerPolicy, type Decision } from '../autoscaling/queue-scaler.ts';
import type { Clock } from '../runtime/clock.ts';
import { consumerName } from '../tiers/consumers.ts';
import type { ObservedFacts } from '../tiers/objects.ts';
import type { ConsumerScalingPort } from './tier-module.ts';

/** How to read an app's queue depths: asked on every sync, opened only when `key` changes. */
export interface DepthConnection {
  /**
   * What a reader depends on (the broker's address, the login, the CA), as a value that changes
   * when any of them does; never logged. An unchanged key keeps the open reader and its pool.
   */
  readonly key: string;
  /** A reader of queue depths (ready + unacknowledged) and how to close its connections. */
  readonly open: () => { readonly depth: DepthSource; readonly close: () => Promise<void> };
}

export interface ConsumerScalingDeps {
  /** How to reach this app's broker now. */
  readonly depthFor: (app: ScalableApp, facts: ObservedFacts) => DepthConnection;
  /** Asks for a reconcile of the app: a decision changed, so its Deployment and status must follow. */
  readonly enqueue: (appKey: string) => void;
  readonly onError: (key: string, error: unknown) => void;
  readonly onRecovered?: (key: string) => void;
  /** Every depth read, by `namespace/app/consumer` (the operator's metrics). */
  readonly onDepth?: (key: string, depth: number) => void;
  readonly clock?: Clock;
}

interface AppScalers {
  readonly scalers: QueueScalers;
  reader: { readonly key: string; readonly depth: DepthSource; readonly close: () => Promise<void> };
}

function openReader(connection: DepthConnection): AppScalers['reader'] {
  return { key: connection.key, ...connection.open() };
}

/**
 * The operator's side of queue-depth autoscaling: one poller per autoscaled consumer, kept in step
 * with the spec on every reconcile. The pollers decide; the reconcile that a decision triggers writes
 * the Deployment's replicas and the status, so both go through the one level-triggered path.
 */
export class ConsumerScaling implements ConsumerScalingPort {
  private readonly d: ConsumerScalingDeps;
  private readonly apps = new Map<string, AppScalers>();
  /**
   * The decision each poller last reported as a change. Status shows this one, not the latest poll's:
   * the latest differs in time (and depth) on every poll, and would make every reconcile write status.
   */
  private readonly reported = new Map<string, Decision>();
  /**
   * The last reported decision that changed the replica count. The latest decision turns to Steady on
   * the next poll, so without this a user would never see why the consumer has the replicas it has.
   */
  private readonly scaled = new Map<string, Decision>();
  constructor(deps: ConsumerScalingDeps) {
    this.d = deps;
  }

  sync(
    app: ScalableApp,
    facts: ObservedFacts,
    currentReplicas: (deployment: string) => number | undefined,
  ): NonNullable<ObservedFacts['consumerScale']> {
    const appKey = `${app.metadata.namespace}/${app.metadata.name}`;
    const autoscaled = (app.spec.consumers ?? []).filter((c) => c.autoscaling);
    let entry = this.apps.get(appKey);
    if (!autoscaled.length) {
      this.forget(appKey);
      return {};
    }
    const connection = this.d.depthFor(app, facts);
    if (!entry) {
      const created: AppScalers = {
        reader: openReader(connection),
        scalers: new QueueScalers({
          // Through the entry, so new credentials or a new broker apply from the next poll on.
          depth: (queue) => created.reader.depth(queue),
          onError: this.d.onError,
          ...(this.d.onRecovered ? { onRecovered: this.d.onRecovered } : {}),
          ...(this.d.onDepth ? { onDepth: this.d.onDepth } : {}),
          ...(this.d.clock ? { clock: this.d.clock } : {}),
        }),
      };
      entry = created;
      this.apps.set(appKey, entry);
    } else if (entry.reader.key !== connection.key) {
      void entry.reader.close();
      entry.reader = openReader(connection);
    }
    const result: Record<string, NonNullable<ObservedFacts['consumerScale']>[string]> = {};
    const wanted = new Set<string>();
    for (const c of autoscaled) {
      const a = c.autoscaling!;
      const key = `${appKey}/${c.name}`;
      wanted.add(key);
      const current = currentReplicas(consumerName(app, c)) ?? a.minReplicas;
      entry.scalers.ensure(
        key,
        {
          queue: c.queue,
          pollIntervalSeconds: a.pollIntervalSeconds,
          currentReplicas: current,
          policy: scalerPolicy(a),
        },
        (k, d) => {
          this.reported.set(k, d);
          if (d.desiredReplicas !== d.currentReplicas) this.scaled.set(k, d);
          this.d.enqueue(appKey);
        },
      );
      const decision = this.reported.get(key);
      const lastScale = this.scaled.get(key);
      result[c.name] = {
        replicas: decision ? decision.desiredReplicas : current,
        ...(decision ? { decision } : {}),
        ...(lastScale ? { lastScale } : {}),
      };
    }
    for (const key of entry.scalers.keys()) {
      if (wanted.has(key)) continue;
      entry.scalers.forget(key);
      this.reported.delete(key);
      this.scaled.delete(key);
    }
    return result;
  }

  forget(appKey: string): void {
    const entry = this.apps.get(appKey);
    if (!entry) return;
    this.apps.delete(appKey);
    for (const key of entry.scalers.keys()) {
      this.reported.delete(key);
      this.scaled.delete(key);
    }
    void entry.scalers.stopAll().then(() => entry.reader.close());
  }

  async stopAll(): Promise<void> {
    const entries = [...this.apps.values()];
    this.apps.clear();
    this.reported.clear();
    this.scaled.clear();
    await Promise.all(entries.map((e) => e.scalers.stopAll()));
    await Promise.all(entries.map((e) => e.reader.close()));
  }
}
