import type { JobRequest } from '../spool/state.js';

/** What a supervisor starts for a job: never through a shell. */
export interface Invocation {
  /** argv[0] is looked up on the job's PATH unless it contains a slash. */
  argv: string[];
  /** Written to the worker's stdin, which is then closed; null = stdin is /dev/null. */
  stdin: string | null;
  /** Added to the worker's environment. */
  env: Record<string, string>;
}

/**
 * One file per worker CLI, all with this shape: build the invocation, (for agent CLIs) parse
 * one line of its machine-readable stream, and decide success.
 */
export interface AgentAdapter {
  readonly name: string;
  readonly description: string;
  buildInvocation(request: JobRequest): Invocation;
}
