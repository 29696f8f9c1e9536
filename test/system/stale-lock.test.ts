import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { claimStatus, isRunnerLost, pendingClaimStatus } from '../../lib/runner/reconcile.js';
import { spoolPaths } from '../../lib/spool/layout.js';
import { transition } from '../../lib/spool/state.js';
import { claimDir, readState } from '../../lib/spool/store.js';
import { ROOT, cleanupSpools, cliAsync, collectOutput, makeSpool, until, type TestSpool } from '../helpers/spool.js';

afterAll(cleanupSpools);

const RUNNER = path.join(ROOT, 'dist/runner/runner-entry.js');

/** A runner.lock and runner.json as a SIGKILLed runner leaves them: an old lock, a dead pid. */
function leaveStaleLock(spool: TestSpool): void {
  const dead = spawnSync('true').pid;
  const lock = path.join(spool.home, 'runner.lock');
  fs.mkdirSync(lock, { recursive: true });
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  fs.writeFileSync(path.join(spool.home, 'runner.json'), JSON.stringify({
    schema_version: 1, pid: dead, start_time: null, host: os.hostname(),
    started_at: old.toISOString(), epoch: 7, version: '0.0.0', state: 'leading',
  }));
}

describe('stale-lock race (moxystudio/node-proper-lockfile#121)', () => {
  it('several runners started at once against a stale runner.lock never start a job twice', async () => {
    const leadersPerTrial: number[] = [];
    for (let trial = 0; trial < 8; trial += 1) {
      const spool = makeSpool({ concurrency: 4, runner_idle_seconds: 1 });
      const ledger = path.join(spool.work, 'ledger');
      const published = spawnSync(process.execPath, [path.join(ROOT, 'test/helpers/publish-pending.mjs'), '40', ledger, path.join(spool.work, 'c')], {
        env: spool.env, encoding: 'utf8',
      });
      const ids: string[] = JSON.parse(published.stdout);

      // Start the runners frozen, leave the stale lock, then let them all go at one instant.
      const runners = Array.from({ length: 6 }, () => {
        const child = spawn(process.execPath, [RUNNER], { env: spool.env, stdio: ['ignore', 'ignore', 'pipe'] });
        process.kill(child.pid!, 'SIGSTOP');
        return child;
      });
      leaveStaleLock(spool);
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const child of runners) process.kill(child.pid!, 'SIGCONT');
      const logs = runners.map((child) => collectOutput(child, 'stderr'));
      const waited = await cliAsync(spool, ['wait', ...ids, '--timeout', '120s', '--json']);
      expect(JSON.parse(waited.stdout).open).toEqual([]);
      const runnerLogs = await Promise.all(logs);
      leadersPerTrial.push(runnerLogs.filter((log) => /leading \(epoch/.test(log)).length);

      const runs = fs.readFileSync(ledger, 'utf8').trim().split('\n');
      expect(runs.sort()).toEqual([...ids].sort());
      const states = ids.map((id) => JSON.parse(fs.readFileSync(path.join(spool.home, 'jobs', id, 'state.json'), 'utf8')));
      expect(states.every((s) => s.status === 'done' && s.attempt === 1)).toBe(true);
    }
    console.log(`stale-lock race: runners that believed they led, per trial: ${leadersPerTrial.join(', ')}`);
  }, 300_000);
});

describe('two runners that both believe they lead', () => {
  it('still start every job exactly once (the claim decides, not the lease)', async () => {
    const spool = makeSpool({ concurrency: 4, runner_idle_seconds: 5 });
    const ledger = path.join(spool.work, 'ledger');
    const rogues = [1, 2, 3].map((epoch) => spawn(process.execPath, [path.join(ROOT, 'test/helpers/rogue-runner.mjs'), String(epoch)], {
      env: spool.env, stdio: ['ignore', 'ignore', 'pipe'],
    }));
    const logs = rogues.map((child) => collectOutput(child, 'stderr'));
    // all three lead (and stay up, idle, for 5 s) before the jobs arrive
    let leading = 0;
    for (const rogue of rogues) rogue.stderr.on('data', (chunk: Buffer) => (leading += (chunk.toString().match(/leading/g) ?? []).length));
    await until(() => leading === 3, 60_000, 'the three rogue runners to lead');
    const published = spawnSync(process.execPath, [path.join(ROOT, 'test/helpers/publish-pending.mjs'), '120', ledger, path.join(spool.work, 'c'), '0.3'], {
      env: spool.env, encoding: 'utf8',
    });
    const ids: string[] = JSON.parse(published.stdout);
    // The rogue that wins the first claims tends to win all of them (it learns first that a slot
    // is free). To see them compete, the first winner is frozen until another has claimed a job.
    const claimEpoch = (id: string): number | null => {
      try {
        return JSON.parse(fs.readFileSync(path.join(spool.home, 'jobs', id, 'claim.1', 'owner.json'), 'utf8')).epoch;
      } catch {
        return null;
      }
    };
    const claimedEpochs = (): Set<number> => new Set(ids.map(claimEpoch).filter((epoch) => epoch !== null));
    await until(() => claimedEpochs().size > 0, 60_000, 'a first claim');
    const first = [...claimedEpochs()][0]!;
    rogues[first - 1]!.kill('SIGSTOP');
    try {
      await until(() => claimedEpochs().size > 1, 60_000, 'another rogue to claim a job while the first is frozen');
    } finally {
      rogues[first - 1]!.kill('SIGCONT');
    }
    const waited = await cliAsync(spool, ['wait', ...ids, '--timeout', '120s', '--json']);
    expect(JSON.parse(waited.stdout).open).toEqual([]);
    const runs = fs.readFileSync(ledger, 'utf8').trim().split('\n');
    expect(runs.sort()).toEqual([...ids].sort());
    const supervisorsPerRogue = (await Promise.all(logs)).map((log) => (log.match(/leading/g) ?? []).length);
    expect(supervisorsPerRogue).toEqual([1, 1, 1]);
    expect(claimedEpochs().size, 'jobs were started by more than one of the rogue runners').toBeGreaterThan(1);
  }, 180_000);
});

describe('per-job claims', () => {
  it('a claimer or a supervisor in another PID namespace (a container with this host name) is never taken for dead', () => {
    const spool = makeSpool();
    const published = spawnSync(process.execPath, [path.join(ROOT, 'test/helpers/publish-pending.mjs'), '1', '/dev/null', spool.work], {
      env: spool.env, encoding: 'utf8',
    });
    const [id] = JSON.parse(published.stdout) as string[];
    const read = readState(spoolPaths(spool.home), id!);
    if (read.kind !== 'ok') throw new Error('the job was not published');
    const gone = { pid: spawnSync('true').pid, start_time: 'boot:0', host: os.hostname() };
    const here = { ...gone, pid_ns: fs.readlinkSync('/proc/self/ns/pid') };
    const elsewhere = { ...gone, pid_ns: 'pid:[1]' };
    const claimedBy = (who: typeof here) => [{ attempt: 1, owner: { role: 'supervisor' as const, ...who, epoch: null, at: new Date().toISOString() }, ageMs: 3_600_000 }];
    expect(claimStatus(claimedBy(here), read.state)).toEqual({ kind: 'free', nextAttempt: 2 });
    expect(claimStatus(claimedBy(elsewhere), read.state)).toEqual({ kind: 'held', attempt: 1 });
    const runningUnder = (who: typeof here) => transition(read.state, { name: 'start', attempt: 1, epoch: null, supervisor: who });
    expect(isRunnerLost(runningUnder(here))).toBe(true);
    expect(isRunnerLost(runningUnder(elsewhere))).toBe(false);
  });

  it('a claim whose owner.json is missing or half written counts as held while young, then as dead', () => {
    const spool = makeSpool();
    const paths = spoolPaths(spool.home);
    const published = spawnSync(process.execPath, [path.join(ROOT, 'test/helpers/publish-pending.mjs'), '1', '/dev/null', spool.work], {
      env: spool.env, encoding: 'utf8',
    });
    const [id] = JSON.parse(published.stdout) as string[];
    const read = readState(paths, id!);
    if (read.kind !== 'ok') throw new Error('the job was not published');
    const claim = claimDir(paths, id!, 1);
    fs.mkdirSync(claim);
    expect(pendingClaimStatus(paths, read.state)).toEqual({ kind: 'held', attempt: 1 });
    fs.writeFileSync(path.join(claim, 'owner.json'), '{"role": "superv'); // its writer is mid-write, or was killed
    expect(pendingClaimStatus(paths, read.state)).toEqual({ kind: 'held', attempt: 1 });
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(claim, old, old);
    expect(pendingClaimStatus(paths, read.state)).toEqual({ kind: 'free', nextAttempt: 2 });
  });

  it('8 processes racing to claim the same 200 jobs: each job is claimed exactly once', async () => {
    const spool = makeSpool();
    const barrier = path.join(spool.work, 'barrier');
    fs.mkdirSync(barrier);
    // Racer k walks the jobs from its own offset (k × 25) on. It claims the first job of its
    // stretch, says so, and goes on only when all eight have: so all eight are in the loop at
    // once, and the rest of every stretch is contested by whoever gets there.
    const script = `
      import fs from 'node:fs';
      import { claimJob } from '${ROOT}/dist/spool/store.js';
      import { spoolPaths } from '${ROOT}/dist/spool/layout.js';
      const paths = spoolPaths(process.env.AGENT_ASYNC_HOME);
      const ids = JSON.parse(process.argv[1]);
      const [barrier, k, racers] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
      const offset = k * (ids.length / racers);
      const order = [...ids.slice(offset), ...ids.slice(0, offset)];
      const owner = () => ({ role: 'runner', pid: process.pid, start_time: null, host: 'h', epoch: null, at: new Date().toISOString() });
      const won = [];
      order.forEach((id, i) => {
        if (claimJob(paths, id, 1, owner())) won.push(id);
        if (i > 0) return;
        fs.writeFileSync(barrier + '/' + k, '');
        const nap = new Int32Array(new SharedArrayBuffer(4));
        while (fs.readdirSync(barrier).length < racers) Atomics.wait(nap, 0, 0, 2);
      });
      process.stdout.write(JSON.stringify(won));`;
    const published = spawnSync(process.execPath, [path.join(ROOT, 'test/helpers/publish-pending.mjs'), '200', '/dev/null', spool.work], {
      env: spool.env, encoding: 'utf8',
    });
    const ids: string[] = JSON.parse(published.stdout);
    const racers = Array.from({ length: 8 }, (_, k) =>
      collectOutput(spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(ids), barrier, String(k), '8'], { env: spool.env }), 'stdout'));
    const perRacer: string[][] = (await Promise.all(racers)).map((out) => JSON.parse(out));
    expect(perRacer.flat().sort()).toEqual([...ids].sort());
    // each racer's first claim came before any other racer could reach that job
    perRacer.forEach((won, k) => expect(won, `racer ${k} lost the first job of its own stretch`).toContain(ids[k * 25]));
  });
});
