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
  retryInput,
  notifyInput,
  outputInput,
  parseInput,
  pullRequestInput,
  submitInput,
  waitInput,
  type Naming,
  type diffInput,
} from './inputs.js';
import { queueUrlOf } from './fleet/url.js';
import type * as FleetStore from './jobs-fleet.js';
import { ACTIVITY_TAIL_BYTES, activityIn, lastActivity, readJob, readOutput, readTask, type OutputPage } from './read-model.js';
import { ensureRunner, type EnsureResult } from './runner/launch.js';
import { leaderAlive, readRunnerInfo } from './runner/lease.js';
import { selfIdentity } from './runner/processes.js';
import { cancelPendingJob } from './runner/reconcile.js';
import { newJobId } from './spool/ids.js';
import { walkIndex } from './spool/index.js';
import { beginDoneReport, endedByReport } from './spool/done-report.js';
import { gcJobs, type GcReport } from './spool/gc.js';
import { JOB_FILES, type SpoolPaths } from './spool/layout.js';
import { changesOf, isTerminal, newJobState, type JobRequest, type JobState } from './spool/state.js';
import * as isolation from './isolation.js';
import { checkIsolationInput, dropSnapshot, snapshotForJob, workTreeOf, type EndedJobs } from './isolation.js';
import {
  cancelRequested,
  listActive,
  publishJob,
  requestCancel,
  type JobSnapshot,
} from './spool/store.js';
import { awaitAnySettled, waitForJob } from './spool/watch.js';

export * from './read-model.js';
export { type ApplyAnswer } from './isolation.js';
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
  const where = isFleet(ctx) ? 'the queue' : ctx.paths.jobs;
  return new UserError('not_found', `${field} ${quoteInput(id)}: no such job in ${where}`, field);
}

// ── the store: the spool, or in fleet mode the queue ─────────────────────────────────────

/** Fleet mode: `queue_url` (or AGENT_ASYNC_QUEUE_URL) is set, and the queue is the jobs' record. */
export function isFleet(ctx: JobsContext): boolean {
  return queueUrlOf(ctx.config) !== null;
}

/** A fleet-only command or field used without `queue_url`. */
export function fleetOff(what: string, field = 'queue_url'): UserError {
  return new UserError('bad_input', `${what}: applies in fleet mode only (queue_url is not set; set it in config.json or AGENT_ASYNC_QUEUE_URL)`, field);
}

let fleetStore: typeof FleetStore | undefined;

/** The queue's operations, loaded (with `pg`) only in fleet mode. */
async function fleet(): Promise<typeof FleetStore> {
  fleetStore ??= await import('./jobs-fleet.js');
  return fleetStore;
}

/**
 * Closes the queue connections this process opened (a CLI command's end); nothing outside
 * fleet mode. Resolves to how many were cut because the server did not hang up in time.
 */
export async function closeStores(): Promise<number> {
  return (await fleetStore?.closeQueues()) ?? 0;
}

/** Reads a job named from outside in either store: validates the id, and says clearly when it is unknown. */
export async function findJob(ctx: JobsContext, input: z.input<typeof jobRef>, naming: Naming = {}): Promise<JobSnapshot> {
  if (!isFleet(ctx)) return getJob(ctx, input, naming);
  const { job_id: id } = parseInput(jobRef, input, naming);
  const [snap] = await (await fleet()).readSnapshots(ctx, [id]);
  if (!snap || snap.kind === 'missing') throw notFound(ctx, id, naming.names?.job_id ?? 'job_id');
  return snap;
}

/** A job whose id is already known to be well formed, in either store (missing when unknown). */
export async function snapshotOf(ctx: JobsContext, id: string): Promise<JobSnapshot> {
  if (!isFleet(ctx)) return readJob(ctx.paths, id);
  const [snap] = await (await fleet()).readSnapshots(ctx, [id]);
  return snap ?? { id, kind: 'missing' };
}

async function requireStateOf(ctx: JobsContext, id: string): Promise<JobState> {
  if (!isFleet(ctx)) return requireState(ctx, id);
  const snap = await findJob(ctx, { job_id: id });
  if (snap.kind === 'corrupt') throw new UserError('corrupt_state', `job ${snap.id}: its state in the queue is unreadable (${snap.reason})`, 'job_id');
  if (snap.kind !== 'ok') throw notFound(ctx, snap.id, 'job_id');
  return snap.state;
}

/** The task a job was given (prompt.txt without its footer), as the answers show it. */
export function taskOf(ctx: JobsContext, state: JobState, maxBytes?: number): string | undefined {
  if (!isFleet(ctx)) return readTask(ctx.paths, state, maxBytes);
  const task = fleetStore?.viewedTask(ctx, state.id);
  return task === undefined || maxBytes === undefined ? task : Buffer.from(task).subarray(0, maxBytes).toString('utf8');
}

/** The last `bytes` of a job's output (at most 32 KiB in fleet mode: what its last read fetched). */
export function outputTailOf(ctx: JobsContext, id: string, bytes: number): OutputPage {
  if (!isFleet(ctx)) return readOutput(ctx.paths, id, -bytes, bytes);
  return fleetStore?.viewedTail(ctx, id, bytes) ?? { job_id: id, offset: 0, next_offset: 0, size: 0, eof: true, data: '' };
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
  /** Fleet mode: the host or labels it needs. */
  placement?: FleetStore.Placement;
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
  const placement = placementOf(ctx, input);
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
    placement,
  };
}

/** A job's `host` and `labels` (fleet mode only), refused with the field's name otherwise. */
function placementOf(ctx: JobsContext, input: { host?: string; labels?: string[] }): FleetStore.Placement {
  if (!isFleet(ctx)) {
    for (const field of ['host', 'labels'] as const) {
      if (input[field] !== undefined) throw fleetOff(field, field);
    }
  }
  return { host: input.host, labels: input.labels };
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
  const snapped = await snapshotForJob(ctx, id, prepared.request, prepared.base);
  const files: Record<string, string> = prepared.task === null ? {} : { [JOB_FILES.prompt]: assemblePrompt(id, prepared.task, prepared.files) };
  let request = snapped;
  let state: JobState;
  try {
    if (isFleet(ctx)) {
      const store = await fleet();
      request = await store.shareSnapshot(ctx, id, snapped, prepared.placement ?? {});
      state = newJobState(id, request);
      await store.publishToQueue(ctx, state, files, prepared.placement ?? {}).catch(async (error: unknown) => {
        await store.unshareSnapshot(ctx, id, request);
        throw error;
      });
    } else {
      state = newJobState(id, request);
      publishJob(ctx.paths, state, files);
    }
  } catch (error) {
    await dropSnapshot(ctx, id, snapped);
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
async function originalTask(ctx: JobsContext, state: JobState): Promise<string | null> {
  if (state.request.argv !== null) return null;
  const task = isFleet(ctx) ? await (await fleet()).readTaskOf(ctx, state) : readTask(ctx.paths, state);
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
  if (isFleet(ctx)) return activityIn(outputTailOf(ctx, state.id, ACTIVITY_TAIL_BYTES), reader);
  return lastActivity(ctx.paths, state.id, reader);
}

/**
 * A new job with the same request (and the same prompt) as an earlier one. An isolated job
 * starts from a new snapshot of the work tree as it is now (or from the same base ref).
 */
export async function retry(ctx: JobsContext, raw: z.input<typeof retryInput>): Promise<SubmitResult> {
  const input = parseInput(retryInput, raw);
  const placement = placementOf(ctx, input);
  const original = await requireStateOf(ctx, input.job_id);
  getAdapter(original.request.agent, ctx.config); // an agent removed from config since is said now, not at start
  const snapshot = original.request.worktree;
  checkPolicyCeiling(ctx, original.request.policy, true);
  return publishPrepared(ctx, {
    request: { ...original.request, retry_of: original.id, env_path: ctx.env.PATH ?? original.request.env_path, worktree: null },
    task: await originalTask(ctx, original),
    files: [],
    notices: [],
    base: snapshot?.from === 'ref' ? snapshot.ref ?? undefined : undefined,
    placement,
  });
}

/**
 * A new job that resumes the worker's own session of an earlier job (same agent, same cwd,
 * its session id), with a new prompt. An isolated job's worktree is made again from its
 * branch, so the session finds its own files.
 */
export async function continueJob(ctx: JobsContext, raw: z.input<typeof continueInput>): Promise<SubmitResult> {
  const input = parseInput(continueInput, raw);
  const placement = placementOf(ctx, input);
  const parent = await requireStateOf(ctx, input.job_id);
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
    placement: await continuePlacement(ctx, parent, placement),
  });
}

/**
 * Fleet mode: the worker's session lives on the host that ran the parent, so the new job goes
 * there unless told otherwise. An isolated job that ran on another host from its clone of the
 * remote is continued there (its branch comes back from the remote into that clone), and from
 * the host it was submitted on, whose repository its changes are applied to.
 */
async function continuePlacement(ctx: JobsContext, parent: JobState, placement: FleetStore.Placement): Promise<FleetStore.Placement> {
  if (!isFleet(ctx)) return placement;
  const store = await fleet();
  const ran = await store.placementOf(ctx, parent.id);
  const url = parent.request.worktree?.remote_url;
  if (ran && url !== undefined && ran.runnerHost !== null && ran.runnerHost !== ran.submittedHost) {
    const here = store.hostNameOf(ctx.config);
    if (here !== ran.submittedHost) {
      throw new UserError('conflict', `job_id ${parent.id}: it was submitted on host ${ran.submittedHost}, whose repository its changes go to; continue it there, not on ${here}`, 'job_id');
    }
    if (placement.host !== undefined && placement.host !== ran.runnerHost) {
      throw new UserError('bad_input', `host: ${quoteInput(placement.host)} cannot continue job ${parent.id}: it ran on host ${ran.runnerHost}, where its worker's session and its clone of ${url} are; leave host out, or name ${ran.runnerHost}`, 'host');
    }
  }
  return placement.host !== undefined ? placement : { ...placement, host: ran?.runnerHost ?? undefined };
}

// ── an isolated job's work ────────────────────────────────────────────────────────────────

/** Where ended jobs are read: the spool; in fleet mode the queue for a job that ran on another host. */
async function endedJobsOf(ctx: JobsContext): Promise<EndedJobs> {
  return isFleet(ctx) ? (await fleet()).endedJobs(ctx) : isolation.spoolJobs(ctx.paths);
}

/** job_apply; a job that ran on another host (fleet mode) has its branch fetched first. */
export async function applyJob(ctx: JobsContext, raw: z.input<typeof jobRef>, naming: Naming = {}): Promise<isolation.ApplyAnswer> {
  return isolation.applyJob(ctx, raw, naming, await endedJobsOf(ctx));
}

/** job_diff, as applyJob. */
export async function diffJob(ctx: JobsContext, raw: z.input<typeof diffInput>, naming: Naming = {}): ReturnType<typeof isolation.diffJob> {
  return isolation.diffJob(ctx, raw, naming, await endedJobsOf(ctx));
}

/** job_discard; in fleet mode the job's refs on the remote its snapshot was pushed to go too. */
export async function discardJobChanges(ctx: JobsContext, raw: z.input<typeof jobRef>, naming: Naming = {}): ReturnType<typeof isolation.discardJobChanges> {
  return isolation.discardJobChanges(ctx, raw, naming, await endedJobsOf(ctx));
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
  if (isFleet(ctx)) return waitInQueue(ctx, input, options.signal);
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

async function waitInQueue(ctx: JobsContext, input: z.output<typeof waitInput>, signal: AbortSignal | undefined): Promise<WaitAnswer> {
  const first = await findJob(ctx, { job_id: input.job_id });
  const clamp = clampWait(ctx, input.timeout_seconds);
  const started = Date.now();
  if (first.kind === 'ok') keepRunnerAlive(ctx, [first.state]); // this host's runner serves the queue too
  const store = await fleet();
  const result = await store.awaitSettled(ctx, [first.id], { timeoutMs: clamp.value * 1000, signal });
  return {
    snapshot: result.settled[0] ?? result.open[0] ?? first,
    timed_out: result.timedOut,
    aborted: result.aborted,
    waited_seconds: (Date.now() - started) / 1000,
    notices: [...clamp.notices, ...store.pendingNotices(result.reasons)],
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
  const ids = input.job_ids && input.job_ids.length > 0 ? input.job_ids : await openJobIds(ctx);
  if (ids.length === 0) {
    return { finished: [], open: [], timed_out: false, aborted: false, notices: [...clamp.notices, NOTHING_TO_AWAIT] };
  }
  if (isFleet(ctx)) {
    const store = await fleet();
    const found = await store.awaitSettled(ctx, [...new Set(ids)], { timeoutMs: clamp.value * 1000, signal: options.signal });
    keepRunnerAlive(ctx, found.open.flatMap((snap) => (snap.kind === 'ok' ? [snap.state] : [])));
    const notices = [...clamp.notices, ...store.pendingNotices(found.reasons)];
    return { finished: found.settled, open: found.open, timed_out: found.timedOut, aborted: found.aborted, notices };
  }
  const result = await awaitAnySettled(ctx.paths, [...new Set(ids)], watchOptions(ctx, clamp.value, options.signal));
  return { finished: result.settled, open: result.open, timed_out: result.timedOut, aborted: result.aborted, notices: clamp.notices };
}

export interface WaitAllAnswer {
  settled: JobSnapshot[];
  open: JobSnapshot[];
  timedOut: boolean;
  /** Fleet mode: why open jobs still wait for a runner (from the last wait). */
  notices?: string[];
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
    if (Date.now() >= deadline) return { settled, open: answer.open, timedOut: true, ...(isFleet(ctx) ? { notices: answer.notices } : {}) };
  }
}

// ── cancel, notify ────────────────────────────────────────────────────────────────────────

export interface CancelAnswer {
  state: JobState;
  /** 'cancelled' now; 'already_finished'; or 'stopping' if the worker outlived the wait. */
  result: 'cancelled' | 'already_finished' | 'stopping';
}

export async function cancel(ctx: JobsContext, input: z.input<typeof jobRef>, options: { waitSeconds?: number } = {}): Promise<CancelAnswer> {
  const state = await requireStateOf(ctx, parseInput(jobRef, input).job_id);
  if (isTerminal(state.status)) return { state, result: 'already_finished' };
  const waitSeconds = options.waitSeconds ?? ctx.config.kill_grace_seconds + 15;
  if (isFleet(ctx)) return (await fleet()).cancelInQueue(ctx, state.id, waitSeconds);
  const { paths } = ctx;
  requestCancel(paths, state.id, `pid ${process.pid}`);
  if (state.status === 'pending') {
    const owner = { role: 'cancel' as const, ...selfIdentity(), epoch: null, at: new Date().toISOString() };
    const cancelled = cancelPendingJob(paths, state, owner);
    if (cancelled) return { state: cancelled, result: 'cancelled' };
    // claimed meanwhile: it is stopped like any running job
  }
  ensureRunner(paths, ctx.env);
  const result = await waitForJob(paths, state.id, { timeoutMs: waitSeconds * 1000, pollMs: 250, watchMode: ctx.config.watch_mode });
  const latest = result.snapshot.kind === 'ok' ? result.snapshot.state : state;
  return { state: latest, result: isTerminal(latest.status) ? 'cancelled' : 'stopping' };
}

export interface NotifyAnswer {
  state: JobState;
  accepted: boolean;
  message: string;
}

export async function notifyDone(ctx: JobsContext, raw: z.input<typeof notifyInput>): Promise<NotifyAnswer> {
  const input = parseInput(notifyInput, raw);
  const summary = input.summary ?? '';
  const delivery = beginDoneReport(ctx.paths, input.job_id, summary);
  let state: JobState;
  let refused: NotifyAnswer | null;
  try {
    state = requireState(ctx, input.job_id);
    // its supervisor may have recorded the hint already
    refused = delivery.hinted && endedByReport(state, summary) ? null : refuseDone(state) ?? refuseWhileCancelling(ctx.paths, state);
  } catch (error) {
    delivery.withdraw();
    throw error;
  }
  if (refused) {
    delivery.withdraw();
    return refused;
  }
  const latest = await delivery.complete(state);
  // the job may have ended another way (cancelled, its worker's exit) before the report was recorded
  if (latest && isTerminal(latest.status) && !endedByReport(latest, summary)) {
    return { state: latest, accepted: false, message: `job ${latest.id} ended (${latest.status}) before the report was recorded; nothing to do` };
  }
  return (latest && !isTerminal(latest.status) ? refuseWhileCancelling(ctx.paths, latest) : null) ?? doneAccepted(latest ?? state);
}

/** A cancel wins over a done report: a job whose cancel is under way refuses one. */
function refuseWhileCancelling(paths: SpoolPaths, state: JobState): NotifyAnswer | null {
  if (!cancelRequested(paths, state.id)) return null;
  return { state, accepted: false, message: `job ${state.id} is being cancelled; a cancel wins over a done report, so it was not recorded` };
}

/** notify-done in either store: in fleet mode the request reaches the runner that holds the job. */
export async function notifyJobDone(ctx: JobsContext, raw: z.input<typeof notifyInput>): Promise<NotifyAnswer> {
  if (!isFleet(ctx)) return notifyDone(ctx, raw);
  const input = parseInput(notifyInput, raw);
  const state = await requireStateOf(ctx, input.job_id);
  const refused = refuseDone(state);
  if (refused) return refused;
  if (await (await fleet()).doneInQueue(ctx, state.id, input.summary ?? '')) return doneAccepted(state);
  return refuseDone(await requireStateOf(ctx, state.id)) ?? doneAccepted(state);
}

function refuseDone(state: JobState): NotifyAnswer | null {
  if (isTerminal(state.status)) {
    return { state, accepted: false, message: `job ${state.id} already ended (${state.status}); nothing to do` };
  }
  if (state.status === 'pending') {
    throw new UserError('conflict', `job_id ${state.id}: the job has not started yet, so it cannot be done; cancel it instead`, 'job_id');
  }
  return null;
}

const doneAccepted = (state: JobState): NotifyAnswer => ({ state, accepted: true, message: `job ${state.id} marked done; its worker is stopped if it keeps running` });

// ── queue ─────────────────────────────────────────────────────────────────────────────────

export interface QueueSummary {
  running: JobState[];
  pending: JobState[];
  /** Active jobs whose state.json cannot be read. */
  unreadable: string[];
  /** The runner; pid only while it is alive. */
  runner: { alive: boolean; pid: number | null; epoch: number | null; started_at: string | null };
  /** Fleet mode: every host of the queue, its load and lease, and why each pending job waits. */
  fleet?: FleetStore.FleetOverview;
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

/** queueSummary in either store: in fleet mode the jobs are every host's, the runner this host's. */
export async function queueOverview(ctx: JobsContext): Promise<QueueSummary> {
  const local = queueSummary(ctx.paths);
  if (!isFleet(ctx)) return local;
  const store = await fleet();
  const fleetView = await store.fleetStatus(ctx);
  return { ...local, running: fleetView.running, pending: fleetView.pending.map((job) => job.state), unreadable: [], fleet: store.overviewOf(fleetView) };
}

export type FleetStatus = FleetStore.FleetStatus;

/** Fleet mode: every host of the queue, its load and lease, and why each pending job waits. */
export async function fleetStatus(ctx: JobsContext): Promise<FleetStatus> {
  if (!isFleet(ctx)) throw fleetOff('queue status');
  return (await fleet()).fleetStatus(ctx);
}

/** `queue init`: applies the queue's migrations under its advisory lock; refuses outside fleet mode. */
export async function initQueue(ctx: JobsContext): ReturnType<typeof FleetStore.initQueue> {
  if (!isFleet(ctx)) throw fleetOff('queue init');
  return (await fleet()).initQueue(ctx);
}

/** For `doctor`: connects and reads the queue's schema version, changing nothing. */
export async function probeQueue(ctx: JobsContext): ReturnType<typeof FleetStore.probeQueue> {
  if (!isFleet(ctx)) throw fleetOff('doctor');
  return (await fleet()).probeQueue(ctx);
}

/** The ids of the jobs pending or running now (their `active/` markers). */
export function activeJobIds(ctx: JobsContext): string[] {
  return listActive(ctx.paths);
}

/** The ids of the jobs pending or running now, in either store. */
export async function openJobIds(ctx: JobsContext): Promise<string[]> {
  return isFleet(ctx) ? (await fleet()).activeIds(ctx) : listActive(ctx.paths);
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

/** The newest jobs first, in either store. */
export async function listJobs(ctx: JobsContext, raw: z.input<typeof listInput> = {}, naming: Naming = {}): Promise<JobSnapshot[]> {
  if (!isFleet(ctx)) return list(ctx, raw, naming);
  const { limit, status } = parseInput(listInput, raw, naming);
  return (await fleet()).listSnapshots(ctx, { limit, status });
}

/** A page of a job's output and the job's status, in either store. */
export async function readOutputPage(ctx: JobsContext, raw: z.input<typeof outputInput>, maxBytes?: number): Promise<OutputPage & { job_status: string }> {
  const input = parseInput(outputInput, raw);
  if (!isFleet(ctx)) {
    const page = outputPage(ctx, input);
    return maxBytes === undefined ? page : { ...readOutput(ctx.paths, input.job_id, input.offset, maxBytes), job_status: page.job_status };
  }
  const snap = await findJob(ctx, { job_id: input.job_id });
  const page = await (await fleet()).outputFromQueue(ctx, snap.id, input.offset, maxBytes ?? input.max_bytes);
  return { ...page, job_status: snap.kind === 'ok' ? snap.state.status : 'unreadable' };
}

/** The last `bytes` of a job's output (at most one page), in either store. */
export async function readTail(ctx: JobsContext, id: string, bytes: number): Promise<OutputPage> {
  if (!isFleet(ctx)) return readOutput(ctx.paths, id, -bytes, bytes);
  return (await fleet()).outputFromQueue(ctx, id, -bytes, bytes);
}

/** Resolves when a job has output beyond `offset` or has ended, or after `timeoutMs` (fleet mode: `logs -f` from any host). */
export async function awaitOutput(ctx: JobsContext, id: string, offset: number, timeoutMs: number): Promise<{ size: number; ended: boolean }> {
  return (await fleet()).awaitOutput(ctx, id, offset, timeoutMs);
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

/**
 * gc in either store: the spool's, and in fleet mode the queue's finished jobs that ended
 * before the cutoff (the queue keeps no count limit: `keep` applies to the spool only).
 */
export async function collectGarbage(ctx: JobsContext, raw: z.input<typeof gcInput>, naming: Naming = {}): Promise<GcReport & { dry_run: boolean; queue_removed?: number | null; queue_kept?: FleetStore.QueueGc['kept'] }> {
  const report = gc(ctx, raw, naming);
  if (!isFleet(ctx)) return report;
  if (report.dry_run) return { ...report, queue_removed: null };
  const input = parseInput(gcInput, raw, naming);
  const olderThanSeconds = input.older_than_seconds ?? (input.keep === undefined ? GC_DEFAULT_AGE_SECONDS : undefined);
  if (olderThanSeconds === undefined) return { ...report, queue_removed: null };
  const queue = await (await fleet()).gcQueue(ctx, olderThanSeconds);
  return { ...report, queue_removed: queue.removed, ...(queue.kept.length > 0 ? { queue_kept: queue.kept } : {}) };
}
