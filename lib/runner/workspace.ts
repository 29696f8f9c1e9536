import type { Config } from '../config.js';
import { JOB_FILES, jobFile, type SpoolPaths } from '../spool/layout.js';
import type { JobChanges, JobError, JobRequest, JobState } from '../spool/state.js';
import {
  SetupFailedError, applyChanges, createWorktree, finishWorktree, recreateWorktree, type WorktreeContext,
} from '../worktree/index.js';

/**
 * Where a job's worker runs, and what becomes of its work: the runner side of worktree
 * isolation. Before the worker, an isolated job's worktree is made (or, for a job that
 * continues another, made again from its branch); after it, at every end, what the worker
 * left is committed onto the job's branch and described as `changes`, before the end is
 * written. A job without isolation runs in its cwd and has no changes.
 */

/** The git layer's context for the spool; with a job id, the git it starts carries that id (reconcile stops it). */
export function worktreeContext(paths: SpoolPaths, jobId?: string): WorktreeContext {
  return { home: paths.home, ...(jobId === undefined ? {} : { env: { AGENT_ASYNC_JOB_ID: jobId } }) };
}

export type Workspace =
  | { kind: 'ready'; cwd: string; env: Record<string, string> }
  | { kind: 'failed'; error: JobError };

const SETUP_OUTPUT_IN_MESSAGE = 2048;

/**
 * The worker's folder and the environment it gets besides the usual. For an isolated job the
 * worktree is made now (with `worktree.copy` and `worktree.setup`; setup's output goes to
 * `onOutput`); a failure is the job's `setup_failed` error.
 */
export async function prepareWorkspace(paths: SpoolPaths, state: JobState, config: Config, onOutput: (chunk: Buffer) => void): Promise<Workspace> {
  const { request } = state;
  const snapshot = request.worktree;
  if (request.isolation !== 'worktree' || !snapshot) return { kind: 'ready', cwd: request.cwd, env: {} };
  const make = snapshot.id === state.id ? createWorktree : recreateWorktree;
  try {
    const record = await make(worktreeContext(paths, state.id), snapshot, {
      copy: config.worktree.copy,
      setup: config.worktree.setup ?? undefined,
      setupTimeoutMs: config.worktree.setup_timeout_seconds * 1000,
      setupEnv: { ...process.env, AGENT_ASYNC_JOB_ID: state.id },
      onSetupOutput: onOutput,
    });
    return { kind: 'ready', cwd: record.workdir, env: { AGENT_ASYNC_WORKTREE: record.path } };
  } catch (error) {
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
  return state.request.apply && endsDone() ? applyOnDone(paths, state.request, changes) : changes;
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
