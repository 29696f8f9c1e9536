import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupSpools, makeSpool } from '../helpers/spool.js';

/**
 * `update` against a local bare repository with release tags: it moves forward to the newest
 * tag, and a release whose build fails leaves the installed version working as it was.
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
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-update-'));
    temps.push(root);
    const work = path.join(root, 'work');
    const bare = path.join(root, 'origin.git');
    const prefix = path.join(root, 'installed');
    const git = (dir: string, ...args: string[]): string => run('git', ['-C', dir, '-c', 'user.email=t@t', '-c', 'user.name=t', ...args]);

    // a repository with the project at v0.1.0 and v0.2.0
    run('git', ['clone', '--quiet', ROOT, work]);
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
