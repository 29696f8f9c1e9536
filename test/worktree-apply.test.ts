import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyChanges, createWorktree, discardJob, finishWorktree, hasUnappliedWork, listJobStates, listWorktreeFolders, recreateWorktree, removeJobs, snapshot,
  sweepWorktreeFolders,
  type WorktreeContext,
} from '../lib/worktree/index.js';
import { fingerprint, git, isolateGitConfig, lines, makeRepo, read, removeScratch, scratch, write } from './helpers/git-repo.js';

/**
 * Bringing work back without losing a byte of the user's: clean, alongside the user's edits,
 * conflicts that change nothing, several jobs in turn; then discard and gc; and three
 * worktrees made at once while the user's repository is watched.
 */

beforeAll(() => {
  isolateGitConfig();
});
afterAll(removeScratch);

const NOTES = lines(30, 'notes');
const BINARY = Buffer.from([0, 1, 2, 3, 4, 5]);

function userRepo(): { repo: string; ctx: WorktreeContext } {
  const { repo, home } = scratch();
  makeRepo(repo, {
    '.gitignore': '*.log\n', 'notes.txt': NOTES, 'other.txt': lines(10, 'other'), 'remove-me.txt': 'x\n', 'move-me.txt': lines(4, 'move'),
    'run.sh': 'echo run\n', 'data.bin': BINARY, 'staged.txt': 'committed\n',
  });
  return { repo, ctx: { home } };
}

/** Runs a job: snapshot, worktree, `work` in it as the worker, finish. */
async function job(ctx: WorktreeContext, repo: string, id: string, work: (wt: string) => void): Promise<void> {
  const record = await createWorktree(ctx, await snapshot(ctx, repo, id));
  work(record.path);
  await finishWorktree(ctx, { id, repo_root: repo }, path.join(ctx.home, `${id}.patch`));
}

function editLine(text: string, from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

describe('applyChanges', () => {
  it('applies every kind of change without staging or committing anything', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'clean1', (wt) => {
      write(wt, 'notes.txt', editLine(NOTES, 'notes line 5\n', 'agent line 5\n'));
      write(wt, 'added/new.txt', 'new file\n');
      fs.rmSync(path.join(wt, 'remove-me.txt'));
      fs.renameSync(path.join(wt, 'move-me.txt'), path.join(wt, 'moved.txt'));
      write(wt, 'moved.txt', read(wt, 'moved.txt') + 'and edited\n');
      fs.chmodSync(path.join(wt, 'run.sh'), 0o755);
      write(wt, 'data.bin', Buffer.from([9, 0, 9, 0]));
    });
    const before = await fingerprint(repo);
    const result = await applyChanges(ctx, { id: 'clean1', repo_root: repo }, repo);
    expect(result.kind).toBe('applied');
    if (result.kind !== 'applied') return;
    expect(result.applied).toMatchObject({ into: repo, head_commit: git(repo, 'rev-parse', 'agent-async/clean1') });
    expect(result.applied.files.sort()).toEqual(['added/new.txt', 'data.bin', 'moved.txt', 'notes.txt', 'remove-me.txt', 'run.sh']);
    expect(read(repo, 'notes.txt')).toContain('agent line 5\n');
    expect(read(repo, 'added/new.txt')).toBe('new file\n');
    expect(fs.existsSync(path.join(repo, 'remove-me.txt'))).toBe(false);
    expect(fs.existsSync(path.join(repo, 'move-me.txt'))).toBe(false);
    expect(read(repo, 'moved.txt')).toBe(lines(4, 'move') + 'and edited\n');
    expect(fs.statSync(path.join(repo, 'run.sh')).mode & 0o111).not.toBe(0);
    expect(fs.readFileSync(path.join(repo, 'data.bin'))).toEqual(Buffer.from([9, 0, 9, 0]));
    const after = await fingerprint(repo);
    expect(after.index).toBe(before.index);
    expect(after.refs).toBe(before.refs);
    expect(after.stash).toBe(before.stash);
    expect(git(repo, 'diff', '--cached', '--name-only')).toBe('');
    expect(git(repo, 'rev-parse', 'refs/agent-async/clean1/applied')).toBe(result.applied.head_commit);
  });

  it('keeps the user\'s uncommitted work: edits before and after the snapshot, staged blobs, nearby lines', async () => {
    const { repo, ctx } = userRepo();
    write(repo, 'notes.txt', editLine(NOTES, 'notes line 1\n', 'user before snapshot\n'));
    await job(ctx, repo, 'keep1', (wt) => write(wt, 'notes.txt', editLine(read(wt, 'notes.txt'), 'notes line 12\n', 'agent line 12\n')));
    write(repo, 'notes.txt', editLine(read(repo, 'notes.txt'), 'notes line 10\n', 'user after snapshot, two lines away\n'));
    write(repo, 'other.txt', 'user rewrote other\n');
    write(repo, 'staged.txt', 'staged by the user\n');
    git(repo, 'add', 'staged.txt');
    write(repo, 'staged.txt', 'edited again after staging\n');
    write(repo, 'scratch.log', 'ignored user file\n');
    const stagedBlob = git(repo, 'rev-parse', ':staged.txt');
    const indexBefore = (await fingerprint(repo)).index;

    const result = await applyChanges(ctx, { id: 'keep1', repo_root: repo }, repo);

    expect(result.kind).toBe('applied');
    const notes = read(repo, 'notes.txt');
    expect(notes).toContain('user before snapshot\n');
    expect(notes).toContain('user after snapshot, two lines away\n');
    expect(notes).toContain('agent line 12\n');
    expect(read(repo, 'other.txt')).toBe('user rewrote other\n');
    expect(read(repo, 'staged.txt')).toBe('edited again after staging\n');
    expect(git(repo, 'rev-parse', ':staged.txt')).toBe(stagedBlob);
    expect(read(repo, 'scratch.log')).toBe('ignored user file\n');
    expect((await fingerprint(repo)).index).toBe(indexBefore);
  });

  it('changes nothing when a file conflicts, and answers the conflicting files', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'conflict1', (wt) => {
      write(wt, 'notes.txt', editLine(NOTES, 'notes line 7\n', 'agent line 7\n'));
      write(wt, 'other.txt', 'agent other\n');
      write(wt, 'clash.txt', 'agent clash\n');
    });
    write(repo, 'notes.txt', editLine(NOTES, 'notes line 7\n', 'user line 7\n'));
    write(repo, 'clash.txt', 'user clash, untracked\n');
    write(repo, 'staged.txt', 'staged\n');
    git(repo, 'add', 'staged.txt');
    git(repo, 'stash', 'push', '-q', '--', 'staged.txt');
    write(repo, 'unrelated.txt', 'user unrelated\n');
    const before = await fingerprint(repo);

    const result = await applyChanges(ctx, { id: 'conflict1', repo_root: repo }, repo);

    expect(result.kind).toBe('conflict');
    if (result.kind !== 'conflict') return;
    expect(result.files.sort()).toEqual(['clash.txt', 'notes.txt']);
    expect(result.messages.join('\n')).toContain('CONFLICT (content): Merge conflict in notes.txt');
    expect(await fingerprint(repo)).toEqual(before);
    expect(git(repo, 'for-each-ref', 'refs/agent-async/conflict1/applied')).toBe('');
    // once the user resolves it their way, the apply goes through
    write(repo, 'notes.txt', NOTES);
    fs.rmSync(path.join(repo, 'clash.txt'));
    expect((await applyChanges(ctx, { id: 'conflict1', repo_root: repo }, repo)).kind).toBe('applied');
    expect(read(repo, 'other.txt')).toBe('agent other\n');
  });

  it('changes nothing when an ignored file of the user is where the job adds one', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'ignored1', (wt) => {
      write(wt, 'notes.txt', editLine(NOTES, 'notes line 2\n', 'agent\n'));
      write(wt, 'debug.log', 'agent log\n');
      git(wt, 'add', '-f', 'debug.log');
    });
    write(repo, 'debug.log', 'the user\'s own log\n');
    const before = await fingerprint(repo);
    const result = await applyChanges(ctx, { id: 'ignored1', repo_root: repo }, repo);
    expect(result).toMatchObject({ kind: 'conflict', files: ['debug.log'] });
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('applies three jobs one after another into their union', async () => {
    const { repo, ctx } = userRepo();
    const edits: [string, string][] = [['notes line 3\n', 'job a\n'], ['notes line 15\n', 'job b\n'], ['notes line 27\n', 'job c\n']];
    for (const [index, [from, to]] of edits.entries()) {
      await job(ctx, repo, `union${index}`, (wt) => {
        write(wt, 'notes.txt', editLine(read(wt, 'notes.txt'), from, to));
        write(wt, `file-${index}.txt`, `from job ${index}\n`);
      });
    }
    for (const index of [2, 0, 1]) expect((await applyChanges(ctx, { id: `union${index}`, repo_root: repo }, repo)).kind).toBe('applied');
    let expected = NOTES;
    for (const [from, to] of edits) expected = expected.replace(from, to);
    expect(read(repo, 'notes.txt')).toBe(expected);
    for (const index of [0, 1, 2]) expect(read(repo, `file-${index}.txt`)).toBe(`from job ${index}\n`);
  });

  it('refuses to apply twice, to apply into another repository, before the end, and after discard', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'twice1', (wt) => write(wt, 'other.txt', 'agent\n'));
    const first = await applyChanges(ctx, { id: 'twice1', repo_root: repo }, repo);
    expect(first.kind).toBe('applied');
    if (first.kind !== 'applied') return;
    await expect(applyChanges(ctx, { id: 'twice1', repo_root: repo, applied: first.applied }, repo)).rejects.toMatchObject({ code: 'conflict', field: 'job_id', message: expect.stringContaining('applying twice is refused') });
    await expect(applyChanges(ctx, { id: 'twice1', repo_root: repo }, repo)).rejects.toMatchObject({ code: 'conflict', field: 'job_id' });

    const other = scratch();
    makeRepo(other.repo);
    await job(ctx, repo, 'elsewhere1', (wt) => write(wt, 'other.txt', 'agent 2\n'));
    await expect(applyChanges(ctx, { id: 'elsewhere1', repo_root: repo }, other.repo)).rejects.toMatchObject({ code: 'bad_input', field: 'cwd' });

    await createWorktree(ctx, await snapshot(ctx, repo, 'running1'));
    await expect(applyChanges(ctx, { id: 'running1', repo_root: repo }, repo)).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('still running') });

    await discardJob(ctx, repo, 'elsewhere1');
    await expect(applyChanges(ctx, { id: 'elsewhere1', repo_root: repo }, repo)).rejects.toMatchObject({ code: 'not_found', field: 'job_id' });
  });

  it('applies the work a continued job added after the first apply, and gc keeps it until then', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'cont1', (wt) => write(wt, 'other.txt', 'first round\n'));
    expect((await applyChanges(ctx, { id: 'cont1', repo_root: repo }, repo)).kind).toBe('applied');
    write(repo, 'other.txt', 'first round, then the user\n');
    // job_continue: the worktree again from the branch, more work on it
    const again = await recreateWorktree(ctx, { id: 'cont1', repo_root: repo, prefix: '' });
    write(again.path, 'second.txt', 'second round\n');
    await finishWorktree(ctx, { id: 'cont1', repo_root: repo }, path.join(ctx.home, 'cont1.patch'));
    const [state] = await listJobStates(ctx, repo);
    expect(hasUnappliedWork(state!)).toBe(true);
    expect(await removeJobs(ctx, repo, ['cont1'])).toMatchObject({ removed: [], kept_branches: ['cont1'] });
    const second = await applyChanges(ctx, { id: 'cont1', repo_root: repo }, repo);
    expect(second).toMatchObject({ kind: 'applied', applied: { files: ['second.txt'] } });
    expect(read(repo, 'second.txt')).toBe('second round\n');
    expect(read(repo, 'other.txt')).toBe('first round, then the user\n');
    await expect(applyChanges(ctx, { id: 'cont1', repo_root: repo }, repo)).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('applying twice is refused') });
    expect(await removeJobs(ctx, repo, ['cont1'])).toMatchObject({ removed: ['cont1'], kept_branches: [] });
  });

  it('applies after the user committed, switched branch and edited again since the snapshot', async () => {
    const { repo, ctx } = userRepo();
    write(repo, 'notes.txt', editLine(NOTES, 'notes line 1\n', 'uncommitted at snapshot\n'));
    await job(ctx, repo, 'moved1', (wt) => write(wt, 'notes.txt', editLine(read(wt, 'notes.txt'), 'notes line 20\n', 'agent line 20\n')));
    git(repo, 'checkout', '-q', '-b', 'feature');
    git(repo, 'commit', '-qam', 'user commits the edit');
    write(repo, 'notes.txt', editLine(read(repo, 'notes.txt'), 'notes line 30\n', 'user line 30\n'));
    const head = git(repo, 'rev-parse', 'HEAD');
    expect((await applyChanges(ctx, { id: 'moved1', repo_root: repo }, repo)).kind).toBe('applied');
    const notes = read(repo, 'notes.txt');
    for (const line of ['uncommitted at snapshot\n', 'agent line 20\n', 'user line 30\n']) expect(notes).toContain(line);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('goes from snapshot to apply in an empty repository', async () => {
    const { repo, home } = scratch();
    const ctx = { home };
    git(repo, 'init', '-q');
    write(repo, 'first.txt', 'first\n');
    await job(ctx, repo, 'empty1', (wt) => {
      expect(read(wt, 'first.txt')).toBe('first\n');
      write(wt, 'second.txt', 'second\n');
    });
    write(repo, 'first.txt', 'first, edited\n');
    expect((await applyChanges(ctx, { id: 'empty1', repo_root: repo }, repo)).kind).toBe('applied');
    expect(read(repo, 'first.txt')).toBe('first, edited\n');
    expect(read(repo, 'second.txt')).toBe('second\n');
    expect(fs.existsSync(path.join(repo, '.git', 'index'))).toBe(false);
  });

  it('applies into a subdirectory cwd at the repository root', async () => {
    const { repo, ctx } = userRepo();
    write(repo, 'sub/inner.txt', 'inner\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-qm', 'sub');
    await job(ctx, repo, 'sub1', (wt) => {
      write(wt, 'sub/inner.txt', 'agent inner\n');
      write(wt, 'top.txt', 'agent top\n');
    });
    expect((await applyChanges(ctx, { id: 'sub1', repo_root: repo }, path.join(repo, 'sub'))).kind).toBe('applied');
    expect(read(repo, 'sub/inner.txt')).toBe('agent inner\n');
    expect(read(repo, 'top.txt')).toBe('agent top\n');
  });
});

describe('discard and gc', () => {
  it('discard removes the worktree, branch, refs, record and temp files, and again removes nothing', async () => {
    const { repo, ctx } = userRepo();
    const before = await fingerprint(repo);
    const record = await createWorktree(ctx, await snapshot(ctx, repo, 'discard1'));
    write(record.path, 'x.txt', 'work\n');
    fs.writeFileSync(path.join(ctx.home, 'worktrees', '.discard1.999999.1.index'), '');
    const report = await discardJob(ctx, repo, 'discard1');
    expect(report.removed).toEqual(['worktree', 'refs/heads/agent-async/discard1', 'refs/agent-async/discard1/base']);
    expect(fs.readdirSync(path.join(ctx.home, 'worktrees'))).toEqual([]);
    expect(git(repo, 'for-each-ref', 'refs/agent-async/', 'refs/heads/agent-async/')).toBe('');
    expect(git(repo, 'worktree', 'list', '--porcelain')).not.toContain('discard1');
    expect(await fingerprint(repo)).toEqual(before);
    expect(await discardJob(ctx, repo, 'discard1')).toEqual({ removed: [] });
  });

  it('discard refuses while the user has the branch checked out', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'checked1', (wt) => write(wt, 'other.txt', 'agent\n'));
    git(repo, 'checkout', '-q', 'agent-async/checked1');
    await expect(discardJob(ctx, repo, 'checked1')).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('checked out') });
    expect(git(repo, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('agent-async/checked1');
  });

  it('gc removes applied, empty and discarded jobs, keeps unapplied branches unless asked, and sweeps orphan folders', async () => {
    const { repo, ctx } = userRepo();
    await job(ctx, repo, 'gcapplied', (wt) => write(wt, 'other.txt', 'applied\n'));
    expect((await applyChanges(ctx, { id: 'gcapplied', repo_root: repo }, repo)).kind).toBe('applied');
    await job(ctx, repo, 'gcempty', () => undefined);
    await job(ctx, repo, 'gcunapplied', (wt) => write(wt, 'notes.txt', 'unapplied\n'));
    const running = await createWorktree(ctx, await snapshot(ctx, repo, 'gcrunning'));
    const states = Object.fromEntries((await listJobStates(ctx, repo)).map((state) => [state.id, state]));
    expect(Object.keys(states).sort()).toEqual(['gcapplied', 'gcempty', 'gcrunning', 'gcunapplied']);
    expect(states.gcrunning!.worktree).toBe(running.path);
    expect(states.gcapplied!.applied).toBe(states.gcapplied!.branch);

    const report = await removeJobs(ctx, repo, ['gcapplied', 'gcempty', 'gcunapplied']);
    expect(report).toEqual({ removed: ['gcapplied', 'gcempty'], kept_branches: ['gcunapplied'], skipped: [] });
    const left = git(repo, 'for-each-ref', '--format=%(refname)', 'refs/agent-async/', 'refs/heads/agent-async/').split('\n').sort();
    expect(left).toEqual(['refs/agent-async/gcrunning/base', 'refs/agent-async/gcunapplied/base', 'refs/heads/agent-async/gcrunning', 'refs/heads/agent-async/gcunapplied']);
    expect(git(repo, 'diff', '--name-only', 'refs/agent-async/gcunapplied/base', 'agent-async/gcunapplied')).toBe('notes.txt');
    expect((await removeJobs(ctx, repo, ['gcunapplied'], { branches: true })).removed).toEqual(['gcunapplied']);

    // a worktree folder whose job is gone, and a registration whose folder was deleted by hand
    fs.rmSync(running.path, { recursive: true });
    expect(git(repo, 'worktree', 'list', '--porcelain')).toContain('prunable');
    await createWorktree(ctx, await snapshot(ctx, repo, 'gcorphan'));
    expect(await listWorktreeFolders(ctx)).toEqual(['gcorphan', 'gcrunning']);
    expect(await sweepWorktreeFolders(ctx, new Set(['gcrunning']))).toEqual(['gcorphan']);
    expect(git(repo, 'worktree', 'list', '--porcelain')).not.toContain('gcorphan');
    await removeJobs(ctx, repo, ['gcrunning', 'gcorphan']);
    expect(git(repo, 'worktree', 'list', '--porcelain')).not.toContain('prunable');
    expect(git(repo, 'for-each-ref', 'refs/agent-async/', 'refs/heads/agent-async/')).toBe('');
  });
});

describe('sweeping worktree folders', () => {
  it('reads only a regular .git file in a leftover folder: a pipe there (the worker could make one) does not block the sweep', async () => {
    const { ctx } = userRepo();
    const leftover = path.join(ctx.home, 'worktrees', 'pipe1');
    fs.mkdirSync(leftover, { recursive: true });
    execFileSync('mkfifo', [path.join(leftover, '.git')]);
    expect(await sweepWorktreeFolders(ctx, new Set())).toEqual(['pipe1']);
    expect(fs.existsSync(leftover)).toBe(false);
  });
});

describe('concurrency', () => {
  it('three worktrees made at once from one repository leave the user\'s repository byte-identical throughout', async () => {
    const { repo, ctx } = userRepo();
    write(repo, 'notes.txt', editLine(NOTES, 'notes line 1\n', 'user edit\n'));
    write(repo, 'staged.txt', 'staged\n');
    git(repo, 'add', 'staged.txt');
    write(repo, 'untracked.txt', 'untracked\n');
    git(repo, 'stash', 'push', '-q', '--', 'other.txt');
    const before = await fingerprint(repo);
    const ids = ['para1', 'para2', 'para3'];
    let creating = true;
    const observed: Record<string, string>[] = [];
    const watcher = (async () => {
      while (creating) observed.push(await fingerprint(repo));
    })();
    const records = await Promise.all(ids.map(async (id) => createWorktree(ctx, await snapshot(ctx, repo, id))));
    creating = false;
    await watcher;
    expect(observed.length).toBeGreaterThan(0);
    for (const seen of observed) expect(seen).toEqual(before);
    for (const [index, record] of records.entries()) {
      expect(read(record.path, 'notes.txt')).toContain('user edit\n');
      write(record.path, `job-${index}.txt`, `${index}\n`);
    }
    const finished = await Promise.all(ids.map((id) => finishWorktree(ctx, { id, repo_root: repo }, path.join(ctx.home, `${id}.patch`))));
    expect(finished.map((result) => result.changes.files.map((file) => file.path))).toEqual([['job-0.txt'], ['job-1.txt'], ['job-2.txt']]);
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('worktrees made at the same moment in one repository all succeed (a list made while another add writes its registration reads it again)', async () => {
    const { repo, ctx } = userRepo();
    for (let round = 0; round < 3; round += 1) {
      const ids = Array.from({ length: 6 }, (_, index) => `burst${round}x${index}`);
      const snapshots = await Promise.all(ids.map((id) => snapshot(ctx, repo, id)));
      const records = await Promise.all(snapshots.map((taken) => createWorktree(ctx, taken)));
      expect(records.map((record) => record.id)).toEqual(ids);
      await Promise.all(ids.map((id) => finishWorktree(ctx, { id, repo_root: repo }, path.join(ctx.home, `${id}.patch`))));
    }
  });
});
