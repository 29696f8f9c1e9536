import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { liveness, selfIdentity } from '../lib/runner/processes.js';
import { ROOT, collectOutput, pidAlive } from './helpers/spool.js';

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

describe('stopping a job\'s processes', () => {
  // Each case runs in a process group of its own (a shell, a sentinel sleep and the node process
  // that asks, test/helpers/signal-child.mjs): should a signal reach the asker's group, its
  // parent or pid 0, that group dies, and nothing outside it. A CLI, an MCP server or a test
  // shares its group with the shell that started it, which a kill(-0) ends with everything in it.
  const CHILD = path.join(ROOT, 'test', 'helpers', 'signal-child.mjs');
  for (const which of ['group 0', 'own group', 'ancestor', 'zero and one']) {
    it(`leaves a target alone that names no process of a job (${which}): the asker and its group live on`, async () => {
      const exited = spawnSync('true').pid;
      const group = spawn('sh', ['-c', 'sleep 300 >/dev/null 2>&1 & echo "$!"; "$@"; echo "exit $?"', 'sh', process.execPath, CHILD, which, String(exited)], {
        detached: true, stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        const lines = (await collectOutput(group, 'stdout')).trim().split('\n');
        const sentinel = Number(lines[0]);
        // the shell says how the asker ended, unless a signal to the group ended the shell too
        expect(lines.find((line) => line.startsWith('exit ')), 'the asker and its shell were not killed').toBe('exit 0');
        expect(JSON.parse(lines.find((line) => line.startsWith('{'))!)).toEqual({ case: which, survivors: [] });
        expect(pidAlive(sentinel), `the sentinel (pid ${sentinel}) in the asker's group`).toBe(true);
      } finally {
        try {
          process.kill(-group.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
  }
});

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}
