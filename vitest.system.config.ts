import { defineConfig } from 'vitest/config';

/**
 * `npm run test:system`: the multi-process system tests, which start many processes and race
 * them on purpose: several runners against a stale lock, a runner SIGKILLed under 400 submits,
 * a leader frozen past its lease, and fleet hosts (throwaway PostgreSQL clusters, network
 * namespaces, the chaos ledger). No download beyond `npm install`; CI runs this tier after
 * `npm test`.
 */
export default defineConfig({
  test: {
    include: ['test/system/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
