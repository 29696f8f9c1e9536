import { afterAll } from 'vitest';
import { PgUnavailable, startCluster, type PgCluster } from './pg-cluster.mjs';

export type { PgCluster } from './pg-cluster.mjs';

/**
 * One throwaway PostgreSQL cluster per test file (call at the top level of the file): started
 * at once, stopped and removed after the file (and by a watchdog if the worker dies). When
 * PostgreSQL cannot be installed or started here, `skip` holds the reason and the file's
 * suites skip with it in their name; with AGENT_ASYNC_REQUIRE_PG=1 (CI) that is an error.
 */
export interface TestCluster {
  cluster: PgCluster | undefined;
  skip: string | undefined;
}

export async function useTestCluster(): Promise<TestCluster> {
  try {
    const cluster = await startCluster();
    afterAll(() => cluster.destroy());
    return { cluster, skip: undefined };
  } catch (error) {
    if (!(error instanceof PgUnavailable) || process.env.AGENT_ASYNC_REQUIRE_PG === '1') throw error;
    const skip = `skipped: ${error.message}`;
    process.stderr.write(`[pg-cluster] ${skip}\n`);
    return { cluster: undefined, skip };
  }
}

/** The cluster of a file that did not skip (inside its suites). */
export function need(test: TestCluster): PgCluster {
  if (!test.cluster) throw new Error(test.skip ?? 'no cluster');
  return test.cluster;
}
