import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

    // a forked child that exits under a parent that never reaps it stays a zombie until the parent ends
    // (perl, not sh: a shell may reap its background job itself before it execs)
    const parent = spawn('perl', ['-e', '$| = 1; my $pid = fork() // die; exit 0 unless $pid; print "$pid\n"; sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const zombie = Number(await new Promise<string>((resolve, reject) => {
        parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()));
        parent.once('error', (error) => reject(new Error(`this test needs perl (Debian: perl-base): ${error.message}`)));
      }));
      expect(zombie).toBeGreaterThan(0);
      const deadline = Date.now() + 10_000;
      while (procState(zombie) !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(procState(zombie), 'the child is still there, as a zombie').toBe('Z');
      expect(liveness({ pid: zombie, start_time: null, host: os.hostname() })).toBe('dead');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}
