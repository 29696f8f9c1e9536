import type { z } from 'zod';
import { plainActivity, type ActivityReader } from './agents/activity.js';
import { readContextFiles, type ContextFile } from './agents/context-files.js';
import { assemblePrompt } from './agents/prompt.js';
import { getAdapter } from './agents/registry.js';
import { confluencePrompt, pullRequestPrompt } from './agents/templates.js';
import { POLICIES } from './config.js';
import type { JobsContext } from './context.js';
import { UserError, badInput, quoteInput } from './errors.js';
import {
  ARGV_REQUIRED,
  PROMPT_REQUIRED,
  awaitAnyInput,
  confluenceInput,
  continueInput,
  gcInput,
  jobRef,
  listInput,
  notifyInput,
  outputInput,
  parseInput,
  pullRequestInput,
  submitInput,
  waitInput,
  type Naming,
} from './inputs.js';
import { lastActivity, readJob, readOutput, readTask, type OutputPage } from './read-model.js';
import { ensureRunner, type EnsureResult } from './runner/launch.js';
import { leaderAlive, readRunnerInfo } from './runner/lease.js';
import { selfIdentity } from './runner/processes.js';
import { cancelPendingJob } from './runner/reconcile.js';
import { newJobId } from './spool/ids.js';
import { walkIndex } from './spool/index.js';
import { gcJobs, type GcReport } from './spool/gc.js';
import { JOB_FILES, type SpoolPaths } from './spool/layout.js';
import { changesOf, isTerminal, newJobState, type JobRequest, type JobState } from './spool/state.js';
import { checkIsolationInput, dropSnapshot, snapshotForJob, workTreeOf } from './isolation.js';
import {
  listActive,
  publishJob,
  requestCancel,
  writeDoneFile,
  type JobSnapshot,
} from './spool/store.js';
import { awaitAnySettled, waitForJob } from './spool/watch.js';

export * from './read-model.js';
export { applyJob, diffJob, discardJobChanges, type ApplyAnswer } from './isolation.js';
export { collectWorktrees, type WorktreeGcReport } from './runner/workspace.js';
export * as inputs from './inputs.js';
export { parseInput, WAIT_DEFAULT_SECONDS, LIST_MAX } from './inputs.js';

/**
 * The operations both faces (CLI and MCP server) share: submit, wait, await-any, cancel,
 * retry, continue, list, show, output pages, notify, queue status, gc. Each parses its input
 * with its schema in `inputs.ts`; faces map their own parameters onto it and format answers.
 */

export { locateSpool, openContext, refreshConfig, spoolHome, type JobsContext } from './context.js';
export { spoolSpaceError } from './spool/fsx.js';

function notFound(ctx: JobsContext, id: string, field: string): UserError {
  return new UserError('not_found', `${field} ${quoteInput(id)}: no such job in ${ctx.paths.jobs}`, field);
}

/** Reads a job named from outside: validates the id, and says clearly when it is unknown. */
export function getJob(ctx: JobsContext, input: z.input<typeof jobRef>, naming: Naming = {}): JobSnapshot {
  const { job_id: id } = parseInput(jobRef, input, naming);
  const snap = readJob(ctx.paths, id);
  if (snap.kind === 'missing') throw notFound(ctx, id, naming.names?.job_id ?? 'job_id');
  return snap;
}

function requireState(ctx: JobsContext, id: string): JobState {
  const snap = getJob(ctx, { job_id: id });
  if (snap.kind === 'corrupt') {
    throw new UserError('corrupt_state', `job ${snap.id}: state.json is unreadable (${snap.reason})`, 'job_id');
  }
  if (snap.kind !== 'ok') throw notFound(ctx, snap.id, 'job_id');
  return snap.state;
}

// ── submit ────────────────────────────────────────────────────────────────────────────────

export type SubmitInput = z.input<typeof submitInput>;

export interface SubmitResult {
  job_id: string;
  state: JobState;
  notices: string[];
  runner: EnsureResult;
}

/** A request ready to publish, with the task text (for agents) it will be prompted with. */
export interface PreparedJob {
  request: JobRequest;
  task: string | null;
  files: ContextFile[];
  notices: string[];
  /** isolation worktree: the committed ref to snapshot instead of the work tree. */
  base?: string;
}

/** A job's own limit above the configured maximum is clamped, and that is said. */
function clampLimit(seconds: number | undefined, max: number, field: string): { value: number | null; notice: string | null } {
  if (seconds === undefined) return { value: null, notice: null };
  if (seconds > max) return { value: max, notice: `${field} ${seconds} is above the maximum of ${max}; used ${max}` };
  return { value: seconds, notice: null };
}

/** A field that does not apply to this kind of job is refused, never dropped without a word. */
function refuseInapplicable(input: z.output<typeof submitInput>, isExec: boolean): void {
  if (isExec) {
    for (const field of ['prompt', 'approval_policy', 'model', 'context_files'] as const) {
      if (input[field] !== undefined) throw badInput(field, 'does not apply to exec, which runs argv (the command) as it is');
    }
    if (input.argv === undefined) throw badInput('argv', ARGV_REQUIRED);
  } else {
    if (input.argv !== undefined) throw badInput('argv', `applies to exec only; ${input.agent} takes a prompt`);
    if (input.prompt === undefined) throw badInput('prompt', PROMPT_REQUIRED);
  }
}

export function prepareJob(ctx: JobsContext, raw: SubmitInput, options: { template?: 'confluence' | 'pr' } = {}): PreparedJob {
  const input = parseInput(submitInput, raw);
  const adapter = getAdapter(input.agent, ctx.config);
  const isExec = !adapter.takesPrompt;
  refuseInapplicable(input, isExec);
  const policy = isExec ? null : input.approval_policy ?? ctx.config.default_policy;
  checkPolicyCeiling(ctx, policy, input.approval_policy !== undefined);
  const max = ctx.config.max_job_timeout_seconds;
  const timeout = clampLimit(input.timeout_seconds, max, 'timeout_seconds');
  const stall = clampLimit(input.stall_seconds, max, 'stall_seconds');
  const notices = [timeout.notice, stall.notice].filter((notice) => notice !== null);
  const isolation = input.isolation ?? ctx.config.isolation;
  checkIsolationInput({ isolation, base: input.base, apply: input.apply });
  // the costly check last: it reads the files
  const files = isExec ? [] : readContextFiles(input.cwd, input.context_files ?? [], {
    fileMaxBytes: ctx.config.context_file_max_bytes,
    totalMaxBytes: ctx.config.context_total_max_bytes,
  });
  return {
    request: {
      agent: adapter.name,
      argv: isExec ? input.argv! : null,
      cwd: input.cwd,
      timeout_seconds: timeout.value,
      stall_seconds: stall.value,
      env_path: ctx.env.PATH ?? null,
      retry_of: null,
      policy,
      model: isExec ? null : input.model || null,
      continue_of: null,
      resume_session: null,
      context_files: files.map((file) => file.path),
      template: options.template ?? null,
      isolation,
      work_tree: workTreeOf(input.cwd),
      worktree: null,
      apply: input.apply ?? false,
    },
    task: isExec ? null : input.prompt!,
    files,
    notices,
    base: input.base,
  };
}

/**
 * mcp_max_policy: a registration that pre-approves the start tools caps the policy, so a model
 * calling them unasked cannot start a worker without a sandbox (full-auto), whether it asks for
 * it, gets it as the default, or inherits it from the job it continues.
 */
function checkPolicyCeiling(ctx: JobsContext, policy: string | null, asked: boolean): void {
  const ceiling = ctx.config.mcp_max_policy;
  if (!ctx.capPolicy || ceiling === null || policy === null) return;
  const allowed = POLICIES.slice(0, POLICIES.indexOf(ceiling) + 1);
  if ((allowed as readonly string[]).includes(policy)) return;
  throw badInput('approval_policy', `${policy}${asked ? '' : ' (the default)'} is above this server's mcp_max_policy (${ceiling}); allowed: ${allowed.join(', ')}. add-agent sets it where a client may start workers without asking; \`agent-async add-agent <client> --allow-exec-tools\` registers the client without it`);
}

/**
 * Publishes a prepared job (its prompt.txt included) and makes sure a runner will run it. An
 * isolated job's snapshot is taken first: a refusal (not a git work tree, an unknown base)
 * queues nothing.
 */
export async function publishPrepared(ctx: JobsContext, prepared: PreparedJob): Promise<SubmitResult> {
  const id = newJobId();
  const request = await snapshotForJob(ctx, id, prepared.request, prepared.base);
  const state = newJobState(id, request);
  const files: Record<string, string> = prepared.task === null ? {} : { [JOB_FILES.prompt]: assemblePrompt(id, prepared.task, prepared.files) };
  try {
    publishJob(ctx.paths, state, files);
  } catch (error) {
    await dropSnapshot(ctx, id, request);
    throw error;
  }
  const runner = ensureRunner(ctx.paths, ctx.env);
  return { job_id: id, state, notices: prepared.notices, runner };
}

export function submit(ctx: JobsContext, input: SubmitInput): Promise<SubmitResult> {
  return publishPrepared(ctx, prepareJob(ctx, input));
}

/** The job options a template job takes besides its own parameters. */
type TemplateJobOptions = Omit<SubmitInput, 'agent' | 'argv' | 'prompt'>;

/** A Gemini job that drafts (and may publish) a Confluence page from `confluence-page.md`. */
export function submitConfluencePage(ctx: JobsContext, page: z.input<typeof confluenceInput>, job: TemplateJobOptions): Promise<SubmitResult> {
  const prompt = confluencePrompt(parseInput(confluenceInput, page));
  return publishPrepared(ctx, prepareJob(ctx, { ...job, agent: 'gemini', prompt }, { template: 'confluence' }));
}

/** A Gemini job that prepares (and may open) a pull request. */
export function submitPullRequest(ctx: JobsContext, pr: z.input<typeof pullRequestInput>, job: TemplateJobOptions): Promise<SubmitResult> {
  const prompt = pullRequestPrompt(parseInput(pullRequestInput, pr));
  return publishPrepared(ctx, prepareJob(ctx, { ...job, agent: 'gemini', prompt }, { template: 'pr' }));
}

/** The task text an earlier job was given (its prompt.txt without the footer). */
function originalTask(ctx: JobsContext, state: JobState): string | null {
  if (state.request.argv !== null) return null;
  const task = readTask(ctx.paths, state);
  if (task === undefined) throw new UserError('conflict', `job_id ${state.id}: its prompt.txt is missing, so it cannot be repeated`, 'job_id');
  return task;
}

/** What a job's worker is doing now, in one line, as its adapter reads its output; null when nothing says. */
export function currentActivity(ctx: JobsContext, state: JobState): string | null {
  let reader: ActivityReader = plainActivity;
  try {
    reader = getAdapter(state.request.agent, ctx.config).activity ?? plainActivity;
  } catch {
    // an agent removed from config since: its lines as they are
  }
  return lastActivity(ctx.paths, state.id, reader);
}

/**
 * A new job with the same request (and the same prompt) as an earlier one. An isolated job
 * starts from a new snapshot of the work tree as it is now (or from the same base ref).
 */
export function retry(ctx: JobsContext, input: z.input<typeof jobRef>): Promise<SubmitResult> {
  const original = requireState(ctx, parseInput(jobRef, input).job_id);
  getAdapter(original.request.agent, ctx.config); // an agent removed from config since is said now, not at start
  const snapshot = original.request.worktree;
  checkPolicyCeiling(ctx, original.request.policy, true);
  return publishPrepared(ctx, {
    request: { ...original.request, retry_of: original.id, env_path: ctx.env.PATH ?? original.request.env_path, worktree: null },
    task: originalTask(ctx, original),
    files: [],
    notices: [],
    base: snapshot?.from === 'ref' ? snapshot.ref ?? undefined : undefined,
  });
}

/**
 * A new job that resumes the worker's own session of an earlier job (same agent, same cwd,
 * its session id), with a new prompt. An isolated job's worktree is made again from its
 * branch, so the session finds its own files.
 */
export function continueJob(ctx: JobsContext, raw: z.input<typeof continueInput>): Promise<SubmitResult> {
  const input = parseInput(continueInput, raw);
  const parent = requireState(ctx, input.job_id);
  if (parent.request.argv !== null) {
    throw new UserError('conflict', `job_id ${parent.id}: exec jobs have no conversation to continue; run the same command again with retry (MCP: job_retry; CLI: agent-async retry)`, 'job_id');
  }
  if (!isTerminal(parent.status)) {
    throw new UserError('conflict', `job_id ${parent.id}: the job is still ${parent.status}; wait for it to end before continuing it`, 'job_id');
  }
  if (!parent.session_id) {
    throw new UserError('conflict', `job_id ${parent.id}: the worker reported no session id, so there is no session to continue; start a new job instead`, 'job_id');
  }
  if (!getAdapter(parent.request.agent, ctx.config).canResume) {
    throw new UserError('conflict', `job_id ${parent.id}: agent ${parent.request.agent} cannot continue a session (give it resume_args in config.json); start a new job instead`, 'job_id');
  }
  if (changesOf(parent)?.discarded_at) {
    throw new UserError('conflict', `job_id ${parent.id}: its changes were discarded, so its worktree cannot be made again; start a new job instead`, 'job_id');
  }
  const timeout = clampLimit(input.timeout_seconds, ctx.config.max_job_timeout_seconds, 'timeout_seconds');
  const policy = input.approval_policy ?? parent.request.policy;
  checkPolicyCeiling(ctx, policy, input.approval_policy !== undefined);
  return publishPrepared(ctx, {
    request: {
      ...parent.request,
      env_path: ctx.env.PATH ?? parent.request.env_path,
      retry_of: null,
      continue_of: parent.id,
      resume_session: parent.session_id,
      context_files: [],
      template: null,
      policy,
      model: input.model === undefined ? parent.request.model : input.model || null,
      timeout_seconds: timeout.value ?? parent.request.timeout_seconds,
    },
    task: input.prompt,
    files: [],
    notices: timeout.notice ? [timeout.notice] : [],
  });
}

// ── wait ──────────────────────────────────────────────────────────────────────────────────

/** A wait timeout: below 0 becomes 0 (look once), above the configured maximum the maximum; both are said. */
function clampWait(ctx: JobsContext, seconds: number): { value: number; notices: string[] } {
  const max = ctx.config.wait_max_seconds;
  if (seconds < 0) return { value: 0, notices: [`timeout_seconds ${seconds} is below 0; used 0 (check once, do not wait)`] };
  if (seconds > max) return { value: max, notices: [`timeout_seconds ${seconds} is above the maximum of ${max}; used ${max}`] };
  return { value: seconds, notices: [] };
}

function keepRunnerAlive(ctx: JobsContext, states: JobState[]): void {
  if (states.some((state) => !isTerminal(state.status)) && !leaderAlive(ctx.paths)) {
    ensureRunner(ctx.paths, ctx.env);
  }
}

function watchOptions(ctx: JobsContext, seconds: number, signal: AbortSignal | undefined) {
  return {
    timeoutMs: seconds * 1000,
    pollMs: ctx.config.poll_seconds * 1000,
    watchMode: ctx.config.watch_mode,
    signal,
    onPoll: (states: JobState[]) => keepRunnerAlive(ctx, states),
  };
}

export interface WaitAnswer {
  snapshot: JobSnapshot;
  timed_out: boolean;
  aborted: boolean;
  waited_seconds: number;
  notices: string[];
}

export async function wait(ctx: JobsContext, raw: z.input<typeof waitInput>, options: { signal?: AbortSignal } = {}): Promise<WaitAnswer> {
  const input = parseInput(waitInput, raw);
  const first = getJob(ctx, { job_id: input.job_id });
  const clamp = clampWait(ctx, input.timeout_seconds);
  const started = Date.now();
  if (first.kind === 'ok') keepRunnerAlive(ctx, [first.state]);
  const result = await waitForJob(ctx.paths, first.id, watchOptions(ctx, clamp.value, options.signal));
  return {
    snapshot: result.snapshot,
    timed_out: result.timedOut,
    aborted: result.aborted,
    waited_seconds: (Date.now() - started) / 1000,
    notices: clamp.notices,
  };
}

export interface AwaitAnyAnswer {
  finished: JobSnapshot[];
  open: JobSnapshot[];
  timed_out: boolean;
  aborted: boolean;
  notices: string[];
}

export const NOTHING_TO_AWAIT = 'no jobs to wait for: none is pending or running';

/**
 * Waits until one of `job_ids` (default: every job pending or running now) ends, and returns
 * every one of them that has ended by then. Callers pass the still-open ids back in, so no
 * completion is ever skipped between two calls.
 */
export async function awaitAny(ctx: JobsContext, raw: z.input<typeof awaitAnyInput>, options: { signal?: AbortSignal } = {}): Promise<AwaitAnyAnswer> {
  const input = parseInput(awaitAnyInput, raw);
  const clamp = clampWait(ctx, input.timeout_seconds);
  // ids are only checked for form: a job removed since (gc, retention) is answered as gone
  const ids = input.job_ids && input.job_ids.length > 0 ? input.job_ids : listActive(ctx.paths);
  if (ids.length === 0) {
    return { finished: [], open: [], timed_out: false, aborted: false, notices: [...clamp.notices, NOTHING_TO_AWAIT] };
  }
  const result = await awaitAnySettled(ctx.paths, [...new Set(ids)], watchOptions(ctx, clamp.value, options.signal));
  return { finished: result.settled, open: result.open, timed_out: result.timedOut, aborted: result.aborted, notices: clamp.notices };
}

export interface WaitAllAnswer {
  settled: JobSnapshot[];
  open: JobSnapshot[];
  timedOut: boolean;
}

/**
 * Waits until every id has ended (or any one, with `any`), in waits of at most
 * `wait_max_seconds` each, until `totalSeconds` (if given) runs out.
 */
export async function waitForEnd(ctx: JobsContext, ids: string[], options: { any: boolean; totalSeconds: number | undefined }): Promise<WaitAllAnswer> {
  const deadline = options.totalSeconds === undefined ? Infinity : Date.now() + options.totalSeconds * 1000;
  const settled: JobSnapshot[] = [];
  let open = ids;
  for (;;) {
    const remaining = Math.max(0, (deadline - Date.now()) / 1000);
    const answer = await awaitAny(ctx, { job_ids: open, timeout_seconds: Math.min(remaining, ctx.config.wait_max_seconds) });
    settled.push(...answer.finished);
    open = answer.open.map((snap) => snap.id);
    const satisfied = open.length === 0 || (options.any && settled.length > 0);
    if (satisfied) return { settled, open: answer.open, timedOut: false };
    if (Date.now() >= deadline) return { settled, open: answer.open, timedOut: true };
  }
}

// ── cancel, notify ────────────────────────────────────────────────────────────────────────

export interface CancelAnswer {
  state: JobState;
  /** 'cancelled' now; 'already_finished'; or 'stopping' if the worker outlived the wait. */
  result: 'cancelled' | 'already_finished' | 'stopping';
}

export async function cancel(ctx: JobsContext, input: z.input<typeof jobRef>, options: { waitSeconds?: number } = {}): Promise<CancelAnswer> {
  const state = requireState(ctx, parseInput(jobRef, input).job_id);
  if (isTerminal(state.status)) return { state, result: 'already_finished' };
  const { paths } = ctx;
  requestCancel(paths, state.id, `pid ${process.pid}`);
  if (state.status === 'pending') {
    const owner = { role: 'cancel' as const, ...selfIdentity(), epoch: null, at: new Date().toISOString() };
    const cancelled = cancelPendingJob(paths, state, owner);
    if (cancelled) return { state: cancelled, result: 'cancelled' };
    // claimed meanwhile: it is stopped like any running job
  }
  ensureRunner(paths, ctx.env);
  const waitSeconds = options.waitSeconds ?? ctx.config.kill_grace_seconds + 15;
  const result = await waitForJob(paths, state.id, { timeoutMs: waitSeconds * 1000, pollMs: 250, watchMode: ctx.config.watch_mode });
  const latest = result.snapshot.kind === 'ok' ? result.snapshot.state : state;
  return { state: latest, result: isTerminal(latest.status) ? 'cancelled' : 'stopping' };
}

export function notifyDone(ctx: JobsContext, raw: z.input<typeof notifyInput>): { state: JobState; accepted: boolean; message: string } {
  const input = parseInput(notifyInput, raw);
  const state = requireState(ctx, input.job_id);
  if (isTerminal(state.status)) {
    return { state, accepted: false, message: `job ${state.id} already ended (${state.status}); nothing to do` };
  }
  if (state.status === 'pending') {
    throw new UserError('conflict', `job_id ${state.id}: the job has not started yet, so it cannot be done; cancel it instead`, 'job_id');
  }
  writeDoneFile(ctx.paths, state.id, input.summary ?? '');
  return { state, accepted: true, message: `job ${state.id} marked done; its worker is stopped if it keeps running` };
}

// ── queue ─────────────────────────────────────────────────────────────────────────────────

export interface QueueSummary {
  running: JobState[];
  pending: JobState[];
  /** Active jobs whose state.json cannot be read. */
  unreadable: string[];
  /** The runner; pid only while it is alive. */
  runner: { alive: boolean; pid: number | null; epoch: number | null; started_at: string | null };
}

/** What runs, what waits, and the runner's health: read from `active/` and runner.json only. */
export function queueSummary(paths: SpoolPaths): QueueSummary {
  const summary: QueueSummary = { running: [], pending: [], unreadable: [], runner: { alive: false, pid: null, epoch: null, started_at: null } };
  for (const id of listActive(paths)) {
    const read = readJob(paths, id);
    if (read.kind === 'corrupt') summary.unreadable.push(id);
    else if (read.kind === 'ok' && read.state.status === 'running') summary.running.push(read.state);
    else if (read.kind === 'ok' && read.state.status === 'pending') summary.pending.push(read.state);
  }
  const alive = leaderAlive(paths);
  const info = readRunnerInfo(paths);
  summary.runner = { alive, pid: alive ? info?.pid ?? null : null, epoch: info?.epoch ?? null, started_at: info?.started_at ?? null };
  return summary;
}

/** The ids of the jobs pending or running now (their `active/` markers). */
export function activeJobIds(ctx: JobsContext): string[] {
  return listActive(ctx.paths);
}

// ── list, show, output ────────────────────────────────────────────────────────────────────

/** The newest jobs first; reads only as many states as it returns (plus skipped ones). */
export function list(ctx: JobsContext, raw: z.input<typeof listInput> = {}, naming: Naming = {}): JobSnapshot[] {
  const { limit, status } = parseInput(listInput, raw, naming);
  const source = status === 'pending' || status === 'running'
    ? listActive(ctx.paths).reverse()
    : walkIndex(ctx.paths, 'newest');
  const found: JobSnapshot[] = [];
  for (const id of source) {
    const snap = readJob(ctx.paths, id);
    if (snap.kind === 'missing') continue;
    if (status !== undefined && (snap.kind !== 'ok' || snap.state.status !== status)) continue;
    found.push(snap);
    if (found.length >= limit) break;
  }
  return found;
}

/** A page of a job's output, and the job's status. */
export function outputPage(ctx: JobsContext, raw: z.input<typeof outputInput>): OutputPage & { job_status: string } {
  const input = parseInput(outputInput, raw);
  const snap = getJob(ctx, { job_id: input.job_id });
  const page = readOutput(ctx.paths, snap.id, input.offset, input.max_bytes);
  return { ...page, job_status: snap.kind === 'ok' ? snap.state.status : 'unreadable' };
}

// ── gc ────────────────────────────────────────────────────────────────────────────────────

export type { GcReport } from './spool/gc.js';

const GC_DEFAULT_AGE_SECONDS = 7 * 86_400;

/**
 * Removes finished jobs older than a cutoff (default 7 days, unless `keep` is given) or beyond
 * the newest `keep`; never a pending or running one.
 */
export function gc(ctx: JobsContext, raw: z.input<typeof gcInput>, naming: Naming = {}): GcReport & { dry_run: boolean } {
  const input = parseInput(gcInput, raw, naming);
  const olderThanSeconds = input.older_than_seconds ?? (input.keep === undefined ? GC_DEFAULT_AGE_SECONDS : undefined);
  const report = gcJobs(ctx.paths, { olderThanSeconds, keep: input.keep, dryRun: input.dry_run, reindex: input.reindex });
  return { ...report, dry_run: input.dry_run };
}
