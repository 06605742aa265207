import type { V1Container, V1ContainerStatus, V1Pod, V1Probe } from '@kubernetes/client-node';
import { TIER_REASON, type PodProblemReason } from './conditions.ts';

/**
 * Why a tier's pods cannot run, as the pods themselves say it: the one most telling problem among
 * them, for the tier condition's reason and message. Pure: the same pods (in any order) and the same
 * clock give the same text, so status never flaps between pods and an unchanged world writes nothing.
 *
 * Only the pod's status is read (waiting reasons and their messages, exit codes, conditions), never
 * its spec's command, args or env, nor a termination message (it may be the container's last log
 * lines): neither belongs in a status any reader of the app can see.
 */

/** The longest diagnosis: condition messages may hold 32 KiB, but a status is read by people. */
export const MAX_DIAGNOSIS_LENGTH = 300;
/** A running container is called not ready only once its probes had this long, at least, to pass. */
export const NOT_READY_AFTER_MS = 30_000;

export interface PodDiagnosis {
  readonly reason: PodProblemReason;
  /** 0 is the most severe: cannot start (0) > crash loop (1) > unschedulable (2) > not ready (3). */
  readonly severity: number;
  readonly pod: string;
  /** The container it is about (`init container x` for an init container), absent for the pod. */
  readonly container?: string;
  /** `pod <name>: ...`, at most MAX_DIAGNOSIS_LENGTH characters. */
  readonly message: string;
}

export interface PodsDiagnosis {
  readonly diagnosis?: PodDiagnosis;
  /**
   * When a running container's probes' budget runs out and it may then be called not ready, while
   * that could still change the diagnosis: look again after this long.
   */
  readonly recheckAfterMs?: number;
}

/** Kubelet waiting reasons of a container that cannot start, by the tier reason they map to. */
const CANNOT_START: Readonly<Record<string, PodProblemReason>> = {
  ErrImagePull: TIER_REASON.ImagePullFailed,
  ImagePullBackOff: TIER_REASON.ImagePullFailed,
  ErrImageNeverPull: TIER_REASON.ImagePullFailed,
  InvalidImageName: TIER_REASON.ImagePullFailed,
  ImageInspectError: TIER_REASON.ImagePullFailed,
  RegistryUnavailable: TIER_REASON.ImagePullFailed,
  SignatureValidationFailed: TIER_REASON.ImagePullFailed,
  CreateContainerConfigError: TIER_REASON.ContainerConfigInvalid,
  CreateContainerError: TIER_REASON.ContainerCannotStart,
  RunContainerError: TIER_REASON.ContainerCannotStart,
  PreCreateHookError: TIER_REASON.ContainerCannotStart,
  PreStartHookError: TIER_REASON.ContainerCannotStart,
  PostStartHookError: TIER_REASON.ContainerCannotStart,
};

const SEVERITY: Readonly<Record<PodProblemReason, number>> = {
  [TIER_REASON.ImagePullFailed]: 0,
  [TIER_REASON.ContainerConfigInvalid]: 0,
  [TIER_REASON.ContainerCannotStart]: 0,
  [TIER_REASON.ContainerCrashLooping]: 1,
  [TIER_REASON.PodUnschedulable]: 2,
  [TIER_REASON.ContainerNotReady]: 3,
};

interface Candidate extends PodDiagnosis {
  readonly init: boolean;
}

/** The most telling problem of these pods, if any: most severe first, then by pod and container name. */
export function diagnosePods(pods: readonly V1Pod[], now: number = Date.now()): PodsDiagnosis {
  const found: Candidate[] = [];
  let recheckAfterMs: number | undefined;
  for (const pod of pods) {
    const r = diagnosePod(pod, now);
    found.push(...r.found);
    if (r.recheckAfterMs !== undefined)
      recheckAfterMs = Math.min(recheckAfterMs ?? Infinity, r.recheckAfterMs);
  }
  found.sort(compare);
  const diagnosis = found[0];
  // Only a not-ready container can appear by the clock alone; a more severe problem would outrank it.
  const recheck =
    recheckAfterMs !== undefined && (!diagnosis || diagnosis.reason === TIER_REASON.ContainerNotReady)
      ? { recheckAfterMs }
      : {};
  if (!diagnosis) return recheck;
  const { init: _init, ...d } = diagnosis;
  return { diagnosis: d, ...recheck };
}

function diagnosePod(pod: V1Pod, now: number): { found: Candidate[]; recheckAfterMs?: number } {
  const name = pod.metadata?.name ?? '';
  const phase = pod.status?.phase;
  // A pod on its way out, or one that has finished, is not what holds the tier back.
  if (pod.metadata?.deletionTimestamp || phase === 'Succeeded' || phase === 'Failed') return { found: [] };
  const found: Candidate[] = [];
  let recheckAfterMs: number | undefined;
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const why = clean(scheduled.message ?? '') || 'no node fits';
    found.push(candidate(TIER_REASON.PodUnschedulable, name, undefined, false, `unschedulable: ${why}`));
  }
  const lists: [boolean, V1ContainerStatus[] | undefined, V1Container[] | undefined][] = [
    [true, pod.status?.initContainerStatuses, pod.spec?.initContainers],
    [false, pod.status?.containerStatuses, pod.spec?.containers],
  ];
  for (const [init, statuses, specs] of lists) {
    for (const cs of statuses ?? []) {
      const label = `${init ? 'init container' : 'container'} ${cs.name}`;
      const waiting = cs.state?.waiting;
      const cannotStart = waiting?.reason ? CANNOT_START[waiting.reason] : undefined;
      if (cannotStart) {
        const detail = clean(waiting?.message ?? '');
        const text = `${label} cannot start: ${waiting!.reason}${detail ? `: ${detail}` : ''}`;
        found.push(candidate(cannotStart, name, cs.name, init, text));
        continue;
      }
      if (cs.ready) continue;
      const current = cs.state?.terminated;
      const last = cs.lastState?.terminated;
      const failed = current ?? last;
      if (
        waiting?.reason === 'CrashLoopBackOff' ||
        (current && current.exitCode !== 0) ||
        (!current && last && last.exitCode !== 0)
      ) {
        const restarts = cs.restartCount ?? 0;
        const exit = failed
          ? `last exit ${failed.exitCode}${failed.reason ? ` ${clean(failed.reason)}` : ''}`
          : 'last exit unknown';
        const text = `${label} is crash-looping (${restarts} ${restarts === 1 ? 'restart' : 'restarts'}; ${exit})`;
        found.push(candidate(TIER_REASON.ContainerCrashLooping, name, cs.name, init, text));
        continue;
      }
      // An init container runs to completion; only the app's containers are judged on readiness.
      const running = cs.state?.running;
      if (init || !running) continue;
      const started = time(running.startedAt);
      const readiness =
        pod.status?.conditions?.find((c) => c.type === 'ContainersReady') ??
        pod.status?.conditions?.find((c) => c.type === 'Ready');
      // Readiness went away after this run started: it passed once, and a probe fails now.
      const lost = readiness?.status === 'False' && time(readiness.lastTransitionTime) > started;
      const budget = Math.max(NOT_READY_AFTER_MS, probeBudgetMs(specs?.find((s) => s.name === cs.name)));
      const waited = now - started;
      if (lost || Number.isNaN(started) || waited >= budget) {
        found.push(
          candidate(TIER_REASON.ContainerNotReady, name, cs.name, init, `${label} running but not ready`),
        );
      } else {
        recheckAfterMs = Math.min(recheckAfterMs ?? Infinity, budget - waited);
      }
    }
  }
  return { found, ...(recheckAfterMs !== undefined ? { recheckAfterMs } : {}) };
}

function candidate(
  reason: PodProblemReason,
  pod: string,
  container: string | undefined,
  init: boolean,
  text: string,
): Candidate {
  return {
    reason,
    severity: SEVERITY[reason],
    pod,
    ...(container !== undefined ? { container } : {}),
    init,
    message: clip(`pod ${pod}: ${text}`, MAX_DIAGNOSIS_LENGTH),
  };
}

/** Most severe first; then by pod name, init containers before the others, container name. */
function compare(a: Candidate, b: Candidate): number {
  return (
    a.severity - b.severity ||
    order(a.pod, b.pod) ||
    Number(b.init) - Number(a.init) ||
    order(a.container ?? '', b.container ?? '') ||
    order(a.message, b.message)
  );
}
// Code-unit order: the same on every machine, whatever its locale.
const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * How long a container's probes may take before it is ready: the startup probe's whole budget, then
 * the readiness probe's initial delay and its failure threshold of periods (kubelet defaults: 10 s, 3).
 */
export function probeBudgetMs(c: Pick<V1Container, 'startupProbe' | 'readinessProbe'> | undefined): number {
  const budget = (p: V1Probe | undefined) =>
    p ? (p.initialDelaySeconds ?? 0) + (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3) : 0;
  return (budget(c?.startupProbe) + budget(c?.readinessProbe)) * 1000;
}

/** A timestamp as the cache holds it (a string from JSON; a Date by the client's types), in ms. */
function time(t: Date | string | undefined): number {
  return t === undefined ? NaN : new Date(t).getTime();
}

/**
 * A runtime message made fit for status: one line, without the gRPC wrapper, without credentials in
 * a URL (`scheme://user:password@`).
 */
export function clean(message: string): string {
  // Every expression below is bounded or linear, and the cut bounds the work (what is kept is clipped
  // to fit later). User information cut short at the very end is hidden all the same.
  const kept = message.slice(0, CLEAN_INPUT_LIMIT);
  const userinfo =
    message.length > kept.length
      ? /\b([a-z][a-z0-9+.-]{0,31}:\/\/)[^\s/@]{1,256}(?:@|$)/gi
      : /\b([a-z][a-z0-9+.-]{0,31}:\/\/)[^\s/@]{1,256}@/gi;
  return kept
    .replace(/\p{Cc}+/gu, ' ')
    .replace(/rpc error: code = \w+ desc = /g, '')
    .replace(userinfo, '$1***@')
    .replace(/\s+/g, ' ')
    .trim();
}
const CLEAN_INPUT_LIMIT = 65_536;

/** At most `max` characters (code points), an ellipsis marking a cut. */
export function clip(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/**
 * What a diagnosis is about, read back from a condition message: `pod <name>: container <c>`,
 * `pod <name>: init container <c>` or `pod <name>: unschedulable`. The restart count, exit code and
 * runtime message may change while this stays: it is the same problem still.
 */
export function diagnosisSubject(message: string | undefined): string | undefined {
  return /(?:^|; )(pod [^\s:]+: (?:(?:init )?container \S+|unschedulable))/.exec(message ?? '')?.[1];
}
