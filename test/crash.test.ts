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
  makeSpool,
  pidAlive,
  readJson,
  sleep,
} from './helpers/spool.js';

afterAll(cleanupSpools);

function collect(child: ReturnType<typeof spawn>): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('close', () => resolve(out));
  });
}

describe('crash safety', () => {
  it('4 processes submit 100 jobs each while the runner is SIGKILLed every few seconds', async () => {
    const spool = makeSpool({ concurrency: 2, runner_idle_seconds: 5 });
    const ledger = path.join(spool.work, 'ledger');
    const startedAt = Date.now();

    const reader = spawn(process.execPath, [path.join(ROOT, 'test/helpers/state-reader.mjs'), spool.home], { env: spool.env });
    const readerOut = collect(reader);
    const submitters = [0, 1, 2, 3].map((n) =>
      spawn(process.execPath, [path.join(ROOT, 'test/helpers/submitter.mjs'), '100', ledger, path.join(spool.work, `s${n}`), '120'], {
        env: spool.env,
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    const outputs = submitters.map(collect);
    let submitting = true;
    void Promise.all(outputs).then(() => (submitting = false));

    const killed: number[] = [];
    let killsWhileSubmitting = 0;
    while (submitting || killed.length < 3) {
      await sleep(1000 + Math.random() * 1500);
      const info = fs.existsSync(path.join(spool.home, 'runner.json')) ? readJson(path.join(spool.home, 'runner.json')) : undefined;
      if (info && info.state === 'leading' && pidAlive(info.pid)) {
        process.kill(info.pid, 'SIGKILL');
        killed.push(info.pid);
        if (submitting) killsWhileSubmitting += 1;
      }
      if (Date.now() - startedAt > 120_000) break;
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
