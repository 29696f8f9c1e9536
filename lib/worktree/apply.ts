import fs from 'node:fs';
import { UserError } from '../errors.js';
import { patchArgs } from './finish.js';
import { gitText, readRef, runGit, updateRef, type WorktreeContext } from './git.js';
import { isDirectory, jobRefs, readRecord, worktreePath } from './layout.js';
import { parseMergeTree, parseNameStatus } from './parse.js';
import { probeRepository, type RepoProbe } from './probe.js';
import { addEverything, commitTree, withTempIndex } from './snapshot.js';

/**
 * Bringing a job's work back: a three-way merge of the job's changes (start..branch) into the
 * user's current work tree, written to the files without staging or committing anything.
 * The merge is computed first, away from the user's files (`merge-tree` on a commit of the
 * work tree as it is now); only a clean result is applied, with `git apply`, which changes
 * every file or none. So a conflict, or a file changed meanwhile, leaves every byte as it was.
 */

/** `state.json` `changes.applied`: kept by the caller; a second apply is refused with it. */
export interface AppliedRecord {
  at: string;
  /** The work tree the changes went into. */
  into: string;
  base_commit: string;
  head_commit: string;
  /** The files the apply wrote. */
  files: string[];
}

export type ApplyResult =
  | { kind: 'applied'; applied: AppliedRecord }
  /** Nothing was changed; `files` conflict between the job's changes and the work tree. */
  | { kind: 'conflict'; files: string[]; messages: string[] };

export interface ApplyTarget {
  id: string;
  /** The repository the job was made from (its snapshot's repo_root). */
  repo_root: string;
  /** The caller's record of an earlier apply (`changes.applied`), if any. */
  applied?: AppliedRecord | null;
}

/** A work tree that changed under us is measured again this many times before giving up. */
const ATTEMPTS = 3;

export async function applyChanges(ctx: WorktreeContext, target: ApplyTarget, cwd: string): Promise<ApplyResult> {
  const { id } = target;
  const refs = jobRefs(id);
  if (target.applied) throw alreadyApplied(id, `to ${target.applied.into} at ${target.applied.at}`);
  const probe = await probeRepository(ctx, cwd);
  await requireSameRepository(ctx, probe, target.repo_root);
  if (readRecord(ctx, id) && isDirectory(worktreePath(ctx, id))) {
    throw new UserError('conflict', `job_id: job ${id} still has its worktree (is it still running?); apply its changes once it has ended`, 'job_id');
  }
  const firstStart = (await readRef(ctx, probe.root, refs.start)) ?? (await readRef(ctx, probe.root, refs.base));
  const head = await readRef(ctx, probe.root, refs.branch);
  if (firstStart === null || head === null) {
    throw new UserError('not_found', `job_id: job ${id} has no changes to apply in ${probe.root} (its branch or snapshot ref is gone: discarded)`, 'job_id');
  }
  const applied = await readRef(ctx, probe.root, refs.applied);
  if (applied === head) throw alreadyApplied(id, `(${refs.applied} is at the branch's tip)`);
  // a job continued after an apply: only the work since the applied commit is brought back
  const start = applied !== null && (await isAncestor(ctx, probe.root, applied, head)) ? applied : firstStart;
  let lastFailure: ApplyResult | null = null;
  for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
    const outcome = await tryApply(ctx, probe, id, { start, head, applied });
    if (outcome.kind !== 'moved') return outcome.result;
    lastFailure = outcome.result;
  }
  return lastFailure!;
}

type Attempt = { kind: 'done'; result: ApplyResult } | { kind: 'moved'; result: ApplyResult };

/** What one apply brings back: start..head; `applied` is the applied ref as it was read (null: none). */
interface ApplyRange {
  start: string;
  head: string;
  applied: string | null;
}

async function tryApply(ctx: WorktreeContext, probe: RepoProbe, id: string, range: ApplyRange): Promise<Attempt> {
  const { start, head } = range;
  const refs = jobRefs(id);
  const current = await treeOfWorkTree(ctx, probe, id);
  const userNow = await commitTree(ctx, probe.root, current, [start], `agent-async ${id}: the work tree at apply time`);
  // the parent `start` makes it the merge base: only what the user did since counts as theirs
  const merge = await runGit(ctx, ['merge-tree', '--write-tree', '-z', '--name-only', '--messages', userNow, head], { cwd: probe.root, okCodes: [1] });
  const merged = parseMergeTree(merge.stdout);
  if (merge.code === 1) return { kind: 'done', result: { kind: 'conflict', files: merged.conflicts, messages: merged.messages } };
  const written = parseNameStatus((await runGit(ctx, ['diff-tree', '-r', '-M', '-z', '--name-status', current, merged.tree], { cwd: probe.root })).stdout)
    .map((entry) => entry.path);
  const patch = (await runGit(ctx, patchArgs(current, merged.tree), { cwd: probe.root })).stdout;
  if (patch.length > 0) {
    const result = await runGit(ctx, ['apply', '--whitespace=nowarn', '-'], { cwd: probe.root, input: patch, okCodes: [1, 128] });
    if (result.code !== 0) {
      const refused: ApplyResult = { kind: 'conflict', files: pathsNamedBy(result.stderr), messages: result.stderr.trim().split('\n') };
      // `git apply` changed nothing; if the work tree moved since it was measured, measure again
      const moved = (await treeOfWorkTree(ctx, probe, id)) !== current;
      return { kind: moved ? 'moved' : 'done', result: refused };
    }
  }
  // Marked after the files are written: a crash in between leaves it unmarked, and applying
  // again then merges changes the tree already has, which writes nothing.
  const marked = await updateRef(ctx, probe.root, refs.applied, head, range.applied);
  if (!marked && patch.length === 0) throw alreadyApplied(id, `(${refs.applied} was just written by another apply)`);
  return { kind: 'done', result: { kind: 'applied', applied: { at: new Date().toISOString(), into: probe.root, base_commit: start, head_commit: head, files: written } } };
}

/** The tree of everything in the work tree now (as a snapshot takes it), through a temp index. */
async function treeOfWorkTree(ctx: WorktreeContext, probe: RepoProbe, id: string): Promise<string> {
  return withTempIndex(ctx, probe, id, async (env) => {
    await addEverything(ctx, probe.root, env, []);
    return gitText(ctx, ['write-tree'], { cwd: probe.root, env });
  });
}

async function isAncestor(ctx: WorktreeContext, root: string, older: string, newer: string): Promise<boolean> {
  return (await runGit(ctx, ['merge-base', '--is-ancestor', older, newer], { cwd: root, okCodes: [1] })).code === 0;
}

/** `error: f.txt: already exists in working directory` → f.txt. */
function pathsNamedBy(stderr: string): string[] {
  const files = new Set<string>();
  for (const match of stderr.matchAll(/^error: (?:patch failed: )?(.+?)(?::\d+)?: (?:already exists|does not exist|patch does not apply|No such file|does not match|is beyond a symbolic link|wrong type)/gm)) {
    files.add(match[1]!);
  }
  return [...files];
}

async function requireSameRepository(ctx: WorktreeContext, probe: RepoProbe, repoRoot: string): Promise<void> {
  const theirs = await runGit(ctx, ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: repoRoot, okCodes: [128] }).catch(() => null);
  const commonDir = theirs?.code === 0 ? theirs.stdout.toString('utf8').trim() : null;
  if (commonDir === null) {
    throw new UserError('not_found', `job_id: the repository the job was made from (${repoRoot}) is no longer there`, 'job_id');
  }
  if (realPath(commonDir) !== realPath(probe.common_dir)) {
    throw new UserError('bad_input', `cwd: ${probe.root} is not a work tree of the repository the job was made from (${repoRoot}); its changes can only be applied there`, 'cwd');
  }
}

function realPath(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}

function alreadyApplied(id: string, detail: string): UserError {
  return new UserError('conflict', `job_id: the changes of job ${id} were already applied ${detail}; applying twice is refused`, 'job_id');
}
