import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cleanupSpools,
  cliAsync,
  jobState,
  makeSpool,
  pidAlive,
  readJson,
  spoolProcesses,
  startJob,
  until,
  waitJob,
  type TestSpool,
} from '../helpers/spool.js';

/**
 * A runner paused for longer than the lock's staleness (a laptop lid closed, SIGSTOP): another
 * runner takes over meanwhile, and the old one, resumed, must leave the new one's lock alone.
 * A ledger proves that no job ran twice, and a sampler that a runner leads at every moment
 * after the takeover.
 */

afterAll(cleanupSpools);

interface Sample {
  at: number;
  pid: number | null;
  leading: boolean;
}

/** Samples every 50 ms who leads: runner.json says leading, its process lives, and runner.lock/ is there. */
function sampleLeadership(spool: TestSpool): { samples: Sample[]; stop: () => void } {
  const samples: Sample[] = [];
  const timer = setInterval(() => {
    let info: any = null;
    try {
      info = readJson(path.join(spool.home, 'runner.json'));
    } catch {
      // being replaced
    }
    const lock = fs.existsSync(path.join(spool.home, 'runner.lock'));
    const leading = info !== null && info.state === 'leading' && pidAlive(info.pid) && lock;
    samples.push({ at: Date.now(), pid: info?.pid ?? null, leading });
  }, 50);
  return { samples, stop: () => clearInterval(timer) };
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

async function ledgerJob(spool: TestSpool, ledger: string, cwd: string, extra = ''): Promise<string> {
  return await startJob(spool, ['sh', '-c', `echo "$AGENT_ASYNC_JOB_ID" >> ${ledger}${extra}`], ['--cwd', cwd]);
}

async function pausedLeaderExperiment(withTree: boolean): Promise<void> {
  const spool = makeSpool({ concurrency: 2, runner_idle_seconds: 300 });
  const ledger = path.join(spool.work, 'ledger');
  const cwdA = fs.mkdtempSync(path.join(spool.work, 'a'));
  const cwdB = fs.mkdtempSync(path.join(spool.work, 'b'));
  const ids: string[] = [];
  const first = await ledgerJob(spool, ledger, cwdB);
  ids.push(first);
  expect((await waitJob(spool, first)).status).toBe('done');
  const old = readJson(path.join(spool.home, 'runner.json'));

  let paused = [old.pid as number];
  let long: string | undefined;
  if (withTree) {
    // a job in flight: its supervisor and worker are paused with the runner
    const gate = path.join(spool.work, 'gate');
    long = await ledgerJob(spool, ledger, cwdA, `; while [ ! -e ${gate} ]; do sleep 0.05; done`);
    ids.push(long);
    await until(() => jobState(spool, long!).worker !== null, 30_000, 'the long job to run');
    paused = spoolProcesses(spool.home);
    expect(paused).toContain(jobState(spool, long).supervisor.pid);
    expect(paused).toContain(jobState(spool, long).worker.pid);
    signalAll(paused, 'SIGSTOP');
    fs.writeFileSync(gate, '');
  } else {
    signalAll(paused, 'SIGSTOP');
  }

  try {
    // a waiter keeps asking for a runner: one starts once the paused runner's lock is stale
    const during: string[] = [];
    for (let i = 0; i < 3; i += 1) during.push(await ledgerJob(spool, ledger, cwdB));
    ids.push(...during);
    const waited = await cliAsync(spool, ['wait', ...during, '--timeout', '120s', '--json']);
    expect(JSON.parse(waited.stdout).open).toEqual([]);
    const next = readJson(path.join(spool.home, 'runner.json'));
    expect(next.pid).not.toBe(old.pid);
    expect(next.epoch).toBe(old.epoch + 1);

    const sampler = sampleLeadership(spool);
    signalAll(paused, 'SIGCONT');
    paused = [];
    await until(() => !pidAlive(old.pid), 30_000, 'the resumed runner to step down');
    // from here on only asynchronous calls, so the sampler samples all along
    const after: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const started = await cliAsync(spool, ['start', 'exec', '--cwd', cwdB, '--', 'sh', '-c', `echo "$AGENT_ASYNC_JOB_ID" >> ${ledger}`]);
      after.push(started.stdout.trim());
    }
    ids.push(...after);
    const awaited = await cliAsync(spool, ['wait', ...(long ? [long] : []), ...after, '--timeout', '120s', '--json']);
    expect(JSON.parse(awaited.stdout).open).toEqual([]);
    sampler.stop();

    // a runner led at every moment after the takeover: the new one, all along
    expect(sampler.samples.length).toBeGreaterThan(0);
    expect(sampler.samples.filter((sample) => !sample.leading || sample.pid !== next.pid)).toEqual([]);
    expect(readJson(path.join(spool.home, 'runner.json'))).toMatchObject({ pid: next.pid, epoch: next.epoch, state: 'leading' });
    const log = fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8');
    expect(log).toMatch(new RegExp(`runner\\[${old.pid}\\] not releasing .*runner\\.lock: another runner holds it now`));
    expect(log).not.toMatch(new RegExp(`runner\\[${next.pid}\\] stopping`));
    // no job twice, none lost
    expect(fs.readFileSync(ledger, 'utf8').trim().split('\n').sort()).toEqual([...ids].sort());
    for (const id of ids) expect(jobState(spool, id)).toMatchObject({ status: 'done', attempt: 1 });
  } finally {
    signalAll(paused, 'SIGCONT');
  }
}

describe('a runner paused longer than the lock staleness, then resumed', () => {
  it('alone: it steps down and leaves the new leader its lock', async () => {
    await pausedLeaderExperiment(false);
  }, 300_000);

  it('with its supervisors and workers: they finish their jobs, nothing runs twice, the new leader keeps leading', async () => {
    await pausedLeaderExperiment(true);
  }, 300_000);
});
