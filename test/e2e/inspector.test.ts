import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanupSpools, makeSpool, type TestSpool } from '../helpers/spool.js';
import { ensureInspector } from './clis.js';

/** `@modelcontextprotocol/inspector --cli`, a client nobody here wrote, against `agent-async serve`. */
let inspector: string;
let spool: TestSpool;

beforeAll(() => {
  inspector = ensureInspector();
  spool = makeSpool();
}, 20 * 60_000);
afterAll(cleanupSpools);

function inspect(args: string[]): any {
  const result = spawnSync(inspector, ['--cli', '-e', `AGENT_ASYNC_HOME=${spool.home}`, process.execPath, CLI, 'serve', ...args], {
    encoding: 'utf8',
    env: spool.env,
    timeout: 120_000,
  });
  if (result.status !== 0) throw new Error(`inspector exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

describe('MCP Inspector CLI', () => {
  it('lists the tools', () => {
    const names = inspect(['--method', 'tools/list']).tools.map((t: any) => t.name);
    for (const name of ['codex_start', 'codex_wait', 'codex_await_any', 'cursor_start', 'cursor_wait', 'gemini_start', 'gemini_wait',
      'gemini_confluence_start', 'gemini_pr_start', 'job_list', 'job_cancel', 'queue_status', 'agent_notify_done']) {
      expect(names).toContain(name);
    }
  });

  it('round-trips a start and a wait with a worker', () => {
    const started = inspect(['--method', 'tools/call', '--tool-name', 'agent_start', '--tool-arg', 'agent=exec',
      '--tool-arg', 'argv=["sh","-c","echo hello from the inspector"]', '--tool-arg', `cwd=${spool.work}`]);
    const jobId = started.structuredContent.job_id;
    expect(jobId).toMatch(/^[0-9a-z]{23}$/);
    let answer: any;
    do {
      answer = inspect(['--method', 'tools/call', '--tool-name', 'job_wait', '--tool-arg', `job_id=${jobId}`, '--tool-arg', 'timeout_seconds=30']);
    } while (answer.structuredContent.status === 'timeout');
    expect(answer.structuredContent).toMatchObject({ job_id: jobId, status: 'done', exit_code: 0, output: 'hello from the inspector' }); // an exec job's last lines (compact answers)
  });
});
