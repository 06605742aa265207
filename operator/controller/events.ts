import { randomBytes } from 'node:crypto';
import type { EventReason } from './conditions.ts';
import type { ScalableApp } from '../api/scalable-app.ts';
import { ApiError, type Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import { MANAGER } from '../tiers/labels.ts';

export type EventType = 'Normal' | 'Warning';

/**
 * How long a repeat of an Event counts as the same one (client-go's EventCorrelator: 10 minutes):
 * within it a repeat raises the Event's count and lastTimestamp instead of adding an Event.
 */
export const REPEAT_WINDOW_MS = 10 * 60_000;
/** The Events remembered for aggregation; the least recently recorded is forgotten first. */
export const REMEMBERED_EVENTS = 4096;

interface Recorded {
  readonly name: string;
  count: number;
  lastMs: number;
}

type Involved = Pick<ScalableApp, 'apiVersion' | 'kind' | 'metadata'>;

/**
 * Records core/v1 Events on a ScalableApp, so `kubectl describe sapp` tells what the operator did.
 * The same Event again (same app, type, reason and message) within REPEAT_WINDOW_MS updates the one
 * already written (`count`, `lastTimestamp`), as client-go's recorder does: a problem that persists
 * through many reconciles is one Event with a count, not a new Event each time.
 */
export class EventRecorder {
  private readonly kube: Kube;
  private readonly onError: (err: unknown) => void;
  private readonly clock: Clock;
  private readonly recent = new Map<string, Recorded>();
  constructor(kube: Kube, onError: (err: unknown) => void, clock: Clock = systemClock) {
    this.kube = kube;
    this.onError = onError;
    this.clock = clock;
  }

  async record(app: Involved, type: EventType, reason: EventReason, message: string): Promise<void> {
    const ns = app.metadata.namespace ?? 'default';
    const text = message.slice(0, 1024);
    const key = JSON.stringify([ns, app.metadata.name, app.metadata.uid, type, reason, text]);
    const nowMs = this.clock.now();
    const now = new Date(nowMs).toISOString();
    try {
      const seen = this.recent.get(key);
      if (seen && nowMs - seen.lastMs < REPEAT_WINDOW_MS) {
        try {
          await this.kube.mergePatch(`${collectionPath('v1', 'events', ns)}/${seen.name}`, {
            count: seen.count + 1,
            lastTimestamp: now,
          });
          seen.count += 1;
          seen.lastMs = nowMs;
          this.remember(key, seen);
          return;
        } catch (err) {
          // Gone (Events expire after an hour by default): write it anew below.
          if (!(err instanceof ApiError && err.status === 404)) throw err;
        }
      }
      const name = `${app.metadata.name}.${randomBytes(8).toString('hex')}`;
      await this.kube.create(collectionPath('v1', 'events', ns), {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace: ns },
        involvedObject: {
          apiVersion: app.apiVersion,
          kind: app.kind,
          name: app.metadata.name,
          namespace: ns,
          uid: app.metadata.uid,
          resourceVersion: app.metadata.resourceVersion,
        },
        type,
        reason,
        message: text,
        source: { component: MANAGER },
        reportingComponent: MANAGER,
        reportingInstance: process.env.HOSTNAME ?? 'local',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
      this.remember(key, { name, count: 1, lastMs: nowMs });
    } catch (err) {
      // An event that cannot be written must never fail a reconcile.
      this.onError(err);
    }
  }

  /** Most recent last (a Map keeps insertion order), at most REMEMBERED_EVENTS. */
  private remember(key: string, r: Recorded): void {
    this.recent.delete(key);
    this.recent.set(key, r);
    if (this.recent.size > REMEMBERED_EVENTS) this.recent.delete(this.recent.keys().next().value!);
  }
}
