import { entryExists, entryStat } from '../../spool/fsx.js';
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
  let settling: NodeJS.Timeout | undefined;
  const doneReport = doneReporter(paths, id);
  const checkRequests = (): void => {
    if (stopped) return;
    if (entryExists(jobFile(paths, id, JOB_FILES.cancel))) {
      stop('cancelled');
      return;
    }
    if (doneSeen) return;
    const report = doneReport();
    if (report === 'being written') {
      settling ??= setTimeout(() => {
        settling = undefined;
        checkRequests();
      }, DONE_SETTLE_CHECK_MS);
    } else if (report === 'ready') {
      doneSeen = true;
      spec.onDone();
      timers.push(setTimeout(() => stop('done_grace'), spec.doneGraceMs));
    }
  };
  timers.push(setInterval(() => checkRequests(), spec.pollMs));
  const closeWatch = watchFoldersNative(paths, [id], () => checkRequests(), [JOB_FILES.cancel, JOB_FILES.done, JOB_FILES.doneHint]);
  checkRequests();
  return {
    get stopped() {
      return stopped;
    },
    close: () => {
      for (const timer of timers) clearTimeout(timer);
      clearTimeout(settling);
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
 * An empty `done` file may still be being written (`echo ok > done` makes the file, then writes
 * to it): it counts once this process has seen it empty for DONE_SETTLE_MS (timed here, not by
 * the file's mtime, which a clock stepped back or a file server ahead would put in the future),
 * and is looked at again every DONE_SETTLE_CHECK_MS until then. Empty after that, it is a
 * report without summary (`touch done`).
 */
const DONE_SETTLE_MS = 100;
const DONE_SETTLE_CHECK_MS = 20;

type DoneReportState = 'ready' | 'being written' | 'none';

/**
 * Looks for the done hint that a report made outside the worker sends first (renamed into place
 * whole, so ready at once), then for a `done` file.
 */
function doneReporter(paths: SpoolPaths, id: string): () => DoneReportState {
  let emptySince: { ino: number; at: number } | null = null;
  return () => {
    if (entryExists(jobFile(paths, id, JOB_FILES.doneHint))) return 'ready';
    const seen = entryStat(jobFile(paths, id, JOB_FILES.done));
    if (!seen) return 'none';
    if (!seen.isFile() || seen.size > 0) return 'ready';
    const now = performance.now();
    if (emptySince?.ino !== seen.ino) emptySince = { ino: seen.ino, at: now };
    return now - emptySince.at < DONE_SETTLE_MS ? 'being written' : 'ready';
  };
}

