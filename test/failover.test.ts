import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spoolPaths, type SpoolPaths } from '../lib/spool/layout.js';
import { applyTransition, claimJob } from '../lib/spool/store.js';
import {
  ROOT,
  cleanupSpools,
  cli,
  gateJob,
  jobState,
  killPid,
  makeSpool,
  pidAlive,
  readJson,
  spoolProcesses,
  startJob,
  until,
  waitJob,
  type TestSpool,
} from './helpers/spool.js';

afterAll(cleanupSpools);

function runnerInfo(home: string): any {
  return readJson(path.join(home, 'runner.json'));
}

describe('when the runner dies', () => {
  it('the running job keeps going, its exit status is recorded, a new runner adopts it and the queue goes on', async () => {
    const spool = makeSpool({ concurrency: 1, runner_idle_seconds: 3 });
    const ledger = path.join(spool.work, 'ledger');
    // the first job runs until the test lets it end, so the runner surely dies mid-job
    const gate = path.join(spool.work, 'gate');
    const first = await startJob(spool, ['sh', '-c', `echo first >> ${ledger}; while [ ! -e '${gate}' ]; do sleep 0.05; done; exit 3`]);
    const second = await startJob(spool, ['sh', '-c', `echo second >> ${ledger}`]);
    await until(() => jobState(spool, first).worker !== null, 10_000, 'the first job to run');
    // the runner that leads now (on a loaded machine runner.json may still name one that lost the race and left)
    const dead = await until(() => {
      const info = runnerInfo(spool.home);
      if (info.state !== 'leading') return undefined;
      return killPid(info.pid) ? info : undefined;
    }, 20_000, 'the leading runner to be killed');
    const killedAt = Date.now();

    // No submit and no wait from here on: the orphaned supervisor starts the next runner while
    // its job still runs. A runner.json of another process with a later epoch says that one took
    // the lease (it may be 'stopped' again by the time a slow probe reads it).
    const next = await until(() => {
      const info = runnerInfo(spool.home);
      return info.pid !== dead.pid && info.epoch > dead.epoch ? info : undefined;
    }, 60_000, 'a new runner to lead');
    expect(next.epoch).toBe(dead.epoch + 1);
    const failoverMs = Date.now() - killedAt;
    expect(jobState(spool, first).status).toBe('running');
    fs.writeFileSync(gate, '');

    await until(() => jobState(spool, second).status === 'done', 30_000, 'the queued job to run');
    const firstState = jobState(spool, first);
    expect(firstState).toMatchObject({ status: 'error', exit_code: 3, error: { code: 'exit_nonzero' }, attempt: 1 });
    expect(readJson(path.join(spool.home, 'jobs', first, 'exit.json'))).toMatchObject({ exit_code: 3, reason: 'exited' });
    // adopted, not overtaken: the queued job started only after the first one ended
    expect(Date.parse(jobState(spool, second).started_at)).toBeGreaterThanOrEqual(Date.parse(firstState.finished_at));
    expect(fs.readFileSync(ledger, 'utf8')).toBe('first\nsecond\n');
    console.log(`runner SIGKILLed mid-job: a new runner led after ${failoverMs} ms`);
  });

  it('a job whose supervisor dies too is finalized as runner_lost, its worker stopped, never re-run', async () => {
    const spool = makeSpool({ concurrency: 1 });
    const ledger = path.join(spool.work, 'ledger');
    const id = await startJob(spool, ['sh', '-c', `echo ran >> ${ledger}; sleep 300`]);
    const running = await until(() => {
      const state = jobState(spool, id);
      return state.worker ? state : undefined;
    }, 10_000, 'the job to run');
    // what a machine crash leaves: runner and supervisor gone, the worker orphaned
    expect(killPid(runnerInfo(spool.home).pid)).toBe(true);
    expect(killPid(running.supervisor.pid)).toBe(true);
    expect(pidAlive(running.worker.pid)).toBe(true);
    // as if it was killed in the middle of a write; the other temp file is a live writer's
    const folder = path.join(spool.home, 'jobs', id);
    const leaked = path.join(folder, `.state.json.${running.supervisor.pid}.7.abc123.tmp`);
    const someoneElses = path.join(folder, `.done.${process.pid}.1.def456.tmp`);
    fs.writeFileSync(leaked, '{"half');
    fs.writeFileSync(someoneElses, 'x');

    const state = await waitJob(spool, id);
    expect(state).toMatchObject({
      status: 'error',
      error: {
        code: 'runner_lost',
        message: expect.stringMatching(/supervisor \(pid \d+\) died before the worker's exit was recorded; the job was not re-run/),
        hint: `start it again with: agent-async retry ${id}`,
      },
    });
    expect(pidAlive(running.worker.pid)).toBe(false);
    expect(fs.readFileSync(ledger, 'utf8')).toBe('ran\n');
    expect(fs.readdirSync(path.join(spool.home, 'jobs', id)).filter((f) => f.startsWith('claim.'))).toEqual(['claim.1']);
    expect(fs.existsSync(leaked)).toBe(false);
    expect(fs.existsSync(someoneElses)).toBe(true);
  });

  /** A job started (claimed, `running`) by a supervisor that is dead, its worker not recorded. */
  function runningUnderDeadSupervisor(): { spool: TestSpool; id: string; paths: SpoolPaths } {
    const spool = makeSpool({ concurrency: 1 });
    const published = spawnSync(process.execPath, [path.join(ROOT, 'test/helpers/publish-pending.mjs'), '1', '/dev/null', spool.work], {
      env: spool.env, encoding: 'utf8',
    });
    const [id] = JSON.parse(published.stdout) as string[];
    const paths = spoolPaths(spool.home);
    // a start time no live process has: dead even if its pid is reused meanwhile
    const dead = { pid: spawnSync('true').pid, start_time: 'boot:0', host: os.hostname() };
    expect(claimJob(paths, id!, 1, { role: 'supervisor', ...dead, epoch: null, at: new Date().toISOString() })).toBe(true);
    applyTransition(paths, id!, { name: 'start', attempt: 1, epoch: null, supervisor: dead });
    return { spool, id: id!, paths };
  }

  it('a worker its supervisor died too early to record is found by the job id in its environment and stopped', async () => {
    // what a supervisor SIGKILLed in the 25 ms between the worker's start and its record leaves:
    // the job running under a dead supervisor, no worker recorded, the worker (and a child
    // that left its group) still alive
    const { spool, id } = runningUnderDeadSupervisor();
    const pids = path.join(spool.work, 'pids');
    const worker = spawn('sh', ['-c', `setsid sleep 300 & echo $! > ${pids}; exec sleep 300`], {
      detached: true, stdio: 'ignore', env: { ...process.env, AGENT_ASYNC_JOB_ID: id },
    });
    worker.unref();
    const escapee = await until(() => (fs.existsSync(pids) ? Number(fs.readFileSync(pids, 'utf8')) || undefined : undefined), 5000, 'the worker to start');
    try {
      expect(jobState(spool, id).worker).toBeNull();
      expect(await waitJob(spool, id)).toMatchObject({ status: 'error', error: { code: 'runner_lost' } });
      expect(pidAlive(worker.pid!)).toBe(false);
      expect(pidAlive(escapee)).toBe(false);
      expect(fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8')).toMatch(/stopping 2 process group\(s\) of its unrecorded worker/);
    } finally {
      for (const pid of [worker.pid!, escapee]) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('a recorded worker whose group number now belongs to processes of someone else (the pid counter wrapped) is never signalled', async () => {
    const { spool, id, paths } = runningUnderDeadSupervisor();
    // someone else's process group, led by a pid the job recorded long ago for its worker
    const stranger = spawn('sh', ['-c', 'sleep 300 & exec sleep 300'], { detached: true, stdio: 'ignore' });
    stranger.unref();
    const members = await until(() => {
      const found = spawnSync('pgrep', ['-g', String(stranger.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      return found.length === 2 ? found.map(Number) : undefined;
    }, 5000, 'the stranger group to start');
    applyTransition(paths, id, { name: 'record_worker', worker: { pid: stranger.pid!, pgid: stranger.pid!, argv: ['sleep', '300'], start_time: 'boot:0' } });
    try {
      expect(await waitJob(spool, id)).toMatchObject({ status: 'error', error: { code: 'runner_lost' } });
      for (const pid of members) expect(pidAlive(pid), `pid ${pid} of the stranger group`).toBe(true);
    } finally {
      for (const pid of members) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('a runner started by a submit from inside a job carries no job id, so it is never taken for a process of that job', async () => {
    const spool = makeSpool({ runner_idle_seconds: 30 });
    const outer = '0hofx0000000000000000000';
    const submitted = cli(spool, ['start', 'exec', '--', 'sleep', '30'], { env: { AGENT_ASYNC_JOB_ID: outer, AGENT_ASYNC_JOB_DIR: '/nowhere' } });
    const id = submitted.stdout.trim();
    const running = await until(() => {
      const state = jobState(spool, id);
      return state.worker ? state : undefined;
    }, 20_000, 'the job to run');
    const environ = (pid: number): string => fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
    for (const pid of [runnerInfo(spool.home).pid as number, running.supervisor.pid as number]) {
      expect(environ(pid)).not.toContain('AGENT_ASYNC_JOB_ID=');
      expect(environ(pid)).not.toContain('AGENT_ASYNC_JOB_DIR=');
    }
    expect(environ(running.worker.pid)).toContain(`AGENT_ASYNC_JOB_ID=${id}\0`);
    cli(spool, ['cancel', id]);
  });

  it('a cancel or a done report that arrives while nobody supervises the job still decides its end; a done hint does not', async () => {
    const spool = makeSpool({ concurrency: 3 });
    const sleeper = (name: string): Promise<string> => startJob(spool, ['sleep', '300'], ['--cwd', fs.mkdtempSync(path.join(spool.work, name))]);
    const [toCancel, toFinish, hinted] = [await sleeper('a'), await sleeper('b'), await sleeper('c')];
    const slotOf = (id: string): string => path.join(spool.home, 'jobs', id, '..done-hint.slot.tmp');
    const states = await until(() => {
      const all = [toCancel, toFinish, hinted].map((id) => jobState(spool, id));
      return all.every((s) => s.worker && fs.existsSync(slotOf(s.id))) ? all : undefined;
    }, 10_000, 'the three jobs to run, and their supervisors to make the done hint\'s slot');
    for (const pid of spoolProcesses(spool.home)) {
      if (!states.some((s) => s.worker.pid === pid)) process.kill(pid, 'SIGKILL');
    }
    fs.writeFileSync(path.join(spool.home, 'jobs', toCancel, 'cancel'), '{}');
    fs.writeFileSync(path.join(spool.home, 'jobs', toFinish, 'done'), 'finished by hand\n');
    // the hint is never flushed, so only a live supervisor may trust it, never a runner finalizing after a crash
    fs.writeFileSync(path.join(spool.home, 'jobs', hinted, '.done-hint'), 'a hint only\n');
    expect(await waitJob(spool, toCancel)).toMatchObject({ status: 'cancelled' });
    expect(await waitJob(spool, toFinish)).toMatchObject({ status: 'done', notified: { summary: 'finished by hand' } });
    expect(await waitJob(spool, hinted)).toMatchObject({ status: 'error', error: { code: 'runner_lost' }, notified: null });
    for (const state of states) expect(pidAlive(state.worker.pid)).toBe(false);
    // the slot a dead supervisor made goes with it: a report that came later would find none to fill
    for (const state of states) expect(fs.existsSync(slotOf(state.id))).toBe(false);
  });

  it('a done hint alone ends a job its supervisor runs, as a `done` file does', async () => {
    const spool = makeSpool({ done_grace_seconds: 1 });
    const id = await startJob(spool, ['sh', '-c', 'echo "by the hint" > "$AGENT_ASYNC_JOB_DIR/.done-hint"; sleep 300']);
    expect(await waitJob(spool, id)).toMatchObject({ status: 'done', notified: { summary: 'by the hint' }, exit_code: null });
    await until(() => jobState(spool, id).signal === 'SIGTERM', 60_000, 'the worker to be stopped after its grace');
  });

  it('a job its done report ended, whose supervisor dies in the worker\'s grace: the worker is stopped and the slot freed', async () => {
    const spool = makeSpool({ concurrency: 1, done_grace_seconds: 300 });
    const notified = await startJob(spool, ['sh', '-c', 'echo "all done" > "$AGENT_ASYNC_JOB_DIR/done"; sleep 300']);
    const next = await startJob(spool, ['true']);
    const ended = await waitJob(spool, notified);
    expect(ended).toMatchObject({ status: 'done', notified: { summary: 'all done' }, exit_code: null });
    expect(jobState(spool, next).status).toBe('pending');
    expect(killPid(ended.supervisor.pid)).toBe(true);
    expect((await waitJob(spool, next)).status).toBe('done');
    expect(pidAlive(ended.worker.pid)).toBe(false);
    expect(fs.existsSync(path.join(spool.home, 'active', notified))).toBe(false);
    expect(jobState(spool, notified)).toMatchObject({ status: 'done', notified: { summary: 'all done' } });
  });

  it('a job its done report ended, whose supervisor dies in the worker\'s grace, keeps no done-hint slot', async () => {
    const spool = makeSpool({ concurrency: 1, done_grace_seconds: 300 });
    const notified = await startJob(spool, ['sh', '-c', 'echo "all done" > "$AGENT_ASYNC_JOB_DIR/done"; sleep 300']);
    const slot = path.join(spool.home, 'jobs', notified, '..done-hint.slot.tmp');
    const ended = await waitJob(spool, notified);
    await until(() => fs.existsSync(slot) || undefined, 10_000, 'the supervisor to make the done hint\'s slot');
    expect(killPid(ended.supervisor.pid)).toBe(true);
    await until(() => !fs.existsSync(path.join(spool.home, 'active', notified)) || undefined, 60_000, 'the orphaned exit to be finalized');
    expect(pidAlive(ended.worker.pid)).toBe(false);
    // the slot is made by that supervisor alone, and a dead one's slot is for nobody: a notify to
    // this ended job would fill it, and nothing but gc ever removes it
    expect(fs.existsSync(slot)).toBe(false);
  });

  it('a pending job claimed by a supervisor that died before starting it is claimed again and runs once', async () => {
    const spool = makeSpool();
    const ledger = path.join(spool.work, 'ledger');
    const blocker = await gateJob(spool);
    const id = await startJob(spool, ['sh', '-c', `echo ran >> ${ledger}`]);
    // a claim whose owner is a process that is gone
    const claim = path.join(spool.home, 'jobs', id, 'claim.1');
    fs.mkdirSync(claim);
    fs.writeFileSync(path.join(claim, 'owner.json'), JSON.stringify({
      role: 'supervisor', pid: 2 ** 22 - 1, start_time: null, host: (await import('node:os')).hostname(), epoch: 1, at: new Date().toISOString(),
    }));
    blocker.release();
    expect(cli(spool, ['wait', blocker.id]).code).toBe(0);
    expect(await waitJob(spool, id)).toMatchObject({ status: 'done', attempt: 2 });
    expect(fs.readFileSync(ledger, 'utf8')).toBe('ran\n');
  });
});
