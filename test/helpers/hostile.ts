import { expect } from 'vitest';
import { connect, type McpHandle } from './mcp.js';
import { startJob, waitJob, type TestSpool } from './spool.js';

/** What the failure-mode suites share: a shell-script agent, MCP servers closed at the end, and the check that the queue goes on. */

/**
 * A custom agent that runs the first line of its prompt as a shell script: it gets a prompt.txt,
 * its output goes through the supervisor's pipes and parser, and every face reads its job.
 */
export const SHELL_AGENT = {
  command: ['sh', '-c', 'eval "$(printf "%s\\n" "$1" | head -n 1)"', 'sh', '{prompt}'],
  output: 'text',
};

/** A later job still runs and ends `done`. */
export async function queueGoesOn(spool: TestSpool, cwd?: string): Promise<void> {
  const later = await startJob(spool, ['sh', '-c', 'echo later'], cwd === undefined ? [] : ['--cwd', cwd]);
  expect(await waitJob(spool, later)).toMatchObject({ status: 'done', exit_code: 0 });
}

const servers: McpHandle[] = [];

/** An MCP server on the spool, closed by `closeServers` (call it in afterAll). */
export async function server(spool: TestSpool): Promise<McpHandle> {
  const handle = await connect(spool);
  servers.push(handle);
  return handle;
}

export async function closeServers(): Promise<void> {
  for (const handle of servers.splice(0)) await handle.close().catch(() => undefined);
}
