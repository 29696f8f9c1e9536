import { describe, expect, it } from 'vitest';
import {
  IllegalTransition,
  JOB_STATUSES,
  TRANSITION_SOURCES,
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
  lose: { name: 'lose', outcome: lost },
};

/** Where each transition leads (record_worker keeps the job running). */
const TARGET: Record<Transition['name'], JobState['status']> = {
  start: 'running',
  record_worker: 'running',
  finish: 'done',
  fail_to_start: 'error',
  cancel_pending: 'cancelled',
  lose: 'error',
};

function inStatus(status: JobState['status']): JobState {
  return { ...newJobState(newJobId(), request), status };
}

describe('job state machine', () => {
  for (const [name, change] of Object.entries(examples)) {
    for (const status of JOB_STATUSES) {
      const allowed = TRANSITION_SOURCES[name as Transition['name']].includes(status);
      it(`${name} from ${status} is ${allowed ? 'allowed' : 'refused'}`, () => {
        const before = inStatus(status);
        if (!allowed) {
          expect(() => transition(before, change)).toThrow(IllegalTransition);
          return;
        }
        const after = transition(before, change);
        expect(after.status).toBe(TARGET[name as Transition['name']]);
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
    for (const change of Object.values(examples)) {
      expect(() => transition(state, change)).toThrow(IllegalTransition);
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
