import { describe, expect, it } from 'vitest';
import type { Verdict } from '../lib/agents/types.js';
import { decideOutcome, type EndFacts } from '../lib/runner/core/outcome.js';
import type { ExitRecord } from '../lib/spool/store.js';

/** decideOutcome's precedence: a cancel request, then a done report, then a limit, then the worker's verdict. */

function exit(reason: ExitRecord['reason'], exitCode: number | null = 0, signal: string | null = null): ExitRecord {
  return {
    schema_version: 1, attempt: 1, pid: 42, exit_code: exitCode, signal, reason, started_at: null, ended_at: new Date().toISOString(),
    spawn_error: reason === 'spawn_failed' ? { code: 'ENOENT', message: 'spawn codex ENOENT' } : null, survivors: [],
  };
}

const failing: Verdict = { ok: false, error: { code: 'agent_error', message: 'the model refused' } };
const passing: Verdict = { ok: true };

const report = (summary: string) => ({ summary, at: '2026-01-01T00:00:00.000Z' });

function facts(overrides: Partial<EndFacts>): EndFacts {
  return { exit: exit('exited'), cancelRequested: false, done: null, timeoutSeconds: 60, stallSeconds: 30, verdict: passing, ...overrides };
}

type Expected = [status: 'done' | 'error' | 'cancelled', errorCode: string | null];

const TABLE: Array<[string, Partial<EndFacts>, Expected]> = [
  // cancel wins over everything once the worker was stopped for it (or no exit is known)
  ['cancel, worker stopped for it, done report and failing verdict', { cancelRequested: true, exit: exit('cancelled', null, 'SIGTERM'), done: report('x'), verdict: failing }, ['cancelled', null]],
  ['cancel, no exit record, done report', { cancelRequested: true, exit: null, done: report('x') }, ['cancelled', null]],
  ['cancel, no exit record', { cancelRequested: true, exit: null }, ['cancelled', null]],
  // a cancel that came after the worker ended on its own changes nothing
  ['cancel after the worker exited 0', { cancelRequested: true, exit: exit('exited', 0) }, ['done', null]],
  ['cancel after the worker failed', { cancelRequested: true, exit: exit('exited', 1), verdict: failing }, ['error', 'agent_error']],
  // done beats a limit and a verdict
  ['done report and timed out', { done: report('all good'), exit: exit('timed_out', null, 'SIGKILL') }, ['done', null]],
  ['done report and stalled', { done: report('all good'), exit: exit('stalled', null, 'SIGTERM') }, ['done', null]],
  ['done report, stopped after the grace', { done: report('all good'), exit: exit('done_grace', null, 'SIGTERM'), verdict: failing }, ['done', null]],
  ['done report and no exit record', { done: report('all good'), exit: null }, ['done', null]],
  ['done report and a failing verdict', { done: report(''), verdict: failing }, ['done', null]],
  // no exit record and nothing else: the supervisor died
  ['no exit record', { exit: null }, ['error', 'runner_lost']],
  // a limit beats the verdict
  ['timed out with a passing verdict', { exit: exit('timed_out', null, 'SIGKILL'), verdict: passing }, ['error', 'timed_out']],
  ['stalled with a passing verdict', { exit: exit('stalled', null, 'SIGTERM'), verdict: passing }, ['error', 'stalled']],
  ['exit record says cancelled, no request', { exit: exit('cancelled', null, 'SIGTERM'), verdict: passing }, ['cancelled', null]],
  ['spawn failed', { exit: exit('spawn_failed', null), verdict: passing }, ['error', 'spawn_failed']],
  // then the worker's own verdict
  ['exited, passing verdict', { exit: exit('exited', 0), verdict: passing }, ['done', null]],
  ['exited 0, failing verdict', { exit: exit('exited', 0), verdict: failing }, ['error', 'agent_error']],
  ['stopped after the done grace, passing verdict', { exit: exit('done_grace', 0), verdict: passing }, ['done', null]],
  // no verdict (an agent no longer configured, or exec): the exit status decides
  ['no verdict, exit 0', { exit: exit('exited', 0), verdict: null }, ['done', null]],
  ['no verdict, exit 3', { exit: exit('exited', 3), verdict: null }, ['error', 'exit_nonzero']],
  ['no verdict, killed by a signal', { exit: exit('exited', null, 'SIGSEGV'), verdict: null }, ['error', 'exit_nonzero']],
];

describe('decideOutcome: cancel > done > limit > verdict', () => {
  for (const [name, overrides, [status, errorCode]] of TABLE) {
    it(`${name} → ${status}${errorCode ? ` (${errorCode})` : ''}`, () => {
      const outcome = decideOutcome(facts(overrides));
      expect(outcome.status).toBe(status);
      expect(outcome.error?.code ?? null).toBe(errorCode);
    });
  }

  it('a done report records its summary; other outcomes record none', () => {
    // at: when the report was made, not when the job was closed
    expect(decideOutcome(facts({ done: report('tests pass'), exit: exit('timed_out') })).notified).toEqual(report('tests pass'));
    expect(decideOutcome(facts({})).notified).toBeNull();
  });

  it('the limit messages name the limit that was reached', () => {
    expect(decideOutcome(facts({ exit: exit('timed_out'), timeoutSeconds: 90 })).error?.message).toMatch(/limit of 90 s/);
    expect(decideOutcome(facts({ exit: exit('stalled'), stallSeconds: 45 })).error?.message).toMatch(/no output for 45 s/);
    expect(decideOutcome(facts({ exit: exit('spawn_failed') })).error?.message).toBe('spawn codex ENOENT');
  });

  it('keeps the exit code and signal of the record, whatever wins', () => {
    const outcome = decideOutcome(facts({ cancelRequested: true, exit: exit('cancelled', null, 'SIGTERM') }));
    expect(outcome).toMatchObject({ exit_code: null, signal: 'SIGTERM' });
    expect(decideOutcome(facts({ exit: exit('exited', 7), verdict: null }))).toMatchObject({ exit_code: 7, signal: null });
  });
});
