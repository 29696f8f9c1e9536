import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { readTextCapped } from '../spool/fsx.js';
import { deleteRef, runGit, type WorktreeContext } from './git.js';
import {
  BRANCH_PREFIX, REF_ROOT, TEMP_INDEX_PATTERN, branchName, checkId, jobRefs, readRecord, recordPath, removeRecord,
  removeTempIndexes, worktreePath, worktreesDir,
} from './layout.js';
import { parseRefs } from './parse.js';
import { branchCheckedOutElsewhere, canonicalWorktreesDir, checkedOutError, dropWorktree, listWorktrees } from './worktrees.js';

/**
 * Discarding a job's git state, and garbage collection: what a repository holds for which
 * job ids, removing it for given ids (a branch with work nobody applied is kept unless
 * asked), `git worktree prune`, and sweeping worktree folders of jobs that are gone.
 */

/** What a repository holds for one job id. */
export interface JobGitState {
  id: string;
  base: string | null;
  start: string | null;
  applied: string | null;
  /** The tip of `agent-async/<id>`. */
  branch: string | null;
  /** Our worktree's path when one is registered. */
  worktree: string | null;
}

/** Every job id with refs, a branch or a worktree of ours in the repository at `root`. */
export async function listJobStates(ctx: WorktreeContext, root: string): Promise<JobGitState[]> {
  const listing = await runGit(ctx, ['for-each-ref', '--format=%(refname)%00%(objectname)', REF_ROOT, `refs/heads/${BRANCH_PREFIX}`], { cwd: root });
  const states = new Map<string, JobGitState>();
  const stateOf = (id: string): JobGitState => {
    let state = states.get(id);
    if (!state) states.set(id, (state = { id, base: null, start: null, applied: null, branch: null, worktree: null }));
    return state;
  };
  for (const [name, object] of parseRefs(listing.stdout)) {
    const own = /^refs\/agent-async\/([0-9a-z]{1,64})\/(base|start|applied)$/.exec(name);
    if (own) stateOf(own[1]!)[own[2] as 'base' | 'start' | 'applied'] = object;
    const branch = /^refs\/heads\/agent-async\/([0-9a-z]{1,64})$/.exec(name);
    if (branch) stateOf(branch[1]!).branch = object;
  }
  const dir = canonicalWorktreesDir(ctx);
  for (const entry of await listWorktrees(ctx, root)) {
    const id = path.dirname(entry.path) === dir ? path.basename(entry.path) : '';
    if (/^[0-9a-z]{1,64}$/.test(id)) stateOf(id).worktree = entry.path;
  }
  return [...states.values()];
}

/**
 * The branch holds work beyond what was applied (or, never applied, beyond the job's start):
 * a job continued after an apply adds work the applied ref does not cover.
 */
export function hasUnappliedWork(state: JobGitState): boolean {
  return state.branch !== null && state.branch !== (state.applied ?? state.start ?? state.base);
}

export interface DiscardReport {
  /** What was there and is gone: `worktree`, `branch`, ref names. */
  removed: string[];
}

/**
 * `job_discard`: the job's worktree, branch and `refs/agent-async/<id>/*` go, whatever they
 * hold. Refused when the user has the branch checked out. Calling it again removes nothing.
 */
export async function discardJob(ctx: WorktreeContext, root: string, id: string): Promise<DiscardReport> {
  const refs = jobRefs(id);
  const elsewhere = await branchCheckedOutElsewhere(ctx, root, id, refs.branch);
  if (elsewhere) throw checkedOutError(branchName(id), elsewhere);
  const removed: string[] = [];
  if (await dropWorktree(ctx, root, id)) removed.push('worktree');
  await removeRecord(ctx, id);
  await removeTempIndexes(ctx, id, false);
  for (const ref of [refs.branch, refs.base, refs.start, refs.applied]) {
    if (await deleteRef(ctx, root, ref)) removed.push(ref);
  }
  return { removed };
}

export interface RemoveReport {
  /** Ids whose worktree, branch and refs are all gone. */
  removed: string[];
  /** Ids whose branch holds unapplied work: worktree gone, branch and base refs kept. */
  kept_branches: string[];
  /** Ids left alone, and why (a branch the user has checked out). */
  skipped: { id: string; reason: string }[];
}

/**
 * gc of the given job ids in one repository. A branch with work nobody applied is kept
 * (with its base ref, so `git diff refs/agent-async/<id>/base agent-async/<id>` still shows
 * the work) unless `branches` is set; everything else goes. Ends with `git worktree prune`.
 */
export async function removeJobs(ctx: WorktreeContext, root: string, ids: Iterable<string>, options: { branches?: boolean } = {}): Promise<RemoveReport> {
  const report: RemoveReport = { removed: [], kept_branches: [], skipped: [] };
  const states = new Map((await listJobStates(ctx, root)).map((state) => [state.id, state]));
  for (const id of ids) {
    checkId(id);
    const state = states.get(id);
    if (state && hasUnappliedWork(state) && !options.branches) {
      await dropWorktree(ctx, root, id);
      await removeRecord(ctx, id);
      await removeTempIndexes(ctx, id, false);
      report.kept_branches.push(id);
      continue;
    }
    try {
      await discardJob(ctx, root, id);
      report.removed.push(id);
    } catch (error) {
      report.skipped.push({ id, reason: (error as Error).message });
    }
  }
  await pruneWorktrees(ctx, root);
  return report;
}

/** Forgets registrations of worktrees whose folders are gone (`git worktree prune`). */
export async function pruneWorktrees(ctx: WorktreeContext, root: string): Promise<void> {
  await runGit(ctx, ['worktree', 'prune'], { cwd: root });
}

/** Ids that have anything in `<home>/worktrees`: a folder, a record or a temp index. */
export async function listWorktreeFolders(ctx: WorktreeContext): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(worktreesDir(ctx));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
  const ids = new Set<string>();
  for (const name of names) {
    const id = /^[0-9a-z]{1,64}$/.test(name) ? name : /^([0-9a-z]{1,64})\.json$/.exec(name)?.[1] ?? TEMP_INDEX_PATTERN.exec(name)?.[1];
    if (id) ids.add(id);
  }
  return [...ids].sort();
}

/**
 * Removes the worktree folders, records and temp indexes of every id not in `keep` (jobs
 * that no longer exist), through git when the folder still names its repository. Temp
 * indexes of kept ids are removed when the process that made them is gone.
 * Refs and branches stay: remove those with `removeJobs` in each repository.
 */
export async function sweepWorktreeFolders(ctx: WorktreeContext, keep: ReadonlySet<string>): Promise<string[]> {
  const swept: string[] = [];
  for (const id of await listWorktreeFolders(ctx)) {
    if (keep.has(id)) {
      await removeTempIndexes(ctx, id, true);
      continue;
    }
    const root = repositoryOf(ctx, id);
    if (root) await dropWorktree(ctx, root, id).catch(() => false);
    await fsp.rm(worktreePath(ctx, id), { recursive: true, force: true });
    await fsp.rm(recordPath(ctx, id), { force: true });
    await removeTempIndexes(ctx, id, false);
    swept.push(id);
  }
  return swept;
}

/** The user's repository of a worktree folder: from its record, else from its `.git` file. */
function repositoryOf(ctx: WorktreeContext, id: string): string | null {
  const record = readRecord(ctx, id);
  if (record && fs.existsSync(record.repo_root)) return record.repo_root;
  // the worker could have put anything there: only a small regular file is read, never blocking
  const pointer = readTextCapped(path.join(worktreePath(ctx, id), '.git'), GIT_POINTER_MAX_BYTES);
  if (pointer === undefined || !pointer.startsWith('gitdir: ')) return null;
  // gitdir: <common dir>/worktrees/<name>; git runs fine from the common dir itself
  const commonDir = path.dirname(path.dirname(pointer.slice('gitdir: '.length).trim()));
  return fs.existsSync(commonDir) ? commonDir : null;
}

const GIT_POINTER_MAX_BYTES = 4096;
