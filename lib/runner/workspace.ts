import fs from 'node:fs';
import type { Config } from '../config.js';
import { isJobId, jobIdTime } from '../spool/ids.js';
import { JOB_FILES, jobDir, jobFile, type SpoolPaths } from '../spool/layout.js';
import type { JobChanges, JobError, JobRequest, JobState } from '../spool/state.js';
import { readState } from '../spool/store.js';
import {
  SetupCancelledError, SetupFailedError, applyChanges, branchName, cachePath, createWorktree, discardJob, fetchBase, fetchBranch, finishWorktree, hasUnappliedWork, listJobStates,
  listWorktreeFolders, pushResult, recreateWorktree, remoteRefs, removeJobs, sweepWorktreeFolders,
  cacheRemoteOf, knownRepositories, noteRepository, worktreeContext,
} from '../worktree/index.js';

/**
 * Where a job's worker runs, and what becomes of its work: the runner side of worktree
 * isolation. Before the worker, an isolated job's worktree is made (or, for a job that
 * continues another, made again from its branch); after it, at every end, what the worker
 * left is committed onto the job's branch and described as `changes`, before the end is
 * written. A job without isolation runs in its cwd and has no changes. And gc: what jobs
 * that are gone left in the repositories they were isolated in.
 */

export type Workspace =
  | { kind: 'ready'; cwd: string; env: Record<string, string> }
  | { kind: 'failed'; error: JobError }
  /** The job was cancelled while `worktree.setup` ran (`cancelled` aborted); setup was stopped. */
  | { kind: 'cancelled' };

const SETUP_OUTPUT_IN_MESSAGE = 2048;

/**
 * The worker's folder and the environment it gets besides the usual. For an isolated job the
 * worktree is made now (with `worktree.copy` and `worktree.setup`; setup's output goes to
 * `onOutput`); a failure is the job's `setup_failed` error.
 */
export async function prepareWorkspace(paths: SpoolPaths, state: JobState, config: Config, onOutput: (chunk: Buffer) => void, cancelled?: AbortSignal): Promise<Workspace> {
  const { request } = state;
  const snapshot = request.worktree;
  if (request.isolation !== 'worktree' || !snapshot) return { kind: 'ready', cwd: request.cwd, env: {} };
  const make = snapshot.id === state.id ? createWorktree : recreateWorktree;
  try {
    const url = cacheRemoteOf(paths, request);
    if (url !== null) {
      noteRepository(paths, snapshot.repo_root); // gc finds the worktree and refs a crash left in the cache
      await fetchBase(worktreeContext(paths, state.id), url, snapshot.id, snapshot.base_commit);
      if (make === recreateWorktree) await fetchBranch(worktreeContext(paths, state.id), url, snapshot.id);
    }
    const record = await make(worktreeContext(paths, state.id), snapshot, {
      copy: config.worktree.copy,
      setup: config.worktree.setup ?? undefined,
      setupTimeoutMs: config.worktree.setup_timeout_seconds * 1000,
      setupEnv: { ...process.env, AGENT_ASYNC_JOB_ID: state.id },
      onSetupOutput: onOutput,
      signal: cancelled,
    });
    return { kind: 'ready', cwd: record.workdir, env: { AGENT_ASYNC_WORKTREE: record.path } };
  } catch (error) {
    if (error instanceof SetupCancelledError) return { kind: 'cancelled' };
    return { kind: 'failed', error: setupError(error) };
  }
}

function setupError(error: unknown): JobError {
  if (error instanceof SetupFailedError) {
    const tail = error.output.length > SETUP_OUTPUT_IN_MESSAGE ? `…${error.output.slice(-SETUP_OUTPUT_IN_MESSAGE)}` : error.output;
    return {
      code: 'setup_failed',
      message: `${error.message}${tail.trim() ? `; its output ended with:\n${tail.trimEnd()}` : ' without output'}`,
      hint: 'fix worktree.setup in config.json (its whole output is in output.log), then retry the job',
    };
  }
  return {
    code: 'setup_failed',
    message: `the job's worktree could not be made: ${(error as Error).message}`,
    hint: 'retry the job; `agent-async discard <id>` removes what is left of it',
  };
}

/**
 * At the end of an isolated job, whatever the end: commits what the worker left onto the job's
 * branch, writes `changes.patch` and removes the worktree; with `apply: true` and a job that
 * ends done (`endsDone`), applies the changes to its cwd. Null for a job without isolation,
 * or when git failed (said through `log`; the job's end is written all the same).
 */
export async function finishWorkspace(paths: SpoolPaths, state: JobState, log: (message: string) => void, endsDone: () => boolean): Promise<JobChanges | null> {
  const snapshot = state.request.worktree;
  if (state.request.isolation !== 'worktree' || !snapshot) return null;
  let changes: JobChanges;
  try {
    const finished = await finishWorktree(worktreeContext(paths, state.id), snapshot, jobFile(paths, state.id, JOB_FILES.patch));
    for (const warning of finished.warnings) log(`job ${state.id}: ${warning}`);
    changes = { ...finished.changes, applied: null, discarded_at: null, ...(finished.warnings.length > 0 ? { warnings: finished.warnings } : {}) };
  } catch (error) {
    log(`job ${state.id}: its changes could not be recorded: ${(error as Error).message}`);
    return null;
  }
  const url = cacheRemoteOf(paths, state.request);
  if (url !== null) return pushBack(paths, snapshot.id, url, changes, log);
  return state.request.apply && endsDone() ? applyOnDone(paths, state.request, changes) : changes;
}

// ── a job submitted on another host (fleet mode) ────────────────────────────────────────

/**
 * The request as this host runs a job that another host submitted with its snapshot pushed to
 * `remote_url`: its worktree is made from this host's cache of that remote, and its `cwd` (a
 * path on the submitter's host) is this spool until the worktree exists. Only the local
 * state.json holds these paths; the queue keeps the submitter's.
 */
export function runnerRequest(paths: SpoolPaths, request: JobRequest): JobRequest {
  const snapshot = request.worktree;
  if (request.isolation !== 'worktree' || snapshot?.remote_url === undefined) return request;
  const cache = cachePath(worktreeContext(paths), snapshot.remote_url);
  return { ...request, cwd: paths.home, work_tree: null, worktree: { ...snapshot, repo_root: cache } };
}

/**
 * The job's branch goes back to the remote as `refs/agent-async/<id>/result`, where its
 * submitter fetches it; then the cache forgets the job. A push that fails is recorded in the
 * changes (`push_error`) and said; the branch stays in the cache, and the job keeps its end.
 */
async function pushBack(paths: SpoolPaths, id: string, url: string, changes: JobChanges, log: (message: string) => void): Promise<JobChanges> {
  const ctx = worktreeContext(paths, id);
  const cache = cachePath(ctx, url);
  try {
    const commit = await pushResult(ctx, cache, url, id);
    await discardJob(ctx, cache, id).catch((error: unknown) => log(`job ${id}: its refs in ${cache} stay (gc removes them): ${(error as Error).message}`));
    return { ...changes, pushed_to: { url, ref: remoteRefs(id).result, commit }, push_error: null };
  } catch (error) {
    const message = `the job's branch could not be pushed to ${url}, so its submitter cannot fetch it; it stays as ${branchName(id)} in ${cache} on this host: ${(error as Error).message.trim()}`;
    log(`job ${id}: ${message}`);
    return { ...changes, pushed_to: null, push_error: message, warnings: [...(changes.warnings ?? []), message] };
  }
}

/** `apply: true`: the changes go to the job's cwd; a conflict changes nothing and is recorded. */
async function applyOnDone(paths: SpoolPaths, request: JobRequest, changes: JobChanges): Promise<JobChanges> {
  const snapshot = request.worktree!;
  try {
    const result = await applyChanges(worktreeContext(paths), { id: snapshot.id, repo_root: snapshot.repo_root }, request.cwd);
    if (result.kind === 'applied') return { ...changes, applied: result.applied };
    return { ...changes, apply_error: `not applied, nothing was changed: these files conflict with the work tree: ${result.files.join(', ')}` };
  } catch (error) {
    return { ...changes, apply_error: `not applied, nothing was changed: ${(error as Error).message}` };
  }
}

// ── the repositories jobs were isolated in, and gc ──────────────────────────────────────


/** A snapshot is taken just before its job is published: refs this young may belong to one. */
const YOUNG_REFS_MS = 10 * 60_000;

export interface WorktreeGcReport {
  /** Job ids whose branch, refs and worktree were removed. */
  removed: string[];
  /** Job ids whose branch holds work nobody applied or discarded: kept (gc --branches removes them). */
  kept_branches: string[];
  /** Job ids left alone, and why (the user has the branch checked out). */
  skipped: { id: string; reason: string }[];
  /** Worktree folders of jobs that are gone, removed from the spool. */
  swept: string[];
}

/**
 * What jobs that no longer exist left in the repositories: their refs and worktrees (`git
 * worktree prune`), and their branches when they hold nothing unapplied, or with `branches`.
 */
export async function collectWorktrees(paths: SpoolPaths, options: { branches: boolean; dryRun?: boolean }): Promise<WorktreeGcReport> {
  const ctx = worktreeContext(paths);
  const report: WorktreeGcReport = { removed: [], kept_branches: [], skipped: [], swept: [] };
  let inUse: Set<string> | null = null;
  const gone = (id: string): boolean => {
    if (!isJobId(id) || Date.now() - jobIdTime(id).getTime() < YOUNG_REFS_MS || fs.existsSync(jobDir(paths, id))) return false;
    inUse ??= worktreesInUse(paths);
    return !inUse.has(id);
  };
  for (const root of knownRepositories(paths)) {
    if (!fs.existsSync(root)) continue;
    const states = (await listJobStates(ctx, root)).filter((state) => gone(state.id));
    if (states.length === 0) continue;
    if (options.dryRun) {
      // what removeJobs would do: a branch with unapplied work stays unless `branches`
      for (const state of states) (hasUnappliedWork(state) && !options.branches ? report.kept_branches : report.removed).push(state.id);
      continue;
    }
    const removed = await removeJobs(ctx, root, states.map((state) => state.id), { branches: options.branches });
    report.removed.push(...removed.removed);
    report.kept_branches.push(...removed.kept_branches);
    report.skipped.push(...removed.skipped);
  }
  if (!options.dryRun) {
    // a job being submitted has a temp index and no folder yet
    const young = (await listWorktreeFolders(ctx)).filter((id) => !isJobId(id) || Date.now() - jobIdTime(id).getTime() < YOUNG_REFS_MS);
    const live = new Set([...fs.readdirSync(paths.jobs), ...(inUse ?? worktreesInUse(paths)), ...young]);
    report.swept = await sweepWorktreeFolders(ctx, live);
  }
  return report;
}

/** Worktree ids that jobs in the spool name: a job that continues another works on that job's branch. */
function worktreesInUse(paths: SpoolPaths): Set<string> {
  const ids = new Set<string>();
  for (const id of fs.readdirSync(paths.jobs)) {
    if (!isJobId(id)) continue;
    const read = readState(paths, id);
    if (read.kind === 'ok' && read.state.request.worktree) ids.add(read.state.request.worktree.id);
  }
  return ids;
}
