import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, longest first (wall time on 2 cores). Vitest orders files by the
 * durations of earlier runs when it has them (node_modules/.vite); on a fresh clone it has none
 * and would start the largest files first, which leaves a long file such as runner (small,
 * but a minute of processes) for the end, while the other worker has nothing left to do.
 */
const LONGEST_FIRST = [
  'runner', 'mcp', 'isolation', 'cli', 'jobs', 'hostile-worker', 'failure-modes', 'adapters',
  'fleet-jobs', 'worktree-kill', 'failover', 'fleet-isolated',
].map((name) => `${name}.test.ts`);

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const measured = files.every((file) => this.ctx.cache.getFileTestResults(`${file.project.name}:${path.relative(this.ctx.config.root, file.moduleId)}`));
    if (measured) return sorted;
    const rank = (file: TestSpecification): number => {
      const at = LONGEST_FIRST.indexOf(path.basename(file.moduleId));
      return at === -1 ? LONGEST_FIRST.length : at;
    };
    return sorted.map((file, at) => ({ file, at })).sort((a, b) => rank(a.file) - rank(b.file) || a.at - b.at).map(({ file }) => file);
  }
}

/**
 * `npm test`: unit and integration tests, no download beyond `npm install`. The real agent
 * CLIs, the MCP Inspector and the installer end to end are in test/e2e (vitest.e2e.config.ts);
 * the multi-process races and chaos (stale lock, crash, paused leader, fleet hosts) in
 * test/system (vitest.system.config.ts).
 * The files mostly wait for the processes they start (runners, supervisors, workers, git): four
 * workers keep 2 cores busy.
 */
/**
 * Files of pure functions (no process, no spool, no global state touched): they share one
 * worker and its loaded modules, where each file would otherwise pay a worker's start and
 * the import of lib/ again (about 1.5 s of CPU each).
 */
const PURE = [
  'adapter-argv', 'fleet-mirror', 'fleet-pure', 'ids', 'inputs', 'isolation-pure', 'outcome',
  'schedule', 'schema', 'state-machine', 'templates', 'transcripts', 'worktree-parse',
].map((name) => `test/${name}.test.ts`);

export default defineConfig({
  test: {
    exclude: ['test/e2e/**', 'test/system/**', '**/node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    maxWorkers: 4,
    reporters: ['default'],
    sequence: { sequencer: LongestFirst },
    projects: [
      { extends: true, test: { name: 'unit', include: PURE, pool: 'threads', isolate: false } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...PURE, 'test/e2e/**', 'test/system/**', '**/node_modules/**'], pool: 'forks' } },
    ],
  },
});
