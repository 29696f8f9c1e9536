import { awaitsWorkerExit, isTerminal, type EndedState, type JobState, type Outcome, type Transition } from '../../spool/state.js';

/**
 * Fleet mode: what the queue must learn of a job this host runs, as a pure function of the
 * state the queue holds (as this host last recorded it) and the job's local state.json.
 *
 * The queue's copy is moved by the same state machine, one named transition at a time, so a
 * local change seen late (a quick job that started and ended between two looks) becomes the
 * steps in between. The queue's `start` is written by the host's runner when it takes the job,
 * before any worker can begin (fleet-bridge.ts), so the local start itself adds nothing: from
 * `running` on, the local worker, its end, a `done` report and the worker's late exit follow.
 */
export interface MirrorStep {
  change: Transition;
  /** When it happened locally: the queue's copy gets the same times. */
  at: string;
}

/** How a locally ended job ended, as the queue's terminal transitions take it. */
export function outcomeOf(state: EndedState): Outcome {
  const fields = {
    exit_code: state.exit_code,
    signal: state.signal,
    notified: state.notified,
    result: state.result,
    session_id: state.session_id,
    usage: state.usage,
    ...(state.changes !== undefined ? { changes: state.changes } : {}),
  };
  if (state.status === 'error') return { ...fields, status: 'error', error: state.error };
  return { ...fields, status: state.status, error: null };
}

function endStep(local: EndedState): MirrorStep {
  const outcome = outcomeOf(local);
  const at = local.finished_at;
  if (awaitsWorkerExit(local) && outcome.status === 'done') return { at, change: { name: 'notify_done', outcome, worker: local.worker! } };
  if (outcome.error?.code === 'runner_lost') return { at, change: { name: 'runner_lost', outcome } };
  return { at, change: { name: 'finish', outcome, worker: local.worker ?? undefined } };
}

/**
 * The transitions that bring the queue's copy (`queued`, running or later) up to the local
 * state; empty when it has them all. A local state that went back (it never does: transitions
 * only move forward) yields nothing.
 */
export function mirrorSteps(queued: JobState, local: JobState): MirrorStep[] {
  if (queued.id !== local.id) throw new Error(`mirrorSteps: job ${queued.id} compared with ${local.id}`);
  if (queued.status === 'pending') return []; // the runner starts it in the queue first
  if (queued.status === 'running') {
    if (local.status === 'pending') return [];
    if (local.status === 'running') {
      return local.worker && !queued.worker ? [{ at: local.updated_at, change: { name: 'record_worker', worker: local.worker } }] : [];
    }
    return [endStep(local)];
  }
  if (!isTerminal(local.status)) return [];
  const ended = local as EndedState;
  if (awaitsWorkerExit(queued) && !awaitsWorkerExit(ended) && ended.status === 'done') {
    return [{ at: ended.updated_at, change: { name: 'record_exit', exit_code: ended.exit_code, signal: ended.signal } }];
  }
  const queuedChanges = (queued).changes ?? null;
  if (ended.changes && JSON.stringify(ended.changes) !== JSON.stringify(queuedChanges)) {
    return [{ at: ended.updated_at, change: { name: 'record_changes', changes: ended.changes } }];
  }
  return [];
}

/** A local state that the queue's copy can never reach again: nothing left to mirror after it. */
export function isSettled(local: JobState): boolean {
  return isTerminal(local.status) && !awaitsWorkerExit(local);
}
