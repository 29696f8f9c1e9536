import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import { GitError, runGit, type WorktreeContext } from './git.js';
import { isDirectory, worktreePath, worktreesDir } from './layout.js';
import { parseWorktreeList, type WorktreeEntry } from './parse.js';

/**
 * The registrations of worktrees in the user's repository (`git worktree list`), and removing
 * one of ours whatever state a crash left it in.
 */

/**
 * A `worktree add` of another job in the same repository writes its registration
 * (`.git/worktrees/<id>/`) file by file; a list made meanwhile fails on the half-written one
 * ("failed to read …/commondir"); so does a `worktree add` (it reads them all to see where
 * the branch is checked out). Either is made again a moment later.
 */
const HALF_WRITTEN = /failed to read .*worktrees\/[^/\s]+\/(commondir|gitdir|HEAD)|worktrees\/[^/\s]+\/gitdir: (No such file|Success)/;
export const HALF_WRITTEN_ATTEMPTS = 40;
export const HALF_WRITTEN_RETRY_MS = 25;

/** git failed on another worktree's registration while that one was being written. */
export function isHalfWrittenRegistration(error: unknown): boolean {
  return error instanceof GitError && HALF_WRITTEN.test(error.stderr);
}

export async function listWorktrees(ctx: WorktreeContext, root: string): Promise<WorktreeEntry[]> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const result = await runGit(ctx, ['worktree', 'list', '--porcelain', '-z'], { cwd: root });
      return parseWorktreeList(result.stdout);
    } catch (error) {
      if (attempt >= HALF_WRITTEN_ATTEMPTS || !isHalfWrittenRegistration(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, HALF_WRITTEN_RETRY_MS));
    }
  }
}

/** The worktrees folder as git records paths in it (real paths, symlinks resolved). */
export function canonicalWorktreesDir(ctx: WorktreeContext): string {
  const dir = worktreesDir(ctx);
  try {
    return fs.realpathSync(dir);
  } catch {
    return dir;
  }
}

export function canonicalWorktreePath(ctx: WorktreeContext, id: string): string {
  return path.join(canonicalWorktreesDir(ctx), path.basename(worktreePath(ctx, id)));
}

export async function findWorktree(ctx: WorktreeContext, root: string, id: string): Promise<WorktreeEntry | undefined> {
  const wanted = canonicalWorktreePath(ctx, id);
  return (await listWorktrees(ctx, root)).find((entry) => entry.path === wanted);
}

/**
 * Removes the worktree of `id` and its registration, complete or half made: a `worktree add`
 * killed mid-checkout leaves a registration locked "initializing", which `prune` skips, so it
 * is removed with `--force --force`, or unlocked first when its folder is already gone.
 */
export async function dropWorktree(ctx: WorktreeContext, root: string, id: string): Promise<boolean> {
  const wt = worktreePath(ctx, id);
  const entry = await findWorktree(ctx, root, id);
  if (entry) {
    if (fs.existsSync(entry.path)) {
      await runGit(ctx, ['worktree', 'remove', '--force', '--force', entry.path], { cwd: root });
    } else {
      if (entry.locked !== null) await runGit(ctx, ['worktree', 'unlock', entry.path], { cwd: root, okCodes: [128] });
      await runGit(ctx, ['worktree', 'prune'], { cwd: root });
    }
  }
  const hadFolder = isDirectory(wt);
  if (hadFolder) await fsp.rm(wt, { recursive: true, force: true });
  return entry !== undefined || hadFolder;
}

/** Another work tree (the user's, say) that has the job's branch checked out, if any. */
export async function branchCheckedOutElsewhere(ctx: WorktreeContext, root: string, id: string, branchRef: string): Promise<string | null> {
  const ours = canonicalWorktreePath(ctx, id);
  const other = (await listWorktrees(ctx, root)).find((entry) => entry.branch === branchRef && entry.path !== ours);
  return other?.path ?? null;
}

export function checkedOutError(branch: string, where: string): UserError {
  return new UserError('conflict', `job_id: branch ${branch} is checked out at ${where}; switch that work tree to another branch first`, 'job_id');
}

/** Where a GitError says the branch is checked out already, or null when it says something else. */
export function checkedOutAt(error: unknown): string | null {
  if (!(error instanceof GitError)) return null;
  const match = /(?:is already checked out at|already used by worktree at) '([^']+)'/.exec(error.stderr);
  return match ? match[1]! : null;
}
