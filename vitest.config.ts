import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, longest first (wall time on 2 cores). Vitest orders files by the
 * durations of earlier runs when it has them (node_modules/.vite); on a fresh clone it has none
 * and would start the largest files first, which leaves a long file such as stale-lock (small,
 * but a minute of racing processes) for the end, while the other worker has nothing left to do.
 */
const LONGEST_FIRST = [
  'stale-lock', 'cli', 'isolation', 'hostile-worker', 'mcp', 'adapters', 'runner', 'failure-modes',
  'jobs', 'failover', 'worktree-kill', 'fleet-processes',
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
 * CLIs, the MCP Inspector and the installer end to end are in test/e2e (vitest.e2e.config.ts).
 * The files mostly wait for the processes they start (runners, supervisors, workers, git): three
 * workers keep 2 cores busier than two.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', '**/node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 3,
    reporters: ['default'],
    sequence: { sequencer: LongestFirst },
  },
});
