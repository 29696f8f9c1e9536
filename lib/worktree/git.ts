import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { UserError } from '../errors.js';
import { parseGitVersion, type GitVersion } from './parse.js';

/**
 * Running git for worktree isolation: never through a shell, always with an argv; with the
 * user's own HOME and git config (their excludes, filters and attributes must apply), but
 * with none of the environment variables that would point git at another repository or
 * index; optional locks off, so that no read refreshes the user's `.git/index`; our own
 * fixed identity on the commits we make; a timeout on every call. Async throughout: the MCP
 * server calls some of these and must never block its event loop.
 */

/** What every worktree call needs: the spool root and, optionally, which git to run. */
export interface WorktreeContext {
  /** The spool root (`$AGENT_ASYNC_HOME`); worktrees live in `<home>/worktrees/<id>`. */
  home: string;
  /** The git program (a name on PATH or a path); default `git`. */
  git?: string;
  /** Longest time one git call may take; default 10 minutes. */
  timeoutMs?: number;
  /** Added to every git call's environment (a job's id, so that the git it starts is found as the job's). */
  env?: Record<string, string>;
}

/** git 2.38 brought `merge-tree --write-tree`, which the apply-back recipe needs. */
export const MIN_GIT_VERSION: GitVersion = { major: 2, minor: 38, patch: 0, text: '2.38.0' };

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const KILL_GRACE_MS = 2_000;

/** The author and committer of every commit agent-async makes (snapshots, leftovers). */
export const IDENTITY = {
  GIT_AUTHOR_NAME: 'agent-async',
  GIT_AUTHOR_EMAIL: 'agent-async@localhost',
  GIT_COMMITTER_NAME: 'agent-async',
  GIT_COMMITTER_EMAIL: 'agent-async@localhost',
} as const;

/**
 * Variables that would send git to another repository, index or object store (set by a git
 * hook or alias that started us), or put another name on our commits.
 */
const FOREIGN_GIT_VARIABLES = [
  'GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR', 'GIT_NAMESPACE', 'GIT_PREFIX', 'GIT_INTERNAL_SUPER_PREFIX', 'GIT_QUARANTINE_PATH',
  'GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_AUTHOR_DATE', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL',
  'GIT_COMMITTER_DATE', 'GIT_EDITOR', 'GIT_EXTERNAL_DIFF', 'GIT_DIFF_OPTS',
];

/** The environment of every git call: the user's, cleaned, plus the fixed settings. */
export function gitEnvironment(extra: Record<string, string> = {}, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of FOREIGN_GIT_VARIABLES) delete env[name];
  return {
    ...env,
    // no read may rewrite the user's index (git status refreshes it otherwise); see git(1)
    GIT_OPTIONAL_LOCKS: '0',
    GIT_TERMINAL_PROMPT: '0',
    // messages we match (CONFLICT, "already exists") are the untranslated ones
    LC_ALL: 'C',
    ...extra,
  };
}

/**
 * Config for every git started with this environment (GIT_CONFIG_COUNT, git 2.31+), added
 * after any the user's environment already holds.
 */
export function configEnv(pairs: Record<string, string>, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const first = Number(base.GIT_CONFIG_COUNT) > 0 ? Number(base.GIT_CONFIG_COUNT) : 0;
  const env: Record<string, string> = {};
  Object.entries(pairs).forEach(([key, value], index) => {
    env[`GIT_CONFIG_KEY_${first + index}`] = key;
    env[`GIT_CONFIG_VALUE_${first + index}`] = value;
  });
  env.GIT_CONFIG_COUNT = String(first + Object.keys(pairs).length);
  return env;
}

export interface GitCall {
  cwd: string;
  /** Added to the environment: a temp index (`GIT_INDEX_FILE`), `GIT_CEILING_DIRECTORIES`. */
  env?: Record<string, string>;
  input?: string | Buffer;
  /** Exit codes that are answers rather than failures (merge-tree's 1 for conflicts). */
  okCodes?: readonly number[];
  /** Commits made by this call carry the fixed identity. */
  identity?: boolean;
  /** stdout goes to this open file instead of memory (a patch of any size). */
  stdoutFd?: number;
}

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export type GitFailure = 'exit' | 'timeout' | 'spawn';

/** A git call that failed: what ran, where, and what git said. */
export class GitError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly cwd: string,
    readonly failure: GitFailure,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(gitErrorMessage(args, cwd, failure, exitCode, stderr));
    this.name = 'GitError';
  }
}

function gitErrorMessage(args: readonly string[], cwd: string, failure: GitFailure, exitCode: number | null, stderr: string): string {
  const command = `git ${args.filter((arg) => arg !== '-c' && !arg.includes('=')).slice(0, 4).join(' ')}`;
  const said = stderr.trim().split('\n').slice(-6).join(' | ');
  if (failure === 'timeout') return `${command} in ${cwd} took too long and was stopped${said ? `: ${said}` : ''}`;
  if (failure === 'spawn') return `${command} could not be started in ${cwd}: ${said}`;
  return `${command} failed in ${cwd} (exit ${exitCode ?? 'by signal'})${said ? `: ${said}` : ''}`;
}

/** Runs git with `args` (no shell) and collects its output; throws GitError on failure. */
export function runGit(ctx: WorktreeContext, args: readonly string[], call: GitCall): Promise<GitResult> {
  const env = gitEnvironment({ ...ctx.env, ...(call.identity ? IDENTITY : {}), ...call.env });
  return new Promise((resolve, reject) => {
    const child = spawn(ctx.git ?? 'git', args, {
      cwd: call.cwd,
      env,
      stdio: [call.input === undefined ? 'ignore' : 'pipe', call.stdoutFd ?? 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      // TERM first: git removes its lock files on TERM, not on KILL
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    }, ctx.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const settle = (): void => {
      clearTimeout(timer);
      clearTimeout(killTimer);
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      settle();
      if (error.code !== 'ENOENT') reject(new GitError(args, call.cwd, 'spawn', null, error.message));
      // spawn says ENOENT for a missing folder as well as for a missing program
      else if (!fs.existsSync(call.cwd)) reject(new GitError(args, call.cwd, 'spawn', null, 'the folder does not exist'));
      else reject(gitMissing(ctx));
    });
    child.on('close', (code) => {
      settle();
      const result = { code: code ?? -1, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') };
      if (timedOut) reject(new GitError(args, call.cwd, 'timeout', code, result.stderr));
      else if (code === 0 || (code !== null && call.okCodes?.includes(code))) resolve(result);
      else reject(new GitError(args, call.cwd, 'exit', code, result.stderr));
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // git may exit before reading all of it
      child.stdin.end(call.input);
    }
  });
}

/** Runs git and answers its stdout as text without the final newline. */
export async function gitText(ctx: WorktreeContext, args: readonly string[], call: GitCall): Promise<string> {
  const result = await runGit(ctx, args, call);
  return result.stdout.toString('utf8').replace(/\n$/, '');
}

/** The commit a revision names, or null when it names none (`rev-parse -q --verify`). */
export async function resolveCommit(ctx: WorktreeContext, cwd: string, revision: string): Promise<string | null> {
  const result = await runGit(ctx, ['rev-parse', '-q', '--verify', '--end-of-options', `${revision}^{commit}`], { cwd, okCodes: [1] });
  return result.code === 0 ? result.stdout.toString('utf8').trim() : null;
}

/** The value of a ref, or null when it does not exist. */
export async function readRef(ctx: WorktreeContext, cwd: string, ref: string): Promise<string | null> {
  const result = await runGit(ctx, ['rev-parse', '-q', '--verify', '--end-of-options', ref], { cwd, okCodes: [1] });
  return result.code === 0 ? result.stdout.toString('utf8').trim() : null;
}

/**
 * Sets `ref` to `value` only if it now holds `expected` (null: only if it does not exist), so
 * that two processes never overwrite each other's ref. False when the ref held something else.
 */
export async function updateRef(ctx: WorktreeContext, cwd: string, ref: string, value: string, expected: string | null): Promise<boolean> {
  const args = ['update-ref', '-m', 'agent-async', ref, value, expected ?? ''];
  const result = await runGit(ctx, args, { cwd, okCodes: [128] });
  if (result.code === 0) return true;
  if (/cannot lock ref .*(already exists|but expected|unable to resolve reference)/.test(result.stderr)) return false;
  throw new GitError(args, cwd, 'exit', result.code, result.stderr);
}

/** Deletes `ref` if it exists (whatever it holds); false when there was none. */
export async function deleteRef(ctx: WorktreeContext, cwd: string, ref: string): Promise<boolean> {
  if ((await readRef(ctx, cwd, ref)) === null) return false;
  await runGit(ctx, ['update-ref', '-d', ref], { cwd });
  return true;
}

const versions = new Map<string, Promise<GitVersion>>();

/**
 * The git version, checked once per program: a clear error naming `isolation` when git is
 * missing or older than MIN_GIT_VERSION.
 */
export function requireGit(ctx: WorktreeContext): Promise<GitVersion> {
  const program = ctx.git ?? 'git';
  let known = versions.get(program);
  if (!known) {
    known = checkGitVersion(ctx);
    versions.set(program, known);
    known.catch(() => versions.delete(program)); // a git installed later is found then
  }
  return known;
}

async function checkGitVersion(ctx: WorktreeContext): Promise<GitVersion> {
  // `/`: this process's own folder may have been removed, and git version needs none
  const text = await gitText(ctx, ['version'], { cwd: '/' });
  const version = parseGitVersion(text);
  if (!version) {
    throw new UserError('bad_input', `isolation: "worktree" needs git ${showVersion(MIN_GIT_VERSION)} or newer, and ${quoteProgram(ctx)} answered ${JSON.stringify(text.slice(0, 80))} to "git version"`, 'isolation');
  }
  if (compareVersions(version, MIN_GIT_VERSION) < 0) {
    throw new UserError('bad_input', `isolation: "worktree" needs git ${showVersion(MIN_GIT_VERSION)} or newer (for merge-tree --write-tree); ${quoteProgram(ctx)} is git ${version.text}`, 'isolation');
  }
  return version;
}

function gitMissing(ctx: WorktreeContext): UserError {
  return new UserError('bad_input', `isolation: "worktree" needs git ${showVersion(MIN_GIT_VERSION)} or newer, and ${quoteProgram(ctx)} was not found; install git or use isolation "none"`, 'isolation');
}

function quoteProgram(ctx: WorktreeContext): string {
  return ctx.git ? JSON.stringify(ctx.git) : '"git" (on PATH)';
}

export function compareVersions(a: GitVersion, b: GitVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

function showVersion(version: GitVersion): string {
  return `${version.major}.${version.minor}`;
}
