import type { ParsedStream, Verdict } from '../agents/types.js';
import type { ExitRecord } from '../spool/store.js';
import type { JobError, JobResult, Outcome, Usage } from '../spool/state.js';

/**
 * How a job ended, decided in one place from what the supervisor (or, after its death, the
 * runner) found. Precedence: a cancel request, then a `done` report, then a limit the
 * supervisor enforced, then the worker's own verdict (its exit status and, for agent CLIs,
 * the terminal event of its stream).
 */
export interface EndFacts {
  exit: ExitRecord | null;
  cancelRequested: boolean;
  doneSummary: string | null;
  doneAt: string | null;
  timeoutSeconds: number | null;
  stallSeconds: number | null;
  /** The adapter's judgement of the exit and the stream; null when unknown. */
  verdict?: Verdict | null;
  parsed?: ParsedStream | null;
  /** codex: the thread total of the job this one continues, to derive this turn's share. */
  parentUsage?: Usage | null;
}

function minus(a: number | null, b: number | null): number | null {
  if (a === null) return null;
  return Math.max(0, a - (b ?? 0));
}

/** This run's own usage: codex reports the thread's running total, so subtract the parent's. */
export function ownUsage(parsed: ParsedStream, parentUsage: Usage | null): Usage | null {
  if (!parsed.usage || !parsed.cumulative || !parentUsage) return parsed.usage;
  return {
    input_tokens: minus(parsed.usage.input_tokens, parentUsage.input_tokens),
    output_tokens: minus(parsed.usage.output_tokens, parentUsage.output_tokens),
    cached_input_tokens: minus(parsed.usage.cached_input_tokens, parentUsage.cached_input_tokens),
    cost_usd: parsed.usage.cost_usd,
  };
}

function streamFields(facts: EndFacts): Pick<Outcome, 'result' | 'session_id' | 'usage'> {
  const parsed = facts.parsed;
  if (!parsed) return { result: null, session_id: null, usage: null };
  const result: JobResult = {
    final_message: parsed.final_message,
    cumulative_usage: parsed.cumulative ? parsed.usage : null,
  };
  return { result, session_id: parsed.session_id, usage: ownUsage(parsed, facts.parentUsage ?? null) };
}

export function decideOutcome(facts: EndFacts): Outcome {
  const { exit } = facts;
  const common = {
    exit_code: exit?.exit_code ?? null,
    signal: exit?.signal ?? null,
    notified: null,
    ...streamFields(facts),
  };
  const ended = (status: Outcome['status'], error: JobError | null = null): Outcome => ({ ...common, status, error });

  if (facts.cancelRequested && (exit === null || exit.reason === 'cancelled')) return ended('cancelled');
  if (facts.doneSummary !== null) {
    return { ...ended('done'), notified: { summary: facts.doneSummary, at: facts.doneAt ?? new Date().toISOString() } };
  }
  if (exit === null) return ended('error', { code: 'runner_lost', message: 'the job was lost: no exit record' });
  switch (exit.reason) {
    case 'cancelled':
      return ended('cancelled');
    case 'timed_out':
      return ended('error', {
        code: 'timed_out',
        message: `ran longer than its limit of ${facts.timeoutSeconds ?? '?'} s and was stopped`,
        hint: 'give the job a larger limit (--timeout / timeout_minutes) or raise job_timeout_seconds in config.json',
      });
    case 'stalled':
      return ended('error', {
        code: 'stalled',
        message: `wrote no output for ${facts.stallSeconds ?? '?'} s and was stopped`,
        hint: 'raise stall_timeout_seconds in config.json, or set it to null to turn the check off',
      });
    case 'spawn_failed':
      return ended('error', { code: 'spawn_failed', message: exit.spawn_error?.message ?? 'the worker could not be started' });
    case 'done_grace':
    case 'exited':
      break;
  }
  const verdict = facts.verdict;
  if (verdict) return verdict.ok ? ended('done') : ended('error', verdict.error);
  if (exit.exit_code === 0 && exit.signal === null) return ended('done');
  const how = exit.signal ? `killed by signal ${exit.signal}` : `exited with code ${exit.exit_code ?? 'unknown'}`;
  return ended('error', { code: 'exit_nonzero', message: `the worker ${how}` });
}
