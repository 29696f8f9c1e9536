import fs from 'node:fs';
import path from 'node:path';
import { UserError, quoteInput } from '../errors.js';
import { GitError, requireGit, resolveCommit, runGit, type WorktreeContext } from './git.js';
import { isDirectory } from './layout.js';

/** What worktree isolation needs to know about the folder a job was given. */
export interface RepoProbe {
  /** The top of the work tree `cwd` is in. */
  root: string;
  /** `cwd` relative to `root` ('' at the top, '/'-separated, no trailing slash). */
  prefix: string;
  git_dir: string;
  /** The repository's common git dir (shared by all its worktrees). */
  common_dir: string;
  /** The commit HEAD is at; null in an empty repository or on an unborn branch. */
  head: string | null;
  /** `refs/heads/...`; null when HEAD is detached. */
  branch: string | null;
  git_version: string;
}

/**
 * Checks that `cwd` is inside a git work tree that isolation can use, and describes it. Every
 * refusal is a UserError naming `field` (the job's `cwd`) or `isolation` (git itself).
 */
export async function probeRepository(ctx: WorktreeContext, cwd: string, field = 'cwd'): Promise<RepoProbe> {
  const version = await requireGit(ctx);
  if (!isDirectory(cwd)) throw new UserError('bad_input', `${field}: ${quoteInput(cwd, 200)} is not an existing folder`, field);
  const where = await runGit(ctx, ['rev-parse', '--is-bare-repository', '--is-inside-work-tree', '--is-inside-git-dir'], { cwd, okCodes: [128] });
  if (where.code !== 0) throw notARepository(cwd, field, where.stderr);
  const [bare, insideWorkTree, insideGitDir] = where.stdout.toString('utf8').split('\n');
  if (bare === 'true') {
    throw new UserError('bad_input', `${field}: ${quoteInput(cwd, 200)} is in a bare git repository, which has no work tree to copy; isolation "worktree" needs a folder inside a work tree`, field);
  }
  if (insideGitDir === 'true' || insideWorkTree !== 'true') {
    throw new UserError('bad_input', `${field}: ${quoteInput(cwd, 200)} is inside a .git folder, not inside a work tree; give a folder of the checkout`, field);
  }
  const layout = await runGit(ctx, ['rev-parse', '--show-toplevel', '--show-prefix', '--absolute-git-dir', '--path-format=absolute', '--git-common-dir'], { cwd });
  const [root, prefix, gitDir, commonDir] = layout.stdout.toString('utf8').split('\n');
  const probe: RepoProbe = {
    root: root!,
    prefix: (prefix ?? '').replace(/\/$/, ''),
    git_dir: gitDir!,
    common_dir: commonDir!,
    head: await resolveCommit(ctx, root!, 'HEAD'),
    branch: await currentBranch(ctx, root!),
    git_version: version.text,
  };
  refuseSpoolInside(ctx, probe, field);
  return probe;
}

function notARepository(cwd: string, field: string, stderr: string): UserError {
  if (/not a git repository/i.test(stderr)) {
    return new UserError('bad_input', `${field}: ${quoteInput(cwd, 200)} is not inside a git work tree; isolation "worktree" needs one (use isolation "none" for other folders)`, field);
  }
  const said = stderr.replace(/^fatal: /gm, '').trim().split('\n')[0] ?? '';
  return new UserError('bad_input', `${field}: git cannot use ${quoteInput(cwd, 200)} as a repository: ${said}`, field);
}

async function currentBranch(ctx: WorktreeContext, root: string): Promise<string | null> {
  const result = await runGit(ctx, ['symbolic-ref', '-q', 'HEAD'], { cwd: root, okCodes: [1] });
  return result.code === 0 ? result.stdout.toString('utf8').trim() : null;
}

/**
 * A spool inside the work tree would be swept into every snapshot (and its worktrees would
 * nest in the user's checkout): refused.
 */
function refuseSpoolInside(ctx: WorktreeContext, probe: RepoProbe, field: string): void {
  const home = realPathOrResolved(ctx.home);
  const relative = path.relative(realPathOrResolved(probe.root), home);
  if (relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))) {
    throw new UserError('bad_input', `${field}: the agent-async spool ${quoteInput(home, 200)} is inside this work tree (${quoteInput(probe.root, 200)}), so snapshots would contain it; move it out with AGENT_ASYNC_HOME`, field);
  }
}

function realPathOrResolved(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/** Whether `error` is git refusing because a clean/smudge filter (Git LFS, …) failed. */
export function filterFailure(error: unknown): string | null {
  if (!(error instanceof GitError)) return null;
  const named = /(?:clean|smudge) filter '?([^' ]+)'? failed/.exec(error.stderr);
  if (named) return named[1]!;
  return /external filter '([^']+)' failed/.exec(error.stderr)?.[1] ?? null;
}
