import { defineConfig } from 'vitest/config';

/**
 * `npm test`: unit and integration tests, no download beyond `npm install`. The real agent
 * CLIs, the MCP Inspector and the installer end to end are in test/e2e (vitest.e2e.config.ts).
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', '**/node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
