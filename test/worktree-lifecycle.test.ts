import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../lib/errors.js';
import {
  SetupCancelledError, SetupFailedError, createWorktree, finishWorktree, readPatchPage, readRecord, recreateWorktree, snapshot, type WorktreeContext,
} from '../lib/worktree/index.js';
import { fingerprint, git, isolateGitConfig, lines, makeRepo, read, removeScratch, scratch, write } from './helpers/git-repo.js';

/** A job's worktree from creation to its end: copy, setup, leftovers, changes, patch, continue. */

beforeAll(() => {
  isolateGitConfig();
});
afterAll(removeScratch);

/** Polls `probe` until it holds (at most 20 s: the facts waited for here come at once). */
async function until(probe: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; !probe();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A process that lives (a zombie does not count). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => {
    throw new Error('expected a rejection');
  }, (error: unknown) => error);
}

function setupRepo(): { repo: string; home: string; base: string; ctx: WorktreeContext } {
  const { repo, home, base } = scratch();
  makeRepo(repo, {
    '.gitignore': '.env\nnode_modules/\nbuild/\n', 'src/app.txt': lines(20, 'app'), 'src/old.txt': lines(5, 'old'),
    'doomed.txt': 'bye\n', 'tool.sh': 'echo\n', 'blob.bin': Buffer.from([0, 1, 2, 3]),
  });
  return { repo, home, base, ctx: { home } };
}

describe('createWorktree', () => {
  it('checks out the snapshot on the job branch in the spool, in the cwd\'s subdirectory, and answers the same worktree again', async () => {
    const { repo, ctx, home } = setupRepo();
    write(repo, 'src/app.txt', 'user edit\n');
    write(repo, 'src/new-untracked.txt', 'untracked\n');
    const before = await fingerprint(repo);
    const taken = await snapshot(ctx, path.join(repo, 'src'), 'create1');
    const record = await createWorktree(ctx, taken);
    expect(await fingerprint(repo)).toEqual(before);
    expect(record.path).toBe(path.join(home, 'worktrees', 'create1'));
    expect(record.workdir).toBe(path.join(home, 'worktrees', 'create1', 'src'));
    expect(record).toMatchObject({ branch: 'agent-async/create1', base_commit: taken.base_commit, start_commit: taken.base_commit, copied: [] });
    expect(read(record.path, 'src/app.txt')).toBe('user edit\n');
    expect(read(record.path, 'src/new-untracked.txt')).toBe('untracked\n');
    expect(git(record.path, 'symbolic-ref', 'HEAD')).toBe('refs/heads/agent-async/create1');
    expect(git(record.path, 'status', '--porcelain')).toBe('');
    expect(JSON.parse(fs.readFileSync(path.join(home, 'worktrees', 'create1.json'), 'utf8'))).toEqual(record);
    expect(await createWorktree(ctx, taken)).toEqual(record);
  });

  it('makes the worker\'s folder when the cwd has no tracked files', async () => {
    const { repo, ctx } = setupRepo();
    fs.mkdirSync(path.join(repo, 'empty-dir'));
    const record = await createWorktree(ctx, await snapshot(ctx, path.join(repo, 'empty-dir'), 'emptydir1'));
    expect(fs.statSync(record.workdir).isDirectory()).toBe(true);
  });

  it('copies and links ignored paths, passes over missing ones, refuses tracked ones, and never commits them', async () => {
    const { repo, ctx } = setupRepo();
    write(repo, '.env', 'SECRET=1\n');
    write(repo, 'node_modules/dep/index.js', 'module.exports = 1;\n');
    const taken = await snapshot(ctx, repo, 'copy1');
    const record = await createWorktree(ctx, taken, { copy: ['.env', { path: 'node_modules', mode: 'link' }, 'build'] });
    expect(record.copied).toEqual(['.env', 'node_modules']);
    expect(read(record.path, '.env')).toBe('SECRET=1\n');
    expect(fs.lstatSync(path.join(record.path, '.env')).isSymbolicLink()).toBe(false);
    expect(fs.readlinkSync(path.join(record.path, 'node_modules'))).toBe(path.join(repo, 'node_modules'));
    write(record.path, 'src/app.txt', 'agent\n');
    const { changes } = await finishWorktree(ctx, { id: 'copy1', repo_root: repo }, path.join(ctx.home, 'copy1.patch'));
    expect(changes.files.map((file) => file.path)).toEqual(['src/app.txt']);

    const tracked = await snapshot(ctx, repo, 'copy2');
    const error = await rejection(createWorktree(ctx, tracked, { copy: ['src/app.txt'] }));
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).field).toBe('worktree.copy');
    for (const bad of ['../outside', '/etc/passwd', '.git/config', '']) {
      const invalid = await rejection(createWorktree(ctx, tracked, { copy: [bad] }));
      expect((invalid as UserError).field).toBe('worktree.copy[0]');
    }
  });

  it('runs setup in the worker\'s folder; its changes to tracked files become the start, not the job\'s changes', async () => {
    const { repo, ctx } = setupRepo();
    const taken = await snapshot(ctx, path.join(repo, 'src'), 'setup1');
    const output: string[] = [];
    const script = "require('fs').writeFileSync('app.txt', 'rewritten by setup\\n'); require('fs').mkdirSync('../build'); require('fs').writeFileSync('../build/out', 'x'); console.log('setup ran in', process.cwd(), process.env.AGENT_ASYNC_WORKTREE)";
    const record = await createWorktree(ctx, taken, { setup: [process.execPath, '-e', script], onSetupOutput: (chunk) => output.push(chunk.toString()) });
    expect(output.join('')).toContain(`setup ran in ${record.workdir} ${record.path}`);
    expect(record.start_commit).not.toBe(taken.base_commit);
    expect(git(repo, 'rev-parse', 'refs/agent-async/setup1/start')).toBe(record.start_commit);
    expect(git(repo, 'rev-parse', `${record.start_commit}^`)).toBe(taken.base_commit);
    expect(git(record.path, 'status', '--porcelain')).toBe('');
    write(record.path, 'src/old.txt', 'agent\n');
    const { changes } = await finishWorktree(ctx, { id: 'setup1', repo_root: repo }, path.join(ctx.home, 'setup1.patch'));
    expect(changes.base_commit).toBe(record.start_commit);
    expect(changes.files.map((file) => file.path)).toEqual(['src/old.txt']);
  });

  it('drops a start ref that a killed call left before its branch moved', async () => {
    const { repo, ctx } = setupRepo();
    const taken = await snapshot(ctx, repo, 'stale1');
    const stale = git(repo, 'commit-tree', '-p', taken.base_commit, '-m', 'setup commit of a killed call', `${taken.base_commit}^{tree}`);
    git(repo, 'update-ref', 'refs/heads/agent-async/stale1', taken.base_commit);
    git(repo, 'update-ref', 'refs/agent-async/stale1/start', stale);
    const record = await createWorktree(ctx, taken);
    expect(record.start_commit).toBe(taken.base_commit);
    expect(git(repo, 'for-each-ref', 'refs/agent-async/stale1/start')).toBe('');
  });

  it('reports a failed or timed-out setup with its output', async () => {
    const { repo, ctx } = setupRepo();
    const failing = await rejection(createWorktree(ctx, await snapshot(ctx, repo, 'setupfail1'), {
      setup: [process.execPath, '-e', "console.log('installing'); console.error('npm ERR! broken'); process.exit(3)"],
    }));
    expect(failing).toBeInstanceOf(SetupFailedError);
    expect(failing).toMatchObject({ code: 'setup_failed', exitCode: 3, timedOut: false });
    expect((failing as SetupFailedError).output).toContain('installing');
    expect((failing as SetupFailedError).output).toContain('npm ERR! broken');
    expect(readRecord(ctx, 'setupfail1')).toBeNull();

    const slow = await rejection(createWorktree(ctx, await snapshot(ctx, repo, 'setupslow1'), {
      setup: [process.execPath, '-e', "console.log('started'); setInterval(() => {}, 1000)"], setupTimeoutMs: 300,
    }));
    expect(slow).toMatchObject({ code: 'setup_failed', timedOut: true });
    const missing = await rejection(createWorktree(ctx, await snapshot(ctx, repo, 'setupmissing1'), { setup: ['/no/such/program'] }));
    expect(missing).toMatchObject({ code: 'setup_failed', exitCode: null });
    expect((missing as SetupFailedError).output).toContain('ENOENT');
  });

  it('stops a setup that is cancelled, and whatever of its group outlived it', async () => {
    const { base, repo, ctx } = setupRepo();
    const pidFile = path.join(base, 'left.pid');
    const controller = new AbortController();
    // the leader dies on TERM; its child ignores TERM and holds none of setup's pipes
    const setup = ['sh', '-c', `(trap "" TERM; exec sleep 600) >/dev/null 2>&1 </dev/null & echo $! > ${pidFile}; wait`];
    const made = createWorktree(ctx, await snapshot(ctx, repo, 'setupcancel1'), { setup, signal: controller.signal });
    await until(() => fs.existsSync(pidFile) && read(base, 'left.pid').trim() !== '', 'setup to start its child');
    const left = Number(read(base, 'left.pid'));
    controller.abort();
    expect(await rejection(made)).toBeInstanceOf(SetupCancelledError);
    expect(readRecord(ctx, 'setupcancel1')).toBeNull();
    await until(() => !alive(left), 'the child setup left to be gone');
  });

  it('refuses when the snapshot is gone, or when the branch already holds work', async () => {
    const { repo, ctx } = setupRepo();
    const gone = await rejection(createWorktree(ctx, { id: 'nosnap1', repo_root: repo, prefix: '' }));
    expect(gone).toMatchObject({ code: 'not_found', field: 'job_id' });
    const taken = await snapshot(ctx, repo, 'worked1');
    const record = await createWorktree(ctx, taken);
    write(record.path, 'doomed.txt', 'changed\n');
    await finishWorktree(ctx, { id: 'worked1', repo_root: repo }, path.join(ctx.home, 'worked1.patch'));
    const again = await rejection(createWorktree(ctx, taken));
    expect(again).toMatchObject({ code: 'conflict', field: 'job_id' });
  });
});

describe('finishWorktree', () => {
  it('commits every kind of leftover with the fixed identity, describes it, writes the binary patch, removes the folder', async () => {
    const { repo, ctx, home } = setupRepo();
    const taken = await snapshot(ctx, repo, 'finish1');
    const record = await createWorktree(ctx, taken);
    const wt = record.path;
    write(wt, 'src/app.txt', lines(20, 'app').replace('app line 3\n', 'changed line 3\nadded line\n'));
    git(wt, 'mv', 'src/old.txt', 'src/renamed.txt');
    fs.rmSync(path.join(wt, 'doomed.txt'));
    fs.chmodSync(path.join(wt, 'tool.sh'), 0o755);
    write(wt, 'blob.bin', Buffer.from([0, 255, 0, 254, 7]));
    write(wt, 'fresh/new.txt', 'new\n');
    write(wt, 'build/ignored.o', 'ignored\n');
    fs.symlinkSync('src/app.txt', path.join(wt, 'alias'));
    const patchFile = path.join(home, 'finish1.patch');

    const { changes, warnings } = await finishWorktree(ctx, { id: 'finish1', repo_root: repo }, patchFile);

    expect(warnings).toEqual([]);
    expect(fs.existsSync(wt)).toBe(false);
    expect(readRecord(ctx, 'finish1')).toBeNull();
    expect(git(repo, 'worktree', 'list', '--porcelain')).not.toContain(wt);
    expect(changes).toMatchObject({ branch: 'agent-async/finish1', base_commit: taken.base_commit, head_commit: git(repo, 'rev-parse', 'agent-async/finish1') });
    const byPath = Object.fromEntries(changes.files.map((file) => [file.path, file]));
    expect(byPath).toEqual({
      alias: { path: 'alias', status: 'added', insertions: 1, deletions: 0 },
      'blob.bin': { path: 'blob.bin', status: 'modified', insertions: null, deletions: null },
      'doomed.txt': { path: 'doomed.txt', status: 'deleted', insertions: 0, deletions: 1 },
      'fresh/new.txt': { path: 'fresh/new.txt', status: 'added', insertions: 1, deletions: 0 },
      'src/app.txt': { path: 'src/app.txt', status: 'modified', insertions: 2, deletions: 1 },
      'src/renamed.txt': { path: 'src/renamed.txt', status: 'renamed', old_path: 'src/old.txt', insertions: 0, deletions: 0 },
      'tool.sh': { path: 'tool.sh', status: 'modified', insertions: 0, deletions: 0 },
    });
    expect(git(repo, 'log', '-1', '--format=%an|%cn', 'agent-async/finish1')).toBe('agent-async|agent-async');
    const patch = fs.readFileSync(patchFile);
    expect(changes.patch_bytes).toBe(patch.length);
    expect(fs.statSync(patchFile).mode & 0o777).toBe(0o600);
    expect(patch.toString()).toContain('GIT binary patch');
    expect(patch.toString()).toContain('new mode 100755');
    // the patch rebuilds the head exactly from the base
    const check = path.join(home, 'check');
    git(repo, 'worktree', 'add', '-q', '--detach', check, taken.base_commit);
    git(check, 'apply', '--index', patchFile);
    expect(git(check, 'write-tree')).toBe(git(repo, 'rev-parse', 'agent-async/finish1^{tree}'));
    git(repo, 'worktree', 'remove', '--force', check);
  });

  it('keeps the worker\'s own commits and a HEAD it moved, and removes a stale index.lock', async () => {
    const { repo, ctx } = setupRepo();
    const record = await createWorktree(ctx, await snapshot(ctx, repo, 'commits1'));
    write(record.path, 'a.txt', 'committed by the worker\n');
    git(record.path, 'add', 'a.txt');
    git(record.path, 'commit', '-q', '-m', 'worker commit');
    const workerCommit = git(record.path, 'rev-parse', 'HEAD');
    git(record.path, 'checkout', '-q', '--detach');
    write(record.path, 'b.txt', 'left over\n');
    fs.writeFileSync(path.join(repo, '.git', 'worktrees', 'commits1', 'index.lock'), '');
    const { changes, warnings } = await finishWorktree(ctx, { id: 'commits1', repo_root: repo }, path.join(ctx.home, 'c.patch'));
    expect(changes.files.map((file) => file.path).sort()).toEqual(['a.txt', 'b.txt']);
    expect(git(repo, 'rev-parse', `${changes.head_commit}^`)).toBe(workerCommit);
    expect(warnings.join('\n')).toContain('stale');
    expect(warnings.join('\n')).toContain('detached');
  });

  it('commits the leftovers of a worker that checked out a branch of the user\'s onto the job\'s branch, not onto that branch', async () => {
    const { repo, ctx } = setupRepo();
    git(repo, 'branch', 'side');
    const side = git(repo, 'rev-parse', 'side');
    const record = await createWorktree(ctx, await snapshot(ctx, repo, 'checkout1'));
    git(record.path, 'checkout', '-q', 'side');
    write(record.path, 'left.txt', 'left over\n');
    const { changes, warnings } = await finishWorktree(ctx, { id: 'checkout1', repo_root: repo }, path.join(ctx.home, 'k.patch'));
    expect(git(repo, 'rev-parse', 'side')).toBe(side);
    expect(git(repo, 'rev-parse', 'agent-async/checkout1')).toBe(changes.head_commit);
    expect(git(repo, 'show', `${changes.head_commit}:left.txt`)).toBe('left over');
    expect(warnings.join('\n')).toContain('on refs/heads/side');
  });

  it('answers empty changes when nothing changed, and finishes again after the folder is gone', async () => {
    const { repo, ctx } = setupRepo();
    const taken = await snapshot(ctx, repo, 'nothing1');
    await createWorktree(ctx, taken);
    const patchFile = path.join(ctx.home, 'nothing1.patch');
    const first = await finishWorktree(ctx, { id: 'nothing1', repo_root: repo }, patchFile);
    expect(first.changes).toMatchObject({ files: [], patch_bytes: 0, head_commit: taken.base_commit });
    const second = await finishWorktree(ctx, { id: 'nothing1', repo_root: repo }, patchFile);
    expect(second.changes).toEqual(first.changes);
  });

  it('commits nothing from a worktree whose creation never completed', async () => {
    const { repo, ctx } = setupRepo();
    const taken = await snapshot(ctx, repo, 'partial1');
    const record = await createWorktree(ctx, taken);
    fs.rmSync(path.join(ctx.home, 'worktrees', 'partial1.json'));
    fs.rmSync(path.join(record.path, 'src'), { recursive: true }); // as if checkout had stopped half way
    const { changes, warnings } = await finishWorktree(ctx, { id: 'partial1', repo_root: repo }, path.join(ctx.home, 'p.patch'));
    expect(changes.files).toEqual([]);
    expect(warnings.join()).toContain('never complete');
  });
});

describe('recreateWorktree (job_continue)', () => {
  it('makes the worktree again from the branch; the next finish counts all the work from the start', async () => {
    const { repo, ctx } = setupRepo();
    const taken = await snapshot(ctx, path.join(repo, 'src'), 'again1');
    const first = await createWorktree(ctx, taken, { setup: [process.execPath, '-e', '1'] });
    write(first.path, 'src/app.txt', 'first round\n');
    await finishWorktree(ctx, { id: 'again1', repo_root: repo }, path.join(ctx.home, 'again1.patch'));
    const second = await recreateWorktree(ctx, { id: 'again1', repo_root: repo, prefix: 'src' }, { setup: [process.execPath, '-e', '1'] });
    expect(second.workdir).toBe(first.workdir);
    expect(read(second.path, 'src/app.txt')).toBe('first round\n');
    write(second.path, 'src/second.txt', 'second round\n');
    const { changes } = await finishWorktree(ctx, { id: 'again1', repo_root: repo }, path.join(ctx.home, 'again1.patch'));
    expect(changes.base_commit).toBe(taken.base_commit);
    expect(changes.files.map((file) => file.path).sort()).toEqual(['src/app.txt', 'src/second.txt']);
    const discarded = await rejection(recreateWorktree(ctx, { id: 'never1', repo_root: repo, prefix: '' }));
    expect(discarded).toMatchObject({ code: 'not_found' });
    await finishWorktree(ctx, { id: 'again1', repo_root: repo }, path.join(ctx.home, 'again1.patch'));
    git(repo, 'checkout', '-q', 'agent-async/again1');
    const checkedOut = await rejection(recreateWorktree(ctx, { id: 'again1', repo_root: repo, prefix: 'src' }));
    expect(checkedOut).toMatchObject({ code: 'conflict', message: `job_id: branch agent-async/again1 is checked out at ${repo}; switch that work tree to another branch first` });
  });
});

describe('readPatchPage', () => {
  it('pages a patch by bytes, ending pages after whole lines or whole characters', async () => {
    const { base } = scratch();
    const file = path.join(base, 'changes.patch');
    const content = `${'line é\n'.repeat(300)}ünicode-without-newline-€€€`;
    fs.writeFileSync(file, content);
    const total = Buffer.byteLength(content);
    for (const size of [1, 2, 5, 64, 1000]) {
      let offset: number | null = 0;
      const parts: string[] = [];
      while (offset !== null) {
        const page = await readPatchPage(file, offset, size);
        expect(page.total_bytes).toBe(total);
        expect(Buffer.byteLength(page.text)).toBeLessThanOrEqual(Math.max(size, 3));
        parts.push(page.text);
        offset = page.next_offset;
      }
      expect(parts.join('')).toBe(content);
    }
    const first = await readPatchPage(file, 0, 20);
    expect(first.text).toBe('line é\nline é\n');
    expect(first.next_offset).toBe(16);
  });

  it('names the field at fault', async () => {
    const { base } = scratch();
    const file = path.join(base, 'p.patch');
    fs.writeFileSync(file, 'abc\n');
    await expect(readPatchPage(file, 99, 10)).rejects.toMatchObject({ field: 'offset' });
    await expect(readPatchPage(file, -1, 10)).rejects.toMatchObject({ field: 'offset' });
    await expect(readPatchPage(file, 0, 0)).rejects.toMatchObject({ field: 'max_bytes' });
    await expect(readPatchPage(file, 0, 10 * 1024 * 1024)).rejects.toMatchObject({ field: 'max_bytes' });
    await expect(readPatchPage(path.join(base, 'none.patch'))).rejects.toMatchObject({ code: 'not_found' });
    expect(await readPatchPage(file, 4, 10)).toEqual({ text: '', offset: 4, next_offset: null, total_bytes: 4 });
  });

  it('reads only a regular file: a pipe or a link put in its place is refused, without blocking', async () => {
    const { base } = scratch();
    const secret = path.join(base, 'secret.txt');
    fs.writeFileSync(secret, 'not for the orchestrator\n');
    const link = path.join(base, 'link.patch');
    fs.symlinkSync(secret, link);
    await expect(readPatchPage(link)).rejects.toMatchObject({ code: 'corrupt_state', field: 'job_id', message: expect.stringContaining('symbolic link') });
    const fifo = path.join(base, 'fifo.patch');
    execFileSync('mkfifo', [fifo]);
    await expect(readPatchPage(fifo)).rejects.toMatchObject({ code: 'corrupt_state', field: 'job_id', message: expect.stringContaining('named pipe') });
  });
});
