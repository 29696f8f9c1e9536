import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from '../spool/fsx.js';
import type { WorktreeContext } from './git.js';

/**
 * Where a job's worktree things live. In the spool: `worktrees/<id>/` (the worktree),
 * `worktrees/<id>.json` (its record, written once it is complete) and `worktrees/.<id>.*`
 * (temp index files). In the user's repository: the branch `agent-async/<id>` and the refs
 * `refs/agent-async/<id>/{base,start,applied}`.
 */

const ID_PATTERN = /^[0-9a-z]{1,64}$/;

/** Ids become ref names and folder names: lower-case letters and digits only. */
export function checkId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new Error(`worktree id ${JSON.stringify(id)} is not 1 to 64 lower-case letters and digits`);
  return id;
}

export const REF_ROOT = 'refs/agent-async/';
export const BRANCH_PREFIX = 'agent-async/';

export function branchName(id: string): string {
  return `${BRANCH_PREFIX}${checkId(id)}`;
}

export function jobRefs(id: string): { base: string; start: string; applied: string; branch: string } {
  checkId(id);
  return {
    /** The snapshot (or the committed `base` ref) the job started from. */
    base: `${REF_ROOT}${id}/base`,
    /** Only when `worktree.setup` changed files: the snapshot plus those changes. */
    start: `${REF_ROOT}${id}/start`,
    /** Set when the changes were applied to the user's work tree (the head applied). */
    applied: `${REF_ROOT}${id}/applied`,
    branch: `refs/heads/${BRANCH_PREFIX}${id}`,
  };
}

export function worktreesDir(ctx: WorktreeContext): string {
  return path.join(path.resolve(ctx.home), 'worktrees');
}

export function worktreePath(ctx: WorktreeContext, id: string): string {
  return path.join(worktreesDir(ctx), checkId(id));
}

export function recordPath(ctx: WorktreeContext, id: string): string {
  return path.join(worktreesDir(ctx), `${checkId(id)}.json`);
}

let tempCounter = 0;

/** A temp index for job `id` that no other call can pick; discard and gc remove `.<id>.*`. */
export function tempIndexPath(ctx: WorktreeContext, id: string): string {
  tempCounter += 1;
  return path.join(worktreesDir(ctx), `.${checkId(id)}.${process.pid}.${tempCounter}.index`);
}

/** `.<id>.<pid>.<n>.index` → id and pid. */
export const TEMP_INDEX_PATTERN = /^\.([0-9a-z]{1,64})\.(\d+)\.\d+\.index$/;

export async function ensureWorktreesDir(ctx: WorktreeContext): Promise<string> {
  const dir = worktreesDir(ctx);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** What `createWorktree` leaves for the calls after it; written only once the worktree is complete. */
export interface WorktreeRecord {
  version: 1;
  id: string;
  /** The user's repository (top of the work tree the snapshot came from). */
  repo_root: string;
  /** The worktree folder. */
  path: string;
  /** Where the worker runs: the worktree plus the cwd's subdirectory. */
  workdir: string;
  branch: string;
  base_commit: string;
  /** What the worker started from: base_commit, or the commit of `worktree.setup`'s changes. */
  start_commit: string;
  /** Paths placed by `worktree.copy`; never committed. */
  copied: string[];
  created_at: string;
}

export function readRecord(ctx: WorktreeContext, id: string): WorktreeRecord | null {
  const read = readJsonFile<WorktreeRecord>(recordPath(ctx, id));
  if (read.kind !== 'ok') return null;
  const record = read.value;
  return record && record.version === 1 && record.id === id ? record : null;
}

export function writeRecord(ctx: WorktreeContext, record: WorktreeRecord): void {
  writeJsonAtomic(recordPath(ctx, record.id), record, 'file');
}

export async function removeRecord(ctx: WorktreeContext, id: string): Promise<void> {
  await fsp.rm(recordPath(ctx, id), { force: true });
}

/** Removes the temp index files of `id` (all of them, or only those of dead processes). */
export async function removeTempIndexes(ctx: WorktreeContext, id: string | null, onlyOfDeadProcesses: boolean): Promise<number> {
  let names: string[];
  try {
    names = await fsp.readdir(worktreesDir(ctx));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 0;
    throw error;
  }
  let removed = 0;
  for (const name of names) {
    const match = TEMP_INDEX_PATTERN.exec(name);
    if (!match || (id !== null && match[1] !== id)) continue;
    if (onlyOfDeadProcesses && processAlive(Number(match[2]))) continue;
    await fsp.rm(path.join(worktreesDir(ctx), name), { force: true });
    removed += 1;
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}

export function isDirectory(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}
