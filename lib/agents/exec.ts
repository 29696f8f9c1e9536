import type { AgentAdapter } from './types.js';

/**
 * The built-in `exec` worker: runs any argv as given (no shell), so agent-async is also a
 * durable, crash-safe background queue for long commands such as test suites and builds.
 */
export const execAdapter: AgentAdapter = {
  name: 'exec',
  description: 'run any command (argv, no shell)',
  buildInvocation(request) {
    if (!request.argv || request.argv.length === 0) {
      throw new Error(`job request for exec has no argv`);
    }
    return { argv: request.argv, stdin: null, env: {} };
  },
};
