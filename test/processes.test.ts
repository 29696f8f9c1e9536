import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { liveness, selfIdentity } from '../lib/runner/processes.js';

describe('process liveness', () => {
  it('tells a live process from an exited one, a reused pid and a zombie; another host is unknown', async () => {
    const me = selfIdentity();
    expect(liveness(me)).toBe('alive');
    expect(liveness({ ...me, start_time: null })).toBe('alive');
    expect(liveness({ ...me, start_time: `${me.start_time}0` }), 'the same pid with another start time is a reused pid').toBe('dead');
    expect(liveness({ ...me, host: `${os.hostname()}-elsewhere` })).toBe('unknown');

    const exited = spawnSync('true').pid;
    expect(liveness({ pid: exited, start_time: null, host: os.hostname() })).toBe('dead');

    // `true` exits in the background under a parent that never reaps it: a zombie
    const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
      const deadline = Date.now() + 5_000;
      while (liveness({ pid: zombie, start_time: null, host: os.hostname() }) !== 'dead' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(liveness({ pid: zombie, start_time: null, host: os.hostname() })).toBe('dead');
      const state = spawnSync('cat', [`/proc/${zombie}/stat`], { encoding: 'utf8' }).stdout;
      expect(state.slice(state.lastIndexOf(')') + 2, state.lastIndexOf(')') + 3), 'the process is still there, as a zombie').toBe('Z');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
