import type { Config } from '../../config.js';
import type { JobRequest } from '../../spool/state.js';

/**
 * What the runner decides on a scheduling tick, as a pure function of what it found: which
 * pending jobs to dispatch (FIFO, up to the concurrency, never two with one exclusion key side
 * by side), which to cancel, and which jobs whose supervisor is gone to finalize. runner.ts
 * reads the spool, calls `planTick`, and acts on the plan.
 */

/**
 * Jobs with the same key never run side by side; null: the job excludes nothing. Jobs without
 * isolation are kept apart by the work tree they run in (the repository's, found at submit, else
 * the cwd); an isolated job has its own, but the jobs continuing one share its worktree.
 */
export function exclusionKey(request: JobRequest, config: Pick<Config, 'exclusive_cwd'>): string | null {
  if (request.isolation === 'worktree') return request.continue_of && request.worktree ? `${WORKTREE_KEY}${request.worktree.id}` : null;
  return config.exclusive_cwd ? request.work_tree ?? request.cwd : null;
}

const WORKTREE_KEY = 'worktree:';

/**
 * A job whose worker is gone frees its slot while its end is recorded, and its key with it,
 * except a worktree's: that end commits what is left in the worktree and removes it, so a job
 * continuing the same worktree waits for it.
 */
function keyHeldAfterWorker(key: string | null): key is string {
  return key !== null && key.startsWith(WORKTREE_KEY);
}

/** Whether a pending job may be claimed, and under which attempt number (reconcile.ts judges it). */
export type ClaimStatus = { kind: 'free'; nextAttempt: number } | { kind: 'held'; attempt: number };

/** A job handed to one of this runner's supervisors; `slotFree` once its worker is gone. */
export interface OwnJob {
  key: string | null;
  slotFree: boolean;
}

/** An active job no supervisor of this runner holds, in FIFO order. */
export type ActiveJob =
  /** `running`, or ended by a done report while its worker still runs: it holds a slot. */
  | { id: string; holdsSlot: true; key: string | null; orphaned: boolean }
  | { id: string; holdsSlot: false; key: string | null };

export interface TickInput {
  concurrency: number;
  /** Every pending job's cancel request is looked at (the slow poll); otherwise only those about to be dispatched. */
  fullScan: boolean;
  own: readonly OwnJob[];
  active: readonly ActiveJob[];
}

/** What the plan needs to know of a pending job, asked only for the jobs it looks at. */
export interface PendingFacts {
  cancelRequested(id: string): boolean;
  /** Undefined when it cannot be told (the job is skipped this tick). */
  claim(id: string): ClaimStatus | undefined;
}

export interface TickPlan {
  dispatch: Array<{ id: string; attempt: number; key: string | null }>;
  cancel: string[];
  finalize: string[];
  /** Every slot is taken. */
  saturated: boolean;
}

export function planTick(input: TickInput, facts: PendingFacts): TickPlan {
  const plan: TickPlan = { dispatch: [], cancel: [], finalize: [], saturated: false };
  const busyKeys = new Set<string>();
  let occupied = 0;
  const take = (key: string | null): void => {
    occupied += 1;
    if (key !== null) busyKeys.add(key);
  };
  for (const job of input.own) {
    if (!job.slotFree) take(job.key);
    else if (keyHeldAfterWorker(job.key)) busyKeys.add(job.key);
  }
  for (const job of input.active) {
    if (!job.holdsSlot) continue;
    take(job.key);
    if (job.orphaned) plan.finalize.push(job.id);
  }
  for (const job of input.active) {
    if (job.holdsSlot) continue;
    const dispatchable = occupied < input.concurrency && (job.key === null || !busyKeys.has(job.key));
    if ((input.fullScan || dispatchable) && facts.cancelRequested(job.id)) {
      plan.cancel.push(job.id);
      continue;
    }
    if (!dispatchable) {
      if (!input.fullScan && occupied >= input.concurrency) break;
      continue;
    }
    const claim = facts.claim(job.id);
    if (!claim) continue;
    // a claim someone else holds runs that job: its slot and its key are taken all the same
    take(job.key);
    if (claim.kind === 'free') plan.dispatch.push({ id: job.id, attempt: claim.nextAttempt, key: job.key });
  }
  plan.saturated = occupied >= input.concurrency;
  return plan;
}
