import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError, errnoCode, quoteInput } from '../errors.js';
import { base as baseInput, parseField } from '../inputs.js';
import { configEnv, gitText, resolveCommit, runGit, updateRef, type WorktreeContext } from './git.js';
import { ensureWorktreesDir, jobRefs, tempIndexPath } from './layout.js';
import { parseGitlinks } from './parse.js';
import { filterFailure, probeRepository, type RepoProbe } from './probe.js';

/**
 * The job's starting point, taken at submit time: by default a commit of everything the
 * user sees in the work tree (HEAD + staged + unstaged + untracked-not-ignored), made through
 * a temp index so that the user's index, work tree, stash, HEAD and branches are not touched;
 * or, with `base`, a committed ref. Kept at `refs/agent-async/<id>/base`.
 */

export type SubmodulePolicy = 'refuse' | 'empty';

export interface SnapshotOptions {
  /** Start from this committed ref (branch, tag, commit, `HEAD~1`) instead of the work tree. */
  base?: string;
  /**
   * A tree with gitlinks (submodules, nested repositories) is refused by default: their files
   * would not be in the worktree. 'empty' accepts it; their folders stay empty there.
   */
  submodules?: SubmodulePolicy;
}

export interface Snapshot {
  id: string;
  repo_root: string;
  common_dir: string;
  /** The cwd relative to repo_root: the worker runs in the same subdirectory of the worktree. */
  prefix: string;
  base_commit: string;
  base_ref: string;
  /** `work_tree`: a snapshot of what the user sees; `ref`: the committed `base` ref given. */
  from: 'work_tree' | 'ref';
  /** The `base` asked for (from 'ref'), or the branch HEAD was on (from 'work_tree'; null when detached). */
  ref: string | null;
  /** The commit HEAD was at (null in an empty repository). */
  head: string | null;
  /** Gitlink paths in the snapshot (their folders are empty in the worktree). */
  submodules: string[];
}

export async function snapshot(ctx: WorktreeContext, cwd: string, id: string, options: SnapshotOptions = {}): Promise<Snapshot> {
  const refs = jobRefs(id);
  if (options.base !== undefined) parseField(baseInput, options.base, 'base');
  const probe = await probeRepository(ctx, cwd);
  const taken = options.base === undefined
    ? await commitWorkTree(ctx, probe, id)
    : await resolveBase(ctx, probe, options.base);
  refuseGitlinks(probe, taken.gitlinks, options.submodules ?? 'refuse');
  if (!(await updateRef(ctx, probe.root, refs.base, taken.commit, null))) {
    throw new UserError('conflict', `job ${id} already has a snapshot (${refs.base} exists in ${probe.root})`, 'job_id');
  }
  return {
    id,
    repo_root: probe.root,
    common_dir: probe.common_dir,
    prefix: probe.prefix,
    base_commit: taken.commit,
    base_ref: refs.base,
    from: options.base === undefined ? 'work_tree' : 'ref',
    ref: options.base ?? probe.branch,
    head: probe.head,
    submodules: taken.gitlinks,
  };
}

interface Taken {
  commit: string;
  gitlinks: string[];
}

async function commitWorkTree(ctx: WorktreeContext, probe: RepoProbe, id: string): Promise<Taken> {
  const tree = await withTempIndex(ctx, probe, id, async (env) => {
    await addEverything(ctx, probe.root, env, []);
    return {
      tree: await gitText(ctx, ['write-tree'], { cwd: probe.root, env }),
      gitlinks: parseGitlinks((await runGit(ctx, ['ls-files', '-s', '-z'], { cwd: probe.root, env })).stdout),
    };
  });
  const commit = await commitTree(ctx, probe.root, tree.tree, probe.head ? [probe.head] : [], `agent-async ${id}: snapshot of the work tree`);
  return { commit, gitlinks: tree.gitlinks };
}

/**
 * Runs `work` with `GIT_INDEX_FILE` set to a private copy of the user's index. The copy keeps
 * the stat data, so `git add -A` re-hashes only files that changed (0.05 s instead of 0.5 s on
 * 10,000 files). Its mtime is set a second earlier than the original's: git treats entries
 * newer than the index file as racy and compares their content, so an earlier mtime can
 * only make it look at more files, never trust a stale entry.
 */
export async function withTempIndex<T>(ctx: WorktreeContext, probe: RepoProbe, id: string, work: (env: Record<string, string>) => Promise<T>): Promise<T> {
  await ensureWorktreesDir(ctx);
  const tempIndex = tempIndexPath(ctx, id);
  // a split index would write a new shared index file into the user's .git: kept whole
  const env = { GIT_INDEX_FILE: tempIndex, ...configEnv({ 'core.splitIndex': 'false' }) };
  try {
    if (!(await copyIndex(path.join(probe.git_dir, 'index'), tempIndex)) && probe.head) {
      await runGit(ctx, ['read-tree', probe.head], { cwd: probe.root, env });
    }
    return await work(env);
  } finally {
    await fsp.rm(tempIndex, { force: true });
  }
}

async function copyIndex(source: string, target: string): Promise<boolean> {
  try {
    await fsp.copyFile(source, target);
    const stat = await fsp.stat(source);
    await fsp.utimes(target, stat.atime, new Date(stat.mtimeMs - 1000));
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false; // an empty repository, or a clone without checkout
    throw error;
  }
}

/**
 * `git add -A` into the index `env` names, leaving out `excluded` paths (`worktree.copy`'s).
 * Those git ignores anyway are left to it: naming an ignored path, even to exclude it, makes
 * `git add` fail.
 */
export async function addEverything(ctx: WorktreeContext, cwd: string, env: Record<string, string>, excluded: readonly string[]): Promise<void> {
  const notIgnored = await withoutIgnored(ctx, cwd, env, excluded);
  const pathspecs = notIgnored.length === 0 ? [] : ['--', '.', ...notIgnored.map((file) => `:(top,literal,exclude)${file}`)];
  try {
    await runGit(ctx, ['add', '-A', ...pathspecs], { cwd, env });
  } catch (error) {
    const filter = filterFailure(error);
    if (filter === null) throw error;
    throw new UserError('bad_input', `isolation: git's "${filter}" filter failed while reading the work tree at ${cwd} (is git-lfs, or the program that filter needs, installed for this user?); nothing was changed. ${(error as Error).message}`, 'isolation');
  }
}

async function withoutIgnored(ctx: WorktreeContext, cwd: string, env: Record<string, string>, files: readonly string[]): Promise<string[]> {
  if (files.length === 0) return [];
  const result = await runGit(ctx, ['check-ignore', '-z', '--stdin'], { cwd, env, input: files.join('\0') + '\0', okCodes: [1] });
  const ignored = new Set(result.stdout.toString('utf8').split('\0'));
  return files.filter((file) => !ignored.has(file));
}

/** A commit of `tree` with the fixed identity, never signed and without hooks (plumbing). */
export async function commitTree(ctx: WorktreeContext, cwd: string, tree: string, parents: readonly string[], message: string): Promise<string> {
  const args = ['commit-tree', '--no-gpg-sign', tree, ...parents.flatMap((parent) => ['-p', parent]), '-m', message];
  return gitText(ctx, args, { cwd, identity: true });
}

async function resolveBase(ctx: WorktreeContext, probe: RepoProbe, base: string): Promise<Taken> {
  const commit = await resolveCommit(ctx, probe.root, base);
  if (commit === null) {
    throw new UserError('bad_input', `base: ${quoteInput(base)} is not a branch, tag or commit in ${probe.root}; give one that exists there (e.g. "main", "HEAD~1", a commit hash)`, 'base');
  }
  const listing = await runGit(ctx, ['ls-tree', '-r', '-z', '--full-tree', commit], { cwd: probe.root });
  return { commit, gitlinks: parseGitlinks(listing.stdout) };
}

function refuseGitlinks(probe: RepoProbe, gitlinks: readonly string[], policy: SubmodulePolicy): void {
  if (gitlinks.length === 0 || policy === 'empty') return;
  const shown = gitlinks.slice(0, 3).map((file) => JSON.stringify(file)).join(', ') + (gitlinks.length > 3 ? ` and ${gitlinks.length - 3} more` : '');
  throw new UserError(
    'bad_input',
    `isolation: the work tree at ${probe.root} has submodules or nested repositories (${shown}); a worktree holds them as empty folders, so the job would not see their files and changes inside them would not be recorded. Use isolation "none", or accept empty submodule folders with worktree.submodules "empty"`,
    'isolation',
  );
}
