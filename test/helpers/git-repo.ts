import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * Real git repositories in temp folders for the worktree tests, and a fingerprint of
 * everything of the user's that isolation promises not to touch.
 */

const execFileAsync = promisify(execFile);
const roots: string[] = [];

/**
 * A private HOME with a plain identity, so that the machine's git config cannot change what
 * the tests see; system config is ignored too. Each test file runs in its own process.
 */
export function isolateGitConfig(extra = ''): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-wt-home-'));
  roots.push(home);
  fs.writeFileSync(path.join(home, '.gitconfig'), `[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n${extra}`);
  process.env.HOME = home;
  process.env.XDG_CONFIG_HOME = path.join(home, '.config');
  process.env.GIT_CONFIG_NOSYSTEM = '1';
  delete process.env.GIT_DIR;
  delete process.env.GIT_INDEX_FILE;
  delete process.env.GIT_WORK_TREE;
  return home;
}

/** A scratch folder holding `repo/` (the user's) and `spool/` (AGENT_ASYNC_HOME). */
export function scratch(): { base: string; repo: string; home: string } {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'aa-wt-')));
  roots.push(base);
  const repo = path.join(base, 'repo');
  const home = path.join(base, 'spool');
  fs.mkdirSync(repo);
  fs.mkdirSync(home, { mode: 0o700 });
  return { base, repo, home };
}

export function removeScratch(): void {
  for (const root of roots.splice(0)) fs.rmSync(root, { recursive: true, force: true });
}

/** Runs git synchronously for test set-up; throws with git's stderr on failure. */
export function git(cwd: string, ...args: string[]): string {
  const result = spawnSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' } });
  if (result.status !== 0) throw new Error(`git ${args.join(' ')} failed in ${cwd}: ${result.stderr}`);
  return result.stdout.replace(/\n$/, '');
}

export function write(repo: string, file: string, content: string | Buffer, mode?: number): void {
  const target = path.join(repo, file);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, content);
  if (mode !== undefined) fs.chmodSync(target, mode);
}

export function read(repo: string, file: string): string {
  return fs.readFileSync(path.join(repo, file), 'utf8');
}

/** A repository with one commit of `files`. */
export function makeRepo(repo: string, files: Record<string, string | Buffer> = { 'README.md': 'hello\n' }): string {
  git(repo, 'init', '-q');
  for (const [file, content] of Object.entries(files)) write(repo, file, content);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'initial');
  return git(repo, 'rev-parse', 'HEAD');
}

export function lines(count: number, label: string): string {
  return Array.from({ length: count }, (_, index) => `${label} line ${index + 1}`).join('\n') + '\n';
}

async function gitAsync(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('git', ['--no-optional-locks', ...args], { cwd, encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  return stdout.toString('latin1');
}

function hashFile(file: string): string {
  try {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return 'absent';
  }
}

/** Every file below `dir` but `.git`: path, type, mode and content (symlinks by target). */
export function treeDigest(dir: string): string {
  const hash = crypto.createHash('sha256');
  const walk = (folder: string): void => {
    for (const name of fs.readdirSync(folder).sort()) {
      if (folder === dir && name === '.git') continue;
      const full = path.join(folder, name);
      const stat = fs.lstatSync(full);
      hash.update(`${path.relative(dir, full)}\0${stat.mode}\0`);
      if (stat.isSymbolicLink()) hash.update(fs.readlinkSync(full));
      else if (stat.isDirectory()) walk(full);
      else hash.update(fs.readFileSync(full));
      hash.update('\0');
    }
  };
  walk(dir);
  return hash.digest('hex');
}

/**
 * What isolation must never change in the user's repository: the work tree's files, the
 * index bytes, HEAD, `git status --porcelain=v2`, the stash, the config and every ref
 * outside refs/agent-async/ and the agent-async/ branches.
 */
export async function fingerprint(repo: string): Promise<Record<string, string>> {
  const gitDir = path.resolve(repo, (await gitAsync(repo, ['rev-parse', '--git-dir'])).trim());
  const refs = (await gitAsync(repo, ['for-each-ref', '--format=%(refname) %(objectname)']))
    .split('\n').filter((line) => !line.startsWith('refs/agent-async/') && !line.startsWith('refs/heads/agent-async/')).join('\n');
  return {
    files: treeDigest(repo),
    index: hashFile(path.join(gitDir, 'index')),
    head_file: fs.readFileSync(path.join(gitDir, 'HEAD'), 'utf8'),
    status: await gitAsync(repo, ['status', '--porcelain=v2', '-z', '--branch', '--untracked-files=all']),
    stash: await gitAsync(repo, ['stash', 'list', '--format=%H %gs']),
    stash_log: hashFile(path.join(gitDir, 'logs', 'refs', 'stash')),
    config: hashFile(path.join(gitDir, 'config')),
    refs,
  };
}

/** Waits until `check` holds, polling (for files another process writes). */
export async function until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
