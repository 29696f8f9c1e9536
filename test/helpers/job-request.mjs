// A complete job request (every field of state.json's `request`), for tests and benchmarks.
export function jobRequest(agent = 'exec', argv = ['true'], overrides = {}) {
  return {
    agent,
    argv: agent === 'exec' ? argv : null,
    cwd: '/tmp',
    timeout_seconds: null,
    stall_seconds: null,
    env_path: null,
    retry_of: null,
    policy: null,
    model: null,
    continue_of: null,
    resume_session: null,
    context_files: [],
    template: null,
    ...overrides,
  };
}
