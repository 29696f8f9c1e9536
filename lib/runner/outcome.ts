import type { ExitRecord } from '../spool/store.js';
import type { JobError, Outcome } from '../spool/state.js';

/**
 * How a job ended, decided in one place from what the supervisor (or, after its death, the
 * runner) found. Precedence: a cancel request, then a `done` report, then a limit the
 * supervisor enforced, then the worker's own exit status.
 */
export interface EndFacts {
  exit: ExitRecord | null;
  cancelRequested: boolean;
  doneSummary: string | null;
  doneAt: string | null;
  timeoutSeconds: number | null;
  stallSeconds: number | null;
}

const EMPTY_RESULT = { result: null, session_id: null, usage: null } as const;

function exitDescription(exit: ExitRecord): string {
  if (exit.signal) return `killed by signal ${exit.signal}`;
  return `exited with code ${exit.exit_code ?? 'unknown'}`;
}

function errorOutcome(exit: ExitRecord | null, error: JobError): Outcome {
  return {
    status: 'error',
    exit_code: exit?.exit_code ?? null,
    signal: exit?.signal ?? null,
    error,
    notified: null,
    ...EMPTY_RESULT,
  };
}

export function decideOutcome(facts: EndFacts): Outcome {
  const { exit } = facts;
  const exitFields = { exit_code: exit?.exit_code ?? null, signal: exit?.signal ?? null };
  if (facts.cancelRequested && (exit === null || exit.reason === 'cancelled')) {
    return { status: 'cancelled', ...exitFields, error: null, notified: null, ...EMPTY_RESULT };
  }
  if (facts.doneSummary !== null) {
    return {
      status: 'done',
      ...exitFields,
      error: null,
      notified: { summary: facts.doneSummary, at: facts.doneAt ?? new Date().toISOString() },
      ...EMPTY_RESULT,
    };
  }
  if (exit === null) {
    return errorOutcome(null, {
      code: 'runner_lost',
      message: 'the job was lost: no exit record',
    });
  }
  switch (exit.reason) {
    case 'cancelled':
      return { status: 'cancelled', ...exitFields, error: null, notified: null, ...EMPTY_RESULT };
    case 'timed_out':
      return errorOutcome(exit, {
        code: 'timed_out',
        message: `ran longer than its limit of ${facts.timeoutSeconds ?? '?'} s and was stopped`,
        hint: 'give the job a larger limit (--timeout / timeout_minutes) or raise job_timeout_seconds in config.json',
      });
    case 'stalled':
      return errorOutcome(exit, {
        code: 'stalled',
        message: `wrote no output for ${facts.stallSeconds ?? '?'} s and was stopped`,
        hint: 'raise stall_timeout_seconds in config.json, or set it to null to turn the check off',
      });
    case 'spawn_failed':
      return errorOutcome(exit, {
        code: 'spawn_failed',
        message: exit.spawn_error?.message ?? 'the worker could not be started',
      });
    case 'done_grace':
    case 'exited':
      break;
  }
  if (exit.exit_code === 0 && exit.signal === null) {
    return { status: 'done', ...exitFields, error: null, notified: null, ...EMPTY_RESULT };
  }
  return errorOutcome(exit, { code: 'exit_nonzero', message: `the worker ${exitDescription(exit)}` });
}
