import { randomBytes } from 'node:crypto';
import type { ScalableApp } from '../api/scalable-app.ts';
import type { Kube } from '../kube/client.ts';
import { collectionPath } from '../kube/resources.ts';
import { MANAGER } from '../tiers/labels.ts';

export type EventType = 'Normal' | 'Warning';

/** Records core/v1 Events on a ScalableApp, so `kubectl describe sapp` tells what the operator did. */
export class EventRecorder {
  private readonly kube: Kube;
  private readonly onError: (err: unknown) => void;
  constructor(kube: Kube, onError: (err: unknown) => void) {
    this.kube = kube;
    this.onError = onError;
  }

  async record(
    app: Pick<ScalableApp, 'apiVersion' | 'kind' | 'metadata'>,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    const ns = app.metadata.namespace ?? 'default';
    const now = new Date().toISOString();
    try {
      await this.kube.create(collectionPath('v1', 'events', ns), {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${app.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: ns },
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
        message: message.slice(0, 1024),
        source: { component: MANAGER },
        reportingComponent: MANAGER,
        reportingInstance: process.env.HOSTNAME ?? 'local',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      // An event that cannot be written must never fail a reconcile.
      this.onError(err);
    }
  }
}
