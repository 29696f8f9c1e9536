import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import type { SpoolPaths } from '../spool/layout.js';
import type { JobRequest } from '../spool/state.js';
import type { WorktreeContext } from './git.js';
import { worktreesDir } from './layout.js';
import { cachePath } from './remote.js';

/**
 * The git layer as a spool uses it: its context, the cache clone a job from another host runs
 * in, and the list of repositories jobs were isolated in (for gc).
 */

/** The git layer's context for the spool; with a job id, the git it starts carries that id (reconcile stops it). */
export function worktreeContext(paths: SpoolPaths, jobId?: string): WorktreeContext {
  return { home: paths.home, ...(jobId === undefined ? {} : { env: { AGENT_ASYNC_JOB_ID: jobId } }) };
}

/** The remote URL of a job that runs from this host's cache of it (`runnerRequest`); null for any other job. */
export function cacheRemoteOf(paths: SpoolPaths, request: JobRequest): string | null {
  const url = request.worktree?.remote_url;
  if (request.isolation !== 'worktree' || url === undefined) return null;
  return request.worktree!.repo_root === cachePath(worktreeContext(paths), url) ? url : null;
}

function repositoriesFile(paths: SpoolPaths): string {
  // a name that is no job id: sweepWorktreeFolders takes those for worktree leftovers
  return path.join(worktreesDir(worktreeContext(paths)), '.repositories');
}

/** Every repository a snapshot was taken in, so that gc finds the refs of jobs long removed. */
export function noteRepository(paths: SpoolPaths, root: string): void {
  if (knownRepositories(paths).includes(root)) return;
  fs.mkdirSync(path.dirname(repositoriesFile(paths)), { recursive: true, mode: 0o700 });
  // one short line with O_APPEND: concurrent submits never lose one another's
  fs.appendFileSync(repositoriesFile(paths), `${root}\n`, { mode: 0o600 });
}

export function knownRepositories(paths: SpoolPaths): string[] {
  try {
    return [...new Set(fs.readFileSync(repositoriesFile(paths), 'utf8').split('\n').filter(Boolean))];
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
}
