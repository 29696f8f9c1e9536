import type { ActivityReader } from './activity.js';
import { hintFor, type HintSubject } from './hints.js';
import type { AgentAdapter, ParsedStream, StreamParser, Verdict } from './types.js';

/**
 * Success of an agent run is the exit code and the terminal event together: exit 0 with the
 * CLI's success event is success; a failure the CLI reported is `agent_error` with its
 * message; a non-zero exit without one is `exit_nonzero`. Warnings are never failures.
 */
export function judgeRun(agent: HintSubject, parsed: ParsedStream, exitCode: number | null, signal: string | null): Verdict {
  const hint = (): string | undefined => hintFor(agent, [parsed.failure, ...[...parsed.notes].reverse()]);
  const withHint = <T extends object>(error: T): T & { hint?: string } => {
    const found = hint();
    return found ? { ...error, hint: found } : error;
  };
  if (parsed.failure !== null) {
    return { ok: false, error: withHint({ code: 'agent_error' as const, message: `${agent.name} reported a failure: ${parsed.failure}` }) };
  }
  if (exitCode === 0 && signal === null) {
    if (parsed.completed) return { ok: true };
    return { ok: false, error: withHint({ code: 'agent_error' as const, message: `${agent.name} exited 0 without reporting a finished turn` }) };
  }
  const how = signal ? `was killed by signal ${signal}` : `exited with code ${exitCode ?? 'unknown'}`;
  const last = parsed.notes.at(-1);
  return { ok: false, error: withHint({ code: 'exit_nonzero' as const, message: `${agent.name} ${how}${last ? `: ${last}` : ''}` }) };
}

/** An agent CLI's adapter from what differs between CLIs: how to start it and how to read it. */
export function agentAdapter(
  subject: HintSubject & { name: string; activity: ActivityReader },
  description: string,
  buildInvocation: AgentAdapter['buildInvocation'],
  createParser: () => StreamParser,
  canResume = true,
): AgentAdapter {
  return {
    ...subject,
    description,
    takesPrompt: true,
    canResume,
    buildInvocation,
    createParser,
    judge: (parsed, exitCode, signal) => judgeRun(subject, parsed, exitCode, signal),
  };
}
