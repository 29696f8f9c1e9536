import type * as JobsModule from '../jobs.js';

/**
 * `lib/jobs.ts` (the operations, and with them the runner's launch, the watchers and every
 * adapter), loaded on the first tool call rather than at start: `initialize` and `tools/list`
 * need only the schemas. `jobs` is a live binding, set once `loadJobs()` has resolved; every
 * entry point that runs operations (a tool call, a tasks/* request) awaits it first.
 */
export let jobs: typeof JobsModule;

export async function loadJobs(): Promise<typeof JobsModule> {
  jobs ??= await import('../jobs.js');
  return jobs;
}
