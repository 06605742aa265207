// The Warning Events a status change brings (tierWarnings): one when a tier's problem appears or
// changes, none while it goes on.
import { TIER_REASON, type Condition, type ConditionInput } from './conditions.ts';
import { tierWarnings } from './tier-reports.ts';

const ago = (s: number) => new Date(Date.parse('2025-06-01T12:00:00Z') - s * 1000).toISOString();

describe('tierWarnings', () => {
  const prev = (type: string, status: 'True' | 'False', reason: string, message: string): Condition => ({
    type,
    status,
    reason,
    message,
    lastTransitionTime: ago(100),
    observedGeneration: 1,
  });
  const next = (type: string, status: 'True' | 'False', reason: string, message: string): ConditionInput => ({
    type,
    status,
    reason,
    message,
  });
  const SUMMARY = 'Deployment prod/shop-web: 1/2 replicas available';
  const crash = (pod: string, n: number) =>
    `${SUMMARY}; pod ${pod}: container web is crash-looping (${n} restarts; last exit 1 Error)`;

  it('one Warning when a diagnosis appears, named by its reason', () => {
    const events = tierWarnings(
      [prev('WebReady', 'False', 'ReplicasUnavailable', SUMMARY)],
      [next('WebReady', 'False', TIER_REASON.ContainerCrashLooping, crash('shop-web-a', 3))],
    );
    expect(events).toEqual([
      { reason: TIER_REASON.ContainerCrashLooping, message: `WebReady: ${crash('shop-web-a', 3)}` },
    ]);
    // The first status of an app, and a tier that was ready, count as appearing too.
    expect(
      tierWarnings(undefined, [next('WebReady', 'False', 'ContainerCrashLooping', crash('a', 1))]),
    ).toHaveLength(1);
    expect(
      tierWarnings(
        [prev('WebReady', 'True', 'Available', SUMMARY)],
        [next('WebReady', 'False', 'ContainerCrashLooping', crash('a', 1))],
      ),
    ).toHaveLength(1);
  });

  it('none while the same problem goes on (restart count, exit code or pull phase changing)', () => {
    expect(
      tierWarnings(
        [prev('WebReady', 'False', 'ContainerCrashLooping', crash('shop-web-a', 3))],
        [next('WebReady', 'False', 'ContainerCrashLooping', crash('shop-web-a', 4))],
      ),
    ).toEqual([]);
    expect(
      tierWarnings(
        [
          prev(
            'DatabaseReady',
            'False',
            'ImagePullFailed',
            'x; pod db-0: container postgres cannot start: ErrImagePull: not found',
          ),
        ],
        [
          next(
            'DatabaseReady',
            'False',
            'ImagePullFailed',
            'x; pod db-0: container postgres cannot start: ImagePullBackOff: Back-off',
          ),
        ],
      ),
    ).toEqual([]);
  });

  it('one when the problem changes pod or reason; none when it goes away', () => {
    const was = [prev('WebReady', 'False', 'ContainerCrashLooping', crash('shop-web-a', 3))];
    expect(
      tierWarnings(was, [next('WebReady', 'False', 'ContainerCrashLooping', crash('shop-web-b', 1))]),
    ).toHaveLength(1);
    expect(
      tierWarnings(was, [
        next(
          'WebReady',
          'False',
          'ContainerNotReady',
          `${SUMMARY}; pod shop-web-a: container web running but not ready`,
        ),
      ]),
    ).toHaveLength(1);
    expect(tierWarnings(was, [next('WebReady', 'True', 'Available', SUMMARY)])).toEqual([]);
    expect(tierWarnings(was, [next('WebReady', 'False', 'RollingOut', SUMMARY)])).toEqual([]);
  });

  it('one per tier whose diagnosis is new, none for the other conditions', () => {
    const events = tierWarnings(
      [],
      [
        next('Ready', 'False', 'TiersNotReady', 'WebReady: ...'),
        next('WebReady', 'False', 'ContainerCrashLooping', crash('a', 1)),
        next(
          'QueueReady',
          'False',
          'PodUnschedulable',
          'StatefulSet prod/shop-mq: 0/1 instances ready; pod shop-mq-0: unschedulable: x',
        ),
      ],
    );
    expect(events.map((e) => e.reason)).toEqual(['ContainerCrashLooping', 'PodUnschedulable']);
  });

  it('one when the cluster lacks what the spec needs, none while it still does', () => {
    const missing =
      'spec.web.expose.type is Gateway, but this cluster does not serve gateway.networking.k8s.io/v1';
    const first = tierWarnings(
      [prev('WebReady', 'False', 'RollingOut', SUMMARY)],
      [next('WebReady', 'False', TIER_REASON.GatewayAPIMissing, missing)],
    );
    expect(first).toEqual([{ reason: TIER_REASON.GatewayAPIMissing, message: `WebReady: ${missing}` }]);
    expect(
      tierWarnings(
        [prev('WebReady', 'False', TIER_REASON.GatewayAPIMissing, missing)],
        [next('WebReady', 'False', TIER_REASON.GatewayAPIMissing, missing)],
      ),
    ).toEqual([]);
  });

  it('none for the ordinary course of a rollout', () => {
    for (const reason of [
      'NotCreated',
      'RolloutPending',
      'RollingOut',
      'ReplicasUnavailable',
      'PrimaryUnavailable',
    ])
      expect(tierWarnings(undefined, [next('WebReady', 'False', reason, SUMMARY)])).toEqual([]);
  });
});
