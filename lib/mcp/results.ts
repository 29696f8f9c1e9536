import type { JobsContext } from '../context.js';
import type { JobSnapshot, JobState } from '../jobs.js';
import { jobs } from './lazy-jobs.js';

/**
 * What the tools answer, built from job states: by default compact (compactAnswer), with
 * verbose: true the full picture (jobAnswer). The keys of the Python original (status,
 * job_status, output, prompt, token_usage, …) stay, next to the richer ones (agent,
 * activity, final_message, usage, duration_ms, error, changes). Every text is capped so no
 * answer comes near a client's result limit.
 */

export const OUTPUT_TAIL_BYTES = 4 * 1024;
export const FINAL_MESSAGE_MAX = 32 * 1024;
const PROMPT_PREVIEW_MAX = 2000;
const PROMPT_BRIEF_MAX = 80;

function capText(text: string | null, max: number): { text: string | null; truncated: boolean } {
  if (text === null || text.length <= max) return { text, truncated: false };
  return { text: `${text.slice(0, max)}\n… [truncated; ${text.length} characters in all]`, truncated: true };
}

export function promptPreview(ctx: JobsContext, state: JobState, max = PROMPT_PREVIEW_MAX): string | null {
  if (state.request.argv) return state.request.argv.join(' ');
  const task = jobs.taskOf(ctx, state, 256 * 1024);
  if (task === undefined) return null;
  return capText(task.trim(), max).text;
}

/** The start of the task, to tell a job from the others: 80 characters, cut with an ellipsis. */
function promptBrief(ctx: JobsContext, state: JobState): string | null {
  const preview = promptPreview(ctx, state, PROMPT_BRIEF_MAX + 200);
  if (preview === null) return null;
  const folded = preview.replace(/\s+/g, ' ');
  return folded.length > PROMPT_BRIEF_MAX ? `${folded.slice(0, PROMPT_BRIEF_MAX - 1)}…` : folded;
}

export function outputTail(ctx: JobsContext, id: string, bytes = OUTPUT_TAIL_BYTES): { output: string; output_bytes: number } {
  const page = jobs.outputTailOf(ctx, id, bytes);
  return { output: page.data, output_bytes: page.size };
}

function tokenUsage(state: JobState) {
  if (!state.usage) return null;
  const { input_tokens, output_tokens } = state.usage;
  return {
    ...state.usage,
    total_tokens: input_tokens === null && output_tokens === null ? null : (input_tokens ?? 0) + (output_tokens ?? 0),
  };
}

function elapsedMs(state: JobState): number | null {
  if (state.duration_ms !== null) return state.duration_ms;
  return state.started_at ? Date.now() - Date.parse(state.started_at) : null;
}

export const EXEC_TAIL_LINES = 15;
export const EXEC_TAIL_BYTES = 1024;

/** The last lines of an exec job's output (at most 15 lines and 1 KiB): what a terminal would have shown last. */
export function execTail(ctx: JobsContext, id: string): string {
  const data = jobs.outputTailOf(ctx, id, EXEC_TAIL_BYTES);
  const lines = data.data.trimEnd().split('\n');
  if (data.offset > 0) lines.shift();
  return lines.slice(-EXEC_TAIL_LINES).join('\n');
}

/**
 * What a wait answers by default: only what the orchestrator needs to decide, since every byte
 * stays in its context for the rest of the conversation. While the job runs: its id, status,
 * elapsed time and, in the seed's `output`, one line of what the worker is doing. When it
 * ended: the final message (exec: the last lines) in `output`, the error, token_usage, the
 * changed files, and the seed's cwd, started_at, finished_at and a prompt preview (to tell it
 * from other jobs). `usage` (the same counts as token_usage), `activity` and `final_message`
 * (the same text as output) come with verbose only.
 */
export function compactAnswer(ctx: JobsContext, state: JobState, waitTool = 'job_wait') {
  const elapsed = elapsedMs(state);
  if (!jobs.isTerminal(state.status)) {
    return {
      job_id: state.id,
      status: 'timeout' as const,
      job_status: state.status,
      duration_ms: elapsed,
      // the seed's key, short: one line of what the worker is doing now ('' when nothing says)
      output: (state.status === 'running' ? jobs.currentActivity(ctx, state) : null) ?? '',
      message: `Call ${waitTool} again.`,
    };
  }
  const final = capText(state.result?.final_message ?? null, FINAL_MESSAGE_MAX);
  const exec = state.request.argv !== null;
  return {
    job_id: state.id,
    status: state.status,
    job_status: state.status,
    agent: state.request.agent,
    cwd: state.request.cwd,
    prompt: promptBrief(ctx, state),
    exit_code: state.exit_code,
    started_at: state.started_at,
    finished_at: state.finished_at,
    duration_ms: elapsed,
    output: exec ? execTail(ctx, state.id) : final.text,
    ...(state.notified ? { summary: state.notified.summary } : {}),
    error: state.error,
    token_usage: tokenUsage(state),
    usage: null,
    ...changesAnswer(state),
    message: endMessage(state, true),
  };
}

function endMessage(state: JobState, short = false): string {
  const what = short ? 'Ended' : `Job ${state.id} (${state.request.agent}) ended`;
  return `${what}: ${state.status}${state.error ? ` — ${state.error.code}: ${state.error.message}` : ''}.`;
}

const CHANGED_FILES_LISTED = 20;
const STATUS_LETTERS: Record<string, string> = { added: 'A', modified: 'M', deleted: 'D', renamed: 'R', copied: 'C', type_changed: 'T' };

/**
 * An isolated job's changes, compactly: its branch and one line per file (`M src/a.ts +3 -1`),
 * the first 20; job_diff has the patch. Absent for a job without isolation.
 */
export function changesAnswer(state: JobState) {
  const changes = jobs.changesOf(state);
  if (!changes) return state.request.isolation === 'worktree' ? { changes: null } : {};
  const files = changes.files.slice(0, CHANGED_FILES_LISTED).map((file) => {
    const counts = file.insertions === null ? ' (binary)' : ` +${file.insertions} -${file.deletions ?? 0}`;
    return `${STATUS_LETTERS[file.status] ?? '?'} ${file.old_path ? `${file.old_path} -> ` : ''}${file.path}${counts}`;
  });
  return {
    changes: {
      branch: changes.branch,
      files_changed: changes.files.length,
      files,
      ...(changes.files.length > files.length ? { files_not_listed: changes.files.length - files.length } : {}),
      applied: changes.applied !== null,
      ...(changes.apply_error ? { apply_error: changes.apply_error } : {}),
      discarded: changes.discarded_at !== null,
    },
  };
}

/** The full answer about one job (verbose: true): for a finished job its result, else its progress so far. */
export function jobAnswer(ctx: JobsContext, state: JobState, waitTool = 'job_wait') {
  const finished = jobs.isTerminal(state.status);
  const final = capText(state.result?.final_message ?? null, FINAL_MESSAGE_MAX);
  const message = finished
    ? endMessage(state)
    : `Job ${state.id} is still ${state.status}. Call ${waitTool} again with this job_id to keep waiting.`;
  return {
    job_id: state.id,
    status: finished ? state.status : ('timeout' as const),
    job_status: state.status,
    agent: state.request.agent,
    cwd: state.request.cwd,
    prompt: promptPreview(ctx, state),
    exit_code: state.exit_code,
    signal: state.signal,
    created_at: state.created_at,
    started_at: state.started_at,
    finished_at: state.finished_at,
    duration_ms: elapsedMs(state),
    activity: state.status === 'running' ? jobs.currentActivity(ctx, state) : null,
    final_message: final.text,
    final_message_truncated: final.truncated,
    session_id: state.session_id,
    summary: state.notified?.summary ?? null,
    usage: state.usage,
    token_usage: tokenUsage(state),
    error: state.error,
    changes: jobs.changesOf(state),
    ...outputTail(ctx, state.id),
    message,
  };
}

/** A job that cannot be read (corrupt state.json, or gone) still gets an answer, not a crash. */
export function unreadableAnswer(snap: JobSnapshot) {
  const reason = snap.kind === 'corrupt' ? `its state.json is unreadable (${snap.reason})` : 'it no longer exists';
  return {
    job_id: snap.id,
    status: 'error' as const,
    job_status: snap.kind === 'corrupt' ? 'unreadable' : 'missing',
    error: { code: snap.kind === 'corrupt' ? 'corrupt_state' : 'not_found', message: `job ${snap.id}: ${reason}` },
    message: `Job ${snap.id}: ${reason}.`,
  };
}

/** The answer about one job: compact (the default) or, with verbose, everything. */
export function snapshotAnswer(ctx: JobsContext, snap: JobSnapshot, waitTool?: string, verbose = false): Record<string, unknown> {
  if (snap.kind !== 'ok') return unreadableAnswer(snap);
  return verbose ? jobAnswer(ctx, snap.state, waitTool) : compactAnswer(ctx, snap.state, waitTool);
}

export function listItem(ctx: JobsContext, snap: JobSnapshot) {
  if (snap.kind !== 'ok') {
    const { error } = unreadableAnswer(snap);
    return { job_id: snap.id, status: 'unreadable', error_code: error.code, error };
  }
  const state = snap.state;
  return {
    job_id: state.id,
    agent: state.request.agent,
    status: state.status,
    cwd: state.request.cwd,
    prompt: promptPreview(ctx, state, 200),
    created_at: state.created_at,
    started_at: state.started_at,
    finished_at: state.finished_at,
    duration_ms: elapsedMs(state),
    exit_code: state.exit_code,
    error_code: state.error?.code ?? null,
    summary: state.notified?.summary ?? null,
    token_usage: tokenUsage(state),
    ...(state.request.isolation === 'worktree' ? { branch: `agent-async/${state.request.worktree?.id ?? state.id}`, files_changed: jobs.changesOf(state)?.files.length ?? null } : {}),
  };
}
