import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError, errnoCode, quoteInput } from '../errors.js';
import { argv, parseField } from '../inputs.js';
import { signalGroup } from '../signals.js';
import { gitText, readRef, runGit, updateRef, deleteRef, type WorktreeContext } from './git.js';
import {
  branchName, ensureWorktreesDir, jobRefs, readRecord, removeRecord, worktreePath, writeRecord, type WorktreeRecord,
} from './layout.js';
import { filterFailure } from './probe.js';
import { addEverything, commitTree } from './snapshot.js';
import { HALF_WRITTEN_ATTEMPTS, HALF_WRITTEN_RETRY_MS, checkedOutAt, checkedOutError, dropWorktree, findWorktree, isHalfWrittenRegistration } from './worktrees.js';

/**
 * Making the job's worktree at `$AGENT_ASYNC_HOME/worktrees/<id>` on branch `agent-async/<id>`,
 * then `worktree.copy` and `worktree.setup`. A call that was killed half way leaves no record
 * (`worktrees/<id>.json` is written last); the next call removes what it left and starts
 * again, and a call after a complete one answers the same worktree.
 */

export type CopyMode = 'copy' | 'link';

export interface CopyEntry {
  /** Relative to the repository root: an ignored path of the user's work tree (`.env`, `node_modules`). */
  path: string;
  /** `copy` (default; reflinked where the filesystem can) or `link` (a symlink to the user's). */
  mode?: CopyMode;
}

export interface WorktreeOptions {
  copy?: readonly (string | CopyEntry)[];
  /** argv run in the worker's folder of the new worktree, before the worker (`["npm", "ci"]`). */
  setup?: readonly string[];
  setupTimeoutMs?: number;
  /** The setup command's environment (default: this process's); AGENT_ASYNC_WORKTREE is added. */
  setupEnv?: NodeJS.ProcessEnv;
  onSetupOutput?: (chunk: Buffer) => void;
  /** Aborted when the job is cancelled: setup is stopped (its group TERM, then KILL) and SetupCancelledError thrown. */
  signal?: AbortSignal;
}

/** What a worktree is made for: the job id, the user's repository and the cwd's subdirectory. */
export interface WorktreeTarget {
  id: string;
  repo_root: string;
  prefix: string;
}

const DEFAULT_SETUP_TIMEOUT_MS = 30 * 60_000;
const SETUP_OUTPUT_KEPT = 64 * 1024;
const SETUP_KILL_GRACE_MS = 2_000;

/** `worktree.setup` failed: its output goes with the error, which ends the job `setup_failed`. */
export class SetupFailedError extends Error {
  readonly code = 'setup_failed';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly timedOut: boolean,
    /** The last 64 KiB of its stdout and stderr. */
    readonly output: string,
  ) {
    const how = timedOut ? 'took too long and was stopped' : exitCode !== null ? `exited with ${exitCode}` : signal ? `was killed by ${signal}` : 'could not be started';
    super(`worktree.setup ${JSON.stringify(argv[0])} ${how}`);
    this.name = 'SetupFailedError';
  }
}

/** The job was cancelled while `worktree.setup` ran; setup was stopped. */
export class SetupCancelledError extends Error {
  constructor(readonly argv: readonly string[]) {
    super(`worktree.setup ${JSON.stringify(argv[0])} was stopped: the job was cancelled`);
    this.name = 'SetupCancelledError';
  }
}

export function createWorktree(ctx: WorktreeContext, target: WorktreeTarget, options: WorktreeOptions = {}): Promise<WorktreeRecord> {
  return prepareWorktree(ctx, target, options, 'create');
}

/** For `job_continue`: a worktree again from the job's branch, with the work it holds. */
export function recreateWorktree(ctx: WorktreeContext, target: WorktreeTarget, options: WorktreeOptions = {}): Promise<WorktreeRecord> {
  return prepareWorktree(ctx, target, options, 'recreate');
}

async function prepareWorktree(ctx: WorktreeContext, target: WorktreeTarget, options: WorktreeOptions, mode: 'create' | 'recreate'): Promise<WorktreeRecord> {
  const { id, repo_root: root } = target;
  const refs = jobRefs(id);
  const copies = normalizeCopyEntries(options.copy ?? []);
  const setup = options.setup === undefined ? null : parseField(argv, options.setup, 'worktree.setup');
  const existing = readRecord(ctx, id);
  if (existing && (await isComplete(ctx, existing))) return existing;
  await removeRecord(ctx, id);
  await dropWorktree(ctx, root, id);
  const base = await readRef(ctx, root, refs.base);
  if (base === null) throw new UserError('not_found', `job_id: job ${id} has no snapshot in ${root} (${refs.base} is missing: discarded, or never taken)`, 'job_id');
  if (mode === 'create') await putBranchAtBase(ctx, root, id, base);
  else if ((await readRef(ctx, root, refs.branch)) === null) {
    throw new UserError('not_found', `job_id: job ${id} has no branch ${branchName(id)} in ${root} (it was discarded)`, 'job_id');
  }
  const wt = worktreePath(ctx, id);
  await addWorktree(ctx, root, wt, id);
  const workdir = path.join(wt, target.prefix);
  await fsp.mkdir(workdir, { recursive: true });
  const copied = await placeCopies(root, wt, copies);
  // a new worktree's start is made again below; a continued one keeps the first
  let start = mode === 'create' ? base : (await readRef(ctx, root, refs.start)) ?? base;
  if (setup) {
    await runSetup(setup, workdir, { ...(options.setupEnv ?? process.env), AGENT_ASYNC_WORKTREE: wt }, options);
    // on recreate, setup's changes join the worker's and are committed at the end
    if (mode === 'create') start = await commitSetupChanges(ctx, root, wt, id, base, copied);
  }
  const record: WorktreeRecord = {
    version: 1, id, repo_root: root, path: wt, workdir, branch: branchName(id),
    base_commit: base, start_commit: start, copied, created_at: new Date().toISOString(),
  };
  writeRecord(ctx, record);
  return record;
}

/** A record whose worktree is still registered, present and not half made. */
async function isComplete(ctx: WorktreeContext, record: WorktreeRecord): Promise<boolean> {
  if (!fs.existsSync(path.join(record.path, '.git'))) return false;
  const entry = await findWorktree(ctx, record.repo_root, record.id);
  return entry !== undefined && entry.locked === null && !entry.prunable;
}

/**
 * The branch of a new job starts at the snapshot. A branch already there is one a killed
 * call made; one at the `start` ref holds only setup's commit from a killed call, which is
 * undone so that setup runs again (a `start` ref left alone is dropped for the same reason).
 * Anything else is work, never overwritten.
 */
async function putBranchAtBase(ctx: WorktreeContext, root: string, id: string, base: string): Promise<void> {
  const refs = jobRefs(id);
  const tip = await readRef(ctx, root, refs.branch);
  const start = await readRef(ctx, root, refs.start);
  const atBase = tip === base
    || (tip === null && (await updateRef(ctx, root, refs.branch, base, null)))
    || (tip !== null && tip === start && (await updateRef(ctx, root, refs.branch, base, tip)));
  if (atBase) {
    if (start !== null) await deleteRef(ctx, root, refs.start);
    return;
  }
  throw new UserError('conflict', `job_id: branch ${branchName(id)} in ${root} already holds work beyond the snapshot; continue the job (recreate its worktree) or discard it`, 'job_id');
}

async function addWorktree(ctx: WorktreeContext, root: string, wt: string, id: string): Promise<void> {
  await ensureWorktreesDir(ctx);
  try {
    for (let attempt = 1; ; attempt += 1) {
      try {
        // hooks off: the repository's post-checkout hook could rewrite files or fail the add
        await runGit(ctx, ['-c', 'core.hooksPath=/dev/null', 'worktree', 'add', '-q', wt, branchName(id)], { cwd: root });
        return;
      } catch (error) {
        if (attempt >= HALF_WRITTEN_ATTEMPTS || !isHalfWrittenRegistration(error)) throw error;
        // it failed reading another job's registration, before making its own: once more
        await dropWorktree(ctx, root, id);
        await new Promise((resolve) => setTimeout(resolve, HALF_WRITTEN_RETRY_MS));
      }
    }
  } catch (error) {
    const elsewhere = checkedOutAt(error);
    if (elsewhere !== null) throw checkedOutError(branchName(id), elsewhere);
    const filter = filterFailure(error);
    if (filter !== null) {
      throw new UserError('bad_input', `isolation: git's "${filter}" filter failed while checking out the worktree (is git-lfs, or the program that filter needs, installed for this user?). ${(error as Error).message}`, 'isolation');
    }
    throw error;
  }
}

/** `worktree.copy` entries as given in config: strings or `{path, mode}`; paths stay inside the work tree. */
export function normalizeCopyEntries(entries: unknown, field = 'worktree.copy'): Required<CopyEntry>[] {
  if (!Array.isArray(entries)) throw new UserError('config_invalid', `${field}: must be a list of paths relative to the repository root`, field);
  return (entries as unknown[]).map((entry, index) => {
    const at = `${field}[${index}]`;
    const raw = (typeof entry === 'string' ? { path: entry } : entry) as { path?: unknown; mode?: unknown } | null;
    if (!raw || typeof raw !== 'object' || typeof raw.path !== 'string') {
      throw new UserError('config_invalid', `${at}: must be a path or {"path": ..., "mode": "copy" | "link"}`, at);
    }
    const mode = raw.mode ?? 'copy';
    if (mode !== 'copy' && mode !== 'link') throw new UserError('config_invalid', `${at}.mode: ${quoteInput(mode)} is not allowed; use "copy" or "link"`, `${at}.mode`);
    return { path: checkCopyPath(raw.path, at), mode };
  });
}

function checkCopyPath(value: string, at: string): string {
  const normal = path.posix.normalize(value.replace(/\\/g, '/')).replace(/\/$/, '');
  const parts = normal.split('/');
  if (value.includes('\0') || normal === '' || normal === '.' || path.isAbsolute(value) || parts[0] === '..' || parts.includes('.git')) {
    throw new UserError('config_invalid', `${at}: ${quoteInput(value)} must be a path inside the work tree, relative to the repository root (e.g. ".env", "node_modules"), and not in .git`, at);
  }
  return normal;
}

/** Copies or links each entry from the user's work tree; a source that does not exist is passed over. */
async function placeCopies(root: string, wt: string, copies: readonly Required<CopyEntry>[]): Promise<string[]> {
  const placed: string[] = [];
  for (const entry of copies) {
    const source = path.join(root, entry.path);
    if (!(await exists(source))) continue;
    const target = path.join(wt, entry.path);
    if (await exists(target)) {
      throw new UserError('config_invalid', `worktree.copy: ${quoteInput(entry.path)} is part of the snapshot (tracked, or untracked and not ignored), so the worktree already has it; list only ignored paths such as .env or node_modules`, 'worktree.copy');
    }
    await fsp.mkdir(path.dirname(target), { recursive: true });
    if (entry.mode === 'link') await fsp.symlink(source, target);
    else await fsp.cp(source, target, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false, preserveTimestamps: true, mode: fs.constants.COPYFILE_FICLONE });
    placed.push(entry.path);
  }
  return placed;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.lstat(file);
    return true;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return false;
    throw error;
  }
}

/**
 * Runs `worktree.setup` without a shell, in its own process group (stopped as a group on
 * timeout); its output is kept (the last 64 KiB) for the error and passed to onSetupOutput.
 */
async function runSetup(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv, options: WorktreeOptions): Promise<void> {
  if (options.signal?.aborted) throw new SetupCancelledError(argv);
  const kept = new TailBuffer(SETUP_OUTPUT_KEPT);
  const child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (chunk: Buffer): void => {
    kept.push(chunk);
    options.onSetupOutput?.(chunk);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let stoppedFor: 'timeout' | 'cancel' | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (why: 'timeout' | 'cancel'): void => {
    if (stoppedFor) return;
    stoppedFor = why;
    signalSetupGroup(child.pid, 'SIGTERM');
    killTimer = setTimeout(() => signalSetupGroup(child.pid, 'SIGKILL'), SETUP_KILL_GRACE_MS);
  };
  const timer = setTimeout(() => stop('timeout'), options.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS);
  const onCancel = (): void => stop('cancel');
  options.signal?.addEventListener('abort', onCancel, { once: true });
  const ended = await new Promise<{ code: number | null; signal: string | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  clearTimeout(killTimer);
  // a stopped setup's group members that outlived its leader (and let go of its pipes) go too
  if (stoppedFor) signalSetupGroup(child.pid, 'SIGKILL');
  options.signal?.removeEventListener('abort', onCancel);
  if (stoppedFor === 'cancel') throw new SetupCancelledError(argv);
  const timedOut = stoppedFor === 'timeout';
  if (ended.error) kept.push(Buffer.from(`cannot start ${argv[0]}: ${ended.error.message}\n`));
  if (ended.code !== 0 || timedOut) throw new SetupFailedError(argv, ended.code, ended.signal, timedOut, kept.text());
}

/** Signals setup's process group (it leads its own); nothing when it never started. */
function signalSetupGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid !== undefined) signalGroup(pid, signal);
}

class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

/**
 * What `worktree.setup` changed outside ignored paths (a rewritten lock file, generated
 * sources) is committed as the worker's starting point, so that it is not counted as the
 * job's changes. The `start` ref is written before the branch moves, so that a call killed
 * in between finds the branch at a commit it can undo (see putBranchAtBase).
 */
async function commitSetupChanges(ctx: WorktreeContext, root: string, wt: string, id: string, base: string, copied: readonly string[]): Promise<string> {
  const refs = jobRefs(id);
  const env = worktreeGitEnv(wt);
  await addEverything(ctx, wt, env, copied);
  const tree = await gitText(ctx, ['write-tree'], { cwd: wt, env });
  if (tree === (await gitText(ctx, ['rev-parse', `${base}^{tree}`], { cwd: root }))) return base;
  const commit = await commitTree(ctx, root, tree, [base], `agent-async ${id}: changes made by worktree.setup`);
  await runGit(ctx, ['update-ref', '-m', 'agent-async', refs.start, commit], { cwd: root });
  if (!(await updateRef(ctx, root, refs.branch, commit, base))) throw new Error(`branch ${branchName(id)} moved while setup's changes were committed`);
  return commit;
}

/** Git in our worktree must never find a repository above it (the spool may sit inside one). */
export function worktreeGitEnv(wt: string): Record<string, string> {
  return { GIT_CEILING_DIRECTORIES: path.dirname(wt) };
}
