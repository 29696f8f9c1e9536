import { emptyParse, type AgentAdapter, type ParsedStream } from '../agents/types.js';
import { readRegularFile, writeFileAtomic } from '../spool/fsx.js';
import { JOB_FILES, jobFile, type SpoolPaths } from '../spool/layout.js';
import { IllegalTransition, type JobChanges, type JobState, type Outcome, type Transition, type Usage, type WorkerInfo } from '../spool/state.js';
import { applyTransition, cancelRequested, readState, type ExitRecord } from '../spool/store.js';
import { decideOutcome, type DoneReport, type EndFacts, type JobLimits } from './core/outcome.js';

/**
 * Recording how a job ended: the facts are gathered from the job folder, `decideOutcome`
 * (core/outcome.ts) judges them, and the terminal transition is written.
 */

const DONE_SUMMARY_MAX_BYTES = 64 * 1024;

/**
 * The job's `done` report (a regular file only, its first 64 KiB), or null. Its live supervisor
 * (`hint`) also takes the done hint, which nobody flushes and so only a running process may
 * trust. The hint is read first: its writer makes `done` before removing it.
 */
export function readDoneReport(paths: SpoolPaths, id: string, hint: boolean): DoneReport | null {
  const hinted = hint ? readReportFile(jobFile(paths, id, JOB_FILES.doneHint)) : null;
  return hinted ?? readReportFile(jobFile(paths, id, JOB_FILES.done));
}

function readReportFile(file: string): DoneReport | null {
  const read = readRegularFile(file, DONE_SUMMARY_MAX_BYTES, 'truncate');
  if (read.kind !== 'ok') return null;
  return { summary: read.data.toString('utf8').trim(), at: new Date(read.mtimeMs).toISOString() };
}

/** The codex thread total the job being continued had reached (null when unknown). */
function parentCumulativeUsage(paths: SpoolPaths, parentId: string | null): Usage | null {
  if (!parentId) return null;
  const parent = readState(paths, parentId);
  return parent.kind === 'ok' ? parent.state.result?.cumulative_usage ?? null : null;
}

export interface JobEnd {
  exit: ExitRecord | null;
  /** Null when the job's agent is unknown now (removed from config): the exit status decides. */
  adapter: AgentAdapter | null;
  parsed: ParsedStream | null;
  limits: JobLimits;
  /** The worker, when the state does not hold it yet. */
  worker?: WorkerInfo;
  faults?: readonly string[];
  diskNote?: string | null;
  /** An isolated job's work, recorded with its end. */
  changes?: JobChanges | null;
  /** The job's own supervisor records it: a done hint counts as a report (see readDoneReport). */
  liveSupervisor?: boolean;
  /** Writes the terminal transition; by default it is applied to the state on disk. */
  commit?: (change: Transition) => JobState;
}

/**
 * Records how a running job ended, the one way for the supervisor and for a runner that
 * finalizes a job after its supervisor died: gathers the cancel and done requests and the
 * parent's usage, decides the outcome, writes result.md and makes the terminal transition.
 * Returns undefined when the job had already ended otherwise.
 */
export function recordEnd(paths: SpoolPaths, state: JobState, end: JobEnd, log: (message: string) => void): JobState | undefined {
  const outcome = decideEnd(paths, state, end);
  if (end.changes) outcome.changes = end.changes;
  const lost = outcome.error?.code === 'runner_lost';
  if (outcome.result?.final_message) writeResultFile(paths, state.id, outcome.result.final_message, log);
  const commit = end.commit ?? ((change: Transition) => applyTransition(paths, state.id, change));
  try {
    return commit(lost ? { name: 'runner_lost', outcome } : { name: 'finish', outcome, worker: end.worker });
  } catch (error) {
    if (!(error instanceof IllegalTransition)) throw error;
    log(`job ${state.id}: not recorded, the job was already ${error.from}`);
    return undefined;
  }
}

/** How a running job ends, from what the spool and the worker say (recordEnd writes it). */
export function decideEnd(paths: SpoolPaths, state: JobState, end: Omit<JobEnd, 'commit'>): Outcome {
  const outcome = decideOutcome(endFacts(paths, state, end));
  if (outcome.error?.code === 'runner_lost') {
    const supervisor = state.supervisor ? `pid ${state.supervisor.pid}` : 'unknown';
    outcome.error = {
      code: 'runner_lost',
      message: `the job's supervisor (${supervisor}) died before the worker's exit was recorded; the job was not re-run`,
      hint: `start it again with: agent-async retry ${state.id}`,
    };
  }
  return outcome;
}

/** What the spool says about a job's end, gathered for `decideOutcome`. */
function endFacts(paths: SpoolPaths, state: JobState, end: Omit<JobEnd, 'commit'>): EndFacts {
  const { exit, adapter, parsed } = end;
  return {
    exit,
    cancelRequested: cancelRequested(paths, state.id),
    done: readDoneReport(paths, state.id, end.liveSupervisor === true),
    timeoutSeconds: end.limits.timeoutSeconds,
    stallSeconds: end.limits.stallSeconds,
    verdict: adapter && exit ? adapter.judge(parsed ?? emptyParse(), exit.exit_code, exit.signal) : null,
    parsed,
    parentUsage: parsed?.cumulative ? parentCumulativeUsage(paths, state.request.continue_of) : null,
    faults: end.faults,
    diskNote: end.diskNote,
  };
}

/**
 * The transition that ends a running job when its `done` report arrives, before its worker has
 * exited; null when the report does not decide the end (a cancel request or a broken job folder
 * comes first, by the same precedence as at the end: the end decides those).
 */
export function notifiedEnd(paths: SpoolPaths, state: JobState, end: Omit<JobEnd, 'commit' | 'exit' | 'worker'> & { worker: WorkerInfo }): Transition | null {
  const outcome = decideOutcome(endFacts(paths, state, { ...end, exit: null }));
  if (outcome.status !== 'done' || outcome.notified === null) return null;
  if (outcome.result?.final_message) writeResultFile(paths, state.id, outcome.result.final_message, () => undefined);
  return { name: 'notify_done', outcome, worker: end.worker };
}

/** result.md: a copy of the final message, which the terminal state holds too; a full disk does not stop the end. */
function writeResultFile(paths: SpoolPaths, id: string, message: string, log: (message: string) => void): void {
  try {
    // not fsynced: the terminal state written next holds the same text and is
    writeFileAtomic(jobFile(paths, id, JOB_FILES.result), `${message.trimEnd()}\n`, 'none', { replaceFolder: true });
  } catch (error) {
    log(`job ${id}: result.md not written (${(error as Error).message}); state.json holds the final message`);
  }
}
