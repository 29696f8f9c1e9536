import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupSpools, cli, jobState, makeSpool, startJob, until, waitJob } from './helpers/spool.js';

/** The live monitor, driven in tmux with send-keys and read with capture-pane. */

const socket = `aa-test-${process.pid}`;
const tmux = (...args: string[]) => spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
afterAll(() => {
  tmux('kill-server');
  cleanupSpools();
});

function screen(): string {
  return tmux('capture-pane', '-p', '-t', 'mon').stdout;
}

describe('agent-async status', () => {
  it('shows running, pending and recent jobs; selecting shows output; c cancels; q quits and restores the terminal', async () => {
    const spool = makeSpool({ concurrency: 1 });
    const ticking = await startJob(spool, ['sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.3; done']);
    const queued = await startJob(spool, ['sh', '-c', 'echo queued job ran']);
    const env = Object.entries(spool.env).filter(([k]) => k.startsWith('AGENT_ASYNC') || k === 'PATH').map(([k, v]) => `${k}=${v}`);
    // the monitor's exit status goes through a shell: tmux 3.3 sometimes leaves an exited pane process unreaped
    const exitFile = path.join(spool.work, 'status.exit');
    const started = tmux('new-session', '-d', '-s', 'mon', '-x', '130', '-y', '40', 'env', ...env, 'sh', '-c', '"$0" "$1" status; echo $? > "$2"', process.execPath, CLI, exitFile);
    expect(started.status, started.stderr).toBe(0);
    tmux('set-option', '-t', 'mon', 'remain-on-exit', 'on');

    const frame = await until(() => {
      const text = screen();
      return text.includes(ticking) && /tick \d+/.test(text) && text.includes(queued) ? text : undefined;
    }, 20_000, 'the monitor to show both jobs');
    expect(frame).toMatch(/runner pid \d+/);
    expect(frame).toMatch(new RegExp(`> ${ticking}  running`));
    expect(frame).toMatch(new RegExp(`${queued}  pending`));
    for (const line of frame.split('\n')) expect(line.length).toBeLessThanOrEqual(130);

    tmux('send-keys', '-t', 'mon', 'Enter');
    await until(() => screen().includes(`output of ${ticking}`) && /tick \d+/.test(screen()), 10_000, 'the output view');
    tmux('send-keys', '-t', 'mon', 'c');
    await until(() => screen().includes(`cancel job ${ticking}? y/n`), 10_000, 'the confirmation');
    tmux('send-keys', '-t', 'mon', 'y');
    await until(() => jobState(spool, ticking).status === 'cancelled', 20_000, 'the job to be cancelled');
    expect((await waitJob(spool, queued)).status).toBe('done');
    await until(() => /RECENT[\s\S]*done[\s\S]*cancelled/.test(screen()), 10_000, 'both jobs under RECENT');
    expect(screen()).toContain(`${ticking} cancelled`);

    tmux('send-keys', '-t', 'mon', 'q');
    await until(() => fs.existsSync(exitFile) && fs.readFileSync(exitFile, 'utf8').endsWith('\n'), 10_000, 'the monitor to exit');
    expect(fs.readFileSync(exitFile, 'utf8')).toBe('0\n');
    // the alternate screen is gone: what is left is the (empty) normal screen
    expect(screen()).not.toContain('RUNNING');
    expect(tmux('display-message', '-p', '-t', 'mon', '#{alternate_on}').stdout.trim()).toBe('0');
  });

  it('--once prints one frame and --json prints it as data', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['echo', 'hello']);
    await waitJob(spool, id);
    const once = cli(spool, ['status', '--once']);
    expect(once.code).toBe(0);
    expect(once.stdout).toMatch(new RegExp(`RECENT\\n  ${id}  done\\s+exec`));
    const json = JSON.parse(cli(spool, ['status', '--json']).stdout);
    expect(json).toMatchObject({ running: [], pending: [], recent: [{ job_id: id, status: 'done' }], concurrency: 4 });
    expect(path.isAbsolute(json.recent[0].cwd)).toBe(true);
  });
});
