import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  allStates,
  assertSchemaValid,
  cleanupSpools,
  cliAsync,
  collectOutput,
  makeSpool,
  pidAlive,
  readJson,
  sleep,
} from '../helpers/spool.js';

afterAll(cleanupSpools);

function killLeader(home: string): number | null {
  const file = path.join(home, 'runner.json');
  const info = fs.existsSync(file) ? readJson(file) : undefined;
  if (!info || info.state !== 'leading' || !pidAlive(info.pid)) return null;
  process.kill(info.pid, 'SIGKILL');
  return info.pid;
}

describe('crash safety', () => {
  it('4 processes submit 100 jobs each while the runner is SIGKILLed every few seconds', async () => {
    const spool = makeSpool({ concurrency: 2, runner_idle_seconds: 5 });
    const ledger = path.join(spool.work, 'ledger');
    const startedAt = Date.now();

    const reader = spawn(process.execPath, [path.join(ROOT, 'test/helpers/state-reader.mjs'), spool.home], { env: spool.env });
    const readerOut = collectOutput(reader, 'stdout');
    const submitters = [0, 1, 2, 3].map((n) =>
      spawn(process.execPath, [path.join(ROOT, 'test/helpers/submitter.mjs'), '100', ledger, path.join(spool.work, `s${n}`), '120'], {
        env: spool.env,
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    let submitted = 0;
    for (const child of submitters) child.stdout.on('data', (chunk: Buffer) => (submitted += chunk.toString().split('\n').length - 1));
    const outputs = submitters.map((child) => collectOutput(child, 'stdout'));
    let submitting = true;
    void Promise.all(outputs).then(() => (submitting = false));

    // while submitting, the leader is killed as the count passes 100, 200 and 300 jobs; then
    // every few seconds until it has been killed at least 3 times
    const killed: number[] = [];
    let killsWhileSubmitting = 0;
    let nextMark = 100;
    while (submitting || killed.length < 3) {
      if (Date.now() - startedAt > 120_000) break;
      if (submitting) {
        await sleep(50);
        if (submitted < nextMark) continue;
        const pid = killLeader(spool.home);
        if (pid === null) continue; // no leader right now: try again at once
        nextMark += 100;
        killed.push(pid);
        killsWhileSubmitting += 1;
      } else {
        await sleep(1000 + Math.random() * 1500);
        const pid = killLeader(spool.home);
        if (pid !== null) killed.push(pid);
      }
    }
    const ids = (await Promise.all(outputs)).join('').trim().split('\n');
    expect(ids).toHaveLength(400);
    expect(new Set(ids).size).toBe(400);

    // What a user would do next: wait for them (a wait restarts a runner that is gone).
    const waited = await cliAsync(spool, ['wait', ...ids, '--timeout', '240s', '--json']);
    reader.kill('SIGTERM');
    const reads = JSON.parse(await readerOut);
    const report = JSON.parse(waited.stdout);
    expect(report.open).toEqual([]);

    const states = allStates(spool);
    expect(states).toHaveLength(400);
    for (const state of states) assertSchemaValid(state);
    const byStatus: Record<string, number> = {};
    for (const state of states) byStatus[state.status] = (byStatus[state.status] ?? 0) + 1;
    const lost = states.filter((s) => s.status === 'error');
    for (const state of lost) {
      expect(state.error.code).toBe('runner_lost');
      expect(state.error.message).toMatch(/supervisor .* died/);
    }
    expect((byStatus.done ?? 0) + lost.length).toBe(400);

    const runs = fs.readFileSync(ledger, 'utf8').trim().split('\n');
    const counts = new Map<string, number>();
    for (const id of runs) counts.set(id, (counts.get(id) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1);
    expect(twice, 'jobs whose command ran more than once').toEqual([]);
    for (const state of states) if (state.status === 'done') expect(counts.get(state.id)).toBe(1);

    expect(reads.bad, JSON.stringify(reads.badSamples)).toBe(0);
    if (reads.hasJq) expect(reads.jqReads).toBeGreaterThan(0);
    else console.log('jq is not installed: the crash test read state.json with Node only');
    expect(reads.jqBad).toBe(0);
    expect(reads.reads).toBeGreaterThan(1000);
    expect(killsWhileSubmitting, fs.readFileSync(path.join(spool.home, 'runner.log'), 'utf8')).toBeGreaterThanOrEqual(2);

    const figures = {
      jobs: states.length,
      by_status: byStatus,
      runner_kills: killed.length,
      kills_while_submitting: killsWhileSubmitting,
      node_reads: reads.reads,
      bad_node_reads: reads.bad,
      jq_reads: reads.jqReads,
      bad_jq_reads: reads.jqBad,
      seconds: Math.round((Date.now() - startedAt) / 1000),
    };
    console.log(`crash test figures: ${JSON.stringify(figures)}`);
  }, 400_000);
});
