import { removeDoneHint, writeDoneFile, writeDoneHint } from './store.js';
import { JOB_FILES, type SpoolPaths } from './layout.js';
import type { JobState } from './state.js';
import { watchFoldersNative } from './watch.js';

/**
 * How long a done report from outside the worker waits for the supervisor to record the end
 * before `done` is flushed anyway (an isolated job, or one without a live supervisor, records
 * nothing until its worker exits).
 */
export const DONE_HINT_WAIT_MS = 250;

/**
 * Delivers a done report made outside the job's worker (`agent_notify_done`, `agent-async
 * done`). The report goes first to the job's live supervisor as the done hint, which is never
 * flushed: the supervisor records the job's end at once, and its durable terminal write is the
 * only flush between the report and the waiters' wake-up. `done` is written durably after that
 * (or after DONE_HINT_WAIT_MS), so that the two flushes do not queue behind each other in the
 * filesystem's journal and a runner that finalizes the job after a crash still finds the
 * report. Measured in `npm run bench -- --only=notifywake` (docs/BENCHMARKS.md).
 */
export async function deliverDoneReport(paths: SpoolPaths, state: JobState, summary: string, waitMs = DONE_HINT_WAIT_MS): Promise<void> {
  const { id } = state;
  const recorded = stateChanged(paths, id, waitMs);
  try {
    writeDoneHint(paths, id, summary, state.supervisor?.pid ?? null);
    await recorded.changed;
  } catch {
    // no hint: the durable report below is the one the supervisor sees
    recorded.stop();
  }
  writeDoneFile(paths, id, summary);
  removeDoneHint(paths, id);
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
