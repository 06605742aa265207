// What a refused child is, and the error that carries the refusals to the work queue's backoff
// (docs/adr/0013-refused-children.md).
import { ApiError } from '../kube/client.ts';

/** A child the apiserver would not take as the operator wrote it, with the apiserver's words. */
export interface Refusal {
  /** `Kind namespace/name`. */
  readonly child: string;
  /** The apiserver's HTTP status; absent when the operator itself holds the change back. */
  readonly status?: number;
  readonly message: string;
}

/**
 * Answers that mean the object itself was refused (invalid, forbidden by RBAC or an admission
 * policy, or of a kind the cluster does not serve), so a retry at once would be refused again.
 * Conflicts, throttling and server errors are not: they are retried as any failed reconcile is.
 */
export const REFUSALS: ReadonlySet<number> = new Set([400, 403, 404, 405, 413, 415, 422]);

/**
 * Thrown after the status and one Event have said which child was refused: the work queue then
 * retries with its capped exponential backoff, and nothing else is written in between.
 */
export class ChildRefusedError extends Error {
  readonly refusals: readonly Refusal[];
  constructor(refusals: readonly Refusal[]) {
    super(refusalMessage(refusals));
    this.refusals = refusals;
  }
}

export const refusalMessage = (refusals: readonly Refusal[]) =>
  refusals
    .map((r) => `${r.child} ${r.status ? `was refused (${r.status})` : 'is held back'}: ${r.message}`)
    .join('; ');

/** The apiserver's own message (its Status), without our method and path; bounded for a condition. */
export const apiserverWords = (e: ApiError) =>
  ((e.body as { message?: string } | undefined)?.message || e.message).slice(0, 512);
