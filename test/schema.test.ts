import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newJobId } from '../lib/spool/ids.js';
import { jobStateSchema, newJobState, stateJsonSchema, transition, type JobState } from '../lib/spool/state.js';
import { ROOT, assertSchemaValid } from './helpers/spool.js';

const request = {
  agent: 'exec', argv: ['true'], cwd: '/tmp', timeout_seconds: null, stall_seconds: null, env_path: null, retry_of: null,
  policy: null, model: null, continue_of: null, resume_session: null, context_files: [], template: null,
};
const supervisor = { pid: 123, start_time: 'boot:1', host: 'h' };
const pending = newJobState(newJobId(), request);
const running = transition(pending, { name: 'start', attempt: 1, epoch: 1, supervisor });
const outcome = { exit_code: 0, signal: null, notified: null, result: null, session_id: null, usage: null };
const done = transition(running, { name: 'finish', outcome: { ...outcome, status: 'done', error: null } });
const failed = transition(pending, { name: 'fail_to_start', attempt: 1, error: { code: 'cwd_missing', message: 'gone' } });

/** States no transition can produce: each must be refused by the type's schema and by the shipped one. */
const impossible: Array<[string, unknown]> = [
  ['running without started_at', { ...running, started_at: null }],
  ['running without a supervisor', { ...running, supervisor: null }],
  ['running with an error', { ...running, error: { code: 'internal_error', message: 'x' } }],
  ['pending with finished_at', { ...pending, finished_at: running.started_at }],
  ['pending with a worker', { ...pending, worker: { pid: 1, pgid: 1, argv: ['x'], start_time: null } }],
  ['error without an error', { ...failed, error: null }],
  ['error without finished_at', { ...failed, finished_at: null }],
  ['done with an error', { ...done, error: { code: 'exit_nonzero', message: 'x' } }],
  ['done that never started', { ...done, started_at: null }],
  ['an unknown status', { ...done, status: 'paused' }],
];

describe('schema/state.schema.json', () => {
  it('is the schema the code validates with (regenerate with `npm run schema`)', () => {
    const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'schema', 'state.schema.json'), 'utf8'));
    expect(shipped).toEqual(stateJsonSchema());
  });

  it('ships in the package', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.files).toContain('schema/');
  });

  it('accepts a state of every status', () => {
    const states: JobState[] = [pending, running, done, failed, transition(pending, { name: 'cancel_pending', attempt: 1 })];
    expect(states.map((state) => state.status)).toEqual(['pending', 'running', 'done', 'error', 'cancelled']);
    for (const state of states) {
      assertSchemaValid(state);
      expect(jobStateSchema.safeParse(state).success).toBe(true);
    }
  });

  for (const [name, state] of impossible) {
    it(`refuses ${name}`, () => {
      expect(jobStateSchema.safeParse(state).success).toBe(false);
      expect(() => assertSchemaValid(state)).toThrow(/does not match schema/);
    });
  }
});
