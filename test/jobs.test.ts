import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as jobs from '../lib/jobs.js';
import { newJobId } from '../lib/spool/ids.js';
import { newJobState, transition } from '../lib/spool/state.js';
import { publishJob } from '../lib/spool/store.js';
import { cleanupSpools, cli, makeSpool, pidAlive, readJson, startJob, until, waitJob } from './helpers/spool.js';

afterAll(cleanupSpools);

function open(home: string, env: NodeJS.ProcessEnv): jobs.JobsContext {
  return jobs.openContext({ home, env });
}

describe('awaitAny', () => {
  it('reports every completion exactly once, together or one by one, never only the last', async () => {
    const t = makeSpool({ concurrency: 4 });
    const spool = open(t.home, t.env);
    const ids = await Promise.all([0.2, 0.2, 0.2, 0.6, 1.0].map(async (s, i) => {
      const cwd = fs.mkdtempSync(path.join(t.work, `w${i}`));
      return (await jobs.submit(spool, { agent: 'exec', argv: ['sleep', String(s)], cwd })).job_id;
    }));
    const reported: string[] = [];
    const batches: number[] = [];
    let open_ = ids;
    while (open_.length > 0) {
      const answer = await jobs.awaitAny(spool, { job_ids: open_, timeout_seconds: 30 });
      expect(answer.timed_out).toBe(false);
      expect(answer.finished.length).toBeGreaterThan(0);
      batches.push(answer.finished.length);
      reported.push(...answer.finished.map((s) => s.id));
      open_ = answer.open.map((s) => s.id);
      // let completions pile up between calls: they must still all be reported
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    expect(reported.sort()).toEqual([...ids].sort());
    expect(batches.some((n) => n > 1), `batches ${batches.join(',')}`).toBe(true);
  });

  it('returns at once a job that finished before the call', async () => {
    const t = makeSpool();
    const spool = open(t.home, t.env);
    const done = await startJob(t, ['true']);
    await waitJob(t, done);
    const running = await startJob(t, ['sleep', '30']);
    const answer = await jobs.awaitAny(spool, { job_ids: [running, done], timeout_seconds: 20 });
    expect(answer.timed_out).toBe(false);
    expect(answer.finished.map((s) => s.id)).toEqual([done]);
    expect(answer.open.map((s) => s.id)).toEqual([running]);
    cli(t, ['cancel', running]);
  });

  it('with no ids waits on every job pending or running now, and says when there is none', async () => {
    const t = makeSpool();
    const spool = open(t.home, t.env);
    const empty = await jobs.awaitAny(spool, { timeout_seconds: 5 });
    expect(empty.finished).toEqual([]);
    expect(empty.notices).toContain('no jobs to wait for: none is pending or running');
    const id = await startJob(t, ['sleep', '0.3']);
    const answer = await jobs.awaitAny(spool, { job_ids: [], timeout_seconds: 20 });
    expect(answer.finished.map((s) => s.id)).toEqual([id]);
  });
});

describe('wait', () => {
  it('clamps timeouts to 0..wait_max_seconds and says so; refuses what is not a number', async () => {
    const t = makeSpool({ wait_max_seconds: 3 });
    const spool = open(t.home, t.env);
    const id = await startJob(t, ['sleep', '30']);
    const huge = await jobs.wait(spool, { job_id: id, timeout_seconds: 1e9 });
    expect(huge.timed_out).toBe(true);
    expect(huge.notices).toEqual(['timeout_seconds 1000000000 is above the maximum of 3; used 3']);
    expect(huge.waited_seconds).toBeGreaterThanOrEqual(2.9);
    const negative = await jobs.wait(spool, { job_id: id, timeout_seconds: -5 });
    expect(negative.notices).toEqual(['timeout_seconds -5 is below 0; used 0 (check once, do not wait)']);
    expect(negative.timed_out).toBe(true);
    await expect(jobs.wait(spool, { job_id: id, timeout_seconds: 'soon' as any })).rejects.toThrow(/timeout_seconds: Invalid input: expected number, received string/);
    await expect(jobs.wait(spool, { job_id: '../../etc', timeout_seconds: 1 })).rejects.toThrow(/job_id: "..\/..\/etc" is not a job id/);
    cli(t, ['cancel', id]);
  });

  it('ends early when the caller aborts; the job keeps running', async () => {
    const t = makeSpool();
    const spool = open(t.home, t.env);
    const id = await startJob(t, ['sleep', '30']);
    await until(() => readJson(path.join(t.home, 'jobs', id, 'state.json')).worker, 20_000, 'the job to start');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const answer = await jobs.wait(spool, { job_id: id, timeout_seconds: 20 }, { signal: controller.signal });
    expect(answer.aborted).toBe(true);
    expect(answer.timed_out).toBe(false);
    const state = readJson(path.join(t.home, 'jobs', id, 'state.json'));
    expect(state.status).toBe('running');
    expect(pidAlive(state.worker.pid)).toBe(true);
    cli(t, ['cancel', id]);
  });

  it('works without any watcher (watch_mode poll, for network filesystems)', async () => {
    const t = makeSpool({ watch_mode: 'poll', poll_seconds: 0.2 });
    const spool = open(t.home, t.env);
    const id = await startJob(t, ['sleep', '0.5']);
    const answer = await jobs.wait(spool, { job_id: id, timeout_seconds: 20 });
    expect(answer.snapshot).toMatchObject({ kind: 'ok', state: { status: 'done' } });
    expect(answer.timed_out).toBe(false);
  });

  it('starts a runner again when the job is pending and none is alive', async () => {
    const t = makeSpool();
    const spool = open(t.home, t.env);
    const { request } = jobs.prepareJob(spool, { agent: 'exec', argv: ['true'], cwd: t.work });
    const state = newJobState(newJobId(), request);
    publishJob(spool.paths, state);
    expect(fs.existsSync(path.join(t.home, 'runner.json'))).toBe(false);
    const answer = await jobs.wait(spool, { job_id: state.id, timeout_seconds: 20 });
    expect(answer.snapshot).toMatchObject({ kind: 'ok', state: { status: 'done' } });
  });
});

describe('output pages', () => {
  it('pages output.log by byte offset without splitting a UTF-8 character; negative offsets read the tail', async () => {
    const t = makeSpool();
    const spool = open(t.home, t.env);
    const text = 'héllo wörld ✓ '.repeat(500);
    const id = await startJob(t, ['printf', '%s', text]);
    await waitJob(t, id);
    let offset = 0;
    let joined = '';
    let pages = 0;
    for (;;) {
      const page = jobs.readOutput(spool.paths, id, offset, 1000);
      expect(Buffer.byteLength(page.data)).toBeLessThanOrEqual(1000);
      expect(page.next_offset - page.offset).toBe(Buffer.byteLength(page.data));
      joined += page.data;
      offset = page.next_offset;
      pages += 1;
      if (page.eof) break;
    }
    expect(joined).toBe(text);
    expect(pages).toBeGreaterThan(5);
    const tail = jobs.readOutput(spool.paths, id, -10, 1000);
    expect(tail.eof).toBe(true);
    expect(text.endsWith(tail.data)).toBe(true);
    expect(Buffer.byteLength(tail.data)).toBeLessThanOrEqual(10);
    expect(tail.size).toBe(Buffer.byteLength(text));
  });

  it('logs -f follows a running job to its end', async () => {
    const t = makeSpool();
    const id = await startJob(t, ['sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.3; done']);
    const followed = cli(t, ['logs', id, '-f']);
    expect(followed.stdout).toBe('tick 1\ntick 2\ntick 3\n');
  });
});

describe('scale: listing and submitting never read every job', () => {
  it('with hundreds of finished jobs whose state.json would block any reader, ls, submit and the runner still work', async () => {
    const t = makeSpool();
    const spool = open(t.home, t.env);
    const { request } = jobs.prepareJob(spool, { agent: 'exec', argv: ['true'], cwd: t.work });
    const supervisor = { pid: 1, start_time: null, host: 'x' };
    const outcome = { status: 'done' as const, exit_code: 0, signal: null, error: null, notified: null, result: null, session_id: null, usage: null };
    const old: string[] = [];
    for (let i = 0; i < 600; i += 1) {
      let state = newJobState(newJobId(), request);
      state = transition(transition(state, { name: 'start', attempt: 1, epoch: null, supervisor }), { name: 'finish', outcome });
      publishJob(spool.paths, state);
      old.push(state.id);
    }
    const newest = old.slice(-20);
    // every older state.json becomes a named pipe: reading one would block forever
    const fifos = old.slice(0, -20).map((id) => path.join(t.home, 'jobs', id, 'state.json'));
    for (const file of fifos) fs.rmSync(file);
    for (let i = 0; i < fifos.length; i += 500) {
      expect(spawnSync('mkfifo', fifos.slice(i, i + 500)).status).toBe(0);
    }

    const ls = cli(t, ['ls', '--json', '--limit', '20']);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout).map((s: any) => s.id)).toEqual([...newest].reverse());
    const id = await startJob(t, ['echo', 'still fast']);
    expect((await waitJob(t, id)).status).toBe('done');
    expect(JSON.parse(cli(t, ['ls', '--json', '--limit', '1']).stdout)[0].id).toBe(id);
    expect(fs.readFileSync(path.join(t.home, 'runner.log'), 'utf8')).not.toMatch(/unreadable/);
  });
});
