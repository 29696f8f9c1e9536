import { entryExists } from '../../spool/fsx.js';
import { JOB_FILES, jobFile, type SpoolPaths } from '../../spool/layout.js';
import { watchFoldersNative } from '../../spool/watch.js';
import type { JobLimits } from '../core/outcome.js';
import { terminateJobProcesses } from '../processes.js';

/**
 * What stops a running worker: its wall-clock limit, its stall limit (no output), a cancel
 * request, and the end of its grace after a `done` report. Requests are seen through a folder
 * watch at once, and by a poll should the watch fail.
 */

export type StopReason = 'cancelled' | 'timed_out' | 'stalled' | 'done_grace';

export interface LimitSpec {
  paths: SpoolPaths;
  id: string;
  pid: number;
  limits: JobLimits;
  killGraceMs: number;
  doneGraceMs: number;
  pollMs: number;
  /** When the worker last wrote output (epoch ms). */
  lastOutputAt: () => number;
  /** Before the worker is signalled (it is recorded, and the reason noted). */
  beforeStop: (reason: StopReason) => void;
  /** A `done` report arrived. */
  onDone: () => void;
}

export interface Limits {
  /** Why the worker was stopped, and the pids that outlived KILL; null while it was not. */
  readonly stopped: { reason: StopReason; survivors: Promise<number[]> } | null;
  /** Ends the timers and the watch (the worker has exited). */
  close(): void;
}

export function enforceLimits(spec: LimitSpec): Limits {
  const { paths, id } = spec;
  let stopped: Limits['stopped'] = null;
  const stop = (reason: StopReason): void => {
    if (stopped) return;
    spec.beforeStop(reason);
    stopped = { reason, survivors: terminateJobProcesses({ pid: spec.pid, pgid: spec.pid }, spec.killGraceMs) };
  };
  const timers: NodeJS.Timeout[] = [setTimeout(() => stop('timed_out'), spec.limits.timeoutSeconds * 1000)];
  if (spec.limits.stallSeconds !== null) {
    const limitMs = spec.limits.stallSeconds * 1000;
    timers.push(setInterval(() => {
      if (Date.now() - spec.lastOutputAt() > limitMs) stop('stalled');
    }, Math.min(1000, limitMs / 4)));
  }
  let doneSeen = false;
  const checkRequests = (_id?: string, changed?: string): void => {
    if (stopped) return;
    if (entryExists(jobFile(paths, id, JOB_FILES.cancel))) stop('cancelled');
    else if (!doneSeen && doneReported(paths, id, changed)) {
      doneSeen = true;
      spec.onDone();
      timers.push(setTimeout(() => stop('done_grace'), spec.doneGraceMs));
    }
  };
  timers.push(setInterval(() => checkRequests(), spec.pollMs));
  const closeWatch = watchFoldersNative(paths, [id], checkRequests, [JOB_FILES.cancel, JOB_FILES.done, JOB_FILES.doneHint]);
  checkRequests();
  return {
    get stopped() {
      return stopped;
    },
    close: () => {
      for (const timer of timers) clearTimeout(timer);
      closeWatch();
    },
  };
}

/**
 * An abort signal for the job's cancel request, for the time before its worker runs (the
 * worktree's `worktree.setup`): seen through a folder watch at once, and by a poll.
 */
export function cancelSignal(paths: SpoolPaths, id: string, pollMs: number): { signal: AbortSignal; close(): void } {
  const controller = new AbortController();
  const check = (): void => {
    if (!controller.signal.aborted && entryExists(jobFile(paths, id, JOB_FILES.cancel))) controller.abort();
  };
  const timer = setInterval(check, pollMs);
  const closeWatch = watchFoldersNative(paths, [id], check, [JOB_FILES.cancel]);
  check();
  return {
    signal: controller.signal,
    close: () => {
      clearInterval(timer);
      closeWatch();
    },
  };
}

/**
 * A `done` file, or the done hint that a report made outside the worker sends first; the file
 * a folder event named is looked at first.
 */
function doneReported(paths: SpoolPaths, id: string, changed?: string): boolean {
  const names = changed === JOB_FILES.doneHint ? [JOB_FILES.doneHint, JOB_FILES.done] : [JOB_FILES.done, JOB_FILES.doneHint];
  return names.some((name) => entryExists(jobFile(paths, id, name)));
}
