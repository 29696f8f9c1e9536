import { plainActivity } from './activity.js';
import type { AgentAdapter } from './types.js';

/**
 * The built-in `exec` worker: runs any argv as given (no shell), so agent-async is also a
 * durable, crash-safe background queue for long commands such as test suites and builds.
 */
export const execAdapter: AgentAdapter = {
  name: 'exec',
  description: 'run any command (argv, no shell)',
  binary: '(the command)',
  installHint: 'install the command, or give its full path',
  takesPrompt: false,
  canResume: false,
  activity: plainActivity,
  buildInvocation({ request }) {
    if (!request.argv || request.argv.length === 0) throw new Error('job request for exec has no argv');
    return { argv: request.argv, stdin: null, env: {} };
  },
  createParser: () => null,
  judge(_parsed, exitCode, signal) {
    if (exitCode === 0 && signal === null) return { ok: true };
    const how = signal ? `was killed by signal ${signal}` : `exited with code ${exitCode ?? 'unknown'}`;
    return { ok: false, error: { code: 'exit_nonzero', message: `the worker ${how}` } };
  },
};
