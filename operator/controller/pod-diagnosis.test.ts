import type { V1Pod } from '@kubernetes/client-node';
import { TIER_REASON } from './conditions.ts';
import {
  MAX_DIAGNOSIS_LENGTH,
  NOT_READY_AFTER_MS,
  clean,
  clip,
  diagnosePods,
  diagnosisSubject,
  probeBudgetMs,
} from './pod-diagnosis.ts';

const NOW = Date.parse('2025-06-01T12:00:00Z');
/** An RFC 3339 timestamp `s` seconds before NOW, as the informer cache holds it (a string). */
const ago = (s: number) => new Date(NOW - s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

type Json = Record<string, unknown>;

/** A pod as the cache holds it (parsed JSON: timestamps are strings). */
function pod(
  name: string,
  status: Json,
  opts: { spec?: Json; deleting?: boolean; phase?: string } = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'prod', ...(opts.deleting ? { deletionTimestamp: ago(1) } : {}) },
    spec: {
      containers: [
        {
          name: 'web',
          image: 'registry.example/shop:1',
          args: ['--token=ARG-SECRET'],
          env: [{ name: 'API_KEY', value: 'ENV-SECRET' }],
        },
      ],
      ...opts.spec,
    },
    status: { phase: opts.phase ?? 'Running', ...status },
  } as unknown as V1Pod;
}

const container = (name: string, s: Json): Json => ({
  name,
  image: 'registry.example/shop:1',
  imageID: '',
  ready: false,
  restartCount: 0,
  ...s,
});
const waiting = (reason: string, message?: string, extra: Json = {}) =>
  container('web', { state: { waiting: { reason, ...(message ? { message } : {}) } }, ...extra });
const withContainers = (...cs: Json[]) => ({ containerStatuses: cs });

const imagePull = (name: string) =>
  pod(
    name,
    withContainers(
      waiting(
        'ErrImagePull',
        'rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/shop:nope": not found',
      ),
    ),
  );
const crashLoop = (name: string, restarts = 5) =>
  pod(
    name,
    withContainers(
      waiting('CrashLoopBackOff', `back-off 5m0s restarting failed container=web pod=${name}_prod(uid)`, {
        restartCount: restarts,
        lastState: {
          terminated: {
            exitCode: 1,
            reason: 'Error',
            // FallbackToLogsOnError: the container's last log lines. Never copied into status.
            message: 'FATAL: connecting with password=LOG-SECRET failed',
            startedAt: ago(70),
            finishedAt: ago(65),
          },
        },
      }),
    ),
  );
const unschedulable = (name: string) =>
  pod(
    name,
    {
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message:
            '0/6 nodes are available: 6 Insufficient memory. preemption: 0/6 nodes are available: 6 No preemption victims found for incoming pod.',
        },
      ],
    },
    { phase: 'Pending' },
  );
const notReady = (name: string, startedSecondsAgo = 600) =>
  pod(name, withContainers(container('web', { state: { running: { startedAt: ago(startedSecondsAgo) } } })));

const diagnose = (pods: V1Pod[]) => diagnosePods(pods, NOW).diagnosis;

describe('diagnosePods: one class of problem each', () => {
  it('an image that cannot be pulled: ImagePullFailed, with the runtime message but not its gRPC wrapper', () => {
    expect(diagnose([imagePull('shop-web-7d9f-abcde')])).toEqual({
      reason: TIER_REASON.ImagePullFailed,
      severity: 0,
      pod: 'shop-web-7d9f-abcde',
      container: 'web',
      message:
        'pod shop-web-7d9f-abcde: container web cannot start: ErrImagePull: failed to pull and unpack image "registry.example/shop:nope": not found',
    });
  });

  it.each([
    ['ImagePullBackOff', 'Back-off pulling image "registry.example/shop:nope"', TIER_REASON.ImagePullFailed],
    [
      'ErrImageNeverPull',
      'Container image "shop:1" is not present with pull policy of Never',
      TIER_REASON.ImagePullFailed,
    ],
    [
      'InvalidImageName',
      'Failed to apply default image tag "Shop:1": invalid reference format',
      TIER_REASON.ImagePullFailed,
    ],
    ['CreateContainerConfigError', 'secret "shop-api" not found', TIER_REASON.ContainerConfigInvalid],
    [
      'CreateContainerError',
      'failed to reserve container name "web_shop-web"',
      TIER_REASON.ContainerCannotStart,
    ],
    [
      'RunContainerError',
      'failed to create containerd task: OCI runtime create failed: exec: "/app/run": stat /app/run: no such file or directory',
      TIER_REASON.ContainerCannotStart,
    ],
  ])('%s is a container that cannot start', (reason, message, tierReason) => {
    const d = diagnose([pod('shop-web-1', withContainers(waiting(reason, message)))]);
    expect(d?.reason).toBe(tierReason);
    expect(d?.message).toBe(`pod shop-web-1: container web cannot start: ${reason}: ${message}`);
  });

  it('a waiting reason without a message says the reason alone', () => {
    expect(diagnose([pod('p', withContainers(waiting('ImagePullBackOff')))])?.message).toBe(
      'pod p: container web cannot start: ImagePullBackOff',
    );
  });

  it('CrashLoopBackOff: restarts and the last exit, never the termination message or the back-off', () => {
    const d = diagnose([crashLoop('shop-db-0')]);
    expect(d).toMatchObject({ reason: TIER_REASON.ContainerCrashLooping, severity: 1, container: 'web' });
    expect(d?.message).toBe('pod shop-db-0: container web is crash-looping (5 restarts; last exit 1 Error)');
    expect(d?.message).not.toContain('LOG-SECRET');
  });

  it('a container running again after a failed run, not ready yet, is crash-looping', () => {
    const d = diagnose([
      pod(
        'shop-cache-1',
        withContainers(
          container('cache', {
            restartCount: 1,
            state: { running: { startedAt: ago(2) } },
            lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
          }),
        ),
      ),
    ]);
    expect(d?.reason).toBe(TIER_REASON.ContainerCrashLooping);
    expect(d?.message).toBe(
      'pod shop-cache-1: container cache is crash-looping (1 restart; last exit 137 OOMKilled)',
    );
  });

  it('a container that has just exited non-zero is crash-looping', () => {
    const d = diagnose([
      pod(
        'p',
        withContainers(
          container('web', { restartCount: 3, state: { terminated: { exitCode: 2, reason: 'Error' } } }),
        ),
      ),
    ]);
    expect(d?.message).toBe('pod p: container web is crash-looping (3 restarts; last exit 2 Error)');
  });

  it('a container exiting 0 over and over (CrashLoopBackOff) says so', () => {
    const d = diagnose([
      pod(
        'p',
        withContainers(
          waiting('CrashLoopBackOff', undefined, {
            restartCount: 4,
            lastState: { terminated: { exitCode: 0, reason: 'Completed' } },
          }),
        ),
      ),
    ]);
    expect(d?.message).toBe('pod p: container web is crash-looping (4 restarts; last exit 0 Completed)');
  });

  it('a ready container is no problem, whatever its past', () => {
    const recovered = pod(
      'p',
      withContainers(
        container('web', {
          ready: true,
          restartCount: 1,
          state: { running: { startedAt: ago(3600) } },
          lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
        }),
      ),
    );
    expect(diagnosePods([recovered], NOW)).toEqual({});
  });

  it('unschedulable: PodUnschedulable with the scheduler message', () => {
    const d = diagnose([unschedulable('shop-db-2')]);
    expect(d).toMatchObject({ reason: TIER_REASON.PodUnschedulable, severity: 2, pod: 'shop-db-2' });
    expect(d?.container).toBeUndefined();
    expect(d?.message).toBe(
      'pod shop-db-2: unschedulable: 0/6 nodes are available: 6 Insufficient memory. preemption: 0/6 nodes are available: 6 No preemption victims found for incoming pod.',
    );
  });

  it('an init container that cannot start is named as one', () => {
    const p = pod('shop-db-1', {
      initContainerStatuses: [
        container('init-data', { state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off' } } }),
      ],
      containerStatuses: [waiting('PodInitializing')],
    });
    expect(diagnose([p])?.message).toBe(
      'pod shop-db-1: init container init-data cannot start: ImagePullBackOff: Back-off',
    );
  });

  it('a pod starting normally (ContainerCreating, PodInitializing, scheduled and pending) is no problem', () => {
    const pods = [
      pod('a', withContainers(waiting('ContainerCreating')), { phase: 'Pending' }),
      pod('b', withContainers(waiting('PodInitializing')), { phase: 'Pending' }),
      pod('c', { conditions: [{ type: 'PodScheduled', status: 'True' }] }, { phase: 'Pending' }),
      pod('d', {}, { phase: 'Pending' }),
    ];
    expect(diagnosePods(pods, NOW)).toEqual({});
  });

  it('ignores pods being deleted and pods that finished', () => {
    expect(
      diagnose(
        [imagePull('a'), crashLoop('b')].map((p) => ({
          ...p,
          metadata: { ...p.metadata, deletionTimestamp: new Date(NOW) },
        })),
      ),
    ).toBeUndefined();
    expect(
      diagnose([pod('e', withContainers(waiting('ErrImagePull')), { phase: 'Failed' })]),
    ).toBeUndefined();
  });
});

describe('diagnosePods: running but not ready', () => {
  it('is no problem yet within the probes budget, and says when to look again', () => {
    expect(diagnosePods([notReady('p', 10)], NOW)).toEqual({ recheckAfterMs: NOT_READY_AFTER_MS - 10_000 });
  });

  it('is ContainerNotReady once the budget has run out, with no message the pod does not give', () => {
    expect(diagnosePods([notReady('shop-web-abc', 31)], NOW)).toEqual({
      diagnosis: {
        reason: TIER_REASON.ContainerNotReady,
        severity: 3,
        pod: 'shop-web-abc',
        container: 'web',
        message: 'pod shop-web-abc: container web running but not ready',
      },
    });
  });

  it("waits for the container's own probes: the startup budget, then the readiness probe's", () => {
    const slow = {
      containers: [
        {
          name: 'web',
          image: 'x',
          startupProbe: { periodSeconds: 10, failureThreshold: 30 },
          readinessProbe: { initialDelaySeconds: 5, periodSeconds: 5, failureThreshold: 3 },
        },
      ],
    };
    expect(probeBudgetMs(slow.containers[0])).toBe((300 + 5 + 15) * 1000);
    const p = (s: number) =>
      pod('p', withContainers(container('web', { state: { running: { startedAt: ago(s) } } })), {
        spec: slow,
      });
    expect(diagnosePods([p(200)], NOW)).toEqual({ recheckAfterMs: 120_000 });
    expect(diagnose([p(320)])?.reason).toBe(TIER_REASON.ContainerNotReady);
  });

  it('is ContainerNotReady at once when readiness went away after the container started (a probe now fails)', () => {
    const lost = pod('p', {
      conditions: [{ type: 'ContainersReady', status: 'False', lastTransitionTime: ago(5) }],
      ...withContainers(container('web', { state: { running: { startedAt: ago(20) } } })),
    });
    expect(diagnose([lost])?.message).toBe('pod p: container web running but not ready');
    // Readiness that was never there since this start (the transition is older) waits for the budget.
    const starting = pod('p', {
      conditions: [{ type: 'ContainersReady', status: 'False', lastTransitionTime: ago(25) }],
      ...withContainers(container('web', { state: { running: { startedAt: ago(20) } } })),
    });
    expect(diagnose([starting])).toBeUndefined();
  });

  it('asks for no recheck when a more severe problem is already named', () => {
    expect(diagnosePods([notReady('a', 10), crashLoop('b')], NOW).recheckAfterMs).toBeUndefined();
  });
});

describe('diagnosePods: the most telling problem, the same whatever the order', () => {
  const all = [
    notReady('a-ready-late'),
    unschedulable('b-pending'),
    crashLoop('c-crash'),
    imagePull('d-pull'),
  ];

  /** Every ordering of a list. */
  const permutations = <T>(xs: T[]): T[][] =>
    xs.length <= 1
      ? [xs]
      : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));

  it('cannot start > crash loop > unschedulable > not ready', () => {
    const seen: string[] = [];
    for (let n = all.length; n > 0; n--) seen.push(diagnose(all.slice(0, n))!.reason);
    expect(seen).toEqual([
      TIER_REASON.ImagePullFailed,
      TIER_REASON.ContainerCrashLooping,
      TIER_REASON.PodUnschedulable,
      TIER_REASON.ContainerNotReady,
    ]);
  });

  it('gives the same text for every order of the same pods', () => {
    const texts = new Set(permutations(all).map((ps) => diagnose(ps)?.message));
    expect([...texts]).toEqual([
      'pod d-pull: container web cannot start: ErrImagePull: failed to pull and unpack image "registry.example/shop:nope": not found',
    ]);
  });

  it('breaks ties by pod name, then by container (init containers first)', () => {
    const pods = [crashLoop('shop-web-b'), crashLoop('shop-web-a', 9), crashLoop('shop-web-c')];
    for (const ps of permutations(pods)) expect(diagnose(ps)?.pod).toBe('shop-web-a');
    const two = pod('p', {
      initContainerStatuses: [
        container('z-init', { state: { waiting: { reason: 'CreateContainerConfigError' } } }),
      ],
      containerStatuses: [
        container('b', { state: { waiting: { reason: 'ErrImagePull' } } }),
        container('a', { state: { waiting: { reason: 'ErrImagePull' } } }),
      ],
    });
    expect(diagnose([two])?.container).toBe('z-init');
    const regular = pod(
      'p',
      withContainers(
        container('b', { state: { waiting: { reason: 'ErrImagePull' } } }),
        container('a', { state: { waiting: { reason: 'ErrImagePull' } } }),
      ),
    );
    expect(diagnose([regular])?.container).toBe('a');
  });

  it('equally severe reasons of the cannot-start class rank alike: the pod name decides', () => {
    const config = pod('a', withContainers(waiting('CreateContainerConfigError', 'secret "x" not found')));
    expect(diagnose([imagePull('b'), config])?.reason).toBe(TIER_REASON.ContainerConfigInvalid);
  });
});

describe('diagnosePods: bounded, and nothing secret', () => {
  it(`never says more than ${MAX_DIAGNOSIS_LENGTH} characters`, () => {
    const long = pod(
      `shop-web-${'x'.repeat(200)}`,
      withContainers(waiting('ErrImagePull', 'y'.repeat(40_000))),
    );
    const d = diagnose([long])!;
    expect(d.message.length).toBeLessThanOrEqual(MAX_DIAGNOSIS_LENGTH);
    expect(d.message.endsWith('…')).toBe(true);
    expect(
      d.message.startsWith(`pod shop-web-${'x'.repeat(200)}: container web cannot start: ErrImagePull: y`),
    ).toBe(true);
    const unschedulableLong = pod('p', {
      conditions: [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'z '.repeat(5000) },
      ],
    });
    expect(diagnose([unschedulableLong])!.message.length).toBe(MAX_DIAGNOSIS_LENGTH);
  });

  it('puts a multi-line runtime message on one line', () => {
    expect(clean('first\n\tsecond\r\n  third ')).toBe('first second third');
  });

  it('cuts on a character, never inside a surrogate pair', () => {
    expect(clip('ab😀cd', 4)).toBe('ab😀…');
    expect(clip('abc', 3)).toBe('abc');
  });

  it('never copies args, env or a termination message; hides credentials in a URL', () => {
    const p = pod(
      'p',
      withContainers(
        waiting(
          'ErrImagePull',
          'failed to fetch https://robot:TOKEN-SECRET@registry.example/v2/shop/manifests/1',
        ),
      ),
    );
    const text = JSON.stringify([diagnose([p]), diagnose([crashLoop('q')])]);
    expect(text).toContain('https://***@registry.example/v2/shop/manifests/1');
    for (const secret of ['TOKEN-SECRET', 'ARG-SECRET', 'ENV-SECRET', 'LOG-SECRET'])
      expect(text).not.toContain(secret);
  });
});

describe('diagnosisSubject', () => {
  const SUMMARY = 'Deployment prod/shop-web: 1/2 replicas available';
  const crash = (pod: string, n: number) =>
    `${SUMMARY}; pod ${pod}: container web is crash-looping (${n} restarts; last exit 1 Error)`;

  it('reads back what a diagnosis is about', () => {
    expect(diagnosisSubject(crash('shop-web-a', 3))).toBe('pod shop-web-a: container web');
    expect(
      diagnosisSubject(
        'StatefulSet prod/shop-db: 2/3 instances ready; pod shop-db-2: unschedulable: 0/6 nodes',
      ),
    ).toBe('pod shop-db-2: unschedulable');
    expect(diagnosisSubject('x; pod p: init container init-data cannot start: ErrImagePull')).toBe(
      'pod p: init container init-data',
    );
    expect(diagnosisSubject(SUMMARY)).toBeUndefined();
  });
});

describe('clean', () => {
  // How fast it is on such messages is measured side by side in bench/diagnosis-clean.ts.
  it('makes a long adversarial message one clean line, and keeps no more than its limit', () => {
    expect(clean('y'.repeat(60_000))).toBe('y'.repeat(60_000));
    expect(clean('ab\n'.repeat(20_000))).toBe(`${'ab '.repeat(20_000)}`.trim());
    expect(clean('x://'.repeat(15_000))).toBe('x://'.repeat(15_000));
    expect(clean(`robot:pw@${'z'.repeat(100_000)}`)).toHaveLength(65_536);
  });

  it('hides user information cut short at the end of a long message', () => {
    const cut = clean(`${' '.repeat(65_520)}https://robot:TOKEN-SECRET@registry.example`);
    expect(cut).toBe('https://***@');
    // A host at the end of a message that was not cut is left alone.
    expect(clean('dial tcp: lookup https://registry.example')).toBe(
      'dial tcp: lookup https://registry.example',
    );
  });
});
