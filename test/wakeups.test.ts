import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupSpools, makeSpool } from './helpers/spool.js';

afterAll(cleanupSpools);

function lines(child: ReturnType<typeof spawn>): AsyncIterator<string> {
  return readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
}

describe.each(['native', 'chokidar'])('lost wake-ups, %s watcher (chokidar drops a change that follows another within 50 ms)', (mode) => {
  it('200 jobs going running → terminal within 1–40 ms: every waiter in another process sees the terminal state', async () => {
    const spool = makeSpool();
    const writer = spawn(process.execPath, [path.join(ROOT, 'test/helpers/burst-writer.mjs'), '200', spool.work], {
      env: spool.env, stdio: ['pipe', 'pipe', 'inherit'],
    });
    const writerLines = lines(writer);
    const ids: string[] = JSON.parse((await writerLines.next()).value);
    expect(ids).toHaveLength(200);

    const waiters = [0, 1].map(() => spawn(process.execPath, // The safety poll (600 s) is far beyond the wait timeout (20 s), so only the watcher, the
      // read after arming and the trailing re-read can wake a waiter: a lost event fails the test.
      [path.join(ROOT, 'test/helpers/waiter.mjs'), JSON.stringify(ids), '20', '600', mode], {
      env: spool.env, stdio: ['ignore', 'pipe', 'inherit'],
    }));
    const waiterLines = waiters.map(lines);
    for (const it of waiterLines) expect((await it.next()).value).toBe('armed');
    writer.stdin.write('go\n');
    const summary = JSON.parse((await writerLines.next()).value);
    expect(summary.done).toBe(200);

    const lags: number[] = [];
    for (const it of waiterLines) {
      const results = JSON.parse((await it.next()).value);
      expect(results).toHaveLength(200);
      const missed = results.filter((r: any) => r.timed_out || (r.status !== 'done' && r.status !== 'error'));
      expect(missed, 'waiters that did not see the terminal state').toEqual([]);
      lags.push(...results.map((r: any) => r.lag_ms));
    }
    lags.sort((a, b) => a - b);
    console.log(`${mode}: wake-up lag over ${lags.length} waits: p50 ${lags[Math.floor(lags.length / 2)]} ms, max ${lags[lags.length - 1]} ms (gaps ${summary.minGap.toFixed(1)}–${summary.maxGap.toFixed(1)} ms)`);
  }, 120_000);
});
