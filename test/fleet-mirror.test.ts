import { describe, expect, it } from 'vitest';
import { isSettled, mirrorSteps } from '../lib/runner/core/fleet-mirror.js';
import { newJobId } from '../lib/spool/ids.js';
import { newJobState, transition, type JobState, type Outcome, type Transition } from '../lib/spool/state.js';
import { jobRequest } from './helpers/job-request.mjs';

/** The pure rule of fleet mode's mirror: which queue transitions bring the queue's copy up to the local state. */
const supervisor = { pid: 4242, start_time: null, host: 'h1', pid_ns: null };
const worker = { pid: 5151, pgid: 5151, argv: ['true'], start_time: null };
const outcome = (status: 'done' | 'error' | 'cancelled', extra: Partial<Outcome> = {}): Outcome => ({
  status, exit_code: status === 'done' ? 0 : 1, signal: null, notified: null, result: { final_message: 'ok', cumulative_usage: null }, session_id: null, usage: null,
  error: status === 'error' ? { code: 'exit_nonzero', message: 'exit 1' } : null,
  ...extra,
} as Outcome);

function walk(state: JobState, ...changes: Transition[]): JobState {
  return changes.reduce((current, change) => transition(current, change), state);
}

const pending = (): JobState => newJobState(newJobId(), jobRequest('exec', ['true']));
const start: Transition = { name: 'start', attempt: 1, epoch: 7, supervisor };

/** Applies the steps to the queue's copy, as the outbox delivers them. */
function apply(queued: JobState, local: JobState): JobState {
  return mirrorSteps(queued, local).reduce((current, step) => transition(current, step.change, new Date(step.at)), queued);
}

describe('mirrorSteps', () => {
  it('adds nothing while the local job has not moved past the queue, whose start the runner wrote', () => {
    const job = pending();
    const queued = walk(job, start);
    expect(mirrorSteps(queued, job)).toEqual([]);
    expect(mirrorSteps(queued, walk(job, start))).toEqual([]);
    expect(mirrorSteps(job, walk(job, start))).toEqual([]);
  });

  it('records the worker, then the end, with the times they happened locally', () => {
    const job = pending();
    const queued = walk(job, start);
    const local = walk(job, start, { name: 'record_worker', worker });
    expect(mirrorSteps(queued, local).map((step) => step.change.name)).toEqual(['record_worker']);
    const ended = walk(local, { name: 'finish', outcome: outcome('done') });
    const steps = mirrorSteps(apply(queued, local), ended);
    expect(steps.map((step) => step.change.name)).toEqual(['finish']);
    expect(steps[0]!.at).toBe((ended as { finished_at: string }).finished_at);
    const mirrored = apply(apply(queued, local), ended);
    expect(mirrored).toMatchObject({ status: 'done', exit_code: 0, worker, result: { final_message: 'ok' } });
    expect(isSettled(ended)).toBe(true);
    expect(mirrorSteps(mirrored, ended)).toEqual([]);
  });

  it('a quick job seen only at its end goes from running to its end in one step, with its worker', () => {
    const job = pending();
    const ended = walk(job, start, { name: 'record_worker', worker }, { name: 'finish', outcome: outcome('error') });
    const mirrored = apply(walk(job, start), ended);
    expect(mirrored).toMatchObject({ status: 'error', worker, error: { code: 'exit_nonzero' } });
  });

  it('a job that failed or was cancelled before its local start ends the queue\'s running copy the same way', () => {
    const job = pending();
    const failed = walk(job, { name: 'fail_to_start', attempt: 1, error: { code: 'agent_not_found', message: 'no such command' } });
    expect(apply(walk(job, start), failed)).toMatchObject({ status: 'error', error: { code: 'agent_not_found' } });
    const cancelled = walk(job, { name: 'cancel_pending', attempt: 1 });
    expect(apply(walk(job, start), cancelled).status).toBe('cancelled');
  });

  it('a done report ends the queue\'s copy at once; the worker\'s exit follows with record_exit', () => {
    const job = pending();
    const running = walk(job, start, { name: 'record_worker', worker });
    const notified = walk(running, { name: 'notify_done', outcome: outcome('done', { exit_code: null, notified: { summary: 'all good', at: new Date().toISOString() } }) as Outcome & { status: 'done' }, worker });
    expect(isSettled(notified)).toBe(false);
    const queued = apply(walk(job, start), notified);
    expect(queued).toMatchObject({ status: 'done', notified: { summary: 'all good' }, exit_code: null });
    const exited = walk(notified, { name: 'record_exit', exit_code: 0, signal: null });
    expect(mirrorSteps(queued, exited).map((step) => step.change.name)).toEqual(['record_exit']);
    expect(apply(queued, exited)).toMatchObject({ status: 'done', exit_code: 0 });
  });

  it('a local runner_lost (its supervisor died) is the queue\'s runner_lost', () => {
    const job = pending();
    const lost = walk(job, start, { name: 'runner_lost', outcome: outcome('error', { error: { code: 'runner_lost', message: 'gone' } }) });
    expect(mirrorSteps(walk(job, start), lost).map((step) => step.change.name)).toEqual(['runner_lost']);
  });
});
