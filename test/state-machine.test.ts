import { describe, expect, it } from 'vitest';
import {
  IllegalTransition,
  JOB_STATUSES,
  newJobState,
  transition,
  type JobState,
  type Outcome,
  type Transition,
} from '../lib/spool/state.js';
import { newJobId } from '../lib/spool/ids.js';
import { jobRequest } from './helpers/job-request.mjs';
import { assertSchemaValid } from './helpers/spool.js';

const request = jobRequest('exec', ['true'], { env_path: '/usr/bin' });
const supervisor = { pid: 123, start_time: 'boot:1', host: 'h' };
const done: Outcome = {
  status: 'done', exit_code: 0, signal: null, error: null, notified: null, result: null, session_id: null, usage: null,
};
const lost: Outcome = {
  ...done, status: 'error', exit_code: null, error: { code: 'runner_lost', message: 'lost' },
};

const examples: Record<Transition['name'], Transition> = {
  start: { name: 'start', attempt: 1, epoch: 3, supervisor },
  record_worker: { name: 'record_worker', worker: { pid: 456, pgid: 456, argv: ['true'], start_time: null } },
  finish: { name: 'finish', outcome: done },
  fail_to_start: { name: 'fail_to_start', attempt: 1, error: { code: 'cwd_missing', message: 'gone' } },
  cancel_pending: { name: 'cancel_pending', attempt: 1 },
  runner_lost: { name: 'runner_lost', outcome: lost },
  notify_done: {
    name: 'notify_done',
    outcome: { ...done, exit_code: null, notified: { summary: 'all tests pass', at: '2026-01-01T00:00:00.000Z' } },
    worker: { pid: 456, pgid: 456, argv: ['true'], start_time: null },
  },
  record_exit: { name: 'record_exit', exit_code: 0, signal: null },
  record_changes: {
    name: 'record_changes',
    changes: { branch: 'agent-async/x', base_commit: 'a', head_commit: 'b', files: [], patch_bytes: 0, applied: null, discarded_at: '2026-01-01T00:00:00.000Z' },
  },
};

/**
 * The state machine, written out: for each transition and each status it may start from,
 * the status it leads to; '-' where it is refused. Not derived from the code's own table.
 */
const TABLE: Array<[Transition['name'], Record<JobState['status'], JobState['status'] | '-'>]> = [
  ['start', { pending: 'running', running: '-', done: '-', error: '-', cancelled: '-' }],
  ['record_worker', { pending: '-', running: 'running', done: '-', error: '-', cancelled: '-' }],
  ['finish', { pending: '-', running: 'done', done: '-', error: '-', cancelled: '-' }],
  ['fail_to_start', { pending: 'error', running: '-', done: '-', error: '-', cancelled: '-' }],
  ['cancel_pending', { pending: 'cancelled', running: '-', done: '-', error: '-', cancelled: '-' }],
  ['runner_lost', { pending: '-', running: 'error', done: '-', error: '-', cancelled: '-' }],
  ['notify_done', { pending: '-', running: 'done', done: '-', error: '-', cancelled: '-' }],
  ['record_exit', { pending: '-', running: '-', done: 'done', error: '-', cancelled: '-' }],
  ['record_changes', { pending: '-', running: '-', done: 'done', error: 'error', cancelled: 'cancelled' }],
];

/** A valid state of each status, reached through the transitions themselves. */
function inStatus(status: JobState['status']): JobState {
  const pending = newJobState(newJobId(), request);
  const running = (): JobState => transition(pending, examples.start);
  switch (status) {
    case 'pending': return pending;
    case 'running': return running();
    // ended by a `done` report while its worker still ran: the one done state record_exit applies to
    case 'done': return transition(running(), examples.notify_done);
    case 'error': return transition(running(), examples.runner_lost);
    case 'cancelled': return transition(pending, examples.cancel_pending);
  }
}

describe('job state machine', () => {
  it('the table names every transition and every status', () => {
    expect(TABLE.map(([name]) => name).sort()).toEqual(Object.keys(examples).sort());
    for (const [, row] of TABLE) expect(Object.keys(row).sort()).toEqual([...JOB_STATUSES].sort());
  });

  for (const [name, row] of TABLE) {
    for (const status of JOB_STATUSES) {
      const target = row[status];
      it(`${name} from ${status} ${target === '-' ? 'is refused' : `leads to ${target}`}`, () => {
        const before = inStatus(status);
        assertSchemaValid(before);
        if (target === '-') {
          expect(() => transition(before, examples[name])).toThrow(IllegalTransition);
          return;
        }
        const after = transition(before, examples[name]);
        expect(after.status).toBe(target);
        expect(after.seq).toBe(before.seq + 1);
        expect(before.status).toBe(status);
        if (after.status !== 'running' && after.status !== 'pending') expect(after.finished_at).not.toBeNull();
        assertSchemaValid(after);
      });
    }
  }

  it('walks the happy path and never leaves a terminal state', () => {
    let state = newJobState(newJobId(), request);
    assertSchemaValid(state);
    state = transition(state, examples.start);
    expect(state).toMatchObject({ status: 'running', attempt: 1, runner_epoch: 3, supervisor });
    state = transition(state, examples.record_worker);
    expect(state.worker?.pid).toBe(456);
    state = transition(state, examples.finish, new Date(Date.parse(state.started_at!) + 1500));
    expect(state).toMatchObject({ status: 'done', exit_code: 0, duration_ms: 1500 });
    // an ended job's only change is to its isolated work's record (applied, discarded)
    for (const change of Object.values(examples).filter((each) => each.name !== 'record_changes')) {
      expect(() => transition(state, change)).toThrow(IllegalTransition);
    }
    expect(transition(state, examples.record_changes)).toMatchObject({ status: 'done', exit_code: 0, changes: { discarded_at: expect.any(String) } });
  });

  it('a done report ends the job at once; the exit is added once, and only to such a job', () => {
    const running = transition(transition(newJobState(newJobId(), request), examples.start), examples.record_worker);
    const notifiedAt = new Date(Date.parse(running.started_at!) + 1000);
    const notified = transition(running, examples.notify_done, notifiedAt);
    expect(notified).toMatchObject({
      status: 'done', exit_code: null, signal: null, worker: { pid: 456 }, duration_ms: 1000,
      notified: { summary: 'all tests pass' }, finished_at: notifiedAt.toISOString(),
    });
    const exited = transition(notified, { name: 'record_exit', exit_code: null, signal: 'SIGTERM' }, new Date(notifiedAt.getTime() + 5000));
    // only the exit facts change: the job ended when it was notified
    expect(exited).toEqual({ ...notified, seq: notified.seq + 1, updated_at: exited.updated_at, signal: 'SIGTERM' });
    assertSchemaValid(exited);
    expect(() => transition(exited, examples.record_exit)).toThrow(IllegalTransition);
    expect(() => transition(transition(running, examples.finish), examples.record_exit)).toThrow(IllegalTransition);
  });

  it('a job that never started ends with no start time, supervisor or worker', () => {
    for (const change of [examples.fail_to_start, examples.cancel_pending]) {
      const after = transition(newJobState(newJobId(), request), change);
      expect(after).toMatchObject({ attempt: 1, started_at: null, supervisor: null, worker: null, duration_ms: null });
      expect(after.finished_at).not.toBeNull();
    }
  });

  it('finish records the worker when it had exited before record_worker, and keeps a recorded one', () => {
    const started = transition(newJobState(newJobId(), request), examples.start);
    const worker = { pid: 789, pgid: 789, argv: ['true'], start_time: 'boot:1' };
    const quick = transition(started, { name: 'finish', outcome: done, worker });
    expect(quick.worker).toEqual(worker);
    assertSchemaValid(quick);
    const recorded = transition(transition(started, examples.record_worker), examples.finish);
    expect(recorded.worker?.pid).toBe(456);
  });
});
