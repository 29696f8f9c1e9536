import { execAdapter } from '../agents/exec.js';
import { emptyParse, type AgentAdapter, type ParsedStream, type Verdict } from '../agents/types.js';
import type { Config } from '../config.js';
import { readTextCapped, writeFileAtomic } from '../spool/fsx.js';
import { JOB_FILES, jobFile, type SpoolPaths } from '../spool/layout.js';
import {
  IllegalTransition,
  type JobChanges,
  type JobError,
  type JobRequest,
  type JobState,
  type Outcome,
  type Transition,
  type Usage,
  type WorkerInfo,
  type WorkerResult,
} from '../spool/state.js';
import { applyTransition, cancelRequested, readState, type ExitRecord } from '../spool/store.js';

/**
 * How a job ended, decided in one place from what the supervisor (or, after its death, the
 * runner) found. Precedence: a cancel request, then a `done` report, then a limit the
 * supervisor enforced, then the worker's own verdict (its exit status and, for agent CLIs,
 * the terminal event of its stream).
 */
export interface EndFacts {
  exit: ExitRecord | null;
  cancelRequested: boolean;
  doneSummary: string | null;
  timeoutSeconds: number | null;
  stallSeconds: number | null;
  /** The adapter's judgement of the exit and the stream; null when unknown. */
  verdict?: Verdict | null;
  parsed?: ParsedStream | null;
  /** codex: the thread total of the job this one continues, to derive this turn's share. */
  parentUsage?: Usage | null;
  /** Files of the job folder found broken (a named pipe, a folder, a link, a rewritten state.json). */
  faults?: readonly string[];
  /** What the spool's disk had to do with the end (full while the job ran), if anything. */
  diskNote?: string | null;
}

const DONE_SUMMARY_MAX_BYTES = 64 * 1024;
/**
 * Largest final message kept in state.json and result.md: every wait re-reads state.json, so it
 * stays small. A longer one is cut there, with a note; the worker's whole stream is in output.log.
 */
export const FINAL_MESSAGE_MAX_BYTES = 256 * 1024;

/** What a worker may do in its job folder (said when it did something else). */
export const JOB_FOLDER_HINT = 'agent-async reads only regular files from a job folder: a worker may write its `done` file (one line of text) and must leave the other files alone';

/** Cuts a final message to FINAL_MESSAGE_MAX_BYTES (at a character boundary), saying so at its end. */
export function capFinalMessage(message: string | null): string | null {
  if (message === null || message.length <= FINAL_MESSAGE_MAX_BYTES / 4) return message;
  const bytes = Buffer.from(message, 'utf8');
  if (bytes.length <= FINAL_MESSAGE_MAX_BYTES) return message;
  const kept = bytes.subarray(0, FINAL_MESSAGE_MAX_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${kept}\n… [agent-async kept the first ${FINAL_MESSAGE_MAX_BYTES} of ${bytes.length} bytes of this message; the whole stream is in output.log]`;
}

export interface JobLimits {
  timeoutSeconds: number;
  stallSeconds: number | null;
}

/** The limits a job runs under: its own (the wall clock clamped to the configured maximum) or the config's. */
export function jobLimits(request: JobRequest, config: Config): JobLimits {
  return {
    timeoutSeconds: Math.min(request.timeout_seconds ?? config.job_timeout_seconds, config.max_job_timeout_seconds),
    stallSeconds: request.stall_seconds ?? config.stall_timeout_seconds,
  };
}

function minus(a: number | null, b: number | null): number | null {
  if (a === null) return null;
  return Math.max(0, a - (b ?? 0));
}

/** This run's own usage: codex reports the thread's running total, so subtract the parent's. */
function ownUsage(parsed: ParsedStream, parentUsage: Usage | null): Usage | null {
  if (!parsed.usage || !parsed.cumulative || !parentUsage) return parsed.usage;
  return {
    input_tokens: minus(parsed.usage.input_tokens, parentUsage.input_tokens),
    output_tokens: minus(parsed.usage.output_tokens, parentUsage.output_tokens),
    cached_input_tokens: minus(parsed.usage.cached_input_tokens, parentUsage.cached_input_tokens),
    cost_usd: parsed.usage.cost_usd,
  };
}

function streamFields(facts: EndFacts): Pick<Outcome, 'result' | 'session_id' | 'usage'> {
  const parsed = facts.parsed;
  if (!parsed) return { result: null, session_id: null, usage: null };
  const result: WorkerResult = {
    final_message: capFinalMessage(parsed.final_message),
    cumulative_usage: parsed.cumulative ? parsed.usage : null,
  };
  return { result, session_id: parsed.session_id, usage: ownUsage(parsed, facts.parentUsage ?? null) };
}

export function decideOutcome(facts: EndFacts): Outcome {
  const { exit } = facts;
  const common = {
    exit_code: exit?.exit_code ?? null,
    signal: exit?.signal ?? null,
    notified: null,
    ...streamFields(facts),
  };
  const cancelled: Outcome = { ...common, status: 'cancelled', error: null };
  const failed = (error: JobError): Outcome => ({ ...common, status: 'error', error: withDiskNote(error, facts.diskNote) });

  if (facts.cancelRequested && (exit === null || exit.reason === 'cancelled')) return cancelled;
  if (facts.faults && facts.faults.length > 0) {
    return failed({ code: 'bad_job_file', message: `the job's folder was tampered with: ${facts.faults.join('; ')}`, hint: JOB_FOLDER_HINT });
  }
  if (facts.doneSummary !== null) {
    return { ...common, status: 'done', error: null, notified: { summary: facts.doneSummary, at: new Date().toISOString() } };
  }
  if (exit === null) return failed({ code: 'runner_lost', message: 'the job was lost: no exit record' });
  switch (exit.reason) {
    case 'cancelled':
      return cancelled;
    case 'timed_out':
      return failed({
        code: 'timed_out',
        message: `ran longer than its limit of ${facts.timeoutSeconds ?? '?'} s and was stopped`,
        hint: 'give the job a larger limit (--timeout / timeout_minutes) or raise job_timeout_seconds in config.json',
      });
    case 'stalled':
      return failed({
        code: 'stalled',
        message: `wrote no output for ${facts.stallSeconds ?? '?'} s and was stopped`,
        hint: 'raise stall_timeout_seconds in config.json, or set it to null to turn the check off',
      });
    case 'spawn_failed':
      return failed({ code: 'spawn_failed', message: exit.spawn_error?.message ?? 'the worker could not be started' });
    case 'done_grace':
    case 'exited':
      break;
  }
  const verdict = facts.verdict ?? execAdapter.judge(emptyParse(), exit.exit_code, exit.signal);
  return verdict.ok ? { ...common, status: 'done', error: null } : failed(verdict.error);
}

/** A failed job whose spool disk was full says so: that may be why it failed, and why it ended late. */
function withDiskNote(error: JobError, note: string | null | undefined): JobError {
  if (!note) return error;
  return { ...error, hint: error.hint ? `${error.hint}; ${note}` : note };
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
export function decideEnd(paths: SpoolPaths, state: JobState, end: JobEnd): Outcome {
  const { exit, adapter, parsed } = end;
  const outcome = decideOutcome({
    exit,
    cancelRequested: cancelRequested(paths, state.id),
    doneSummary: readTextCapped(jobFile(paths, state.id, JOB_FILES.done), DONE_SUMMARY_MAX_BYTES)?.trim() ?? null,
    timeoutSeconds: end.limits.timeoutSeconds,
    stallSeconds: end.limits.stallSeconds,
    verdict: adapter && exit ? adapter.judge(parsed ?? emptyParse(), exit.exit_code, exit.signal) : null,
    parsed,
    parentUsage: parsed?.cumulative ? parentCumulativeUsage(paths, state.request.continue_of) : null,
    faults: end.faults,
    diskNote: end.diskNote,
  });
  const lost = outcome.error?.code === 'runner_lost';
  if (lost) {
    const supervisor = state.supervisor ? `pid ${state.supervisor.pid}` : 'unknown';
    outcome.error = {
      code: 'runner_lost',
      message: `the job's supervisor (${supervisor}) died before the worker's exit was recorded; the job was not re-run`,
      hint: `start it again with: agent-async retry ${state.id}`,
    };
  }
  return outcome;
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
