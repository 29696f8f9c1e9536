import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as jobs from '../lib/jobs.js';
import { newJobId } from '../lib/spool/ids.js';
import { spoolPaths } from '../lib/spool/layout.js';
import { newJobState } from '../lib/spool/state.js';
import { publishJob, requestCancel } from '../lib/spool/store.js';
import { jobRequest } from './helpers/job-request.mjs';
import { assertSchemaValid, cleanupSpools, cli, cliAsync, dirIn, FAST_CONFIG, gateJob, jobNotes, jobState, makeSpool, pidAlive, readJson, spoolProcesses, startJob, until, waitJob } from './helpers/spool.js';

afterAll(cleanupSpools);

/** A job that records its start and end in a shared ledger (appends are atomic); it ends once `gate` exists. */
function gatedLedgerJob(ledger: string, gate: string): string[] {
  return ['sh', '-c', `echo "start $AGENT_ASYNC_JOB_ID" >> ${ledger}; while [ ! -e ${gate} ]; do sleep 0.05; done; echo "end $AGENT_ASYNC_JOB_ID" >> ${ledger}`];
}

function starts(ledger: string): string[] {
  return fs.existsSync(ledger) ? fs.readFileSync(ledger, 'utf8').split('\n').filter((line) => line.startsWith('start')) : [];
}

function maxOverlap(ledger: string): number {
  let open = 0;
  let max = 0;
  for (const line of fs.readFileSync(ledger, 'utf8').trim().split('\n')) {
    open += line.startsWith('start') ? 1 : -1;
    max = Math.max(max, open);
  }
  return max;
}

describe('runner scheduling', () => {
  it('runs at most `concurrency` jobs at once, in FIFO order', async () => {
    const spool = makeSpool({ concurrency: 2 });
    spool.env.AGENT_ASYNC_TRACE = '1';
    const ledger = path.join(spool.work, 'ledger');
    const gate = path.join(spool.work, 'gate');
    const library = jobs.openContext({ home: spool.home, env: spool.env });
    // submitted together (in-process, ~1 ms each), so the queue really holds six
    const ids = await Promise.all(Array.from({ length: 6 }, async (_, i) =>
      (await jobs.submit(library, { agent: 'exec', argv: gatedLedgerJob(ledger, gate), cwd: dirIn(spool, `d${i}`) })).job_id));
    await until(() => starts(ledger).length === 2, 30_000, 'two jobs to start');
    // A fact instead of a pause: a job queued last with a cancel request is cancelled by the
    // runner's next full pass over the queue, the same pass that would hand out a third job.
    const probe = (await jobs.submit(library, { agent: 'exec', argv: ['true'], cwd: dirIn(spool, 'probe') })).job_id;
    requestCancel(library.paths, probe, 'test');
    const cancelledLine = `job ${probe}: cancelled before it started`;
    await until(() => fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8').includes(cancelledLine), 30_000, 'the runner to pass over the queue');
    const beforePass = fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8').split(cancelledLine)[0]!;
    expect(beforePass.split('\n').filter((line) => / dispatched /.test(line)), 'a third job was handed out while two ran').toHaveLength(2);
    expect(starts(ledger), 'a third job started while two ran').toHaveLength(2);
    fs.writeFileSync(gate, '');
    for (const id of ids) expect((await waitJob(spool, id)).status).toBe('done');
    expect(maxOverlap(ledger)).toBe(2);
    // the order the runner handed them out in (when each worker then starts is up to the OS)
    const dispatched = fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8').split('\n')
      .filter((line) => line.startsWith('trace ') && line.split(' ')[3] === 'dispatched')
      .map((line) => line.split(' ')[4]);
    expect(dispatched).toEqual(ids);
  });

  it('never runs two jobs with the same cwd side by side, while other cwds go on', async () => {
    const spool = makeSpool({ concurrency: 3 });
    const ledger = path.join(spool.work, 'ledger');
    const shared = dirIn(spool, 'shared');
    const otherStarted = path.join(spool.work, 'other-started');
    const library = jobs.openContext({ home: spool.home, env: spool.env });
    const submit = async (argv: string[], cwd: string): Promise<string> => (await jobs.submit(library, { agent: 'exec', argv, cwd })).job_id;
    // each same-cwd job lasts until the other-cwd job has started: the two must overlap
    const same = await Promise.all([0, 1, 2].map(() => submit(['sh', '-c', `echo "start $AGENT_ASYNC_JOB_ID" >> ${ledger}; while [ ! -e ${otherStarted} ]; do sleep 0.05; done; sleep 0.3; echo "end $AGENT_ASYNC_JOB_ID" >> ${ledger}`], shared)));
    const other = await submit(['sh', '-c', `echo "start other" >> ${ledger}; touch ${otherStarted}; sleep 0.5; echo "end other" >> ${ledger}`], dirIn(spool, 'other-dir'));
    for (const id of [...same, other]) expect((await waitJob(spool, id)).status).toBe('done');
    const events = fs.readFileSync(ledger, 'utf8').trim().split('\n');
    const sameOnly = events.filter((l) => !l.endsWith(' other'));
    let open = 0;
    let max = 0;
    let sameOpenWhileOther = false;
    let otherOpen = false;
    for (const line of events) {
      if (line === 'start other') otherOpen = true;
      else if (line === 'end other') otherOpen = false;
      else open += line.startsWith('start') ? 1 : -1;
      max = Math.max(max, open);
      if (otherOpen && open > 0) sameOpenWhileOther = true;
    }
    expect(sameOnly).toHaveLength(6);
    expect(max).toBe(1);
    expect(sameOpenWhileOther, events.join('\n')).toBe(true);
  });

  it('sleeps while idle: no busy loop between jobs', async () => {
    const spool = makeSpool({ runner_idle_seconds: 30 });
    await waitJob(spool, await startJob(spool, ['true']));
    const pid = JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8')).pid;
    const cpuTicks = (): number => {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (1/100 s)
    };
    const before = cpuTicks();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // a busy loop would burn about 300 ticks in 3 s; an idle runner polls once a second
    expect(cpuTicks() - before).toBeLessThan(30);
  });

  it('exits after its idle time and is started again by the next submit', async () => {
    const spool = makeSpool({ runner_idle_seconds: 1 });
    await waitJob(spool, await startJob(spool, ['true']));
    const info = JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8'));
    await until(() => !pidAlive(info.pid), 10_000, 'the idle runner to exit');
    expect(JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8')).state).toBe('stopped');
    expect(fs.existsSync(path.join(spool.home, 'runner.lock'))).toBe(false);
    expect((await waitJob(spool, await startJob(spool, ['true']))).status).toBe('done');
    const next = JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8'));
    expect(next.epoch).toBe(info.epoch + 1);
  });

  it('a running runner picks up an edited config.json for the next jobs, and outlives a broken edit', async () => {
    const spool = makeSpool({ concurrency: 1, runner_idle_seconds: 60 });
    const configFile = path.join(spool.home, 'config.json');
    const editConfig = (change: Record<string, unknown>): void =>
      fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), ...change }));
    const library = jobs.openContext({ home: spool.home, env: spool.env }); // opened while the config is good
    await waitJob(spool, await startJob(spool, ['true']));
    const runnerPid = JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8')).pid;
    fs.writeFileSync(configFile, '{"concurrency": "lots"}');
    const runnerLog = path.join(spool.home, 'runner.log');
    await until(() => fs.readFileSync(runnerLog, 'utf8').includes('keeping the last good config'), 10_000, 'the runner to report the broken config');
    // a job still runs under the last good config: its supervisor gets it from the runner
    const during = (await jobs.submit(library, { agent: 'exec', argv: ['true'], cwd: spool.work })).job_id;
    await until(() => ['done', 'error'].includes(jobState(spool, during).status), 20_000, 'the job to end'); // the CLI refuses a broken config
    expect(jobState(spool, during).status).toBe('done');
    editConfig({ concurrency: 3, runner_idle_seconds: 60 });
    await until(() => fs.readFileSync(runnerLog, 'utf8').includes('config.json changed: concurrency'), 10_000, 'the runner to take the new config');
    const ledger = path.join(spool.work, 'ledger');
    const gate = path.join(spool.work, 'gate');
    const ids = await Promise.all(Array.from({ length: 3 }, async (_, i) =>
      (await jobs.submit(library, { agent: 'exec', argv: gatedLedgerJob(ledger, gate), cwd: dirIn(spool, `c${i}`) })).job_id));
    await until(() => starts(ledger).length === 3, 30_000, 'all three jobs to run at once');
    fs.writeFileSync(gate, '');
    for (const id of ids) expect((await waitJob(spool, id)).status).toBe('done');
    expect(maxOverlap(ledger)).toBe(3);
    expect(JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8')).pid).toBe(runnerPid);
  });
});

describe('a reused supervisor', () => {
  it('runs each job under the config as it was when the job was dispatched, also after an edit', async () => {
    const agent = (word: string) => ({ command: ['sh', '-c', 'echo "$WORD"', 'say', '{prompt}'], env: { WORD: word } });
    const spool = makeSpool({ concurrency: 1, runner_idle_seconds: 60, agents: { say: agent('before') } });
    const configFile = path.join(spool.home, 'config.json');
    const supervisorOf: number[] = [];
    const say = async (): Promise<string> => {
      const id = JSON.parse(cli(spool, ['start', 'say', 'anything', '--json']).stdout).job_id;
      const state = await waitJob(spool, id);
      expect(state.status).toBe('done');
      supervisorOf.push(state.supervisor.pid);
      return cli(spool, ['logs', id]).stdout.trim();
    };
    expect([await say(), await say()]).toEqual(['before', 'before']);
    fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), agents: { say: agent('after') } }));
    await until(() => fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8').includes('config.json changed: agents'), 10_000, 'the runner to take the edit');
    expect([await say(), await say()]).toEqual(['after', 'after']);
    // a supervisor that was sent the old config ran a job after the edit
    expect(supervisorOf.slice(2).some((pid) => supervisorOf.slice(0, 2).includes(pid))).toBe(true);
  });
});

describe('warm supervisors', () => {
  it('once the runner has work it starts warm_supervisors of them, and jobs submitted together then run on those, side by side', async () => {
    const spool = makeSpool({ concurrency: 3, warm_supervisors: 3, exclusive_cwd: false, runner_idle_seconds: 60 });
    const first = await startJob(spool, ['true']);
    const firstState = await waitJob(spool, first);
    expect(firstState.status).toBe('done');
    const supervisors = (): number[] => spoolProcesses(spool.home).filter((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervisor-main'));
    await until(() => supervisors().length === 3, 30_000, 'three supervisors to be started');
    const ready = new Set(supervisors());
    const gates = await Promise.all([gateJob(spool), gateJob(spool), gateJob(spool)]);
    await until(() => gates.every((gate) => jobState(spool, gate.id).status === 'running'), 30_000, 'the three jobs to run side by side');
    // no Node start-up was needed for them: each runs on a supervisor started before it came
    for (const gate of gates) expect(ready.has(jobState(spool, gate.id).supervisor.pid)).toBe(true);
    for (const gate of gates) gate.release();
    for (const gate of gates) expect((await waitJob(spool, gate.id)).status).toBe('done');
  });
});

describe('a full runner', () => {
  it('does not wake for a job queued while every slot is taken, and starts it as soon as a slot frees, not at the next poll', async () => {
    const spool = makeSpool({ concurrency: 1, poll_seconds: 60 });
    const blocker = await gateJob(spool);
    await until(() => jobState(spool, blocker.id).status === 'running', 20_000, 'the first job to run');
    const queued = await startJob(spool, ['true']);
    blocker.release();
    // the 60 s poll would come too late for this 30 s wait
    expect((await waitJob(spool, queued, '30s')).status).toBe('done');
  });
});

describe('an idle runner', () => {
  it('runs a job whose marker it saw before the job folder was in place, not only at the next poll', async () => {
    const spool = makeSpool({ poll_seconds: 60, runner_idle_seconds: 60 });
    expect((await waitJob(spool, await startJob(spool, ['true']))).status).toBe('done');
    // the runner takes the job's end and arms its idle timer
    await until(() => !fs.existsSync(path.join(spool.home, 'active', fs.readdirSync(path.join(spool.home, 'jobs'))[0]!)), 10_000, 'the first job to leave active/');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // published the way publishJob does it, slowed down: the marker first, the folder later
    const scratch = spoolPaths(path.join(spool.work, 'scratch'));
    const state = newJobState(newJobId(), jobRequest('exec', ['true'], { cwd: spool.work }));
    publishJob(scratch, state);
    fs.writeFileSync(path.join(spool.home, 'active', state.id), '');
    // the runner looks at the new marker at once and finds no folder yet (a young marker: it looks again)
    await new Promise((resolve) => setTimeout(resolve, 100));
    fs.renameSync(path.join(scratch.jobs, state.id), path.join(spool.home, 'jobs', state.id));
    // the 60 s poll would come too late for this 30 s wait
    expect((await waitJob(spool, state.id, '30s')).status).toBe('done');
  });
});

describe('tracing', () => {
  it('with AGENT_ASYNC_TRACE=1 the runner and the supervisor log every step of a job, in order', async () => {
    const spool = makeSpool();
    spool.env.AGENT_ASYNC_TRACE = '1';
    const id = await startJob(spool, ['true']);
    await waitJob(spool, id);
    const runnerLog = path.join(spool.home, 'runner.log');
    const traced = (): Array<{ at: number; step: string }> => fs.readFileSync(runnerLog, 'utf8').split('\n')
      .filter((line) => line.startsWith('trace ') && line.endsWith(` ${id}`))
      .map((line) => ({ at: Number(line.split(' ')[1]), step: line.split(' ')[3]! }));
    // the waiter wakes on the terminal write, a moment before the supervisor logs it
    await until(() => traced().some((t) => t.step === 'recorded'), 10_000, 'the last step to be logged');
    const steps = traced();
    expect(steps.map((t) => t.step).sort()).toEqual(['claimed', 'dispatched', 'exit-written', 'exited', 'reaped', 'received', 'recorded', 'slot-freed', 'spawned', 'started']);
    const at = Object.fromEntries(steps.map((t) => [t.step, t.at]));
    const order = ['dispatched', 'received', 'claimed', 'started', 'spawned', 'exited', 'reaped', 'exit-written', 'recorded'];
    for (let i = 1; i < order.length; i += 1) expect(at[order[i]!], `${order[i - 1]} before ${order[i]}`).toBeGreaterThanOrEqual(at[order[i - 1]!]!);
    expect(at['slot-freed']).toBeGreaterThanOrEqual(at.exited!);
  });

  it('is off by default: nothing is logged', async () => {
    const spool = makeSpool();
    await waitJob(spool, await startJob(spool, ['true']));
    expect(fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8')).not.toMatch(/^trace /m);
  });
});

describe('workers', () => {
  it('get their job id and folder in the environment, a closed stdin and no shell', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['sh', '-c', 'echo "$AGENT_ASYNC_JOB_ID $AGENT_ASYNC_JOB_DIR"; cat; echo "stdin closed"']);
    expect((await waitJob(spool, id)).status).toBe('done');
    expect(cli(spool, ['logs', id]).stdout).toBe(`${id} ${path.join(spool.home, 'jobs', id)}\nstdin closed\n`);
    const literal = await startJob(spool, ['echo', '$HOME', '`id`', ';', '|', '*']);
    // a worker this quick is gone before it could be recorded as running; its end records it
    expect((await waitJob(spool, literal)).worker).toMatchObject({ pid: expect.any(Number), argv: ['echo', '$HOME', '`id`', ';', '|', '*'] });
    expect(cli(spool, ['logs', literal]).stdout).toBe('$HOME `id` ; | *\n');
  });

  it('run in their own process group, and what they leave behind is stopped when they exit', async () => {
    const spool = makeSpool();
    const pidFile = path.join(spool.work, 'bg.pid');
    const id = await startJob(spool, ['sh', '-c', `sleep 300 & echo $! > ${pidFile}; echo started`]);
    const state = await waitJob(spool, id);
    expect(state.status).toBe('done');
    expect(state.worker.pgid).toBe(state.worker.pid);
    const leftover = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(pidAlive(leftover)).toBe(false);
    expect(jobNotes(spool, id)).toMatch(/left processes in its group; stopping them/);
  });

  it('a wall-clock limit ends the job as timed_out, a silent one as stalled', async () => {
    const spool = makeSpool({ concurrency: 2 });
    const slow = await startJob(spool, ['sleep', '30'], ['--timeout', '1s', '--cwd', dirIn(spool, 'a')]);
    const silent = await startJob(spool, ['sh', '-c', 'echo hi; sleep 30'], ['--stall-timeout', '1s', '--cwd', dirIn(spool, 'b')]);
    const timedOut = await waitJob(spool, slow);
    expect(timedOut).toMatchObject({ status: 'error', error: { code: 'timed_out' }, signal: 'SIGTERM' });
    const stalled = await waitJob(spool, silent);
    expect(stalled).toMatchObject({ status: 'error', error: { code: 'stalled' } });
    expect(cli(spool, ['logs', silent]).stdout).toBe('hi\n');
    expect(jobNotes(spool, silent)).toMatch(/^\S+ stopping the job \(stalled\)\n$/);
  });

  it('a `done` report (its file, or notify-done from another process) ends the job at once and wakes a waiter elsewhere; the worker keeps its grace, its exit is added, its slot stays taken until it is gone', async () => {
    const spool = makeSpool({ concurrency: 1, done_grace_seconds: 300 });
    const ledger = path.join(spool.work, 'ledger');
    const gate = (name: string): string => path.join(spool.work, `gate-${name}`);
    const runUntil = (name: string): string => `while [ ! -e '${gate(name)}' ]; do sleep 0.05; done`;
    const byFile = await startJob(spool, ['sh', '-c', `echo before; echo "refactor finished" > "$AGENT_ASYNC_JOB_DIR/done"; ${runUntil('file')}; echo after; echo first-exits >> ${ledger}; exit 7`]);
    // one slot: this one waits behind the first until its worker is gone
    const byCli = await startJob(spool, ['sh', '-c', `echo second-starts >> ${ledger}; ${runUntil('cli')}`]);

    const first = JSON.parse((await cliAsync(spool, ['wait', byFile, '--timeout', '120s', '--json'])).stdout).finished[0];
    expect(first).toMatchObject({ status: 'done', notified: { summary: 'refactor finished' }, exit_code: null, signal: null });
    expect(Date.parse(first.notified.at)).toBeLessThanOrEqual(Date.parse(first.finished_at));
    assertSchemaValid(first);
    expect(pidAlive(first.worker.pid)).toBe(true);
    expect(jobState(spool, byCli).status).toBe('pending');
    fs.writeFileSync(gate('file'), '');
    const exited = await until(() => (jobState(spool, byFile).exit_code === 7 ? jobState(spool, byFile) : undefined), 60_000, 'the exit to be added');
    // only the exit facts were added: the job ended when it was notified
    expect(exited).toMatchObject({ status: 'done', signal: null, finished_at: first.finished_at, notified: first.notified, duration_ms: first.duration_ms });
    expect(readJson(path.join(spool.home, 'jobs', byFile, 'exit.json'))).toMatchObject({ exit_code: 7, reason: 'exited' });
    // the worker's bytes only, also those written after the report
    expect(fs.readFileSync(path.join(spool.home, 'jobs', byFile, 'output.log'), 'utf8')).toBe('before\nafter\n');

    const second = await until(() => (jobState(spool, byCli).worker ? jobState(spool, byCli) : undefined), 60_000, 'the next job to run');
    expect(fs.readFileSync(ledger, 'utf8')).toBe('first-exits\nsecond-starts\n');
    const waiting = cliAsync(spool, ['wait', byCli, '--timeout', '120s', '--json']);
    expect(cli(spool, ['notify-done', byCli, 'told', 'from', 'elsewhere']).code).toBe(0);
    expect(JSON.parse((await waiting).stdout).finished[0]).toMatchObject({ status: 'done', notified: { summary: 'told from elsewhere' }, exit_code: null });
    // answered, no hint, slot or temp file of the report is left; a `done` file only when the supervisor was too
    // slow to record the report (which of the two happened is timing: test/done-report.test.ts checks each)
    const left = fs.readdirSync(path.join(spool.home, 'jobs', byCli)).filter((name) => name.includes('done'));
    expect(left.filter((name) => name !== 'done')).toEqual([]);
    if (left.includes('done')) expect(fs.readFileSync(path.join(spool.home, 'jobs', byCli, 'done'), 'utf8')).toBe('told from elsewhere');
    expect(pidAlive(second.worker.pid)).toBe(true);
    fs.writeFileSync(gate('cli'), '');
    await until(() => jobState(spool, byCli).exit_code === 0, 60_000, 'the second exit to be added');
  });

  it('a job that outlives the worker record leaves no temp file in its folder, the terminal write\'s made ahead included', async () => {
    const spool = makeSpool({ concurrency: 2 });
    const ended = await startJob(spool, ['sh', '-c', 'sleep 0.3; exit 3']);
    const cancelled = await startJob(spool, ['sleep', '300'], ['--cwd', fs.mkdtempSync(path.join(spool.work, 'other'))]);
    const supervisor: number = (await until(() => jobState(spool, cancelled).worker && jobState(spool, cancelled), 60_000, 'the worker to be recorded')).supervisor.pid;
    // made ahead while the worker runs: exit.json's and the terminal state's temp files, and the done hint's slot
    const madeAhead = await until(() => {
      const temps = fs.readdirSync(path.join(spool.home, 'jobs', cancelled)).filter((name) => name.endsWith('.tmp')).sort();
      return temps.length === 3 ? temps : undefined;
    }, 60_000, 'the files of the end to be made ahead');
    expect(madeAhead).toEqual(['..done-hint.slot.tmp', expect.stringMatching(new RegExp(`^\\.exit\\.json\\.${supervisor}\\.`)), expect.stringMatching(new RegExp(`^\\.state\\.json\\.${supervisor}\\.`))]);
    expect(cli(spool, ['cancel', cancelled]).code).toBe(0);
    expect(await waitJob(spool, ended)).toMatchObject({ status: 'error', exit_code: 3 });
    expect((await waitJob(spool, cancelled)).status).toBe('cancelled');
    for (const id of [ended, cancelled]) {
      const folder = path.join(spool.home, 'jobs', id);
      await until(() => !fs.existsSync(path.join(spool.home, 'active', id)), 60_000, 'the job to leave active/');
      expect(fs.readdirSync(folder).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    }
  });

  it('a `done` file being written is read once it holds its summary; one left empty is a report without summary', async () => {
    const spool = makeSpool({ concurrency: 2, done_grace_seconds: 1 });
    // the shell makes the file, then writes to it: the report is the text, not the empty file
    const slow = await startJob(spool, ['sh', '-c', ': > "$AGENT_ASYNC_JOB_DIR/done"; sleep 0.05; echo "written after" > "$AGENT_ASYNC_JOB_DIR/done"; sleep 300']);
    const touched = await startJob(spool, ['sh', '-c', 'touch "$AGENT_ASYNC_JOB_DIR/done"; sleep 300'], ['--cwd', fs.mkdtempSync(path.join(spool.work, 'touch'))]);
    expect(await waitJob(spool, slow)).toMatchObject({ status: 'done', notified: { summary: 'written after' } });
    expect(await waitJob(spool, touched)).toMatchObject({ status: 'done', notified: { summary: '' } });
  });

  it('a worker still running when its done grace ends is stopped, and its exit added', async () => {
    const spool = makeSpool({ done_grace_seconds: 1 });
    const id = await startJob(spool, ['sh', '-c', 'echo "refactor finished" > "$AGENT_ASYNC_JOB_DIR/done"; sleep 300']);
    expect(await waitJob(spool, id)).toMatchObject({ status: 'done', notified: { summary: 'refactor finished' } });
    await until(() => jobState(spool, id).signal === 'SIGTERM', 60_000, 'the worker to be stopped');
    expect(readJson(path.join(spool.home, 'jobs', id, 'exit.json')).reason).toBe('done_grace');
    expect(jobNotes(spool, id)).toMatch(/stopping the job \(done grace\)/);
  });

  it('output.log holds every line in order (the memory side is measured by the 1 GiB bench)', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done']);
    expect((await waitJob(spool, id)).status).toBe('done');
    const lines = fs.readFileSync(path.join(spool.home, 'jobs', id, 'output.log'), 'utf8').trim().split('\n');
    expect(lines).toEqual(Array.from({ length: 20_000 }, (_, i) => `line ${i}`));
  });
});

describe('spawn failures end the job with a precise code, and the queue moves on', () => {
  it('binary missing, not executable, cwd deleted, argv too long', async () => {
    const spool = makeSpool({ concurrency: 1 });
    const noExec = path.join(spool.work, 'script.sh');
    fs.writeFileSync(noExec, 'echo hi\n', { mode: 0o644 });
    const doomed = dirIn(spool, 'doomed');
    const blocker = await gateJob(spool);
    const missing = await startJob(spool, ['no-such-binary-anywhere']);
    const denied = await startJob(spool, [noExec]);
    const gone = await startJob(spool, ['true'], ['--cwd', doomed]);
    fs.rmdirSync(doomed);
    const spool2 = jobs.openContext({ home: spool.home, env: spool.env });
    const tooLong = (await jobs.submit(spool2, { agent: 'exec', argv: ['echo', 'x'.repeat(200_000)], cwd: spool.work })).job_id;
    const after = await startJob(spool, ['sh', '-c', 'echo still going']);
    blocker.release();

    expect((await waitJob(spool, blocker.id)).status).toBe('done');
    expect(await waitJob(spool, missing)).toMatchObject({
      status: 'error',
      error: { code: 'agent_not_found', message: expect.stringMatching(/"no-such-binary-anywhere" not found in PATH/) },
      started_at: null,
    });
    expect(await waitJob(spool, denied)).toMatchObject({ status: 'error', error: { code: 'spawn_failed', message: expect.stringMatching(/permission denied.*EACCES/) } });
    expect(await waitJob(spool, gone)).toMatchObject({ status: 'error', error: { code: 'cwd_missing', message: expect.stringMatching(/no longer exists/) } });
    expect(await waitJob(spool, tooLong)).toMatchObject({ status: 'error', error: { code: 'spawn_failed', message: expect.stringMatching(/E2BIG/) } });
    expect((await waitJob(spool, after)).status).toBe('done');
    for (const id of [missing, denied, gone, tooLong, after]) assertSchemaValid(jobState(spool, id));
  });
});

describe('a corrupt state.json written by hand', () => {
  it('is reported for that job and crashes neither the runner nor ls, nor keeps the runner up', async () => {
    const spool = makeSpool({ concurrency: 1, runner_idle_seconds: 30 });
    const blocker = await gateJob(spool);
    const victim = await startJob(spool, ['true']);
    fs.writeFileSync(path.join(spool.home, 'jobs', victim, 'state.json'), '{"status": "pend');
    const after = await startJob(spool, ['true']);
    blocker.release();
    expect((await waitJob(spool, blocker.id)).status).toBe('done');
    expect((await waitJob(spool, after)).status).toBe('done');
    const runnerFile = path.join(spool.home, 'runner.json');
    const runner = JSON.parse(fs.readFileSync(runnerFile, 'utf8'));

    const ls = cli(spool, ['ls']);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(new RegExp(`${victim}\\s+UNREADABLE`));
    const show = cli(spool, ['show', victim]);
    expect(show.code).toBe(5);
    expect(show.stdout).toMatch(/unreadable: not valid JSON/);
    const wait = cli(spool, ['wait', victim, '--json']);
    expect(wait.code).toBe(5);
    expect(JSON.parse(wait.stdout).finished[0]).toMatchObject({ status: 'unreadable', error: { code: 'corrupt_state' } });
    expect(cli(spool, ['cancel', victim]).stderr).toMatch(/state\.json is unreadable/);
    expect(fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8')).toMatch(new RegExp(`job ${victim}: state.json is unreadable`));
    // the same runner (never crashed and restarted) went on; only the unreadable job is still active
    expect(JSON.parse(fs.readFileSync(runnerFile, 'utf8'))).toMatchObject({ pid: runner.pid, epoch: runner.epoch });
    expect(pidAlive(runner.pid)).toBe(true);
    expect(fs.readdirSync(path.join(spool.home, 'active'))).toEqual([victim]);
    // …which does not keep it up: it goes idle as if the queue were empty
    fs.writeFileSync(path.join(spool.home, 'config.json'), JSON.stringify({ ...FAST_CONFIG, concurrency: 1, runner_idle_seconds: 1 }));
    await until(() => !pidAlive(runner.pid), 20_000, 'the runner to go idle and exit');
    expect(JSON.parse(fs.readFileSync(runnerFile, 'utf8'))).toMatchObject({ epoch: runner.epoch, state: 'stopped' });
  });
});
