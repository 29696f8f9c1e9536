import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { readDoneReport } from '../lib/runner/record-end.js';
import { beginDoneReport } from '../lib/spool/done-report.js';
import * as jobs from '../lib/jobs.js';
import { prepareSlot } from '../lib/spool/fsx.js';
import { newJobId } from '../lib/spool/ids.js';
import { DONE_HINT_SLOT } from '../lib/spool/layout.js';
import { newJobState, transition, type JobState } from '../lib/spool/state.js';
import { publishJob, writeState } from '../lib/spool/store.js';
import { cleanupSpools, makeSpool } from './helpers/spool.js';

afterAll(cleanupSpools);

// The report's own steps, without a runner: the job's state is written here, and where a test
// needs one, this process plays the job's supervisor (it watches the folder as one does).

const supervisor = { pid: process.pid, start_time: null, host: 'h' };
const worker = { pid: process.pid, pgid: process.pid, argv: ['sleep', '300'], start_time: null };

function jobIn(status: 'pending' | 'running' | 'done', withSlot: boolean) {
  const t = makeSpool();
  const ctx = jobs.openContext({ home: t.home, env: t.env });
  const { request } = jobs.prepareJob(ctx, { agent: 'exec', argv: ['sleep', '300'], cwd: t.work });
  let state: JobState = newJobState(newJobId(), request);
  if (status !== 'pending') state = transition(transition(state, { name: 'start', attempt: 1, epoch: null, supervisor }), { name: 'record_worker', worker });
  if (status === 'done') state = transition(state, { name: 'finish', outcome: { status: 'done', exit_code: 0, signal: null, error: null, notified: null, result: null, session_id: null, usage: null } });
  publishJob(ctx.paths, state);
  const folder = path.join(t.home, 'jobs', state.id);
  if (withSlot) prepareSlot(path.join(folder, DONE_HINT_SLOT));
  return { ctx, state, folder, file: (name: string) => path.join(folder, name) };
}

/** Plays the job's supervisor: on the done hint, records the end from it (once). */
function recordHints(ctx: jobs.JobsContext, state: JobState, folder: string): { hintIno: () => number | null; close: () => void } {
  let hintIno: number | null = null;
  const watcher = fs.watch(folder, (_event, name) => {
    if (name !== '.done-hint' || hintIno !== null) return;
    const hint = path.join(folder, '.done-hint');
    const seen = fs.lstatSync(hint, { throwIfNoEntry: false });
    if (!seen) return;
    hintIno = seen.ino;
    const notified = { summary: fs.readFileSync(hint, 'utf8').trim(), at: new Date().toISOString() };
    const outcome = { status: 'done' as const, exit_code: null, signal: null, error: null, notified, result: null, session_id: null, usage: null };
    writeState(ctx.paths, transition(state, { name: 'notify_done', outcome, worker }), 'folder');
  });
  return { hintIno: () => hintIno, close: () => watcher.close() };
}

/**
 * Begins a report while `hook` runs just before or after the notifier's write into the taken
 * slot (the one write to a file descriptor that the delivery makes): what a worker holding the
 * slot, or racing it, could do at that moment. The hook must run, or the test proves nothing.
 */
function beginWithWriteHook(job: ReturnType<typeof jobIn>, summary: string, when: 'before' | 'after', hook: () => void): ReturnType<typeof beginDoneReport> {
  const real = fs.writeSync;
  let ran = 0;
  // once: at the first write (a write made again after the hook's move is the notifier's own)
  const spy = vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, ...rest: unknown[]) => {
    const first = ran === 0;
    if (first && when === 'before') {
      hook();
      ran += 1;
    }
    const written = (real as (...args: unknown[]) => number)(fd, ...rest);
    if (first && when === 'after') {
      hook();
      ran += 1;
    }
    return written;
  }));
  try {
    return beginDoneReport(job.ctx.paths, job.state.id, summary);
  } finally {
    spy.mockRestore();
    expect(ran).toBe(1);
  }
}

describe('a done report made outside the worker (notify-done, agent_notify_done)', () => {
  it('goes into the slot its supervisor made; once the end is recorded no `done` file is written, and nothing is left behind', async () => {
    const job = jobIn('running', true);
    const slotIno = fs.statSync(job.file(DONE_HINT_SLOT)).ino;
    const played = recordHints(job.ctx, job.state, job.folder);
    try {
      const answer = await jobs.notifyDone(job.ctx, { job_id: job.state.id, summary: 'all tests pass' });
      expect(answer.accepted).toBe(true);
    } finally {
      played.close();
    }
    // the hint was the slot's own file: nothing was made while the report was on its way
    expect(played.hintIno()).toBe(slotIno);
    expect(JSON.parse(fs.readFileSync(job.file('state.json'), 'utf8'))).toMatchObject({ status: 'done', notified: { summary: 'all tests pass' } });
    expect(fs.readdirSync(job.folder).filter((name) => name.startsWith('.') || name === 'done')).toEqual([]);
  });

  it('that no supervisor records (none runs the job) is written as the durable `done` file', async () => {
    for (const withSlot of [true, false]) {
      const job = jobIn('running', withSlot);
      const answer = await jobs.notifyDone(job.ctx, { job_id: job.state.id, summary: 'finished' });
      expect(answer.accepted).toBe(true);
      expect(fs.readFileSync(job.file('done'), 'utf8')).toBe('finished');
      expect(fs.readdirSync(job.folder).filter((name) => name.startsWith('.'))).toEqual([]);
      expect(JSON.parse(fs.readFileSync(job.file('state.json'), 'utf8')).status).toBe('running');
    }
  });

  it('to a job that ended, or has not started, is refused and takes its hint back, even when a slot was there to fill', async () => {
    const ended = jobIn('done', true);
    const answer = await jobs.notifyDone(ended.ctx, { job_id: ended.state.id, summary: 'late' });
    expect(answer).toMatchObject({ accepted: false, message: `job ${ended.state.id} already ended (done); nothing to do` });
    expect(fs.readdirSync(ended.folder).filter((name) => name.startsWith('.') || name === 'done')).toEqual([]);

    const pending = jobIn('pending', true);
    await expect(jobs.notifyDone(pending.ctx, { job_id: pending.state.id, summary: 'early' })).rejects.toThrow(/job_id .*: the job has not started yet, so it cannot be done; cancel it instead/);
    expect(fs.readdirSync(pending.folder).filter((name) => name.startsWith('.') || name === 'done')).toEqual([]);
    expect(JSON.parse(fs.readFileSync(pending.file('state.json'), 'utf8')).status).toBe('pending');
  });

  it('that arrives as the job ends another way is answered as not recorded, with the end that was', async () => {
    const job = jobIn('running', true);
    // the job is cancelled just as the report comes: its supervisor records the cancel, not the report
    const watcher = fs.watch(job.folder, (_event, name) => {
      if (name !== '.done-hint' || !fs.existsSync(job.file('.done-hint'))) return;
      watcher.close();
      const outcome = { status: 'cancelled' as const, exit_code: null, signal: 'SIGTERM', error: null, notified: null, result: null, session_id: null, usage: null };
      writeState(job.ctx.paths, transition(job.state, { name: 'finish', outcome, worker }), 'folder');
    });
    const answer = await jobs.notifyDone(job.ctx, { job_id: job.state.id, summary: 'too late' });
    watcher.close();
    expect(answer).toMatchObject({ accepted: false, state: { status: 'cancelled' }, message: `job ${job.state.id} ended (cancelled) before the report was recorded; nothing to do` });
    expect(fs.readdirSync(job.folder).filter((name) => name.startsWith('.') || name === 'done')).toEqual([]);
  });

  it('to a job that does not exist says so and leaves nothing', async () => {
    const job = jobIn('running', false);
    const missing = newJobId();
    await expect(jobs.notifyDone(job.ctx, { job_id: missing, summary: 'x' })).rejects.toThrow(`job_id "${missing}": no such job`);
    expect(fs.existsSync(path.join(job.ctx.paths.jobs, missing))).toBe(false);
  });
});

describe('the hint written into the slot', () => {
  it('carries the time of the report, not the time the slot was made (an empty summary writes no byte)', () => {
    const job = jobIn('running', true);
    // the supervisor made the slot when the worker had run 25 ms; the report comes an hour later
    const madeAt = new Date(Date.now() - 3600_000);
    fs.utimesSync(job.file(DONE_HINT_SLOT), madeAt, madeAt);
    const before = Date.now();
    const delivery = beginDoneReport(job.ctx.paths, job.state.id, '');
    try {
      expect(delivery.hinted).toBe(true);
      // what the supervisor records as notified.at
      const report = readDoneReport(job.ctx.paths, job.state.id, true);
      expect(report).not.toBeNull();
      expect(Date.parse(report!.at)).toBeGreaterThanOrEqual(before - 1000);
    } finally {
      delivery.withdraw();
    }
  });

  it('holds exactly the summary when the worker writes into the slot between its check and the write', () => {
    const job = jobIn('running', true);
    const delivery = beginWithWriteHook(job, 'ok', 'before', () => {
      // the worker, holding the slot open from before, appends as the notifier writes
      const taken = fs.readdirSync(job.folder).find((name) => /^\.\.done-hint\.\d+\./.test(name))!;
      fs.appendFileSync(path.join(job.folder, taken), 'FORGED-TAIL-FROM-THE-WORKER');
    });
    try {
      expect(delivery.hinted).toBe(true);
      expect(fs.readFileSync(job.file('.done-hint'), 'utf8')).toBe('ok');
    } finally {
      delivery.withdraw();
    }
  });

  it('is the file the notifier wrote: one the worker renamed over the taken slot between its write and its rename is not published as the hint', () => {
    const job = jobIn('running', true);
    const forged = job.file('forged');
    fs.writeFileSync(forged, 'forged by the worker');
    const delivery = beginWithWriteHook(job, 'the real summary', 'after', () => {
      // the worker swaps the taken slot (now the notifier's temp file) once it is written
      const taken = fs.readdirSync(job.folder).find((name) => /^\.\.done-hint\.\d+\./.test(name))!;
      fs.renameSync(forged, path.join(job.folder, taken));
    });
    try {
      // written again through a file of its own
      expect(delivery.hinted).toBe(true);
      expect(fs.readFileSync(job.file('.done-hint'), 'utf8')).toBe('the real summary');
    } finally {
      delivery.withdraw();
    }
  });

  it('that its supervisor recorded before the state was read is accepted, whatever the summary holds', async () => {
    const job = jobIn('running', true);
    const summary = 'fixed \ud800 the parser'; // a lone surrogate is valid in JSON (an MCP call)
    const real = fs.renameSync;
    const spy = vi.spyOn(fs, 'renameSync').mockImplementation(((from: fs.PathLike, to: fs.PathLike) => {
      real(from, to);
      if (!String(to).endsWith('/.done-hint')) return;
      // a quick supervisor: records the end from the hint before the notifier reads the state
      const report = readDoneReport(job.ctx.paths, job.state.id, true)!;
      const outcome = { status: 'done' as const, exit_code: null, signal: null, error: null, notified: report, result: null, session_id: null, usage: null };
      writeState(job.ctx.paths, transition(job.state, { name: 'notify_done', outcome, worker }), 'folder');
    }));
    let answer;
    try {
      answer = await jobs.notifyDone(job.ctx, { job_id: job.state.id, summary });
    } finally {
      spy.mockRestore();
    }
    // the job ended on this very report
    expect(JSON.parse(fs.readFileSync(job.file('state.json'), 'utf8')).status).toBe('done');
    expect(answer.accepted).toBe(true);
  });
});
