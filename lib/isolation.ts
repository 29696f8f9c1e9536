import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { UserError } from './errors.js';
import { diffInput, jobRef, parseInput, type Naming } from './inputs.js';
import { JOB_FILES, jobFile, type SpoolPaths } from './spool/layout.js';
import { changesOf, isTerminal, type JobChanges, type JobRequest, type JobState } from './spool/state.js';
import { applyTransition, listActive, readState } from './spool/store.js';
import {
  applyChanges, deleteRemoteRefs, discardJob, fetchResult, noteRepository, readPatchPage, snapshot, worktreeContext, writePatch, type ApplyResult, type PatchPage,
} from './worktree/index.js';

/**
 * Worktree isolation at the level of jobs: the snapshot a job starts from (taken at submit),
 * and what can be done with an ended job's work: apply it to the work tree, read its patch,
 * discard it (gc is lib/runner/workspace.ts's collectWorktrees). The git layer is
 * lib/worktree; the runner's side (the worktree around the worker) is lib/runner/workspace.ts.
 */

interface IsolationContext {
  paths: SpoolPaths;
  config: { worktree: { submodules: 'refuse' | 'empty' } };
}

/** The top of the work tree holding `dir` (the nearest folder with a `.git`), or null outside one. No git is run. */
export function workTreeOf(dir: string): string | null {
  let at: string;
  try {
    at = fs.realpathSync(dir);
  } catch {
    return null;
  }
  for (;;) {
    if (fs.existsSync(path.join(at, '.git'))) return at;
    const parent = path.dirname(at);
    if (parent === at) return null;
    at = parent;
  }
}

/** Refuses what only an isolated job can take; the request's fields are set by the caller. */
export function checkIsolationInput(input: { isolation: string; base?: string; apply?: boolean }): void {
  if (input.isolation === 'worktree') return;
  const given = input.base !== undefined ? 'base' : input.apply ? 'apply' : null;
  if (given) throw new UserError('bad_input', `${given}: applies only to a job with isolation "worktree" (this one runs in cwd itself, so there is nothing to ${given === 'base' ? 'start from' : 'apply'}); add isolation "worktree" or leave ${given} out`, given);
}

/**
 * An isolated job's snapshot of its cwd's work tree (or of `base`), taken before the job is
 * published so that a refusal queues nothing. A request that has one already (a job that
 * continues another) is returned as it is.
 */
export async function snapshotForJob(ctx: IsolationContext, id: string, request: JobRequest, base: string | undefined): Promise<JobRequest> {
  if (request.isolation !== 'worktree' || request.worktree) return request;
  const taken = await snapshot(worktreeContext(ctx.paths), request.cwd, id, { base, submodules: ctx.config.worktree.submodules });
  noteRepository(ctx.paths, taken.repo_root);
  const { repo_root, prefix, base_commit, from, ref, head, submodules } = taken;
  return { ...request, worktree: { id, repo_root, prefix, base_commit, from, ref, head, submodules } };
}

/** The snapshot of a job that could not be published goes again. */
export async function dropSnapshot(ctx: IsolationContext, id: string, request: JobRequest): Promise<void> {
  if (request.worktree?.id === id) await discardJob(worktreeContext(ctx.paths), request.worktree.repo_root, id).catch(() => undefined);
}

// ── an ended job's work ───────────────────────────────────────────────────────────────────

/** An ended isolated job, and its changes; every other case is an error naming job_id. */
function endedChanges(state: JobState, action: string): { changes: JobChanges; request: IsolatedRequest } {
  const { request } = state;
  if (request.isolation !== 'worktree' || !request.worktree) {
    throw new UserError('bad_input', `job_id ${state.id}: the job ran without isolation, in ${request.cwd} itself, so there are no changes to ${action}; only jobs started with isolation "worktree" have them`, 'job_id');
  }
  if (!isTerminal(state.status)) {
    throw new UserError('conflict', `job_id ${state.id}: the job is still ${state.status}; ${action} its changes once it has ended (wait for it)`, 'job_id');
  }
  const changes = changesOf(state);
  if (!changes) {
    throw new UserError('not_found', `job_id ${state.id}: the job's changes were not recorded (see its output.log); its branch, if any, is agent-async/${request.worktree.id}`, 'job_id');
  }
  if (changes.discarded_at) {
    throw new UserError('not_found', `job_id ${state.id}: the job's changes were discarded at ${changes.discarded_at}; there is nothing to ${action}`, 'job_id');
  }
  return { changes, request: request as IsolatedRequest };
}

function readEnded(paths: SpoolPaths, id: string): JobState {
  const read = readState(paths, id);
  if (read.kind === 'ok') return read.state;
  if (read.kind === 'missing') throw new UserError('not_found', `job_id ${JSON.stringify(id)}: no such job in ${paths.jobs}`, 'job_id');
  throw new UserError('corrupt_state', `job_id ${id}: state.json is unreadable (${read.reason})`, 'job_id');
}

/**
 * Where an ended job is read and what becomes of its changes is recorded: the spool; in fleet
 * mode, for a job whose folder is on another host, the queue (lib/jobs-fleet.ts).
 */
export interface EndedJobs {
  read(id: string): Promise<JobState>;
  record(state: JobState, changes: JobChanges): Promise<JobState>;
}

export function spoolJobs(paths: SpoolPaths): EndedJobs {
  return {
    read: (id) => Promise.resolve(readEnded(paths, id)),
    record: (state, changes) => Promise.resolve(applyTransition(paths, state.id, { name: 'record_changes', changes })),
  };
}

type IsolatedRequest = JobRequest & { worktree: NonNullable<JobRequest['worktree']> };

/**
 * A job that ran on another host (fleet mode) left its branch on the remote: it is fetched into
 * the local branch `agent-async/<id>` (never forced), after which it is as a local job's.
 */
async function fetchRemoteResult(ctx: IsolationContext, state: JobState, changes: JobChanges, request: IsolatedRequest): Promise<void> {
  if (changes.pushed_to) {
    const { url, commit } = changes.pushed_to;
    await fetchResult(worktreeContext(ctx.paths), request.worktree.repo_root, url, request.worktree.id, commit);
  } else if (changes.push_error) {
    throw new UserError('conflict', `job_id ${state.id}: ${changes.push_error}`, 'job_id');
  }
}

export interface ApplyAnswer {
  state: JobState;
  result: ApplyResult;
}

/**
 * job_apply: the job's changes are merged into its cwd's work tree, unstaged and uncommitted.
 * A conflict changes nothing and answers the files; applying twice is refused.
 */
export async function applyJob(ctx: IsolationContext, raw: z.input<typeof jobRef>, naming: Naming = {}, jobs: EndedJobs = spoolJobs(ctx.paths)): Promise<ApplyAnswer> {
  const state = await jobs.read(parseInput(jobRef, raw, naming).job_id);
  const { changes, request } = endedChanges(state, 'apply');
  if (changes.applied) {
    throw new UserError('conflict', `job_id ${state.id}: its changes were already applied to ${changes.applied.into} at ${changes.applied.at}; applying twice is refused`, 'job_id');
  }
  await fetchRemoteResult(ctx, state, changes, request);
  const result = await applyChanges(worktreeContext(ctx.paths), { id: request.worktree.id, repo_root: request.worktree.repo_root }, request.cwd);
  if (result.kind === 'conflict') return { state, result };
  const recorded = await jobs.record(state, { ...changes, applied: result.applied, apply_error: null });
  return { state: recorded, result };
}

/** job_diff: a page of the job's changes.patch (for a job that ran on another host, made here from its fetched branch). */
export async function diffJob(ctx: IsolationContext, raw: z.input<typeof diffInput>, naming: Naming = {}, jobs: EndedJobs = spoolJobs(ctx.paths)): Promise<PatchPage & { job_id: string; files: JobChanges['files'] }> {
  const input = parseInput(diffInput, raw, naming);
  const state = await jobs.read(input.job_id);
  const { changes, request } = endedChanges(state, 'show');
  const local = jobFile(ctx.paths, state.id, JOB_FILES.patch);
  if (!changes.pushed_to && !changes.push_error) {
    const page = await readPatchPage(local, input.offset, input.max_bytes);
    return { job_id: state.id, files: changes.files, ...page };
  }
  await fetchRemoteResult(ctx, state, changes, request);
  const made = path.join(ctx.paths.tmp, `${state.id}.${process.pid}.${randomBytes(6).toString('hex')}.patch`);
  try {
    await writePatch(worktreeContext(ctx.paths), request.worktree.repo_root, changes.base_commit, changes.head_commit, made);
    const page = await readPatchPage(made, input.offset, input.max_bytes);
    return { job_id: state.id, files: changes.files, ...page };
  } finally {
    await fsp.rm(made, { force: true });
  }
}

/** A pending or running job that works on the branch of worktree `worktreeId` (a job continuing it). */
function liveJobOnBranch(paths: SpoolPaths, worktreeId: string): JobState | null {
  for (const id of listActive(paths)) {
    const read = readState(paths, id);
    if (read.kind === 'ok' && !isTerminal(read.state.status) && read.state.request.worktree?.id === worktreeId) return read.state;
  }
  return null;
}

/**
 * job_discard: the job's branch, refs and worktree go (and, for a snapshot pushed to a remote
 * in fleet mode, its refs there); recorded in its changes. Refused while a job continuing it is live.
 */
export async function discardJobChanges(ctx: IsolationContext, raw: z.input<typeof jobRef>, naming: Naming = {}, jobs: EndedJobs = spoolJobs(ctx.paths)): Promise<{ state: JobState; removed: string[] }> {
  const state = await jobs.read(parseInput(jobRef, raw, naming).job_id);
  const { changes, request } = endedChanges(state, 'discard');
  const continuing = liveJobOnBranch(ctx.paths, request.worktree.id);
  if (continuing) {
    throw new UserError('conflict', `job_id ${state.id}: job ${continuing.id} continues its work on branch agent-async/${request.worktree.id} and is ${continuing.status}; cancel that job or wait for it to end, then discard`, 'job_id');
  }
  const wtx = worktreeContext(ctx.paths);
  const url = request.worktree.remote_url;
  if (url !== undefined && request.worktree.id === state.id) await deleteRemoteRefs(wtx, request.worktree.repo_root, url, state.id);
  const report = await discardJob(wtx, request.worktree.repo_root, request.worktree.id);
  const recorded = await jobs.record(state, { ...changes, discarded_at: new Date().toISOString() });
  return { state: recorded, removed: report.removed };
}
