import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyChanges, createWorktree, discardJob, finishWorktree, readRecord, snapshot, type WorktreeContext, type WorktreeOptions,
} from '../lib/worktree/index.js';
import { GitError, runGit } from '../lib/worktree/git.js';
import { fingerprint, git, isolateGitConfig, lines, makeRepo, read, removeScratch, scratch, until, write } from './helpers/git-repo.js';
import { ROOT, killPid } from './helpers/spool.js';

/**
 * A process SIGKILLed in the middle of making a worktree, finishing a job or applying its
 * changes, at every git call in turn and inside git's own checkout: the next call completes
 * what it began, or discard cleans it, and the user's repository never shows a trace.
 * The child runs the built module (dist/), as the runner does.
 */

const CHILD = path.join(ROOT, 'test', 'helpers', 'worktree-child.mjs');
const PAUSING_GIT = path.join(ROOT, 'test', 'helpers', 'pausing-git.sh');

beforeAll(() => {
  isolateGitConfig();
  if (!fs.existsSync(path.join(ROOT, 'dist', 'worktree', 'index.js'))) throw new Error('build first (npm run build): the child runs dist/');
});
afterAll(removeScratch);

interface Killable {
  /** Resolves when the child reached the point it should be killed at. */
  reached: Promise<void>;
  /** SIGKILLs the child's process group and waits for the child to end. */
  kill: () => Promise<void>;
  /** Resolves with the child's stdout when it ends on its own. */
  done: () => Promise<string>;
}

function runChild(args: Record<string, unknown>, env: NodeJS.ProcessEnv, reachedFile: string | null): Killable {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    reached: reachedFile === null ? Promise.resolve() : until(() => fs.existsSync(reachedFile), `the child to reach ${reachedFile}`),
    kill: async () => {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    },
    done: async () => {
      const code = await exited;
      if (code !== 0) throw new Error(`child exited ${code}: ${stderr}`);
      return stdout;
    },
  };
}

interface Fixture {
  repo: string;
  ctx: WorktreeContext;
  killDir: string;
}

function fixture(): Fixture {
  const { repo, home, base } = scratch();
  makeRepo(repo, { '.gitignore': '.env\n', 'src/app.txt': lines(10, 'app'), 'gen.txt': 'generated 0\n', 'slow.txt': 'smudged slowly\n' });
  write(repo, '.env', 'TOKEN=1\n');
  write(repo, 'src/app.txt', lines(10, 'app') + 'user edit\n');
  const killDir = path.join(base, 'kill');
  fs.mkdirSync(killDir);
  return { repo, ctx: { home }, killDir };
}

/** Runs `op` in a child once to count its git calls that can change something. */
async function countGitCalls(fx: Fixture, args: Record<string, unknown>): Promise<number> {
  fs.rmSync(path.join(fx.killDir, 'count'), { force: true });
  await runChild({ ...args, home: fx.ctx.home, git: PAUSING_GIT }, { WT_KILL_DIR: fx.killDir, WT_PAUSE_AT: '0' }, null).done();
  return Number(fs.readFileSync(path.join(fx.killDir, 'count'), 'utf8'));
}

/** Runs `op` in a child, SIGKILLed just before its git call number `at` that can change something. */
async function killAtGitCall(fx: Fixture, args: Record<string, unknown>, at: number): Promise<string> {
  for (const name of ['count', 'reached']) fs.rmSync(path.join(fx.killDir, name), { force: true });
  const reachedFile = path.join(fx.killDir, 'reached');
  const child = runChild({ ...args, home: fx.ctx.home, git: PAUSING_GIT }, { WT_KILL_DIR: fx.killDir, WT_PAUSE_AT: String(at) }, reachedFile);
  await child.reached;
  await child.kill();
  return fs.readFileSync(reachedFile, 'utf8').trim();
}

/** A setup that changes a tracked file, so that the kill points of its commit are covered too. */
const SETUP: WorktreeOptions = {
  copy: ['.env'],
  setup: [process.execPath, '-e', "require('fs').writeFileSync('gen.txt', 'generated 1\\n')"],
};

function expectComplete(fx: Fixture, id: string): void {
  const record = readRecord(fx.ctx, id);
  expect(record).not.toBeNull();
  const wt = record!.path;
  expect(read(wt, 'src/app.txt')).toContain('user edit');
  expect(read(wt, '.env')).toBe('TOKEN=1\n');
  expect(read(wt, 'gen.txt')).toBe('generated 1\n');
  expect(git(wt, 'status', '--porcelain')).toBe('');
  expect(git(wt, 'rev-parse', 'HEAD')).toBe(record!.start_commit);
  expect(git(fx.repo, 'rev-parse', `${record!.start_commit}^`)).toBe(record!.base_commit);
  const entries = git(fx.repo, 'worktree', 'list', '--porcelain').split('\n\n').filter((entry) => entry.includes(`/${id}\n`));
  expect(entries).toHaveLength(1);
  expect(entries[0]).not.toContain('locked');
}

function expectNoTrace(fx: Fixture, id: string): void {
  expect(git(fx.repo, 'for-each-ref', `refs/agent-async/${id}/`, `refs/heads/agent-async/${id}`)).toBe('');
  expect(git(fx.repo, 'worktree', 'list', '--porcelain')).not.toContain(id);
  expect(fs.readdirSync(path.join(fx.ctx.home, 'worktrees')).filter((name) => name.includes(id))).toEqual([]);
}

describe('SIGKILL while a worktree is made', () => {
  it('before every git call that changes something: the next call completes it, or discard leaves nothing', async () => {
    const fx = fixture();
    const before = await fingerprint(fx.repo);
    const argsFor = async (id: string): Promise<Record<string, unknown>> => ({ op: 'create', target: await snapshot(fx.ctx, fx.repo, id), options: SETUP });
    const calls = await countGitCalls(fx, await argsFor('count'));
    await discardJob(fx.ctx, fx.repo, 'count');
    expect(calls).toBeGreaterThan(5);
    const reachedAt: string[] = [];
    for (let at = 1; at <= calls; at += 1) {
      const id = `create${at}`;
      const args = await argsFor(id);
      reachedAt.push(await killAtGitCall(fx, args, at));
      if (at % 3 === 0) {
        await discardJob(fx.ctx, fx.repo, id);
        expectNoTrace(fx, id);
      } else {
        await createWorktree(fx.ctx, args.target as never, SETUP);
        expectComplete(fx, id);
      }
    }
    expect(await fingerprint(fx.repo)).toEqual(before);
    expect(reachedAt.some((call) => call.includes('worktree add'))).toBe(true);
    expect(reachedAt.some((call) => call.includes('commit-tree'))).toBe(true);
    expect(reachedAt.filter((call) => call.startsWith('update-ref')).length).toBeGreaterThanOrEqual(3);
  });

  it('inside git\'s checkout and inside setup: the next call completes it', async () => {
    const fx = fixture();
    const flag = path.join(fx.killDir, 'hang');
    const reachedFile = path.join(fx.killDir, 'reached');
    // reached files are written whole (a temp file renamed): a reader never sees one empty
    write(fx.killDir, 'smudge.sh', `#!/bin/sh\nif [ -e '${flag}' ]; then echo $$ > '${reachedFile}.tmp' && mv '${reachedFile}.tmp' '${reachedFile}'; exec sleep 600; fi\nexec cat\n`, 0o755);
    git(fx.repo, 'config', 'filter.slow.smudge', path.join(fx.killDir, 'smudge.sh'));
    git(fx.repo, 'config', 'filter.slow.clean', 'cat');
    write(fx.repo, '.git/info/attributes', 'slow.txt filter=slow\n');
    const before = await fingerprint(fx.repo);

    fs.writeFileSync(flag, '');
    const inCheckout = await snapshot(fx.ctx, fx.repo, 'checkout1');
    const child = runChild({ op: 'create', target: inCheckout, options: SETUP, home: fx.ctx.home }, {}, reachedFile);
    await child.reached;
    expect(git(fx.repo, 'worktree', 'list', '--porcelain')).toContain('locked initializing');
    await child.kill();
    fs.rmSync(flag);
    fs.rmSync(reachedFile);
    await createWorktree(fx.ctx, inCheckout, SETUP);
    expectComplete(fx, 'checkout1');
    expect(read(readRecord(fx.ctx, 'checkout1')!.path, 'slow.txt')).toBe('smudged slowly\n');

    const hangingSetup: WorktreeOptions = {
      ...SETUP,
      setup: [process.execPath, '-e', `const fs = require('fs'); fs.writeFileSync('gen.txt', 'half\\n'); fs.writeFileSync(${JSON.stringify(`${reachedFile}.tmp`)}, String(process.pid)); fs.renameSync(${JSON.stringify(`${reachedFile}.tmp`)}, ${JSON.stringify(reachedFile)}); setInterval(() => {}, 1000)`],
    };
    const inSetup = await snapshot(fx.ctx, fx.repo, 'setup1');
    const setupChild = runChild({ op: 'create', target: inSetup, options: hangingSetup, home: fx.ctx.home }, {}, reachedFile);
    await setupChild.reached;
    await setupChild.kill();
    // setup runs in its own process group, as workers do: the runner finds it by the job's
    // environment; here it is stopped by its pid
    expect(killPid(Number(read(fx.killDir, 'reached')))).toBe(true);
    await createWorktree(fx.ctx, inSetup, SETUP);
    expectComplete(fx, 'setup1');
    expect(await fingerprint(fx.repo)).toEqual(before);
  });
});

describe('SIGKILL while a job is finished or applied', () => {
  it('finish, before every git call that changes something: finishing again gives the same changes and removes the worktree', async () => {
    const fx = fixture();
    const prepare = async (id: string): Promise<Record<string, unknown>> => {
      const record = await createWorktree(fx.ctx, await snapshot(fx.ctx, fx.repo, id));
      write(record.path, 'src/app.txt', 'agent rewrote it\n');
      write(record.path, 'new.txt', 'new\n');
      fs.rmSync(path.join(record.path, 'gen.txt'));
      return { op: 'finish', target: { id, repo_root: fx.repo }, patchFile: path.join(fx.ctx.home, `${id}.patch`) };
    };
    const calls = await countGitCalls(fx, await prepare('count'));
    const expected = ['gen.txt', 'new.txt', 'src/app.txt'];
    for (let at = 1; at <= calls; at += 1) {
      const id = `finish${at}`;
      const args = await prepare(id);
      await killAtGitCall(fx, args, at);
      const { changes } = await finishWorktree(fx.ctx, { id, repo_root: fx.repo }, args.patchFile as string);
      expect(changes.files.map((file) => file.path).sort()).toEqual(expected);
      expect(fs.readFileSync(args.patchFile as string).length).toBe(changes.patch_bytes);
      expect(fs.existsSync(path.join(fx.ctx.home, 'worktrees', id))).toBe(false);
      expect(git(fx.repo, 'worktree', 'list', '--porcelain')).not.toContain(id);
    }
  });

  it('apply, before every git call that changes something: the work tree holds all of the changes or none, and applying again completes it', async () => {
    const fx = fixture();
    const original = read(fx.repo, 'src/app.txt');
    const prepare = async (id: string): Promise<Record<string, unknown>> => {
      const record = await createWorktree(fx.ctx, await snapshot(fx.ctx, fx.repo, id));
      write(record.path, 'src/app.txt', original.replace('app line 2\n', 'agent line 2\n'));
      write(record.path, 'added.txt', 'added\n');
      await finishWorktree(fx.ctx, { id, repo_root: fx.repo }, path.join(fx.ctx.home, `${id}.patch`));
      return { op: 'apply', target: { id, repo_root: fx.repo }, cwd: fx.repo };
    };
    const restore = (): void => {
      write(fx.repo, 'src/app.txt', original);
      fs.rmSync(path.join(fx.repo, 'added.txt'), { force: true });
    };
    const calls = await countGitCalls(fx, await prepare('count'));
    restore();
    for (let at = 1; at <= calls; at += 1) {
      const id = `apply${at}`;
      const args = await prepare(id);
      await killAtGitCall(fx, args, at);
      const applied = fs.existsSync(path.join(fx.repo, 'added.txt'));
      expect(read(fx.repo, 'src/app.txt')).toBe(applied ? original.replace('app line 2\n', 'agent line 2\n') : original);
      const again = await applyChanges(fx.ctx, { id, repo_root: fx.repo }, fx.repo).catch((error: Error) => error);
      if (again instanceof Error) {
        // marked as applied before the kill: only possible once the files were written
        expect(again.message).toContain('already applied');
        expect(applied).toBe(true);
      } else {
        expect(again.kind).toBe('applied');
      }
      expect(read(fx.repo, 'added.txt')).toBe('added\n');
      expect(read(fx.repo, 'src/app.txt')).toBe(original.replace('app line 2\n', 'agent line 2\n'));
      restore();
    }
  });

  it('apply measures the work tree again when it changed between the merge and git apply', async () => {
    const fx = fixture();
    const original = read(fx.repo, 'src/app.txt');
    const record = await createWorktree(fx.ctx, await snapshot(fx.ctx, fx.repo, 'race1'));
    write(record.path, 'src/app.txt', original.replace('app line 5\n', 'agent line 5\n'));
    await finishWorktree(fx.ctx, { id: 'race1', repo_root: fx.repo }, path.join(fx.ctx.home, 'race1.patch'));
    Object.assign(process.env, { WT_KILL_DIR: fx.killDir, WT_PAUSE_AT: '3', WT_RESUME: '1' });
    try {
      const applying = applyChanges({ ...fx.ctx, git: PAUSING_GIT }, { id: 'race1', repo_root: fx.repo }, fx.repo);
      await until(() => fs.existsSync(path.join(fx.killDir, 'reached')), 'git apply to be next');
      expect(read(fx.killDir, 'reached')).toMatch(/^apply /);
      // the user edits a line inside the patch's context: that patch no longer applies
      write(fx.repo, 'src/app.txt', original.replace('app line 3\n', 'user line 3\n'));
      fs.writeFileSync(path.join(fx.killDir, 'go'), '');
      expect((await applying).kind).toBe('applied');
      // one pass is add, commit-tree, apply, update-ref; the failed apply made a second
      expect(Number(read(fx.killDir, 'count'))).toBe(8);
    } finally {
      for (const name of ['WT_KILL_DIR', 'WT_PAUSE_AT', 'WT_RESUME']) delete process.env[name];
    }
    expect(read(fx.repo, 'src/app.txt')).toBe(original.replace('app line 3\n', 'user line 3\n').replace('app line 5\n', 'agent line 5\n'));
  });

  it('stops a git call that hangs past the timeout and says so', async () => {
    const fx = fixture();
    Object.assign(process.env, { WT_KILL_DIR: fx.killDir, WT_PAUSE_AT: '1' });
    try {
      const error = await runGit({ ...fx.ctx, git: PAUSING_GIT, timeoutMs: 200 }, ['update-ref', 'refs/agent-async/t/base', 'HEAD'], { cwd: fx.repo })
        .then(() => null, (failure: unknown) => failure);
      expect(error).toBeInstanceOf(GitError);
      expect(error).toMatchObject({ failure: 'timeout', message: expect.stringContaining('took too long and was stopped') });
    } finally {
      for (const name of ['WT_KILL_DIR', 'WT_PAUSE_AT']) delete process.env[name];
    }
    expect(git(fx.repo, 'for-each-ref', 'refs/agent-async/')).toBe('');
  });
});
