import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError, quoteInput } from '../errors.js';
import { configEnv, gitText, readRef, runGit, type WorktreeContext } from './git.js';
import { jobRefs } from './layout.js';

/**
 * An isolated job that runs on another host (fleet mode) travels through a git remote both
 * hosts can reach. The submitter pushes the snapshot to `refs/agent-async/<id>/base` there;
 * the runner fetches it into a bare cache repository of its own (one per remote URL, in the
 * spool), runs the job in a worktree of that cache, and pushes the job's branch to
 * `refs/agent-async/<id>/result`; the submitter fetches that into its local branch
 * `agent-async/<id>`, where `job_apply`, `job_diff` and `job_discard` find it as for a local job.
 * The remote's own branches are never touched: everything lives under `refs/agent-async/`,
 * which a default clone or fetch does not copy.
 */

/** Transports a remote may use: a URL from another host must not run a program here (`ext::`). */
const TRANSPORTS = configEnv({
  'protocol.allow': 'never',
  'protocol.https.allow': 'always',
  'protocol.http.allow': 'always',
  'protocol.ssh.allow': 'always',
  'protocol.git.allow': 'always',
  'protocol.file.allow': 'always',
});

const REMOTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/;
const MAX_URL_LENGTH = 4096;

export function remoteRefs(id: string): { base: string; start: string; result: string } {
  const { base, start } = jobRefs(id);
  return { base, start, result: base.replace(/\/base$/, '/result') };
}

/** A remote name of the user's repository (`origin`), checked before it reaches git's argv. */
export function checkRemoteName(name: unknown, field = 'remote'): string {
  if (typeof name !== 'string' || !REMOTE_NAME.test(name) || name.includes('..')) {
    throw new UserError('bad_input', `${field}: ${quoteInput(name)} is not a git remote name; expected the name of a remote of the repository, such as "origin"`, field);
  }
  return name;
}

/** A remote URL handed from another host; never an option, never a control character. */
export function checkRemoteUrl(url: unknown, field = 'remote_url'): string {
  if (typeof url !== 'string' || url === '' || url.length > MAX_URL_LENGTH || url.startsWith('-') || hasControlCharacter(url)) {
    throw new UserError('bad_input', `${field}: ${quoteInput(url)} is not a git URL; expected one such as "ssh://git@host/repo.git", "https://host/repo.git" or "/srv/git/repo.git"`, field);
  }
  return url;
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** The URL git fetches from for `remote` in the repository at `repoRoot`; null when it has no such remote. */
export async function findRemoteUrl(ctx: WorktreeContext, repoRoot: string, remote: string): Promise<string | null> {
  checkRemoteName(remote);
  const result = await runGit(ctx, ['remote', 'get-url', '--', remote], { cwd: repoRoot, okCodes: [2, 128] });
  return result.code === 0 ? checkRemoteUrl(result.stdout.toString('utf8').trim(), 'remote') : null;
}

/** The URL git fetches from for `remote` in the repository at `repoRoot`; a clear error when there is none. */
export async function remoteUrl(ctx: WorktreeContext, repoRoot: string, remote: string): Promise<string> {
  const url = await findRemoteUrl(ctx, repoRoot, remote);
  if (url === null) {
    throw new UserError('bad_input', `remote: the repository at ${repoRoot} has no remote named ${quoteInput(remote)}; add one that the other hosts can fetch (git remote add ${remote} <url>) or run the job on this host`, 'remote');
  }
  return url;
}

/** Submitter: sends the job's snapshot to the remote, so that another host can run it. */
export async function pushBase(ctx: WorktreeContext, repoRoot: string, remote: string, id: string): Promise<{ url: string; base_commit: string }> {
  const url = await remoteUrl(ctx, repoRoot, remote);
  const { base } = remoteRefs(id);
  const commit = await readRef(ctx, repoRoot, base);
  if (commit === null) throw new Error(`job ${id} has no snapshot (${base}) in ${repoRoot} to push`);
  await push(ctx, repoRoot, url, [`${commit}:${base}`]);
  return { url, base_commit: commit };
}

/** Where the bare cache repository of one remote URL lives in the spool (made by `cacheRepository`). */
export function cachePath(ctx: WorktreeContext, url: string): string {
  checkRemoteUrl(url);
  return path.join(path.resolve(ctx.home), 'repos', `${createHash('sha256').update(url).digest('hex').slice(0, 24)}.git`);
}

/** Runner: the bare cache repository of one remote URL, in the spool; made on first use. */
export async function cacheRepository(ctx: WorktreeContext, url: string): Promise<string> {
  const dir = cachePath(ctx, url);
  try {
    await fsp.access(path.join(dir, 'HEAD'));
    return dir;
  } catch {
    // made below
  }
  await fsp.mkdir(path.dirname(dir), { recursive: true, mode: 0o700 });
  const temp = `${dir}.${process.pid}.${Date.now()}.tmp`;
  await runGit(ctx, ['init', '-q', '--bare', '--', temp], { cwd: path.dirname(dir) });
  await runGit(ctx, ['config', 'agent-async.url', url], { cwd: temp });
  try {
    await fsp.rename(temp, dir);
  } catch {
    await fsp.rm(temp, { recursive: true, force: true }); // another process made it first
  }
  return dir;
}

/** Runner: fetches the job's snapshot into the cache; answers the cache and the commit. */
export async function fetchBase(ctx: WorktreeContext, url: string, id: string, expected: string): Promise<{ cache: string; base_commit: string }> {
  const cache = await cacheRepository(ctx, url);
  const { base } = remoteRefs(id);
  await fetch(ctx, cache, url, [`+${base}:${base}`]);
  const commit = await readRef(ctx, cache, base);
  if (commit !== expected) {
    throw new Error(`job ${id}: ${base} on ${url} is ${commit ?? 'missing'}, not the snapshot ${expected} the job was submitted with`);
  }
  return { cache, base_commit: commit };
}

/**
 * Runner: a continuation of a job that ran from this cache works on that job's branch: its
 * last pushed result (and `start` ref, if any) comes back into the cache's branch, forced (the
 * cache is ours; the remote holds the newest result).
 */
export async function fetchBranch(ctx: WorktreeContext, url: string, id: string): Promise<void> {
  const cache = await cacheRepository(ctx, url);
  const refs = remoteRefs(id);
  const present = await listRemote(ctx, cache, url, [refs.result, refs.start]);
  if (!present.includes(refs.result)) throw new Error(`job ${id}: ${url} has no ${refs.result} to continue from (was it removed there?)`);
  await fetch(ctx, cache, url, [`+${refs.result}:${jobRefs(id).branch}`, ...(present.includes(refs.start) ? [`+${refs.start}:${refs.start}`] : [])]);
}

/**
 * Runner: sends the job's branch (in the cache) to the remote as `refs/agent-async/<id>/result`,
 * and the `start` ref when `worktree.setup` made one (the job's changes are counted from it).
 */
export async function pushResult(ctx: WorktreeContext, cache: string, url: string, id: string): Promise<string> {
  const refs = remoteRefs(id);
  const head = await readRef(ctx, cache, jobRefs(id).branch);
  if (head === null) throw new Error(`job ${id} has no branch (${jobRefs(id).branch}) in ${cache} to push`);
  const start = await readRef(ctx, cache, refs.start);
  await push(ctx, cache, url, [`+${head}:${refs.result}`, ...(start === null ? [] : [`+${start}:${refs.start}`])]);
  return head;
}

/**
 * Submitter: fetches the job's result into its local branch `agent-async/<id>` (and its
 * `start` and `base` refs). Never forced: the branch moves only forward (to a continuation's
 * result); one that holds something else (work committed on it here) is kept, and said.
 */
export async function fetchResult(ctx: WorktreeContext, repoRoot: string, url: string, id: string, expected: string): Promise<void> {
  const refs = remoteRefs(id);
  const { branch } = jobRefs(id);
  const local = await readRef(ctx, repoRoot, branch);
  if (local === expected) return;
  const present = await listRemote(ctx, repoRoot, url, [refs.result, refs.start, refs.base]);
  if (!present.includes(refs.result)) throw new Error(`job ${id}: ${url} has no ${refs.result} (was it removed there?)`);
  // the base too: gc here may have removed the local snapshot ref of a job that had no folder here
  const alongside = [refs.start, refs.base].filter((ref) => present.includes(ref)).map((ref) => `+${ref}:${ref}`);
  // not forced: git moves a branch fetched before only forward (a continuation's result builds on it)
  const fetching = await runGit(ctx, ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--', url, `${refs.result}:${branch}`, ...alongside], { cwd: repoRoot, env: TRANSPORTS, okCodes: [1] });
  if (fetching.code !== 0 && local !== null) {
    throw new UserError('conflict', `job_id ${id}: the branch ${branch.replace('refs/heads/', '')} in ${repoRoot} is at ${local.slice(0, 12)}, which the job's result ${expected.slice(0, 12)} does not build on (was it changed here?); nothing was overwritten`, 'job_id');
  }
  if (fetching.code !== 0) throw new Error(`job ${id}: fetching ${refs.result} from ${url} failed: ${fetching.stderr.trim()}`);
  const fetched = await readRef(ctx, repoRoot, branch);
  if (fetched !== expected) throw new Error(`job ${id}: the result on ${url} is ${fetched ?? 'missing'}, not ${expected} as the job recorded`);
}

/** Removes the job's refs from the remote (gc of a job that ran elsewhere); missing ones are fine. */
export async function deleteRemoteRefs(ctx: WorktreeContext, repoRoot: string, url: string, id: string): Promise<void> {
  const { base, start, result } = remoteRefs(id);
  const present = await listRemote(ctx, repoRoot, url, [base, start, result]);
  if (present.length > 0) await push(ctx, repoRoot, url, present.map((ref) => `:${ref}`));
}

/** Which of `refs` the remote has. */
async function listRemote(ctx: WorktreeContext, cwd: string, url: string, refs: readonly string[]): Promise<string[]> {
  const listed = await gitText(ctx, ['ls-remote', '--', url, ...refs], { cwd, env: TRANSPORTS });
  return listed.split('\n').filter(Boolean).map((line) => line.split('\t')[1]!).filter((ref) => refs.includes(ref));
}

function push(ctx: WorktreeContext, cwd: string, url: string, refspecs: readonly string[]): Promise<unknown> {
  return runGit(ctx, ['push', '--quiet', '--no-verify', '--porcelain', '--', url, ...refspecs], { cwd, env: TRANSPORTS });
}

function fetch(ctx: WorktreeContext, cwd: string, url: string, refspecs: readonly string[]): Promise<unknown> {
  return runGit(ctx, ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--', url, ...refspecs], { cwd, env: TRANSPORTS });
}
