import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import { tempFor } from '../spool/fsx.js';
import { worktreeGitEnv } from './create.js';
import { gitText, readRef, resolveCommit, runGit, updateRef, type WorktreeContext } from './git.js';
import { branchName, isDirectory, jobRefs, readRecord, removeRecord, removeTempIndexes, worktreePath } from './layout.js';
import { mergeFileStats, parseNameStatus, parseNumstat, type ChangedFile } from './parse.js';
import { addEverything, commitTree } from './snapshot.js';
import { dropWorktree } from './worktrees.js';

/**
 * The end of an isolated job, whatever its end (done, error, cancelled, timed out, runner
 * lost): everything left uncommitted in the worktree is committed onto the job's branch, the
 * changes are described and written as a binary-safe patch, and the worktree folder goes (the
 * branch keeps the work). Calling it again after a crash finishes what the first call began.
 */

/** `state.json` `changes`: what the job changed, from its starting point to its branch. */
export interface Changes {
  branch: string;
  /** What the worker started from: the snapshot, or with `worktree.setup` changes the commit of those. */
  base_commit: string;
  head_commit: string;
  files: ChangedFile[];
  /** Size of the patch file (`git diff --binary base_commit head_commit`). */
  patch_bytes: number;
}

export interface FinishResult {
  changes: Changes;
  /** Things done that the job's log should say (a stale lock removed, HEAD moved by the worker). */
  warnings: string[];
}

export interface FinishTarget {
  id: string;
  repo_root: string;
}

export async function finishWorktree(ctx: WorktreeContext, target: FinishTarget, patchFile: string): Promise<FinishResult> {
  const { id, repo_root: root } = target;
  const refs = jobRefs(id);
  const base = await readRef(ctx, root, refs.base);
  if (base === null) throw new UserError('not_found', `job_id: job ${id} has no snapshot in ${root} (${refs.base} is missing: discarded, or never taken)`, 'job_id');
  const start = (await readRef(ctx, root, refs.start)) ?? base;
  const warnings: string[] = [];
  const wt = worktreePath(ctx, id);
  const record = readRecord(ctx, id);
  if (record && isDirectory(wt)) await commitLeftovers(ctx, root, wt, id, record.copied, warnings);
  else if (isDirectory(wt)) warnings.push(`the worktree ${wt} was never complete (its creation was interrupted), so nothing in it was committed`);
  else if (record) warnings.push(`the worktree ${wt} was gone before the end of the job: only what was committed in it is on the branch`);
  let head = await readRef(ctx, root, refs.branch);
  if (head === null) {
    await updateRef(ctx, root, refs.branch, start, null);
    head = start;
  }
  const changes = await describeChanges(ctx, root, { branch: branchName(id), base_commit: start, head_commit: head }, patchFile);
  try {
    await dropWorktree(ctx, root, id);
  } catch (error) {
    warnings.push(`the worktree ${wt} could not be removed (gc will retry): ${(error as Error).message}`);
  }
  await removeRecord(ctx, id);
  await removeTempIndexes(ctx, id, false);
  return { changes, warnings };
}

/**
 * Commits what the worker left (new, changed, deleted files; ignored ones and `worktree.copy`
 * paths excepted) with plumbing: no hooks, no signing, no commit template, whatever the
 * user's config says. The commit goes on top of the worktree's HEAD; if the worker moved
 * HEAD off the job's branch, the job's branch is moved to that commit (a branch of the user's
 * the worker checked out is left where the worker left it).
 */
async function commitLeftovers(ctx: WorktreeContext, root: string, wt: string, id: string, copied: readonly string[], warnings: string[]): Promise<void> {
  const env = worktreeGitEnv(wt);
  const top = await runGit(ctx, ['rev-parse', '--show-toplevel'], { cwd: wt, env, okCodes: [128] });
  if (top.code !== 0 || top.stdout.toString('utf8').trim() !== fs.realpathSync(wt)) {
    warnings.push(`the worktree ${wt} is no longer a git work tree (its .git file was removed or changed), so its files were not committed`);
    return;
  }
  await removeStaleIndexLock(ctx, wt, env, warnings);
  await addEverything(ctx, wt, env, copied);
  const tree = await gitText(ctx, ['write-tree'], { cwd: wt, env });
  const head = await resolveCommit(ctx, wt, 'HEAD');
  const refs = jobRefs(id);
  const symbolic = await runGit(ctx, ['symbolic-ref', '-q', 'HEAD'], { cwd: wt, env, okCodes: [1] });
  const headRef = symbolic.code === 0 ? symbolic.stdout.toString('utf8').trim() : null;
  let commit = head;
  if (head === null || tree !== (await gitText(ctx, ['rev-parse', `${head}^{tree}`], { cwd: wt, env }))) {
    commit = await commitTree(ctx, wt, tree, head ? [head] : [], `agent-async ${id}: uncommitted changes at the end of the job`);
    // on a branch other than the job's (one of the user's the worker checked out), HEAD is
    // detached rather than that branch moved: the commit goes onto the job's branch below
    const noDeref = headRef === refs.branch ? [] : ['--no-deref'];
    await runGit(ctx, ['update-ref', '-m', 'agent-async', ...noDeref, 'HEAD', commit, head ?? ''], { cwd: wt, env });
  }
  if (headRef === refs.branch || commit === null) return;
  const tip = await readRef(ctx, root, refs.branch);
  if (tip !== commit && (await updateRef(ctx, root, refs.branch, commit, tip))) {
    warnings.push(`the worker left HEAD ${headRef ? `on ${headRef}` : 'detached'}; branch ${branchName(id)} was moved to its commit ${commit.slice(0, 12)} (it was at ${tip?.slice(0, 12) ?? 'nothing'})`);
  }
}

/** A worker killed during a git command leaves the worktree's index.lock; the worker is gone now. */
async function removeStaleIndexLock(ctx: WorktreeContext, wt: string, env: Record<string, string>, warnings: string[]): Promise<void> {
  const lock = path.resolve(wt, await gitText(ctx, ['rev-parse', '--git-path', 'index.lock'], { cwd: wt, env }));
  if (!fs.existsSync(lock)) return;
  await fsp.rm(lock, { force: true });
  warnings.push(`removed a stale ${lock} left by the worker`);
}

const DIFF_OPTIONS = ['-r', '-M', '--no-ext-diff', '--no-textconv', '--no-color'];

/** Files with status and line counts, and the full patch written (atomically) to `patchFile`. */
export async function describeChanges(ctx: WorktreeContext, root: string, ends: Omit<Changes, 'files' | 'patch_bytes'>, patchFile: string): Promise<Changes> {
  const range = [ends.base_commit, ends.head_commit];
  const statuses = await runGit(ctx, ['diff-tree', ...DIFF_OPTIONS, '-z', '--name-status', ...range], { cwd: root });
  const counts = await runGit(ctx, ['diff-tree', ...DIFF_OPTIONS, '-z', '--numstat', ...range], { cwd: root });
  const files = mergeFileStats(parseNameStatus(statuses.stdout), parseNumstat(counts.stdout));
  const patchBytes = await writePatch(ctx, root, ends.base_commit, ends.head_commit, patchFile);
  return { ...ends, files, patch_bytes: patchBytes };
}

/** `git diff --binary from to` through plumbing (user diff settings such as noprefix cannot change it). */
export function patchArgs(from: string, to: string): string[] {
  return ['diff-tree', ...DIFF_OPTIONS, '-p', '--binary', '--full-index', '--src-prefix=a/', '--dst-prefix=b/', from, to];
}

export async function writePatch(ctx: WorktreeContext, root: string, from: string, to: string, patchFile: string): Promise<number> {
  const temp = tempFor(patchFile);
  const handle = await fsp.open(temp, 'wx', 0o600);
  try {
    await runGit(ctx, patchArgs(from, to), { cwd: root, stdoutFd: handle.fd });
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fsp.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await fsp.rename(temp, patchFile);
  return (await fsp.stat(patchFile)).size;
}
