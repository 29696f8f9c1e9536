import { fsyncDir } from './fsx.js';
import { cancelRequested, readState, removeDoneHint, writeDoneFile, writeDoneHint, writeDoneHintInSlot } from './store.js';
import { JOB_FILES, jobDir, type SpoolPaths } from './layout.js';
import { isTerminal, type JobState } from './state.js';
import { watchFoldersNative } from './watch.js';

/**
 * How long a done report from outside the worker waits for the supervisor to record the end
 * before `done` is flushed anyway (an isolated job, or one without a live supervisor, records
 * nothing until its worker exits).
 */
const DONE_HINT_WAIT_MS = 250;

/** A done report on its way: begun before the job's state is read, completed or withdrawn after. */
export interface DoneReportDelivery {
  /** The hint went into the slot of the job's supervisor before the state was read. */
  readonly hinted: boolean;
  /**
   * Delivers the rest for a job that was `state` when read after the delivery began; resolves
   * with the job's state once the report is kept (null when it could not be read).
   */
  complete(state: JobState): Promise<JobState | null>;
  /** The report is refused: the hint is taken back. */
  withdraw(): void;
}

/**
 * Delivers a done report made outside the job's worker (`agent_notify_done`, `agent-async
 * done`). The report goes first to the job's live supervisor as the done hint, which is never
 * flushed: the supervisor records the job's end at once, and its durable terminal write is the
 * only flush between the report and the waiters' wake-up. The hint goes into the slot that the
 * supervisor made for it before anything else is read (the slot exists only while a supervisor
 * runs the job); the caller then reads the state, which decides whether the report stands.
 * Once the end is recorded the report is kept by flushing the job folder (see keepReport); one
 * that no supervisor recorded within DONE_HINT_WAIT_MS becomes the durable `done` file, which a
 * runner that finalizes the job after a crash reads. Nothing is flushed while the waiters are
 * answered. Measured in `npm run bench -- --only=notifywake` (docs/BENCHMARKS.md).
 */
export function beginDoneReport(paths: SpoolPaths, id: string, summary: string, waitMs = DONE_HINT_WAIT_MS): DoneReportDelivery {
  const hinted = writeDoneHintInSlot(paths, id, summary);
  // armed before the caller reads the state: a change after that read is seen
  const recorded = stateChanged(paths, id, waitMs);
  return {
    hinted,
    async complete(state) {
      if (isTerminal(state.status)) recorded.stop();
      else if (!hinted) {
        try {
          writeDoneHint(paths, id, summary);
        } catch {
          // no hint: the durable report below is the one the supervisor sees
          recorded.stop();
        }
      }
      await recorded.changed;
      const kept = keepReport(paths, id, summary);
      removeDoneHint(paths, id);
      return kept;
    },
    withdraw() {
      recorded.stop();
      if (hinted) removeDoneHint(paths, id);
    },
  };
}

/**
 * Makes the report outlast a crash before it is answered: a job whose end is recorded needs only
 * its folder flushed (its supervisor flushed the state before renaming it in, and may still be
 * flushing the folder); any other gets the durable `done` file, which the job's end, or a runner
 * finalizing it after a crash, reads.
 */
function keepReport(paths: SpoolPaths, id: string, summary: string): JobState | null {
  const now = readState(paths, id);
  if (now.kind === 'ok' && isTerminal(now.state.status)) fsyncDir(jobDir(paths, id));
  // a job being cancelled ends cancelled whatever it reports: no `done` is left in it
  else if (!cancelRequested(paths, id)) writeDoneFile(paths, id, summary);
  return now.kind === 'ok' ? now.state : null;
}

/** Whether `state` is the end that this report (its summary, as read back from its file) made. */
export function endedByReport(state: JobState, summary: string): boolean {
  return state.status === 'done' && state.notified?.summary === Buffer.from(summary).toString('utf8').trim();
}

/** Resolves `changed` at the next replacement of the job's state.json, or after `waitMs`, or at `stop`. */
function stateChanged(paths: SpoolPaths, id: string, waitMs: number): { changed: Promise<void>; stop: () => void } {
  let stop = (): void => undefined;
  const changed = new Promise<void>((resolve) => {
    const timer = setTimeout(() => stop(), waitMs);
    const close = watchFoldersNative(paths, [id], () => stop(), [JOB_FILES.state]);
    stop = () => {
      clearTimeout(timer);
      close();
      resolve();
    };
  });
  return { changed, stop };
}
