import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spoolPaths } from '../lib/spool/layout.js';
import { readState } from '../lib/spool/store.js';
import { FAST_CONFIG, cli, jobState, killSpoolProcesses, pidAlive, startJob, until, waitJob, type TestSpool } from './helpers/spool.js';
import { SHELL_AGENT, closeServers, server } from './helpers/hostile.js';
import { call, errorText } from './helpers/mcp.js';

/**
 * A full disk, for real: the spool lives on a small tmpfs this test mounts (CI runs as root).
 * Where no tmpfs can be mounted, the test is skipped and its name says why.
 */

const MOUNT = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-full-'));
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', MOUNT], { encoding: 'utf8' });
const skipReason = mounted.status === 0 ? null : `cannot mount a tmpfs here (${(mounted.stderr || String(mounted.error ?? mounted.status)).trim()})`;
afterAll(async () => {
  await closeServers();
  killSpoolProcesses(path.join(MOUNT, 'spool'));
  if (skipReason === null) {
    await until(() => spawnSync('umount', [MOUNT]).status === 0, 20_000, 'the tmpfs to unmount');
  }
  fs.rmSync(MOUNT, { recursive: true, force: true });
});

function spoolOnTmpfs(): TestSpool {
  const home = path.join(MOUNT, 'spool');
  const work = path.join(MOUNT, 'work');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ ...FAST_CONFIG, concurrency: 1, runner_idle_seconds: 120, agents: { shell: SHELL_AGENT } }));
  const env: NodeJS.ProcessEnv = { ...process.env, AGENT_ASYNC_HOME: home };
  for (const key of Object.keys(env)) if (key.startsWith('AGENT_ASYNC_') && key !== 'AGENT_ASYNC_HOME') delete env[key];
  return { home, env, work };
}

const title = (what: string): string => (skipReason === null ? what : `${what} — skipped: ${skipReason}`);

describe('a full disk', () => {
  it.skipIf(skipReason !== null)(title('a worker that fills it keeps its exit status and the real cause; submits are refused clearly on both faces; the queue goes on'), async () => {
    const spool = spoolOnTmpfs();
    const gate = path.join(os.tmpdir(), `aa-full-gate-${process.pid}`);
    fs.rmSync(gate, { force: true });
    const mcp = await server(spool);
    const started = cli(spool, ['start', 'shell', '--cwd', spool.work, `while [ ! -e ${gate} ]; do sleep 0.05; done; cat /dev/zero > filler; echo disk filled; exit 3`]);
    expect(started.code, started.stderr).toBe(0);
    const filler = started.stdout.trim();
    const queued = await startJob(spool, ['sh', '-c', 'echo queued'], ['--cwd', spool.work]);
    const running = await until(() => {
      const state = jobState(spool, filler);
      return state.worker ? state : undefined;
    }, 30_000, 'the filler to run');

    // every write attempt in the job folder shows as a temp file there, even one that fails
    const seen: string[] = [];
    const watcher = fs.watch(path.join(spool.home, 'jobs', filler), (_event, name) => {
      if (name) seen.push(name);
    });
    try {
      fs.writeFileSync(gate, '');
      await until(() => !pidAlive(running.worker.pid), 60_000, 'the filler to exit');
      const terminalAttempt = `.state.json.${running.supervisor.pid}.`;
      await until(() => seen.some((name) => name.startsWith(terminalAttempt)), 60_000, 'the supervisor to try recording the end');
    } finally {
      watcher.close();
      fs.rmSync(gate, { force: true });
    }
    // the end could not be written, and is not lost: the supervisor holds it
    const held = readState(spoolPaths(spool.home), filler);
    expect(held).toMatchObject({ kind: 'ok', state: { status: 'running' } });
    expect(pidAlive(running.supervisor.pid)).toBe(true);

    const refused = cli(spool, ['start', 'exec', '--', 'true']);
    expect(refused.code).toBe(74);
    const message = `cannot write to the spool ${spool.home}: no space is left on its device (ENOSPC); 0 B free there. Free some space (agent-async gc removes finished jobs) and try again.`;
    expect(refused.stderr).toBe(`agent-async: ${message}\n`);
    expect(errorText(await call(mcp, 'agent_start', { agent: 'exec', argv: ['true'], cwd: spool.work }))).toBe(message);

    // a spool on a read-only filesystem (a second, empty tmpfs mounted read-only)
    const readOnlyMount = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-ro-'));
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m,mode=0700', 'tmpfs', readOnlyMount]).status).toBe(0);
    try {
      const readOnly = cli(spool, ['start', 'exec', '--', 'true'], { env: { AGENT_ASYNC_HOME: readOnlyMount } });
      expect(readOnly.code).toBe(74);
      expect(readOnly.stderr).toBe(`agent-async: cannot write to the spool ${readOnlyMount}: its filesystem is read-only (EROFS); 1.0 MiB free there. Mount it writable, or set AGENT_ASYNC_HOME to a folder on a writable disk.\n`);
    } finally {
      spawnSync('umount', [readOnlyMount]);
      fs.rmdirSync(readOnlyMount);
    }

    fs.rmSync(path.join(spool.work, 'filler'));
    const ended = await waitJob(spool, filler);
    expect(ended).toMatchObject({
      status: 'error',
      exit_code: 3,
      error: { code: 'exit_nonzero', hint: expect.stringContaining("the spool's disk was full when the job ended, so its end was recorded late") },
    });
    expect(ended.error.code).not.toBe('runner_lost');
    expect(JSON.parse(fs.readFileSync(path.join(spool.home, 'jobs', filler, 'exit.json'), 'utf8'))).toMatchObject({ exit_code: 3, reason: 'exited' });
    // the job queued behind it was given back while nothing could be written, and runs now, once
    expect(await waitJob(spool, queued)).toMatchObject({ status: 'done', attempt: 1 });
    const later = await startJob(spool, ['sh', '-c', 'echo later'], ['--cwd', spool.work]);
    expect(await waitJob(spool, later)).toMatchObject({ status: 'done' });
  }, 300_000);
});
