import { defineConfig } from 'vitest/config';

/**
 * `npm run test:e2e`: the real agent CLIs against a fake model server, the MCP Inspector, and
 * install.sh and `update` end to end. The CLIs and the Inspector are installed at pinned
 * versions into .cache/ on first use (about 900 MB).
 */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 20 * 60_000,
    hookTimeout: 20 * 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
