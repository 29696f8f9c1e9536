import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint, git, isolateGitConfig, lines, makeRepo, read, removeScratch, scratch, write } from './helpers/git-repo.js';
import { call, connect, errorText, ok } from './helpers/mcp.js';
import {
  assertSchemaValid, cleanupSpools, cli, jobState, killSpoolProcesses, makeSpool, startJob, until, waitJob, type TestSpool,
} from './helpers/spool.js';

/**
 * Worktree isolation through the product's faces, with real repositories, runners and
 * supervisors: jobs side by side in one repository without touching the user's files, their
 * work recorded at every end, applied, paged, discarded, continued, and cleaned up.
 */

beforeAll(() => {
  isolateGitConfig();
});
afterAll(() => {
  cleanupSpools();
  removeScratch();
});

const BINARY = Buffer.from([0, 159, 146, 150, 0, 255]);

function userRepo(): string {
  const { repo } = scratch();
  makeRepo(repo, {
    '.gitignore': '.env\n', 'a.txt': lines(20, 'a'), 'b.txt': lines(5, 'b'), 'c.txt': lines(5, 'c'),
    'doomed.txt': 'bye\n', 'old-name.txt': lines(3, 'renamed'), 'blob.bin': Buffer.from([1, 2, 3]),
  });
  return repo;
}

async function isolated(spool: TestSpool, repo: string, script: string, flags: string[] = []): Promise<string> {
  return await startJob(spool, ['sh', '-c', script], ['--cwd', repo, '--isolation', 'worktree', ...flags]);
}

function jobFile(spool: TestSpool, id: string, name: string): string {
  return path.join(spool.home, 'jobs', id, name);
}

/**
 * A custom agent that runs `script` (its prompt in $1) and reports session s-1; a continued
 * session has $SESSION set (resume args go right after the program: env takes them as a variable).
 */
function sessionAgent(script: string): Record<string, unknown> {
  return {
    command: ['env', 'sh', '-c', `${script}; echo '{"session":"s-1","text":"ok"}'`, 'shelly', '{prompt}'],
    output: 'jsonl',
    jsonl: { session_id: 'session', final_message: 'text' },
    resume_args: ['SESSION={session_id}'],
  };
}

/** The living processes whose environment holds the job's id. */
function carriesJobId(id: string): string[] {
  return fs.readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/environ`, 'latin1').includes(`AGENT_ASYNC_JOB_ID=${id}`) && !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  });
}

function changedPaths(state: { changes: { files: Array<{ path: string }> } }): string[] {
  return state.changes.files.map((file) => file.path).sort();
}

describe('isolation "worktree"', () => {
  it('runs three jobs in one repository side by side without touching the user\'s work, records each one\'s changes, and applies them back', async () => {
    const spool = makeSpool({ worktree: { copy: ['.env'] } });
    const repo = userRepo();
    // the user's uncommitted work: staged, unstaged, untracked, deleted, renamed, binary, ignored
    write(repo, 'a.txt', lines(20, 'a').replace('a line 1\n', 'a line 1 staged\n'));
    git(repo, 'add', 'a.txt');
    write(repo, 'b.txt', `${lines(5, 'b')}b unstaged\n`);
    write(repo, 'untracked.txt', 'untracked\n');
    fs.rmSync(path.join(repo, 'doomed.txt'));
    git(repo, 'mv', 'old-name.txt', 'new-name.txt');
    write(repo, 'blob.bin', BINARY);
    write(repo, '.env', 'SECRET=1\n');
    git(repo, 'stash', 'list');
    const before = await fingerprint(repo);

    const ledger = path.join(spool.work, 'ledger');
    const gate = path.join(spool.work, 'gate');
    // each job says it started, then waits until all three have and the test opens the gate
    const started = `echo "start $AGENT_ASYNC_JOB_ID" >> ${ledger}; while [ ! -e ${gate} ]; do sleep 0.05; done`;
    const one = await isolated(spool, repo, `${started}; test -f .env && echo changed > .env; sed -i 's/a line 18/a line 18 by one/' a.txt`);
    const two = await isolated(spool, repo, `${started}; echo two > two.txt; sed -i 's/c line 3/c line 3 by two/' c.txt`);
    const three = await isolated(spool, repo, `${started}; rm b.txt.gone 2>/dev/null; echo three > three.txt; git add three.txt; git -c user.name=w -c user.email=w@x commit -qm 'by three'`);
    await until(() => fs.existsSync(ledger) && fs.readFileSync(ledger, 'utf8').split('\n').filter(Boolean).length === 3, 120_000, 'all three jobs to run at once');
    expect(await fingerprint(repo)).toEqual(before);
    fs.writeFileSync(gate, '');
    const ended = await Promise.all([one, two, three].map((id) => waitJob(spool, id, '120s')));
    expect(ended.map((state) => state.status)).toEqual(['done', 'done', 'done']);
    expect(await fingerprint(repo)).toEqual(before);
    // their run intervals overlap
    expect(Math.max(...ended.map((s) => Date.parse(s.started_at)))).toBeLessThan(Math.min(...ended.map((s) => Date.parse(s.finished_at))));

    // the snapshot is what the user saw
    const baseRef = (id: string, file: string): string => git(repo, 'show', `refs/agent-async/${id}/base:${file}`);
    expect(baseRef(one, 'a.txt')).toContain('a line 1 staged');
    expect(baseRef(one, 'b.txt')).toContain('b unstaged');
    expect(baseRef(one, 'untracked.txt')).toBe('untracked');
    expect(git(repo, 'ls-tree', '--name-only', `refs/agent-async/${one}/base`).split('\n').sort())
      .toEqual(['.gitignore', 'a.txt', 'b.txt', 'blob.bin', 'c.txt', 'new-name.txt', 'untracked.txt']);
    expect(Buffer.from(git(repo, 'cat-file', 'blob', `refs/agent-async/${one}/base:blob.bin`), 'latin1').length).toBeGreaterThan(0);

    // each has its own branch and changes; .env was copied in and never committed
    expect(changedPaths(ended[0])).toEqual(['a.txt']);
    expect(changedPaths(ended[1])).toEqual(['c.txt', 'two.txt']);
    expect(changedPaths(ended[2])).toEqual(['three.txt']);
    for (const [index, state] of ended.entries()) {
      assertSchemaValid(state);
      const id = [one, two, three][index]!;
      expect(state.schema_version).toBe(2);
      expect(state.changes.branch).toBe(`agent-async/${id}`);
      expect(git(repo, 'rev-parse', `agent-async/${id}`)).toBe(state.changes.head_commit);
      expect(state.changes.patch_bytes).toBe(fs.statSync(jobFile(spool, id, 'changes.patch')).size);
      expect(fs.existsSync(path.join(spool.home, 'worktrees', id))).toBe(false);
    }
    expect(ended[0].changes.files[0]).toMatchObject({ path: 'a.txt', status: 'modified', insertions: 1, deletions: 1 });
    expect(git(repo, 'worktree', 'list', '--porcelain').match(/^worktree /gm)).toHaveLength(1);

    // ls shows the branch and the number of changed files
    expect(cli(spool, ['ls']).stdout).toContain(`[agent-async/${two}, 2 files]`);

    // apply: the user's unrelated edits stay; a conflict changes nothing; three in turn give the union
    write(repo, 'b.txt', `${lines(5, 'b')}b unstaged\nb more by the user\n`);
    const applied = cli(spool, ['apply', one]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(read(repo, 'a.txt')).toContain('a line 18 by one');
    expect(read(repo, 'a.txt')).toContain('a line 1 staged');
    expect(read(repo, 'b.txt')).toContain('b more by the user');
    expect(read(repo, '.env')).toBe('SECRET=1\n');
    expect(jobState(spool, one).changes.applied).toMatchObject({ into: fs.realpathSync(repo), files: ['a.txt'] });
    const twice = cli(spool, ['apply', one]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/already applied .*applying twice is refused/);

    write(repo, 'c.txt', lines(5, 'c').replace('c line 3', 'c line 3 by the user'));
    const untouched = await fingerprint(repo);
    const conflict = cli(spool, ['apply', two]);
    expect(conflict.code).toBe(6);
    expect(conflict.stderr).toMatch(/conflict .*nothing was changed:\n {2}c\.txt/);
    expect(await fingerprint(repo)).toEqual(untouched);
    expect(jobState(spool, two).changes.applied).toBeNull();

    write(repo, 'c.txt', lines(5, 'c'));
    expect(cli(spool, ['apply', two]).code).toBe(0);
    expect(cli(spool, ['apply', three]).code).toBe(0);
    expect(read(repo, 'two.txt')).toBe('two\n');
    expect(read(repo, 'c.txt')).toContain('c line 3 by two');
    expect(read(repo, 'three.txt')).toBe('three\n');
    expect(read(repo, 'a.txt')).toContain('a line 18 by one');
    // nothing committed by an apply
    expect(`refs/heads/main ${git(repo, 'rev-parse', 'HEAD')}`).toBe(before.refs!.split('\n').find((line) => line.startsWith('refs/heads/main')));
  }, 300_000);

  it('keeps the partial work of a cancelled and a timed-out job, pages, discards, applies on done when asked, and refuses what cannot be done', async () => {
    const spool = makeSpool();
    const repo = userRepo();
    const sub = path.join(repo, 'sub');
    fs.mkdirSync(sub);
    const mark = path.join(spool.work, 'cancel-me');
    const cancelled = await isolated(spool, sub, `pwd > where.txt; echo "$AGENT_ASYNC_WORKTREE" >> where.txt; echo partial > partial.txt; touch ${mark}; sleep 60`);
    const timedOut = await isolated(spool, repo, `printf '%s\\n' $(seq 1 3000) > big.txt; sleep 60`, ['--timeout', '3s']);
    await until(() => fs.existsSync(mark), 120_000, 'the job to write its partial work');
    const running = cli(spool, ['apply', cancelled]);
    expect(running.code).toBe(2);
    expect(running.stderr).toMatch(/job_id .*still running/);
    expect(cli(spool, ['cancel', cancelled]).code).toBe(0);
    const gone = await waitJob(spool, cancelled, '120s');
    expect(gone.status).toBe('cancelled');
    expect(changedPaths(gone)).toEqual(['sub/partial.txt', 'sub/where.txt']);
    // the worker ran in the same subdirectory of its worktree, and was told where that is
    const where = git(repo, 'show', `agent-async/${cancelled}:sub/where.txt`).split('\n');
    expect(where[0]).toBe(path.join(spool.home, 'worktrees', cancelled, 'sub'));
    expect(where[1]).toBe(path.join(spool.home, 'worktrees', cancelled));
    const late = await waitJob(spool, timedOut, '120s');
    expect(late.error.code).toBe('timed_out');
    expect(changedPaths(late)).toEqual(['big.txt']);

    // the patch in pages: concatenated, the whole of changes.patch
    const patch = fs.readFileSync(jobFile(spool, timedOut, 'changes.patch'), 'utf8');
    let offset: number | null = 0;
    let text = '';
    while (offset !== null) {
      const page = JSON.parse(cli(spool, ['diff', timedOut, '--offset', String(offset), '--max-bytes', '4096', '--json']).stdout);
      expect(page.text.length).toBeLessThanOrEqual(4096);
      text += page.text;
      offset = page.next_offset;
    }
    expect(text).toBe(patch);
    expect(cli(spool, ['diff', timedOut]).stdout).toBe(patch);
    expect(patch).toContain('+3000');

    const discarded = cli(spool, ['discard', cancelled]);
    expect(discarded.code, discarded.stderr).toBe(0);
    expect(git(repo, 'for-each-ref', `refs/agent-async/${cancelled}`, `refs/heads/agent-async/${cancelled}`)).toBe('');
    expect(jobState(spool, cancelled).changes.discarded_at).not.toBeNull();
    const afterDiscard = cli(spool, ['apply', cancelled]);
    expect(afterDiscard.code).toBe(3);
    expect(afterDiscard.stderr).toMatch(/job_id .*discarded/);

    // apply: true: a job that ends done is applied before its end is written
    const auto = await isolated(spool, sub, 'echo auto > auto.txt', ['--apply']);
    const autoEnd = await waitJob(spool, auto, '120s');
    expect(autoEnd.changes.applied).toMatchObject({ into: fs.realpathSync(repo), files: ['sub/auto.txt'] });
    expect(read(repo, 'sub/auto.txt')).toBe('auto\n');

    const plain = await startJob(spool, ['true'], ['--cwd', repo]);
    expect((await waitJob(spool, plain)).status).toBe('done');
    const notIsolated = cli(spool, ['apply', plain]);
    expect(notIsolated.code).toBe(2);
    expect(notIsolated.stderr).toMatch(/job_id .*without isolation/);
  }, 300_000);

  it('refuses bad input naming the field, with nothing queued and nothing changed', async () => {
    const spool = makeSpool();
    const repo = userRepo();
    write(repo, 'a.txt', 'edited\n');
    const bare = path.join(path.dirname(repo), 'bare.git');
    git(path.dirname(repo), 'init', '-q', '--bare', bare);
    const oldGit = path.join(spool.work, 'old-git');
    fs.mkdirSync(oldGit);
    fs.writeFileSync(path.join(oldGit, 'git'), '#!/bin/sh\necho "git version 2.20.1"\n', { mode: 0o755 });
    const before = await fingerprint(repo);
    const cases: Array<[string[], RegExp, NodeJS.ProcessEnv?]> = [
      [['--cwd', spool.work, '--isolation', 'worktree'], /^agent-async: cwd: .* is not inside a git work tree/],
      [['--cwd', bare, '--isolation', 'worktree'], /^agent-async: cwd: .*bare git repository/],
      [['--cwd', repo, '--isolation', 'worktree', '--base', 'no-such-branch'], /^agent-async: base: "no-such-branch" is not a branch, tag or commit/],
      [['--cwd', repo, '--isolation', 'worktree', '--base=-x'], /^agent-async: base: "-x" is not a ref name/],
      [['--cwd', repo, '--isolation', 'sideways'], /^agent-async: isolation: "sideways" is not an isolation; allowed: none, worktree/],
      [['--cwd', repo, '--apply'], /^agent-async: apply: applies only to a job with isolation "worktree"/],
      [['--cwd', repo, '--base', 'main'], /^agent-async: base: applies only to a job with isolation "worktree"/],
      [['--cwd', repo, '--isolation', 'worktree'], /^agent-async: isolation: "worktree" needs git 2\.38 or newer/, { PATH: `${oldGit}:${process.env.PATH}` }],
    ];
    for (const [flags, message, env] of cases) {
      const result = cli(spool, ['start', 'exec', ...flags, '--', 'true'], { env });
      expect(result.code, flags.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(fs.readdirSync(path.join(spool.home, 'jobs'))).toEqual([]);
    expect(await fingerprint(repo)).toEqual(before);
    expect(git(repo, 'for-each-ref', 'refs/agent-async/')).toBe('');
  }, 120_000);

  it('never runs two jobs without isolation in one work tree, even from different folders of it, while isolated ones go on', async () => {
    const spool = makeSpool();
    const repo = userRepo();
    for (const dir of ['x', 'y']) fs.mkdirSync(path.join(repo, dir));
    const ledger = path.join(spool.work, 'ledger');
    const isolatedRan = path.join(spool.work, 'isolated-ran');
    // x holds the work tree until the isolated job has run: that one must not wait for it
    const x = await startJob(spool, ['sh', '-c', `echo "start x" >> ${ledger}; while [ ! -e ${isolatedRan} ]; do sleep 0.05; done; echo "end x" >> ${ledger}`], ['--cwd', path.join(repo, 'x')]);
    const y = await startJob(spool, ['sh', '-c', `echo "start y" >> ${ledger}; echo "end y" >> ${ledger}`], ['--cwd', path.join(repo, 'y')]);
    const beside = await isolated(spool, path.join(repo, 'y'), `touch ${isolatedRan}`);
    for (const id of [x, y, beside]) expect((await waitJob(spool, id, '120s')).status).toBe('done');
    expect(fs.readFileSync(ledger, 'utf8').trim().split('\n')).toEqual(['start x', 'end x', 'start y', 'end y']);
    expect(jobState(spool, x).request.work_tree).toBe(fs.realpathSync(repo));
  }, 180_000);

  it('ends a job whose worktree.setup fails as setup_failed with its output, and finishes or cleans what a killed runner left mid-creation', async () => {
    const setupMark = path.join(scratch().base, 'setup-running');
    const spool = makeSpool({ worktree: { setup: ['sh', '-c', `echo setting up; if [ -e fail-setup ]; then echo boom-from-setup; exit 3; fi; if [ -e hold-setup ]; then touch ${setupMark}; sleep 60; fi`] } });
    const repo = userRepo();
    write(repo, 'fail-setup', '');
    const failing = await isolated(spool, repo, 'echo never > never.txt');
    fs.rmSync(path.join(repo, 'fail-setup'));
    const failed = await waitJob(spool, failing, '120s');
    expect(failed.error.code).toBe('setup_failed');
    expect(failed.error.message).toMatch(/exited with 3[^]*boom-from-setup/);
    expect(fs.readFileSync(jobFile(spool, failing, 'output.log'), 'utf8')).toContain('setting up');
    expect(fs.existsSync(path.join(spool.home, 'worktrees', failing))).toBe(false);
    expect(failed.changes.files).toEqual([]);

    // every process of the spool is SIGKILLed while the worktree is being made (its setup runs)
    write(repo, 'hold-setup', '');
    const held = await isolated(spool, repo, 'echo never > never.txt');
    fs.rmSync(path.join(repo, 'hold-setup'));
    await until(() => fs.existsSync(setupMark), 120_000, 'worktree.setup to run');
    expect(jobState(spool, held).status).toBe('running');
    killSpoolProcesses(spool.home);
    // the next runner (started by the next submit) finishes the job and cleans its worktree
    const next = await isolated(spool, repo, 'echo after > after.txt');
    const lost = await waitJob(spool, held, '120s');
    expect(lost.error.code).toBe('runner_lost');
    expect(lost.changes.files).toEqual([]);
    expect(fs.existsSync(path.join(spool.home, 'worktrees', held))).toBe(false);
    const after = await waitJob(spool, next, '120s');
    expect(after.status).toBe('done');
    expect(changedPaths(after)).toEqual(['after.txt']);
    expect(git(repo, 'worktree', 'list', '--porcelain').match(/^worktree /gm)).toHaveLength(1);
    // setup's process group went with the job: nothing carries its id
    expect(carriesJobId(held)).toEqual([]);
  }, 300_000);

  it('cancels a job while its worktree.setup runs: setup is stopped and the job ends cancelled', async () => {
    const setupMark = path.join(scratch().base, 'setup-running');
    const spool = makeSpool({ worktree: { setup: ['sh', '-c', `touch ${setupMark}; sleep 600`] } });
    const repo = userRepo();
    const id = await isolated(spool, repo, 'echo never > never.txt');
    await until(() => fs.existsSync(setupMark), 120_000, 'worktree.setup to run');
    expect(cli(spool, ['cancel', id]).code).toBe(0);
    const ended = await waitJob(spool, id, '60s');
    expect(ended.status).toBe('cancelled');
    expect(ended.changes.files).toEqual([]);
    expect(fs.existsSync(path.join(spool.home, 'worktrees', id))).toBe(false);
    expect(carriesJobId(id)).toEqual([]);
  }, 300_000);

  it('leaves nothing running that worktree.setup started, however short the job', async () => {
    const spool = makeSpool({ worktree: { setup: ['sh', '-c', 'setsid sleep 600 >/dev/null 2>&1 </dev/null & if [ -e fail-setup ]; then exit 3; fi'] } });
    const repo = userRepo();
    const id = await isolated(spool, repo, 'echo quick > quick.txt');
    const ended = await waitJob(spool, id, '120s');
    expect(ended.status).toBe('done');
    expect(carriesJobId(id)).toEqual([]);
    // and when setup fails, so that no worker runs
    write(repo, 'fail-setup', '');
    const failing = await isolated(spool, repo, 'echo never > never.txt');
    expect((await waitJob(spool, failing, '120s')).error.code).toBe('setup_failed');
    expect(carriesJobId(failing)).toEqual([]);
  }, 300_000);

  it('refuses to discard a job\'s work while a job that continues it is pending or running', async () => {
    const gate = path.join(scratch().base, 'gate');
    // the continued session ($SESSION set) waits for the test's gate
    const spool = makeSpool({ agents: { shelly: sessionAgent(`if [ -n "$SESSION" ]; then while [ ! -e ${gate} ]; do sleep 0.05; done; fi; echo "$1" | head -n 1 >> work.txt`) } });
    const repo = userRepo();
    const server = await connect(spool);
    try {
      const first = await ok(server, 'agent_start', { agent: 'shelly', prompt: 'first', cwd: repo, isolation: 'worktree' });
      expect((await ok(server, 'job_wait', { job_id: first.job_id, timeout_seconds: 50 })).status).toBe('done');
      const second = await ok(server, 'job_continue', { job_id: first.job_id, prompt: 'second' });
      const worktree = path.join(spool.home, 'worktrees', first.job_id);
      await until(() => fs.existsSync(path.join(worktree, 'work.txt')), 60_000, 'the continued job to run in its worktree');
      const refused = await call(server, 'job_discard', { job_id: first.job_id });
      expect(refused.isError).toBe(true);
      expect(errorText(refused)).toContain(`job_id ${first.job_id}: job ${second.job_id} continues its work`);
      expect(fs.existsSync(path.join(worktree, 'work.txt'))).toBe(true);
      fs.writeFileSync(gate, '');
      const secondEnd = await ok(server, 'job_wait', { job_id: second.job_id, timeout_seconds: 50 });
      expect(secondEnd.status, JSON.stringify(secondEnd.error)).toBe('done');
      expect(git(repo, 'show', `agent-async/${first.job_id}:work.txt`)).toBe('first\nsecond');
      expect((await ok(server, 'job_discard', { job_id: first.job_id })).removed).toContain(`refs/heads/agent-async/${first.job_id}`);
    } finally {
      await server.close();
    }
  });

  it('continues a job in its worktree made again from its branch, and gc removes what old jobs left', async () => {
    const spool = makeSpool({ agents: { shelly: sessionAgent('if [ -f work.txt ]; then cp work.txt seen.txt; fi; echo "$1" | head -n 1 >> work.txt') } });
    const repo = userRepo();
    const server = await connect(spool);
    let kept: string | undefined;
    try {
      const first = await ok(server, 'agent_start', { agent: 'shelly', prompt: 'first', cwd: repo, isolation: 'worktree' });
      const firstEnd = await ok(server, 'job_wait', { job_id: first.job_id, timeout_seconds: 50 });
      expect(firstEnd.status).toBe('done');
      expect(firstEnd.changes).toMatchObject({ branch: `agent-async/${first.job_id}`, files_changed: 1, files: ['A work.txt +1 -0'], applied: false });
      const second = await ok(server, 'job_continue', { job_id: first.job_id, prompt: 'second' });
      const secondEnd = await ok(server, 'job_wait', { job_id: second.job_id, timeout_seconds: 50 });
      expect(secondEnd.status, JSON.stringify(secondEnd.error)).toBe('done');
      // the session found its own files, and the new job's changes hold all the work since the start
      expect(git(repo, 'show', `agent-async/${first.job_id}:seen.txt`)).toBe('first');
      expect(git(repo, 'show', `agent-async/${first.job_id}:work.txt`)).toBe('first\nsecond');
      expect(secondEnd.changes.files).toEqual(['A seen.txt +1 -0', 'A work.txt +2 -0']);

      const page = await ok(server, 'job_diff', { job_id: second.job_id, max_bytes: 100 });
      expect(page.next_offset).not.toBeNull();
      expect(page.files.map((file: { path: string }) => file.path)).toEqual(['seen.txt', 'work.txt']);
      write(repo, 'work.txt', 'the user was here\n');
      const conflict = await call(server, 'job_apply', { job_id: second.job_id });
      expect(conflict.isError).toBe(true);
      expect(errorText(conflict)).toMatch(/job_id .*conflict with the work tree in work\.txt; nothing was changed/);
      expect(read(repo, 'work.txt')).toBe('the user was here\n');
      fs.rmSync(path.join(repo, 'work.txt'));
      const applied = await ok(server, 'job_apply', { job_id: second.job_id });
      expect(applied).toMatchObject({ applied: true, files: ['seen.txt', 'work.txt'] });
      const refused = await call(server, 'job_apply', { job_id: first.job_id });
      expect(refused.isError).toBe(true);
      expect(errorText(refused)).toMatch(/applying twice is refused/);

      // an unapplied job removed by gc keeps its branch unless --branches
      kept = (await ok(server, 'agent_start', { agent: 'shelly', prompt: 'kept', cwd: repo, isolation: 'worktree' })).job_id;
      expect((await ok(server, 'job_wait', { job_id: kept, timeout_seconds: 50 })).status).toBe('done');
    } finally {
      await server.close();
    }
    // gc: the refs of jobs that are gone go, a branch with work nobody applied stays unless --branches.
    // Refs younger than 10 minutes are left alone (a snapshot is taken just before its job is
    // published), so two jobs gone long ago are made with ids of an early time.
    const head = git(repo, 'rev-parse', 'HEAD');
    const [emptyJob, workJob] = ['00000000001aaaaaaaaaaaa', '00000000002bbbbbbbbbbbb'];
    const work = git(repo, 'commit-tree', 'HEAD^{tree}', '-p', head, '-m', 'work nobody applied');
    for (const [id, tip] of [[emptyJob, head], [workJob, work]] as const) {
      git(repo, 'update-ref', `refs/agent-async/${id}/base`, head);
      git(repo, 'update-ref', `refs/heads/agent-async/${id}`, tip);
    }
    const ownRefs = (): string => git(repo, 'for-each-ref', '--format=%(refname)', 'refs/agent-async/', 'refs/heads/agent-async/');
    const dry = JSON.parse(cli(spool, ['gc', '--dry-run', '--json']).stdout);
    expect(dry.worktrees).toMatchObject({ removed: [emptyJob], kept_branches: [workJob] });
    expect(ownRefs()).toContain(emptyJob);
    const gc = JSON.parse(cli(spool, ['gc', '--keep', '0', '--json']).stdout);
    expect(gc.removed).toHaveLength(3);
    expect(gc.worktrees).toMatchObject({ removed: [emptyJob], kept_branches: [workJob] });
    expect(ownRefs()).not.toContain(emptyJob);
    expect(ownRefs()).toContain(`refs/heads/agent-async/${workJob}`);
    expect(ownRefs()).toContain(`refs/agent-async/${kept!}/base`);
    const branches = JSON.parse(cli(spool, ['gc', '--branches', '--json']).stdout);
    expect(branches.worktrees.removed, JSON.stringify(branches)).toEqual([workJob]);
    expect(ownRefs()).not.toContain(workJob);
  }, 300_000);
});
