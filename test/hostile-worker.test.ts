import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spoolPaths } from '../lib/spool/layout.js';
import { isTerminal } from '../lib/spool/state.js';
import { readState } from '../lib/spool/store.js';
import { assertSchemaValid, cleanupSpools, cli, dirIn, jobNotes, jobState, makeSpool, pidAlive, readJson, startAgentJob, startJob, until, waitJob, type TestSpool } from './helpers/spool.js';
import { SHELL_AGENT, closeServers, queueGoesOn, server } from './helpers/hostile.js';
import { ok } from './helpers/mcp.js';

/**
 * What a worker can do to agent-async from inside its job: replace the files of its job folder
 * with named pipes, folders, links or huge files, rewrite or delete its state.json, leave
 * daemons behind, ignore SIGTERM, close its output, print invalid UTF-8 or one endless line.
 * Each case ends the job with what happened recorded, blocks no reader, and the queue goes on.
 */

afterAll(cleanupSpools);
afterAll(closeServers);

function hostileSpool(config: Record<string, unknown> = {}): TestSpool {
  return makeSpool({ concurrency: 4, agents: { shell: SHELL_AGENT }, ...config });
}

function startShellAgent(spool: TestSpool, script: string, cwd: string): Promise<string> {
  return startAgentJob(spool, ['shell', '--cwd', cwd, script]);
}

/**
 * The state agent-async wrote at the job's end, read the way agent-async reads (never blocking
 * on a pipe the worker left): a state.json the worker forged has no `finished_at`.
 */
async function endState(spool: TestSpool, id: string, timeoutMs = 120_000): Promise<any> {
  return until(() => {
    const read = readState(spoolPaths(spool.home), id);
    return read.kind === 'ok' && isTerminal(read.state.status) && read.state.finished_at !== null ? read.state : undefined;
  }, timeoutMs, `job ${id} to end`, 100);
}


const JOB_FILES = ['done', 'output.log', 'result.md', 'exit.json', 'state.json', 'prompt.txt', 'cancel', 'task.json'] as const;
type Kind = 'named pipe' | 'folder' | 'link out of the spool' | 'huge file';

function makeScript(kind: Kind, file: string, outside: string): string {
  const target = `"$AGENT_ASYNC_JOB_DIR/${file}"`;
  const make: Record<Kind, string> = {
    'named pipe': `mkfifo ${target}`,
    folder: `mkdir ${target} && touch ${target}/inside`,
    'link out of the spool': `ln -s '${outside}' ${target}`,
    'huge file': `truncate -s 4G ${target}`,
  };
  // once it is recorded as running (so the supervisor's own write of state.json is behind it);
  // a `cancel` of any kind is a cancel request: that job waits to be stopped
  const recorded = `until grep -q '"pgid"' "$AGENT_ASYNC_JOB_DIR/state.json"; do sleep 0.05; done`;
  return `${recorded}; rm -rf ${target} && ${make[kind]}; ${file === 'cancel' ? 'sleep 60' : 'exit 0'}`;
}

/** How a job whose worker did this to one of its files must end. */
function expectedEnd(kind: Kind, file: string): Record<string, unknown> {
  if (file === 'cancel') return { status: 'cancelled' };
  // a huge regular file is read with a cap (or not at all); only a huge state.json is not agent-async's
  if (kind === 'huge file' && file !== 'state.json') return { status: 'done', exit_code: 0 };
  return {
    status: 'error',
    exit_code: 0,
    error: { code: 'bad_job_file', message: expect.stringContaining(file === 'state.json' && kind === 'huge file' ? 'state.json was replaced' : `${file} is a `) },
  };
}

describe('a worker that replaces a file of its job folder', () => {
  it('with a named pipe, a folder, a link out of the spool or a huge file: every face still answers, the fault is recorded, the queue goes on', async () => {
    const spool = hostileSpool();
    const outside = path.join(spool.work, 'outside.txt');
    fs.writeFileSync(outside, 'not a job file\n');
    const mcp = await server(spool);
    const cases: Array<{ id: string; kind: Kind; file: string }> = [];
    const start = async (args: Record<string, unknown>): Promise<string> => (await ok(mcp, 'agent_start', args)).job_id;
    for (const kind of ['named pipe', 'folder', 'link out of the spool', 'huge file'] as const) {
      for (const file of JOB_FILES) {
        const cwd = dirIn(spool, `${kind}-${file}`.replace(/\W+/g, '-'));
        cases.push({ id: await start({ agent: 'shell', prompt: makeScript(kind, file, outside), cwd }), kind, file });
      }
      // an exec worker writes straight into output.log (no pipe in between)
      const cwd = dirIn(spool, `exec-${kind}`.replace(/\W+/g, '-'));
      cases.push({ id: await start({ agent: 'exec', argv: ['sh', '-c', makeScript(kind, 'output.log', outside)], cwd }), kind, file: 'output.log' });
    }

    for (const { id, kind, file } of cases) {
      const what = `${file} as a ${kind}`;
      const state = await endState(spool, id);
      expect(state, what).toMatchObject(expectedEnd(kind, file));
      assertSchemaValid(jobState(spool, id));
      // the job's own files are agent-async's again, whatever the worker left there
      expect(fs.lstatSync(path.join(spool.home, 'jobs', id, 'state.json')).isFile(), what).toBe(true);
      // every reader answers: none blocks on a pipe, follows the link or reads 4 GiB
      const waited = await ok(mcp, 'job_wait', { job_id: id, timeout_seconds: 0 });
      expect(waited.status, what).toBe(state.status);
      expect((await ok(mcp, 'job_output', { job_id: id, offset: -1000, max_bytes: 1000 })).job_id).toBe(id);
      if (file === 'state.json' || file === 'output.log') {
        expect(cli(spool, ['show', id, '--json']).code, what).toBe(0);
        expect(cli(spool, ['logs', id, '--tail', '1000']).code, what).toBe(0);
      }
    }
    const listed = await ok(mcp, 'job_list', { limit: 100 });
    for (const { id } of cases) expect(listed.jobs.map((job: any) => job.job_id)).toContain(id);
    expect((await mcp.client.experimental.tasks.listTasks()).tasks).toEqual([]);
    // what a link pointed at was never written through
    expect(fs.readFileSync(outside, 'utf8')).toBe('not a job file\n');
    await queueGoesOn(spool, dirIn(spool, 'later'));
  }, 600_000);
});

describe('a worker that rewrites or deletes its own state.json', () => {
  it('is overwritten with the truth at its end, with the fault and the real exit status; never run twice', async () => {
    const spool = hostileSpool();
    const ledger = path.join(spool.work, 'ledger');
    const deletes = await startJob(spool, ['sh', '-c', `echo deletes >> ${ledger}; rm "$AGENT_ASYNC_JOB_DIR/state.json"; exit 3`], ['--cwd', dirIn(spool, 'a')]);
    const garbles = await startJob(spool, ['sh', '-c', `echo garbles >> ${ledger}; echo '{"status": "do' > "$AGENT_ASYNC_JOB_DIR/state.json"; exit 0`], ['--cwd', dirIn(spool, 'b')]);
    // a forged pending state with the attempt it ran as, then the runner killed: the new runner
    // must not take the job for an unstarted one while its supervisor still runs it (the forged
    // states are renamed into place: a write in place could be read half done, or land on a
    // file the supervisor has just replaced, and the test is about the lie, not those)
    const forge = [
      `echo forges >> ${ledger}`,
      `node -e 'const fs = require("fs"); const f = process.env.AGENT_ASYNC_JOB_DIR + "/state.json"; const s = JSON.parse(fs.readFileSync(f, "utf8")); fs.writeFileSync(f + ".t", JSON.stringify({ ...s, status: "pending", attempt: 1, seq: 99 })); fs.renameSync(f + ".t", f);'`,
      `kill -9 $(node -p 'JSON.parse(require("fs").readFileSync(process.env.AGENT_ASYNC_HOME + "/runner.json", "utf8")).pid')`,
      'sleep 3',
      'exit 0',
    ].join('; ');
    const forges = await startJob(spool, ['sh', '-c', forge], ['--cwd', dirIn(spool, 'c')]);
    const claims = await startJob(spool, ['sh', '-c', `echo claims-done >> ${ledger}; node -e 'const fs = require("fs"); const f = process.env.AGENT_ASYNC_JOB_DIR + "/state.json"; const s = JSON.parse(fs.readFileSync(f, "utf8")); fs.writeFileSync(f + ".t", JSON.stringify({ ...s, status: "done", result: { final_message: "all good", cumulative_usage: null } })); fs.renameSync(f + ".t", f);'; exit 5`], ['--cwd', dirIn(spool, 'd')]);

    expect(await endState(spool, deletes)).toMatchObject({ status: 'error', exit_code: 3, error: { code: 'bad_job_file', message: expect.stringContaining('state.json was deleted while the job ran') } });
    expect(await endState(spool, garbles)).toMatchObject({ status: 'error', exit_code: 0, error: { code: 'bad_job_file', message: expect.stringContaining('state.json was rewritten (not valid JSON)') } });
    const forged = await endState(spool, forges);
    expect(forged).toMatchObject({ status: 'error', exit_code: 0, attempt: 1, error: { code: 'bad_job_file', message: expect.stringContaining('it said status "pending", seq 99') } });
    // the lie is overwritten once the job really ends (a waiter may return on the lie meanwhile)
    const lied = await endState(spool, claims);
    expect(lied).toMatchObject({ status: 'error', exit_code: 5, error: { code: 'bad_job_file', message: expect.stringContaining('it said status "done"') } });
    expect(lied.result).toBeNull();
    for (const id of [deletes, garbles, forges, claims]) {
      assertSchemaValid(jobState(spool, id));
      expect(fs.readdirSync(path.join(spool.home, 'jobs', id)).filter((f) => f.startsWith('claim.'))).toEqual(['claim.1']);
    }
    expect(fs.readFileSync(ledger, 'utf8').trim().split('\n').sort()).toEqual(['claims-done', 'deletes', 'forges', 'garbles']);
    await queueGoesOn(spool, dirIn(spool, 'later'));
  });
});

function processesOfJob(id: string): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(`AGENT_ASYNC_JOB_ID=${id}`) && pidAlive(Number(name))) found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}

describe('a worker that leaves processes behind', () => {
  it('a setsid daemon, or one that forked twice, is stopped once the worker exits normally: a job leaves nothing behind', async () => {
    const spool = hostileSpool();
    const pids = path.join(spool.work, 'pids');
    const daemon = await startJob(spool, ['sh', '-c', `setsid sleep 120 & echo $! >> ${pids}; exit 0`], ['--cwd', dirIn(spool, 'a')]);
    // the grandchild leads no group and has left the tree: only its environment names the job
    const doubleFork = await startJob(spool, ['sh', '-c', `setsid sh -c 'sleep 120 & echo $! >> ${pids}' ; exit 0`], ['--cwd', dirIn(spool, 'b')]);
    const agent = await startShellAgent(spool, `setsid sleep 120 & echo $! >> ${pids}; echo answer`, dirIn(spool, 'c'));
    for (const id of [daemon, doubleFork, agent]) {
      expect(await waitJob(spool, id)).toMatchObject({ status: 'done', exit_code: 0 });
      expect(processesOfJob(id)).toEqual([]);
      // caught before its setsid it is still in the worker's group; after it, only its job id names it
      expect(jobNotes(spool, id)).toMatch(/left processes (in its group|outside it \(found by their job id\))[^;]*; stopping them/);
    }
    const started = fs.readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(started).toHaveLength(3);
    for (const pid of started) expect(pidAlive(pid)).toBe(false);
    await queueGoesOn(spool, dirIn(spool, 'later'));
  });

  it('a worker that ignores SIGTERM is killed at its limit and when cancelled, with its children', async () => {
    const spool = hostileSpool({ kill_grace_seconds: 1 });
    const pids = path.join(spool.work, 'pids');
    const stubborn = `trap '' TERM; sh -c "trap '' TERM; sleep 120" & echo $! >> ${pids}; while :; do sleep 1; done`;
    const limited = await startJob(spool, ['sh', '-c', stubborn], ['--timeout', '1s', '--cwd', dirIn(spool, 'a')]);
    const cancelled = await startJob(spool, ['sh', '-c', stubborn], ['--cwd', dirIn(spool, 'b')]);
    await until(() => jobState(spool, cancelled).worker !== null, 30_000, 'the second worker to run');
    expect(cli(spool, ['cancel', cancelled]).code).toBe(0);
    expect(await waitJob(spool, limited)).toMatchObject({ status: 'error', error: { code: 'timed_out' }, signal: 'SIGKILL' });
    expect(await waitJob(spool, cancelled)).toMatchObject({ status: 'cancelled', signal: 'SIGKILL' });
    for (const id of [limited, cancelled]) {
      expect(pidAlive(jobState(spool, id).worker.pid)).toBe(false);
      expect(processesOfJob(id)).toEqual([]);
    }
    for (const pid of fs.readFileSync(pids, 'utf8').trim().split('\n').map(Number)) expect(pidAlive(pid)).toBe(false);
    await queueGoesOn(spool, dirIn(spool, 'later'));
  });
});

describe('a worker with odd output', () => {
  it('closes stdout and stderr early and keeps running: the job ends when it exits, with its status', async () => {
    const spool = hostileSpool();
    const script = 'echo before; exec >&- 2>&-; sleep 1; exit 4';
    const exec = await startJob(spool, ['sh', '-c', script], ['--cwd', dirIn(spool, 'a')]);
    const agent = await startShellAgent(spool, script, dirIn(spool, 'b'));
    for (const id of [exec, agent]) {
      expect(await waitJob(spool, id)).toMatchObject({ status: 'error', exit_code: 4, error: { code: 'exit_nonzero' } });
      expect(cli(spool, ['logs', id]).stdout).toMatch(/^before\n/);
    }
    await queueGoesOn(spool, dirIn(spool, 'later'));
  });

  it('prints invalid UTF-8: its bytes are kept in output.log, and every answer is valid text and JSON', async () => {
    const spool = hostileSpool();
    const script = String.raw`printf 'ok \377\376 \303( \355\240\200 end\n'`;
    const exec = await startJob(spool, ['sh', '-c', script], ['--cwd', dirIn(spool, 'a')]);
    const agent = await startShellAgent(spool, script, dirIn(spool, 'b'));
    const mcp = await server(spool);
    for (const id of [exec, agent]) {
      expect(await waitJob(spool, id)).toMatchObject({ status: 'done' });
      const raw = fs.readFileSync(path.join(spool.home, 'jobs', id, 'output.log'));
      expect(raw.includes(Buffer.from([0xff, 0xfe]))).toBe(true);
      const page = await ok(mcp, 'job_output', { job_id: id });
      expect(page.data).toMatch(/^ok .*\uFFFD.* end\n$/);
      assertSchemaValid(jobState(spool, id));
    }
    expect(jobState(spool, agent).result.final_message).toMatch(/^ok .*\uFFFD.* end$/);
    await queueGoesOn(spool, dirIn(spool, 'later'));
  });

  it('prints a 200 MB line with no newline: the supervisor stays within 20 MB of what it used before', async () => {
    const spool = hostileSpool({ concurrency: 1, runner_idle_seconds: 120 });
    const first = await startShellAgent(spool, 'echo warm', spool.work);
    const warm = await waitJob(spool, first);
    expect(warm.status).toBe('done');
    const supervisor: number = warm.supervisor.pid;
    const peakKiB = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${supervisor}/status`, 'utf8'))![1]);
    const before = peakKiB();
    const id = await startShellAgent(spool, 'head -c 209715200 /dev/zero | tr "\\0" x; echo; echo the end', spool.work);
    const state = await endState(spool, id, 500_000);
    expect(state).toMatchObject({ status: 'done', exit_code: 0, result: { final_message: expect.stringMatching(/the end$/) } });
    // the same supervisor ran it (an idle one is reused), so its peak tells what the line cost
    expect(state.supervisor.pid).toBe(supervisor);
    const grownMiB = (peakKiB() - before) / 1024;
    console.log(`a 200 MB line: the supervisor's peak memory grew by ${grownMiB.toFixed(1)} MiB`);
    expect(grownMiB).toBeLessThan(20);
    expect(fs.statSync(path.join(spool.home, 'jobs', id, 'output.log')).size).toBeGreaterThan(200 * 1024 * 1024);
    expect(jobNotes(spool, id)).toMatch(/1 line\(s\) longer than 4194304 bytes were kept in output.log but not parsed/);
    fs.rmSync(path.join(spool.home, 'jobs', id, 'output.log'));
    await queueGoesOn(spool, dirIn(spool, 'later'));
  }, 600_000);

  it('reports a 3.5 MB final message: state.json and result.md keep its first 256 KiB and say so', async () => {
    const emit = 'process.stdout.write(JSON.stringify({ type: "done", result: { text: "y".repeat(3_500_000) } }) + "\\n")';
    const spool = hostileSpool({
      agents: {
        big: {
          command: ['node', '-e', emit, '{prompt}'],
          output: 'jsonl',
          jsonl: { final_message: { path: 'result.text', where: { type: 'done' } } },
        },
      },
    });
    const started = cli(spool, ['start', 'big', 'say a lot']);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    const state = await waitJob(spool, id);
    expect(state.status).toBe('done');
    const message: string = state.result.final_message;
    expect(message.startsWith('y'.repeat(256 * 1024))).toBe(true);
    expect(message).toMatch(/\[agent-async kept the first 262144 of 3500000 bytes of this message; the whole stream is in output\.log\]$/);
    expect(fs.statSync(path.join(spool.home, 'jobs', id, 'state.json')).size).toBeLessThan(300 * 1024);
    expect(fs.readFileSync(path.join(spool.home, 'jobs', id, 'result.md'), 'utf8')).toBe(`${message}\n`);
    expect(readJson(path.join(spool.home, 'jobs', id, 'exit.json'))).toMatchObject({ exit_code: 0 });
    await queueGoesOn(spool, dirIn(spool, 'later'));
  });
});
