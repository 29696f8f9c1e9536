import fs from 'node:fs';
import { readContextFiles, type ContextFile } from './agents/context-files.js';
import { assemblePrompt, stripFooter } from './agents/prompt.js';
import { getAdapter } from './agents/registry.js';
import { ConfigSource, POLICIES, type Config, type Policy } from './config.js';
import { UserError, badInput, quoteInput } from './errors.js';
import { ensureRunner, type EnsureResult } from './runner/launch.js';
import { leaderAlive, readRunnerInfo } from './runner/lease.js';
import { selfIdentity } from './runner/processes.js';
import { cancelPendingJob } from './runner/reconcile.js';
import { readTextCapped } from './spool/fsx.js';
import { newJobId, parseJobId } from './spool/ids.js';
import { walkIndex } from './spool/index.js';
import { gcJobs, type GcOptions, type GcReport } from './spool/gc.js';
import { JOB_FILES, defaultHome, ensureSpool, jobFile, spoolPaths, type SpoolPaths } from './spool/layout.js';
import { JOB_STATUSES, isTerminal, newJobState, type JobRequest, type JobState } from './spool/state.js';
import {
  listActive,
  type JobSnapshot,
  publishJob,
  readSnapshot,
  readState,
  requestCancel,
  writeDoneFile,
} from './spool/store.js';
import { awaitAnySettled, waitForJob } from './spool/watch.js';
import { clampJobSeconds, clampWaitSeconds, validateArgv, validateCwd, validateLimit, validateStatus } from './validate.js';

/**
 * The operations both faces (CLI and MCP server) share: submit, wait, await-any, cancel,
 * retry, list, show, output pages, notify, gc. Faces parse and format; the logic is here.
 */

export interface Spool {
  paths: SpoolPaths;
  config: Config;
  env: NodeJS.ProcessEnv;
  /** Where `config` comes from; `refreshConfig` re-reads it after an edit. */
  configSource: ConfigSource;
}

export function openSpool(options: { home?: string; env?: NodeJS.ProcessEnv } = {}): Spool {
  const env = options.env ?? process.env;
  const paths = spoolPaths(options.home ?? defaultHome(env));
  ensureSpool(paths);
  const configSource = new ConfigSource(paths, env);
  return { paths, config: configSource.lastGood, env, configSource };
}

/**
 * Picks up an edited config.json in a long-lived process (the MCP server): one stat per call.
 * A config that became invalid keeps the last good one and throws the error for this call.
 */
export function refreshConfig(spool: Spool): void {
  spool.config = spool.configSource.current();
}

function notFound(spool: Spool, id: string, field: string): UserError {
  return new UserError('not_found', `${field} ${quoteInput(id)}: no such job in ${spool.paths.jobs}`, field);
}

/** Reads a job named from outside: validates the id, and says clearly when it is unknown. */
export function getJob(spool: Spool, rawId: unknown, field = 'job_id'): JobSnapshot {
  const id = parseJobId(rawId, field);
  const read = readState(spool.paths, id);
  if (read.kind === 'missing') throw notFound(spool, id, field);
  return { id, ...read };
}

function requireState(spool: Spool, rawId: unknown, field = 'job_id'): JobState {
  const snap = getJob(spool, rawId, field);
  if (snap.kind === 'corrupt') {
    throw new UserError('corrupt_state', `job ${snap.id}: state.json is unreadable (${snap.reason})`, field);
  }
  if (snap.kind !== 'ok') throw notFound(spool, snap.id, field);
  return snap.state;
}

// ── submit ────────────────────────────────────────────────────────────────────────────────

export interface SubmitInput {
  agent: string;
  /** exec: the command and its arguments. */
  argv?: unknown;
  /** agents: what the worker should do. */
  prompt?: unknown;
  cwd: unknown;
  policy?: unknown;
  model?: unknown;
  context_files?: unknown;
  timeout_seconds?: unknown;
  stall_seconds?: unknown;
  template?: string | null;
}

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
}

const MODEL_PATTERN = /^[A-Za-z0-9][\w.:/@+[\]-]{0,199}$/;

const given = (value: unknown): boolean => value !== undefined && value !== null && value !== '';

function validateModel(value: unknown): string | null {
  if (!given(value)) return null;
  if (typeof value !== 'string' || !MODEL_PATTERN.test(value)) {
    throw badInput('model', `${quoteInput(value)} is not a model name; expected letters, digits and . _ : / @ + - (up to 200, not starting with -)`);
  }
  return value;
}

function validatePolicy(value: unknown, fallback: Policy): Policy {
  if (!given(value)) return fallback;
  if (typeof value === 'string' && (POLICIES as readonly string[]).includes(value)) return value as Policy;
  throw badInput('approval_policy', `${quoteInput(value)} is not a policy; allowed: ${POLICIES.join(', ')}`);
}

function validateTask(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw badInput('prompt', 'is required: a non-empty text saying what the agent should do');
  if (value.includes('\0')) throw badInput('prompt', 'must not contain NUL characters');
  return value;
}

/** A field that does not apply to this kind of job is refused, never dropped without a word. */
function refuseInapplicable(input: SubmitInput, isExec: boolean): void {
  const notForExec: Array<[keyof SubmitInput, string]> = [['prompt', 'prompt'], ['policy', 'approval_policy'], ['model', 'model'], ['context_files', 'context_files']];
  if (isExec) {
    for (const [key, field] of notForExec) if (given(input[key])) throw badInput(field, 'does not apply to exec, which runs argv (the command) as it is');
  } else if (given(input.argv)) {
    throw badInput('argv', `applies to exec only; ${String(input.agent)} takes a prompt`);
  }
}

export function prepareJob(spool: Spool, input: SubmitInput): PreparedJob {
  const adapter = getAdapter(input.agent, spool.config);
  const isExec = !adapter.takesPrompt;
  refuseInapplicable(input, isExec);
  const cwd = validateCwd(input.cwd);
  const notices: string[] = [];
  const max = spool.config.max_job_timeout_seconds;
  const timeout = clampJobSeconds(input.timeout_seconds, max, 'timeout_seconds');
  const stall = clampJobSeconds(input.stall_seconds, max, 'stall_seconds');
  for (const clamped of [timeout, stall]) if (clamped?.notice) notices.push(clamped.notice);
  const argv = isExec ? validateArgv(input.argv) : null;
  const task = isExec ? null : validateTask(input.prompt);
  const policy = isExec ? null : validatePolicy(input.policy, spool.config.default_policy);
  const model = isExec ? null : validateModel(input.model);
  // the costly check last: it reads the files
  const files = isExec ? [] : readContextFiles(cwd, input.context_files, {
    fileMaxBytes: spool.config.context_file_max_bytes,
    totalMaxBytes: spool.config.context_total_max_bytes,
  });
  return {
    request: {
      agent: adapter.name,
      argv,
      cwd,
      timeout_seconds: timeout?.value ?? null,
      stall_seconds: stall?.value ?? null,
      env_path: spool.env.PATH ?? null,
      retry_of: null,
      policy,
      model,
      continue_of: null,
      resume_session: null,
      context_files: files.map((file) => file.path),
      template: input.template ?? null,
    },
    task,
    files,
    notices,
  };
}

/** Publishes a prepared job (its prompt.txt included) and makes sure a runner will run it. */
export function publishPrepared(spool: Spool, prepared: PreparedJob): SubmitResult {
  const id = newJobId();
  const state = newJobState(id, prepared.request);
  const files: Record<string, string> = prepared.task === null ? {} : { [JOB_FILES.prompt]: assemblePrompt(id, prepared.task, prepared.files) };
  publishJob(spool.paths, state, files);
  const runner = ensureRunner(spool.paths, spool.env);
  return { job_id: id, state, notices: prepared.notices, runner };
}

export function submit(spool: Spool, input: SubmitInput): SubmitResult {
  return publishPrepared(spool, prepareJob(spool, input));
}

/** The task text an earlier job was given (its prompt.txt without the footer). */
function originalTask(spool: Spool, state: JobState): string | null {
  if (state.request.argv !== null) return null;
  const prompt = readTextCapped(jobFile(spool.paths, state.id, JOB_FILES.prompt), 64 * 1024 * 1024);
  if (prompt === undefined) throw new UserError('conflict', `job_id ${state.id}: its prompt.txt is missing, so it cannot be repeated`, 'job_id');
  return stripFooter(prompt, state.id);
}

/** A new job with the same request (and the same prompt) as an earlier one. */
export function retry(spool: Spool, rawId: unknown): SubmitResult {
  const original = requireState(spool, rawId);
  getAdapter(original.request.agent, spool.config); // an agent removed from config since is said now, not at start
  return publishPrepared(spool, {
    request: { ...original.request, retry_of: original.id, env_path: spool.env.PATH ?? original.request.env_path },
    task: originalTask(spool, original),
    files: [],
    notices: [],
  });
}

export interface ContinueInput {
  prompt: unknown;
  policy?: unknown;
  model?: unknown;
  timeout_seconds?: unknown;
}

/**
 * A new job that resumes the worker's own session of an earlier job (same agent, same cwd,
 * its session id), with a new prompt.
 */
export function continueJob(spool: Spool, rawId: unknown, input: ContinueInput): SubmitResult {
  const parent = requireState(spool, rawId);
  if (parent.request.argv !== null) {
    throw new UserError('conflict', `job_id ${parent.id}: exec jobs have no conversation to continue; use retry`, 'job_id');
  }
  if (!isTerminal(parent.status)) {
    throw new UserError('conflict', `job_id ${parent.id}: the job is still ${parent.status}; wait for it to end before continuing it`, 'job_id');
  }
  if (!parent.session_id) {
    throw new UserError('conflict', `job_id ${parent.id}: the worker reported no session id, so there is no session to continue; start a new job instead`, 'job_id');
  }
  if (!getAdapter(parent.request.agent, spool.config).canResume) {
    throw new UserError('conflict', `job_id ${parent.id}: agent ${parent.request.agent} cannot continue a session (give it resume_args in config.json); start a new job instead`, 'job_id');
  }
  const max = spool.config.max_job_timeout_seconds;
  const timeout = clampJobSeconds(input.timeout_seconds, max, 'timeout_seconds');
  return publishPrepared(spool, {
    request: {
      ...parent.request,
      env_path: spool.env.PATH ?? parent.request.env_path,
      retry_of: null,
      continue_of: parent.id,
      resume_session: parent.session_id,
      context_files: [],
      template: null,
      policy: validatePolicy(input.policy, parent.request.policy as Policy),
      model: input.model === undefined ? parent.request.model : validateModel(input.model),
      timeout_seconds: timeout?.value ?? parent.request.timeout_seconds,
    },
    task: validateTask(input.prompt),
    files: [],
    notices: timeout?.notice ? [timeout.notice] : [],
  });
}

// ── wait ──────────────────────────────────────────────────────────────────────────────────

export interface WaitAnswer {
  snapshot: JobSnapshot;
  timed_out: boolean;
  aborted: boolean;
  waited_seconds: number;
  notices: string[];
}

function keepRunnerAlive(spool: Spool, states: JobState[]): void {
  if (states.some((state) => !isTerminal(state.status)) && !leaderAlive(spool.paths)) {
    ensureRunner(spool.paths, spool.env);
  }
}

export async function wait(
  spool: Spool,
  rawId: unknown,
  timeoutSeconds: unknown,
  options: { signal?: AbortSignal; defaultSeconds?: number } = {},
): Promise<WaitAnswer> {
  const first = getJob(spool, rawId);
  const clamp = clampWaitSeconds(timeoutSeconds, options.defaultSeconds ?? 50, spool.config.wait_max_seconds);
  const started = Date.now();
  if (first.kind === 'ok') keepRunnerAlive(spool, [first.state]);
  const result = await waitForJob(spool.paths, first.id, {
    timeoutMs: clamp.value * 1000,
    pollMs: spool.config.poll_seconds * 1000,
    watchMode: spool.config.watch_mode,
    signal: options.signal,
    onPoll: (states) => keepRunnerAlive(spool, states),
  });
  return {
    snapshot: result.snapshot,
    timed_out: result.timedOut,
    aborted: result.aborted,
    waited_seconds: (Date.now() - started) / 1000,
    notices: clamp.notice ? [clamp.notice] : [],
  };
}

export interface AwaitAnyAnswer {
  finished: JobSnapshot[];
  open: JobSnapshot[];
  timed_out: boolean;
  aborted: boolean;
  notices: string[];
}

/**
 * Waits until one of `ids` (default: every job pending or running now) ends, and returns
 * every one of them that has ended by then. Callers pass the still-open ids back in, so no
 * completion is ever skipped between two calls.
 */
export const NOTHING_TO_AWAIT = 'no jobs to wait for: none is pending or running';

export async function awaitAny(
  spool: Spool,
  rawIds: unknown[] | undefined,
  timeoutSeconds: unknown,
  options: { signal?: AbortSignal; defaultSeconds?: number } = {},
): Promise<AwaitAnyAnswer> {
  const clamp = clampWaitSeconds(timeoutSeconds, options.defaultSeconds ?? 50, spool.config.wait_max_seconds);
  const notices = clamp.notice ? [clamp.notice] : [];
  // ids are only checked for form: a job removed since (gc, retention) is answered as gone
  const ids = rawIds && rawIds.length > 0 ? rawIds.map((raw, i) => parseJobId(raw, `job_ids[${i}]`)) : listActive(spool.paths);
  if (ids.length === 0) {
    return { finished: [], open: [], timed_out: false, aborted: false, notices: [...notices, NOTHING_TO_AWAIT] };
  }
  const unique = [...new Set(ids)];
  const result = await awaitAnySettled(spool.paths, unique, {
    timeoutMs: clamp.value * 1000,
    pollMs: spool.config.poll_seconds * 1000,
    watchMode: spool.config.watch_mode,
    signal: options.signal,
    onPoll: (states) => keepRunnerAlive(spool, states),
  });
  return { finished: result.settled, open: result.open, timed_out: result.timedOut, aborted: result.aborted, notices };
}

// ── cancel, notify ────────────────────────────────────────────────────────────────────────

export interface CancelAnswer {
  state: JobState;
  /** 'cancelled' now; 'already_finished'; or 'stopping' if the worker outlived the wait. */
  result: 'cancelled' | 'already_finished' | 'stopping';
}

export async function cancel(spool: Spool, rawId: unknown, options: { waitSeconds?: number } = {}): Promise<CancelAnswer> {
  const state = requireState(spool, rawId);
  if (isTerminal(state.status)) return { state, result: 'already_finished' };
  const { paths } = spool;
  requestCancel(paths, state.id, `pid ${process.pid}`);
  if (state.status === 'pending') {
    const owner = { role: 'cancel' as const, ...selfIdentity(), epoch: null, at: new Date().toISOString() };
    const cancelled = cancelPendingJob(paths, state, owner);
    if (cancelled) return { state: cancelled, result: 'cancelled' };
    // claimed meanwhile: it is stopped like any running job
  }
  ensureRunner(paths, spool.env);
  const waitSeconds = options.waitSeconds ?? spool.config.kill_grace_seconds + 15;
  const result = await waitForJob(paths, state.id, { timeoutMs: waitSeconds * 1000, pollMs: 250, watchMode: spool.config.watch_mode });
  const latest = result.snapshot.kind === 'ok' ? result.snapshot.state : state;
  return { state: latest, result: isTerminal(latest.status) ? 'cancelled' : 'stopping' };
}

const SUMMARY_MAX = 64 * 1024;

export function notifyDone(spool: Spool, rawId: unknown, summary: unknown): { state: JobState; accepted: boolean; message: string } {
  const state = requireState(spool, rawId);
  if (summary !== undefined && summary !== null && typeof summary !== 'string') {
    throw new UserError('bad_input', 'summary: must be a string (one line saying what was done)', 'summary');
  }
  const text = summary ?? '';
  if (Buffer.byteLength(text) > SUMMARY_MAX) {
    throw new UserError('bad_input', `summary: is ${Buffer.byteLength(text)} bytes; at most ${SUMMARY_MAX} are allowed`, 'summary');
  }
  if (isTerminal(state.status)) {
    return { state, accepted: false, message: `job ${state.id} already ended (${state.status}); nothing to do` };
  }
  if (state.status === 'pending') {
    throw new UserError('conflict', `job_id ${state.id}: the job has not started yet, so it cannot be done; cancel it instead`, 'job_id');
  }
  writeDoneFile(spool.paths, state.id, text);
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
    const read = readState(paths, id);
    if (read.kind === 'corrupt') summary.unreadable.push(id);
    else if (read.kind === 'ok' && read.state.status === 'running') summary.running.push(read.state);
    else if (read.kind === 'ok' && read.state.status === 'pending') summary.pending.push(read.state);
  }
  const alive = leaderAlive(paths);
  const info = readRunnerInfo(paths);
  summary.runner = { alive, pid: alive ? info?.pid ?? null : null, epoch: info?.epoch ?? null, started_at: info?.started_at ?? null };
  return summary;
}

// ── list, show, output ────────────────────────────────────────────────────────────────────

export interface ListOptions {
  limit?: unknown;
  status?: unknown;
}

export const LIST_MAX = 1000;

/** The newest jobs first; reads only as many states as it returns (plus skipped ones). */
export function list(spool: Spool, options: ListOptions = {}): JobSnapshot[] {
  const limit = validateLimit(options.limit, 'limit', LIST_MAX, 20);
  const status = options.status === undefined || options.status === null ? undefined : validateStatus(options.status, JOB_STATUSES);
  const source = status === 'pending' || status === 'running'
    ? listActive(spool.paths).reverse()
    : walkIndex(spool.paths, 'newest');
  const found: JobSnapshot[] = [];
  for (const id of source) {
    const read = readState(spool.paths, id);
    if (read.kind === 'missing') continue;
    if (status !== undefined && (read.kind !== 'ok' || read.state.status !== status)) continue;
    found.push({ id, ...read });
    if (found.length >= limit) break;
  }
  return found;
}

export interface OutputPage {
  job_id: string;
  offset: number;
  next_offset: number;
  size: number;
  eof: boolean;
  data: string;
}

/** Backs `end` off so a page never ends inside a UTF-8 character. */
function utf8Boundary(buffer: Buffer, end: number): number {
  let cut = end;
  while (cut > 0 && cut > end - 4 && ((buffer[cut] ?? 0) & 0xc0) === 0x80) cut -= 1;
  return cut === 0 ? end : cut;
}

export const OUTPUT_PAGE_MAX = 256 * 1024;

/**
 * A page of `output.log` by byte offset; a negative offset counts from the end (a tail).
 * Costs O(page), whatever the size of the log.
 */
export function readOutput(spool: Spool, rawId: unknown, offset = 0, maxBytes = 64 * 1024): OutputPage {
  const id = getJob(spool, rawId).id;
  const file = jobFile(spool.paths, id, JOB_FILES.output);
  const limit = Math.max(1, Math.min(Math.floor(maxBytes), OUTPUT_PAGE_MAX));
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { job_id: id, offset: 0, next_offset: 0, size: 0, eof: true, data: '' };
  }
  try {
    const size = fs.fstatSync(fd).size;
    let start = offset < 0 ? Math.max(0, size + Math.floor(offset)) : Math.min(Math.floor(offset), size);
    const buffer = Buffer.alloc(Math.min(limit + 4, size - start));
    const length = fs.readSync(fd, buffer, 0, buffer.length, start);
    let end = Math.min(length, limit);
    if (end < length) end = utf8Boundary(buffer, end);
    let begin = 0;
    if (offset < 0) while (begin < end && ((buffer[begin] ?? 0) & 0xc0) === 0x80) begin += 1;
    start += begin;
    return {
      job_id: id,
      offset: start,
      next_offset: start + end - begin,
      size,
      eof: start + end - begin >= size,
      data: buffer.subarray(begin, end).toString('utf8'),
    };
  } finally {
    fs.closeSync(fd);
  }
}

// ── gc ────────────────────────────────────────────────────────────────────────────────────

export type { GcOptions, GcReport } from './spool/gc.js';

/** Removes finished jobs older than a cutoff or beyond the newest `keep`; never active ones. */
export function gc(spool: Spool, options: GcOptions): GcReport {
  return gcJobs(spool.paths, options);
}

export type { JobSnapshot } from './spool/store.js';
