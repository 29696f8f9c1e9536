import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupSpools, makeSpool } from '../helpers/spool.js';

/**
 * `update` against real git repositories: an install at a release tag moves forward to the
 * newest tag, and a release whose build fails leaves the installed version working as it was;
 * an install from a checkout (install.sh) follows its branch to the newest commit, and never
 * over a commit of its own.
 */

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
  cleanupSpools();
});

function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10 * 60_000, ...options });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${String(result.stdout)}${String(result.stderr)}`);
  return String(result.stdout);
}

const npmEnv = { ...process.env, npm_config_cache: path.join(os.homedir(), '.npm'), npm_config_update_notifier: 'false' };

function tempRoot(prefix: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(root);
  return root;
}

/** git in a folder, as a user named t. */
function git(dir: string, ...args: string[]): string {
  return run('git', ['-C', dir, '-c', 'user.email=t@t', '-c', 'user.name=t', ...args]);
}

/** A clone of this repository with the working tree's changes committed, so the code under test is what an install gets. */
function cloneWorkingTree(dest: string): void {
  run('git', ['clone', '--quiet', ROOT, dest]);
  const changed = run('git', ['-C', ROOT, 'ls-files', '--modified', '--others', '--exclude-standard']).split('\n').filter(Boolean);
  for (const file of changed) {
    fs.mkdirSync(path.dirname(path.join(dest, file)), { recursive: true });
    if (fs.existsSync(path.join(ROOT, file))) fs.copyFileSync(path.join(ROOT, file), path.join(dest, file));
    else fs.rmSync(path.join(dest, file), { force: true });
  }
  git(dest, 'add', '--all');
  git(dest, 'commit', '--quiet', '--allow-empty', '-m', 'the working tree under test');
}

function setVersion(dir: string, version: string): void {
  for (const file of ['package.json', 'package-lock.json']) {
    const json = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    json.version = version;
    if (json.packages?.['']) json.packages[''].version = version;
    fs.writeFileSync(path.join(dir, file), `${JSON.stringify(json, null, 2)}\n`);
  }
}

describe('update and check-update (git install)', () => {
  it('fast-forwards to the newest release tag, and keeps the old build when the new one fails', () => {
    const root = tempRoot('aa-update-');
    const work = path.join(root, 'work');
    const bare = path.join(root, 'origin.git');
    const prefix = path.join(root, 'installed');

    // a repository with the project at v0.1.0 and v0.2.0
    cloneWorkingTree(work);
    setVersion(work, '0.1.0');
    git(work, 'commit', '--quiet', '--allow-empty', '-am', 'release 0.1.0');
    git(work, 'tag', 'v0.1.0');
    setVersion(work, '0.2.0');
    git(work, 'commit', '--quiet', '-am', 'release 0.2.0');
    git(work, 'tag', 'v0.2.0');
    git(work, 'commit', '--quiet', '--allow-empty', '-m', 'work after the release (not released)');
    run('git', ['clone', '--quiet', '--bare', work, bare]);

    // installed at v0.1.0, as install.sh would
    run('git', ['clone', '--quiet', bare, prefix]);
    git(prefix, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', 'v0.1.0');
    run('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: prefix, env: npmEnv });
    const launcher = path.join(prefix, 'bin', 'agent-async.js');
    const agentAsync = (...args: string[]) => spawnSync(process.execPath, [launcher, ...args], { encoding: 'utf8', env: npmEnv, timeout: 10 * 60_000 });
    expect(agentAsync('--version').stdout.trim()).toBe('0.1.0');

    const check = agentAsync('check-update', '--json');
    expect(check.status).toBe(1);
    expect(JSON.parse(check.stdout)).toMatchObject({ kind: 'git', current: '0.1.0', latest: 'v0.2.0', update_available: true });

    const updated = agentAsync('update');
    expect(updated.status, updated.stderr).toBe(0);
    expect(updated.stdout).toMatch(/updated 0\.1\.0 → v0\.2\.0/);
    expect(agentAsync('--version').stdout.trim()).toBe('0.2.0');
    expect(git(prefix, 'describe', '--tags', '--exact-match', 'HEAD').trim()).toBe('v0.2.0');
    expect(agentAsync('check-update').status).toBe(0);
    expect(agentAsync('update').stdout).toMatch(/up to date \(0\.2\.0, newest release v0\.2\.0\)/);

    // v0.3.0 does not build: the update fails and 0.2.0 keeps working
    git(work, 'checkout', '--quiet', 'v0.2.0');
    setVersion(work, '0.3.0');
    fs.appendFileSync(path.join(work, 'lib', 'version.ts'), '\nexport const broken: number = "not a number";\n');
    git(work, 'commit', '--quiet', '-am', 'release 0.3.0 (broken)');
    git(work, 'tag', 'v0.3.0');
    git(work, 'push', '--quiet', bare, 'v0.3.0');
    const failed = agentAsync('update');
    expect(failed.status).not.toBe(0);
    expect(failed.stderr).toMatch(/did not build; the installed 0\.2\.0 stays as it was/);
    expect(agentAsync('--version').stdout.trim()).toBe('0.2.0');
    expect(git(prefix, 'describe', '--tags', '--exact-match', 'HEAD').trim()).toBe('v0.2.0');
    const spool = makeSpool();
    const job = spawnSync(process.execPath, [launcher, 'start', 'exec', '--wait', '--', 'echo', 'still works'], { encoding: 'utf8', env: spool.env });
    expect(job.status, job.stderr).toBe(0);
  }, 20 * 60_000);
});

describe('update and check-update (an install from a checkout)', () => {
  it('follows the branch of the checkout it was installed from, fast-forward only', () => {
    const root = tempRoot('aa-update-branch-');
    const work = path.join(root, 'checkout');
    const prefix = path.join(root, 'installed');

    // the user's checkout, on branch trunk, with no release tag at all
    cloneWorkingTree(work);
    git(work, 'checkout', '--quiet', '-b', 'trunk');
    for (const tag of git(work, 'tag', '--list').split('\n').filter(Boolean)) git(work, 'tag', '-d', tag);
    setVersion(work, '0.1.0');
    git(work, 'commit', '--quiet', '--allow-empty', '-am', 'the version installed');

    const env = { ...npmEnv, HOME: root };
    const installed = spawnSync('bash', [path.join(ROOT, 'install.sh'), `--source=${work}`, `--prefix=${prefix}`, `--bin-dir=${path.join(root, 'bin')}`], { encoding: 'utf8', env, timeout: 10 * 60_000 });
    expect(installed.status, `${installed.stdout}${installed.stderr}`).toBe(0);
    expect(installed.stdout).toMatch(/on branch trunk at [0-9a-f]{7}; 'agent-async update' moves it to the newest commit of trunk/);
    const agentAsync = (...args: string[]) => spawnSync(process.execPath, [path.join(prefix, 'bin', 'agent-async.js'), ...args], { encoding: 'utf8', env, timeout: 10 * 60_000 });
    expect(agentAsync('check-update').stdout).toMatch(/^up to date \(0\.1\.0 \(trunk@[0-9a-f]{7}\), following trunk\)/);

    // the checkout moves on by two commits
    setVersion(work, '0.1.1');
    git(work, 'commit', '--quiet', '-am', 'moved on');
    git(work, 'commit', '--quiet', '--allow-empty', '-m', 'and once more');
    const head = git(work, 'rev-parse', 'HEAD').trim();
    const check = agentAsync('check-update', '--json');
    expect(check.status).toBe(1);
    expect(JSON.parse(check.stdout)).toMatchObject({ kind: 'git', track: 'branch', branch: 'trunk', update_available: true, commits_behind: 2, latest: `trunk@${head.slice(0, 7)}` });
    const updated = agentAsync('update');
    expect(updated.status, updated.stderr).toBe(0);
    expect(updated.stdout).toMatch(/updated 0\.1\.0 \(trunk@[0-9a-f]{7}\) → trunk@[0-9a-f]{7} \(2 new commits\)/);
    expect(agentAsync('--version').stdout.trim()).toBe('0.1.1');
    expect(git(prefix, 'symbolic-ref', '--short', 'HEAD').trim()).toBe('trunk');
    expect(git(prefix, 'rev-parse', 'HEAD').trim()).toBe(head);
    expect(agentAsync('check-update').status).toBe(0);

    // a commit made in the install itself: the branch is never forced over it
    git(prefix, 'commit', '--quiet', '--allow-empty', '-m', 'a local change');
    git(work, 'commit', '--quiet', '--allow-empty', '-m', 'upstream again');
    expect(agentAsync('check-update').stdout).toMatch(/the installed commit is not behind trunk of origin \(local commits, or a rewritten branch\); not moving/);
    const refused = agentAsync('update');
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/update: the installed commit is not behind trunk/);
    expect(git(prefix, 'log', '-1', '--format=%s').trim()).toBe('a local change');
  }, 20 * 60_000);
});

