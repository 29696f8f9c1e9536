import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
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

  it('to a job that does not exist says so and leaves nothing', async () => {
    const job = jobIn('running', false);
    const missing = newJobId();
    await expect(jobs.notifyDone(job.ctx, { job_id: missing, summary: 'x' })).rejects.toThrow(`job_id "${missing}": no such job`);
    expect(fs.existsSync(path.join(job.ctx.paths.jobs, missing))).toBe(false);
  });
});
