import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newJobId } from '../lib/spool/ids.js';
import {
  CLI,
  cleanupSpools,
  cli,
  gateJob,
  jobState,
  makeSpool,
  pidAlive,
  readJson,
  spoolProcesses,
  startJob,
  until,
  waitJob,
} from './helpers/spool.js';
import { SHELL_AGENT, closeServers, queueGoesOn, server } from './helpers/hostile.js';
import { call } from './helpers/mcp.js';

/**
 * What a person (or the machine) can do to a spool: put special files where agent-async's own
 * files belong, leave odd entries in active/, point AGENT_ASYNC_HOME at a shared folder, close
 * the pipe a command writes to, uninstall while jobs run. The queue goes on after each.
 */

afterAll(cleanupSpools);
afterAll(closeServers);

function mkfifo(file: string): void {
  fs.rmSync(file, { recursive: true, force: true });
  const made = spawnSync('mkfifo', [file]);
  if (made.status !== 0) throw new Error(`mkfifo ${file} failed: ${made.stderr.toString()}`);
}

function occurrences(text: string, pattern: RegExp): number {
  return (text.match(new RegExp(pattern.source, 'g')) ?? []).length;
}

describe('special files a person puts in the spool', () => {
  it('in the folders of pending jobs: each job gets what it deserves, no reader blocks, the queue goes on', async () => {
    const spool = makeSpool({ concurrency: 1, runner_idle_seconds: 120, agents: { shell: SHELL_AGENT } });
    const blocker = await gateJob(spool);
    const jobDir = (id: string): string => path.join(spool.home, 'jobs', id);
    const start = (args: string[]): string => {
      const result = cli(spool, ['start', ...args]);
      if (result.code !== 0) throw new Error(result.stderr);
      return result.stdout.trim();
    };
    const pipedState = await startJob(spool, ['true']);
    const pipedPrompt = start(['shell', 'echo never']);
    const pipedOutput = await startJob(spool, ['sh', '-c', 'echo never']);
    const ledger = path.join(spool.work, 'ledger');
    const pipedClaim = await startJob(spool, ['sh', '-c', `echo ran >> ${ledger}`]);
    mkfifo(path.join(jobDir(pipedState), 'state.json'));
    mkfifo(path.join(jobDir(pipedPrompt), 'prompt.txt'));
    mkfifo(path.join(jobDir(pipedOutput), 'output.log'));
    // an old claim whose owner.json is a pipe: an ownerless claim, taken over once it is old
    const claim = path.join(jobDir(pipedClaim), 'claim.1');
    fs.mkdirSync(claim);
    mkfifo(path.join(claim, 'owner.json'));
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(claim, old, old);
    blocker.release();

    expect(await waitJob(spool, pipedPrompt)).toMatchObject({
      status: 'error', started_at: null, error: { code: 'bad_job_file', message: expect.stringMatching(/prompt\.txt cannot be used: it is a named pipe \(FIFO\), not a regular file/) },
    });
    expect(await waitJob(spool, pipedOutput)).toMatchObject({
      status: 'error', started_at: null, error: { code: 'bad_job_file', message: expect.stringMatching(/output\.log is a named pipe \(FIFO\), not a regular file/) },
    });
    expect(await waitJob(spool, pipedClaim)).toMatchObject({ status: 'done', attempt: 2 });
    expect(fs.readFileSync(ledger, 'utf8')).toBe('ran\n');
    await queueGoesOn(spool);

    const show = cli(spool, ['show', pipedState]);
    expect(show.code).toBe(5);
    expect(show.stdout).toMatch(/unreadable: it is a named pipe \(FIFO\), not a regular file/);
    expect(cli(spool, ['wait', pipedState]).code).toBe(5);
    expect(cli(spool, ['ls']).stdout).toMatch(new RegExp(`${pipedState}\\s+UNREADABLE`));
    expect(cli(spool, ['logs', pipedOutput]).code).toBe(0);
    expect(cli(spool, ['retry', pipedPrompt]).stderr).toMatch(/prompt\.txt is missing/);
    const runnerLog = fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8');
    expect(occurrences(runnerLog, new RegExp(`job ${pipedState}: state\\.json is unreadable`))).toBe(1);
    const mcp = await server(spool);
    const listed = await call(mcp, 'job_list', { limit: 50 });
    expect(listed.isError).toBeFalsy();
    expect((await call(mcp, 'job_wait', { job_id: pipedState, timeout_seconds: 0 })).structuredContent).toMatchObject({ job_status: 'unreadable' });
  });

  it('at the spool root (runner.json, runner.starting, runner.log, config.json): submits and waits still work, or say what is wrong', async () => {
    const spool = makeSpool();
    await queueGoesOn(spool);
    for (const name of ['runner.json', 'runner.starting', 'runner.log']) mkfifo(path.join(spool.home, name));
    await queueGoesOn(spool);
    expect(fs.lstatSync(path.join(spool.home, 'runner.json')).isFile()).toBe(true);
    expect(fs.lstatSync(path.join(spool.home, 'runner.log')).isFile()).toBe(true);
    mkfifo(path.join(spool.home, 'config.json'));
    const refused = cli(spool, ['start', 'exec', '--', 'true']);
    expect(refused.code).toBe(78);
    expect(refused.stderr).toMatch(/config\.json: it is a named pipe \(FIFO\), not a regular file/);
    fs.rmSync(path.join(spool.home, 'config.json'));
    await queueGoesOn(spool);
  });
});

describe('odd entries in active/', () => {
  it('a folder, a file of no job and a folder named after an ended job never stop dispatch, and are logged once', async () => {
    const spool = makeSpool({ runner_idle_seconds: 30 });
    const ended = await startJob(spool, ['true']);
    expect((await waitJob(spool, ended)).status).toBe('done');
    const active = path.join(spool.home, 'active');
    // its marker goes just after the terminal write that woke the wait
    await until(() => !fs.existsSync(path.join(active, ended)), 20_000, 'the ended job to leave active/');
    // made whole, then moved in: the runner removes an empty folder of an ended job at once
    const made = path.join(spool.work, 'not-empty');
    fs.mkdirSync(made);
    fs.writeFileSync(path.join(made, 'inside'), '');
    fs.renameSync(made, path.join(active, ended));
    fs.mkdirSync(path.join(active, 'some-folder'));
    fs.writeFileSync(path.join(active, 'notes.txt'), 'hello');
    fs.mkdirSync(path.join(active, newJobId()));
    for (let i = 0; i < 3; i += 1) await queueGoesOn(spool);
    const log = fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8');
    expect(occurrences(log, new RegExp(`job ${ended}: active/${ended} is a folder that is not empty`))).toBe(1);
    expect(log).not.toMatch(/tick failed/);
  });
});

describe('the spool root', () => {
  it('is made 0700; an existing one that others can write is refused, and its mode never changed', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-root-'));
    try {
      const run = (home: string, args: string[] = ['ls']) => spawnSync(process.execPath, [CLI, ...args], {
        env: { ...process.env, AGENT_ASYNC_HOME: home }, encoding: 'utf8', timeout: 60_000,
      });
      const fresh = path.join(base, 'a', 'b', 'spool');
      expect(run(fresh).status).toBe(0);
      for (const dir of [fresh, path.join(base, 'a'), path.join(base, 'a', 'b')]) expect((fs.statSync(dir).mode & 0o777).toString(8)).toBe('700');

      const shared = path.join(base, 'shared');
      fs.mkdirSync(shared);
      fs.chmodSync(shared, 0o1777);
      const groupWritable = path.join(base, 'group');
      fs.mkdirSync(groupWritable);
      fs.chmodSync(groupWritable, 0o770);
      const modes = ['/tmp', shared, groupWritable].map((dir) => fs.statSync(dir).mode);
      for (const home of ['/tmp', shared, groupWritable]) {
        for (const args of [['ls'], ['start', 'exec', '--', 'true'], ['config']]) {
          const refused = run(home, args);
          expect(refused.status, `${home} ${args.join(' ')}`).toBe(78);
          expect(refused.stderr).toMatch(new RegExp(`the spool ${home} can be written by other users \\(mode \\d+\\).*never changes the mode of a folder it did not create`));
        }
      }
      expect(['/tmp', shared, groupWritable].map((dir) => fs.statSync(dir).mode)).toEqual(modes);
      expect(fs.readdirSync(shared)).toEqual([]);

      if (process.getuid?.() === 0) {
        const foreign = path.join(base, 'foreign');
        fs.mkdirSync(foreign, { mode: 0o700 });
        fs.chownSync(foreign, 65534, 65534);
        const refused = run(foreign);
        expect(refused.status).toBe(78);
        expect(refused.stderr).toMatch(/belongs to another user \(uid 65534\)/);
      }
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('a reader that goes away', () => {
  it('ends every command quietly: no EPIPE, no stack trace, exit 0', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done']);
    expect((await waitJob(spool, id)).status).toBe('done');
    for (const args of [['config'], ['list-agents'], ['ls'], ['logs', id], ['logs', id, '-f'], ['show', id, '--json'], ['--help']]) {
      const rc = path.join(spool.work, 'rc');
      const err = path.join(spool.work, 'err');
      // the reader closes its end before the command writes anything
      const quoted = args.map((arg) => `'${arg}'`).join(' ');
      const piped = spawnSync('sh', ['-c', `{ '${process.execPath}' '${CLI}' ${quoted} 2>'${err}'; echo $? > '${rc}'; } | (exec 0<&-; sleep 1)`], {
        env: spool.env, cwd: spool.work, timeout: 60_000,
      });
      expect(piped.status, args.join(' ')).toBe(0);
      expect(fs.readFileSync(err, 'utf8'), args.join(' ')).toBe('');
      expect(fs.readFileSync(rc, 'utf8').trim(), args.join(' ')).toBe('0');
    }
  });
});

describe('uninstall', () => {
  it('stops the runner and its supervisors first: a running job is cancelled with its tree, a pending one stays queued, nothing is left running', async () => {
    const spool = makeSpool({ concurrency: 1, runner_idle_seconds: 60 });
    const running = await startJob(spool, ['sh', '-c', 'sleep 300 & sleep 300']);
    const pending = await startJob(spool, ['true']);
    const state = await until(() => {
      const current = jobState(spool, running);
      return current.worker ? current : undefined;
    }, 30_000, 'the job to run');
    const runner = readJson(path.join(spool.home, 'runner.json'));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-home-'));
    try {
      // no client CLIs, no crontab; a package root that no install manifest describes, so it is left alone
      const root = fs.mkdtempSync(path.join(home, 'root-'));
      const { uninstall } = await import('../lib/install/uninstall.js');
      const report = await uninstall({ home: spool.home, purge: false, env: { HOME: home, PATH: path.join(home, 'no-bin') }, root });
      expect(report.steps).toContain(`stopped the runner (pid ${runner.pid}) and its supervisors`);
      expect(report.steps).toContain(`cancelled 1 running job(s): ${running}`);
      expect(report.kept).toContain('1 pending job(s) in it stay queued: they run when agent-async is installed again');
      expect(jobState(spool, running)).toMatchObject({ status: 'cancelled' });
      expect(jobState(spool, pending)).toMatchObject({ status: 'pending' });
      expect(pidAlive(runner.pid)).toBe(false);
      expect(pidAlive(state.worker.pid)).toBe(false);
      await until(() => spoolProcesses(spool.home).length === 0, 20_000, 'every process of the spool to exit');
      // no runner was started again meanwhile
      expect(readJson(path.join(spool.home, 'runner.json'))).toMatchObject({ pid: runner.pid });
      expect(fs.existsSync(path.join(spool.home, 'runner.starting'))).toBe(false);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
    // installed again, the pending job runs
    expect(await waitJob(spool, pending)).toMatchObject({ status: 'done' });
  });
});
