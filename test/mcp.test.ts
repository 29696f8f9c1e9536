import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { CallToolResultSchema, CreateTaskResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, describe, expect, it } from 'vitest';
import * as jobs from '../lib/jobs.js';
import { createServer } from '../lib/mcp/server.js';
import { CLI, DIST, assertSchemaValid, cleanupSpools, jobState, pidAlive, treeSnapshot, until, type TestSpool } from './helpers/spool.js';
import { call, connect, errorText, ok, stubbedSpool, type McpHandle } from './helpers/mcp.js';

afterAll(cleanupSpools);

const handles: McpHandle[] = [];
afterAll(async () => {
  for (const handle of handles) await handle.close().catch(() => undefined);
});

async function server(spool: TestSpool, args: string[] = []): Promise<McpHandle> {
  const handle = await connect(spool, args);
  handles.push(handle);
  return handle;
}

const COMPAT = [
  'codex_start', 'codex_wait', 'codex_await_any', 'cursor_start', 'cursor_wait', 'gemini_start', 'gemini_wait',
  'gemini_confluence_start', 'gemini_pr_start', 'job_list', 'job_cancel', 'queue_status', 'agent_notify_done',
];

async function waitDone(handle: McpHandle, jobId: string, tool = 'job_wait', extra: Record<string, unknown> = {}): Promise<any> {
  for (;;) {
    const result = await ok(handle, tool, { job_id: jobId, timeout_seconds: 30, ...extra });
    if (result.status !== 'timeout') return result;
  }
}

describe('MCP server over stdio, with the SDK Client', () => {
  it('lists the 13 tools of the Python original with their parameters and defaults, and the new ones, with schemas and annotations', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const { tools } = await mcp.client.listTools();
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    for (const name of COMPAT) expect(byName[name], name).toBeDefined();
    for (const name of ['claude_start', 'agent_start', 'job_wait', 'job_await_any', 'job_output', 'job_continue', 'job_retry']) expect(byName[name], name).toBeDefined();

    const props = (name: string) => Object.keys((byName[name]!.inputSchema as any).properties ?? {});
    for (const name of ['codex_start', 'cursor_start', 'gemini_start']) {
      expect(props(name)).toEqual(expect.arrayContaining(['prompt', 'cwd', 'approval_policy', 'context_files', 'model', 'timeout_minutes']));
      expect((byName[name]!.inputSchema as any).required).toEqual(['prompt', 'cwd']);
      expect(byName[name]!.execution).toEqual({ taskSupport: 'optional' });
    }
    for (const name of ['codex_wait', 'cursor_wait', 'gemini_wait', 'job_wait']) {
      expect((byName[name]!.inputSchema as any).properties.timeout_seconds.default).toBe(50);
      expect((byName[name]!.inputSchema as any).required).toEqual(['job_id']);
      expect(byName[name]!.annotations).toMatchObject({ readOnlyHint: true, destructiveHint: false, idempotentHint: true });
    }
    expect((byName.codex_await_any!.inputSchema as any).properties.timeout_seconds.default).toBe(50);
    expect((byName.job_list!.inputSchema as any).properties.limit.default).toBe(20);
    expect(props('gemini_confluence_start')).toEqual(expect.arrayContaining(['title', 'cwd']));
    expect(props('gemini_pr_start')).toEqual(expect.arrayContaining(['cwd', 'pr_goal']));
    expect(props('agent_notify_done')).toEqual(['job_id', 'summary']);
    expect(props('queue_status')).toEqual([]);
    expect(byName.job_cancel!.annotations).toMatchObject({ destructiveHint: true, readOnlyHint: false });
    for (const tool of tools) {
      expect(tool.outputSchema, tool.name).toBeDefined();
      expect(tool.description!.length, tool.name).toBeGreaterThan(40);
    }
    expect(byName.codex_wait!.description).toMatch(/timeout.*again/);
    expect(mcp.client.getInstructions()).toMatch(/call it again until status is done, error or cancelled/);

    // the list came from the build (dist/mcp/tool-list.json, current), and is the live one
    const built = await import(path.join(DIST, 'mcp', 'tool-list.js')) as { readToolList: () => unknown };
    expect(built.readToolList(), 'dist/mcp/tool-list.json is stale: npm run build').toBeDefined();
    const live = createServer({ home: spool.home, tools: null, precomputedList: false }).mcp;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: 'live', version: '1' });
    await live.connect(serverSide);
    await client.connect(clientSide);
    expect(tools).toEqual((await client.listTools()).tools);
    await client.close();
  });

  it('start → wait round trips keep every key an orchestrator reads (codex, cursor, gemini, claude)', async () => {
    const spool = stubbedSpool({ concurrency: 4 });
    const mcp = await server(spool);
    for (const [agent, answer] of [['codex', 'Hello from the fake model.'], ['cursor', 'Hello from the stub cursor.'], ['gemini', 'Hello from the fake model.'], ['claude', 'Hello from the fake model.']]) {
      const cwd = fs.mkdtempSync(path.join(spool.work, `${agent}-`));
      const start = await ok(mcp, `${agent}_start`, { prompt: `say hello, ${agent}`, cwd, approval_policy: 'suggest' });
      expect(start).toMatchObject({ job_id: expect.stringMatching(/^[0-9a-z]{23}$/), status: 'pending', agent, cwd });
      expect(start.message).toMatch(new RegExp(`Call ${agent}_wait`));
      const result = await waitDone(mcp, start.job_id, `${agent}_wait`);
      // compact by default: the final message once, in the seed's output key
      expect(result).toMatchObject({
        job_id: start.job_id, status: 'done', exit_code: 0, cwd, agent, output: answer, usage: null,
        prompt: `say hello, ${agent}`,
      });
      for (const key of ['started_at', 'finished_at', 'token_usage', 'duration_ms']) expect(result).toHaveProperty(key);
      expect(result).not.toHaveProperty('final_message');
      expect(result.token_usage).toMatchObject({ input_tokens: expect.any(Number), output_tokens: expect.any(Number), total_tokens: expect.any(Number) });
      const full = await ok(mcp, `${agent}_wait`, { job_id: start.job_id, verbose: true });
      expect(full).toMatchObject({ final_message: answer, session_id: expect.any(String), usage: expect.any(Object), notices: [] });
      assertSchemaValid(jobState(spool, start.job_id));
    }
  });

  it('a wait that times out says so with the job status and output so far; any wait tool takes any job', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const start = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sh', '-c', 'echo first line; sleep 30'], cwd: spool.work });
    await until(() => jobState(spool, start.job_id).status === 'running', 20_000, 'running');
    const waited = await ok(mcp, 'gemini_wait', { job_id: start.job_id, timeout_seconds: 1 });
    expect(waited).toMatchObject({ status: 'timeout', job_status: 'running', job_id: start.job_id });
    await until(() => fs.readFileSync(path.join(spool.home, 'jobs', start.job_id, 'output.log'), 'utf8').includes('first'), 10_000, 'output');
    // a timeout answer is short: what the worker does now, no output tail, no prompt
    const running = await ok(mcp, 'codex_wait', { job_id: start.job_id, timeout_seconds: 0 });
    expect(running).toMatchObject({ status: 'timeout', output: 'first line' });
    expect(Object.keys(running).sort()).toEqual(['duration_ms', 'job_id', 'job_status', 'message', 'output', 'status']);
    expect((await ok(mcp, 'codex_wait', { job_id: start.job_id, timeout_seconds: 0, verbose: true })).output).toContain('first line');
    expect(waited.message).toMatch(/Call gemini_wait again/);
    const cancelled = await ok(mcp, 'job_cancel', { job_id: start.job_id });
    expect(cancelled).toMatchObject({ job_id: start.job_id, status: 'cancelled', cancelled: true });
    expect(await ok(mcp, 'cursor_wait', { job_id: start.job_id })).toMatchObject({ status: 'cancelled' });
    expect(await ok(mcp, 'job_cancel', { job_id: start.job_id })).toMatchObject({ cancelled: false, message: expect.stringMatching(/already ended/) });
  });

  it('job_list, queue_status, job_output paging, agent_notify_done, job_continue, confluence and pr prompts', async () => {
    const spool = stubbedSpool({ concurrency: 1, done_grace_seconds: 1 });
    const mcp = await server(spool);
    const long = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done; sleep 300'], cwd: spool.work });
    const queued = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['true'], cwd: spool.work });
    await until(() => jobState(spool, long.job_id).status === 'running', 20_000, 'running');
    const status = await ok(mcp, 'queue_status');
    expect(status).toMatchObject({ busy: true, running_job_id: long.job_id, pending_count: 1, concurrency: 1, runner: { alive: true } });

    await until(() => fs.statSync(path.join(spool.home, 'jobs', long.job_id, 'output.log')).size >= 28_890, 20_000, 'output');
    let offset = 0;
    let text = '';
    for (;;) {
      const page = await ok(mcp, 'job_output', { job_id: long.job_id, offset, max_bytes: 8000 });
      expect(page.data.length).toBeLessThanOrEqual(8000);
      text += page.data;
      offset = page.next_offset;
      if (page.eof) break;
    }
    expect(text).toBe(fs.readFileSync(path.join(spool.home, 'jobs', long.job_id, 'output.log'), 'utf8'));
    expect(text.split('\n').slice(0, 3000).at(-1)).toBe('line 2999');
    expect(errorText(await call(mcp, 'job_output', { job_id: long.job_id, max_bytes: 10_000_000 }))).toMatch(/max_bytes: must be from 1 to 65536/);

    const notified = await ok(mcp, 'agent_notify_done', { job_id: long.job_id, summary: 'printed 3000 lines' });
    expect(notified).toMatchObject({ ok: true, job_id: long.job_id });
    expect(await waitDone(mcp, long.job_id)).toMatchObject({ status: 'done', summary: 'printed 3000 lines' });
    expect(await waitDone(mcp, queued.job_id)).toMatchObject({ status: 'done' });

    const listed = await ok(mcp, 'job_list', { limit: 1 });
    expect(listed).toMatchObject({ count: 1, jobs: [{ job_id: queued.job_id, status: 'done', agent: 'exec' }] });
    expect((await ok(mcp, 'job_list', {})).jobs.map((j: any) => j.job_id)).toEqual([queued.job_id, long.job_id]);

    const first = await ok(mcp, 'claude_start', { prompt: 'first', cwd: spool.work });
    const firstResult = await waitDone(mcp, first.job_id, 'claude_wait', { verbose: true });
    const cont = await ok(mcp, 'job_continue', { job_id: first.job_id, prompt: 'second' });
    expect(await waitDone(mcp, cont.job_id, 'job_wait', { verbose: true })).toMatchObject({ status: 'done', session_id: firstResult.session_id });

    // an exec job has no conversation: job_continue names job_retry, which runs it again
    expect(errorText(await call(mcp, 'job_continue', { job_id: queued.job_id, prompt: 'again' }))).toMatch(/no conversation to continue; run the same command again with retry \(MCP: job_retry/);
    const again = await ok(mcp, 'job_retry', { job_id: queued.job_id });
    expect(await waitDone(mcp, again.job_id)).toMatchObject({ status: 'done', output: '' });
    expect(jobState(spool, again.job_id).request).toMatchObject({ argv: ['true'], retry_of: queued.job_id });
    expect(jobState(spool, cont.job_id).request).toMatchObject({ continue_of: first.job_id, resume_session: firstResult.session_id });

    const page = await ok(mcp, 'gemini_confluence_start', { title: 'Spool design', cwd: spool.work, instructions: 'cover the state machine' });
    expect(jobState(spool, page.job_id).request).toMatchObject({ agent: 'gemini', template: 'confluence' });
    expect(fs.readFileSync(path.join(spool.home, 'jobs', page.job_id, 'prompt.txt'), 'utf8')).toMatch(/Confluence page[\s\S]*"title": "Spool design"/);
    const pr = await ok(mcp, 'gemini_pr_start', { cwd: spool.work, pr_goal: 'fix the typo', base_branch: 'main' });
    expect(fs.readFileSync(path.join(spool.home, 'jobs', pr.job_id, 'prompt.txt'), 'utf8')).toMatch(/pull request[\s\S]*"pr_goal": "fix the typo"/);
    expect(await waitDone(mcp, pr.job_id, 'gemini_wait')).toMatchObject({ status: 'done' });
  });

  it('await-any reports every completion, also those that landed between two calls', async () => {
    const spool = stubbedSpool({ concurrency: 3 });
    const mcp = await server(spool);
    const gates = ['a', 'b', 'c'].map((name) => path.join(spool.work, `gate-${name}`));
    const ids: string[] = [];
    for (const gate of gates) {
      const cwd = fs.mkdtempSync(path.join(spool.work, 'w'));
      ids.push((await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.05; done`], cwd })).job_id);
    }
    // two jobs end while nobody waits
    fs.writeFileSync(gates[0]!, '');
    fs.writeFileSync(gates[1]!, '');
    await until(() => ids.slice(0, 2).every((id) => jobState(spool, id).status === 'done'), 20_000, 'two jobs to end');
    const first = await ok(mcp, 'codex_await_any', { timeout_seconds: 30 });
    // the first ended job at the top level, the others in completed
    const seen = [first.job_id, ...first.completed.map((r: any) => r.job_id)];
    expect(seen.sort()).toEqual(ids.slice(0, 2).sort());
    expect(first.pending_job_ids).toEqual([ids[2]]);
    fs.writeFileSync(gates[2]!, '');
    const second = await ok(mcp, 'codex_await_any', { timeout_seconds: 30 });
    expect(second).toMatchObject({ job_id: ids[2], completed: [] });
    // the moment after a terminal write, before its supervisor removes the active/ marker
    // (the runner, which would also remove it, is held still meanwhile)
    const runnerPid = JSON.parse(fs.readFileSync(path.join(spool.home, 'runner.json'), 'utf8')).pid;
    process.kill(runnerPid, 'SIGSTOP');
    const marker = path.join(spool.home, 'active', ids[2]!);
    fs.writeFileSync(marker, '');
    try {
      const idle = await ok(mcp, 'codex_await_any', { timeout_seconds: 1 });
      expect(idle).toMatchObject({ job_id: null, status: 'idle', completed: [] });
    } finally {
      fs.rmSync(marker, { force: true });
      process.kill(runnerPid, 'SIGCONT');
    }
    const explicit = await ok(mcp, 'job_await_any', { job_ids: ids, timeout_seconds: 5, verbose: true });
    expect(explicit.completed.map((r: any) => r.job_id).sort()).toEqual([...ids].sort());
  });

  it('await-any without ids answers a job removed meanwhile (gc) as gone, once, and then goes on', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const job = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sleep', '30'], cwd: spool.work });
    await ok(mcp, 'job_cancel', { job_id: job.job_id });
    expect(jobs.gc(jobs.openContext({ home: spool.home, env: spool.env }), { keep: 0 }).removed).toEqual([job.job_id]);
    const gone = await ok(mcp, 'codex_await_any', { timeout_seconds: 5 });
    expect(gone).toMatchObject({ job_id: job.job_id, job_status: 'missing', error: expect.objectContaining({ code: 'not_found' }), completed: [] });
    expect(await ok(mcp, 'codex_await_any', { timeout_seconds: 1 })).toMatchObject({ status: 'idle', completed: [] });
    expect(await ok(mcp, 'job_await_any', { job_ids: [job.job_id], timeout_seconds: 1 })).toMatchObject({ job_id: job.job_id, job_status: 'missing' });
  });

  it('queue_status after the runner was SIGKILLed: the job still runs, the runner shows as gone (no stale pid)', async () => {
    const spool = stubbedSpool({ runner_idle_seconds: 60 });
    const mcp = await server(spool);
    const job = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sleep', '30'], cwd: spool.work });
    await until(() => jobState(spool, job.job_id).status === 'running', 20_000, 'running');
    const before = await ok(mcp, 'queue_status');
    expect(before.runner).toMatchObject({ alive: true, pid: expect.any(Number) });
    process.kill(before.runner.pid, 'SIGKILL');
    await until(() => !pidAlive(before.runner.pid), 10_000, 'the runner to die');
    const after = await ok(mcp, 'queue_status');
    expect(after).toMatchObject({ busy: true, running_job_id: job.job_id });
    // gone, or already replaced by the runner that the job's orphaned supervisor starts (it
    // leads once the dead runner's lock is stale): never the dead runner's pid
    if (after.runner.alive) expect(after.runner.pid).not.toBe(before.runner.pid);
    else expect(after.runner).toMatchObject({ alive: false, pid: null });
    await ok(mcp, 'job_cancel', { job_id: job.job_id });
  });

  it('every bad input of SPEC section 7 is an isError answer naming the field, and changes nothing', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const file = path.join(spool.work, 'file.txt');
    fs.writeFileSync(file, 'x');
    fs.writeFileSync(path.join(spool.work, 'big.txt'), 'y'.repeat(300 * 1024));
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['agent_start', { agent: 'nope', prompt: 'x', cwd: spool.work }, /agent "nope" is not known; allowed: exec, codex, claude, gemini, cursor/],
      ['codex_start', { prompt: 'x', cwd: spool.work, approval_policy: 'yolo' }, /approval_policy: Invalid option: expected one of "suggest"\|"auto-edit"\|"full-auto"/],
      ['codex_start', { prompt: 'x' }, /cwd: is required/],
      ['codex_start', { prompt: 'x', cwd: 'relative/dir' }, /cwd: must be an absolute path .* got the relative path "relative\/dir"/],
      ['codex_start', { prompt: 'x', cwd: '/no/such/dir' }, /cwd: "\/no\/such\/dir" does not exist/],
      ['codex_start', { prompt: 'x', cwd: file }, /cwd: ".*file\.txt" is a file, not a directory/],
      ['claude_start', { prompt: '   ', cwd: spool.work }, /prompt: is required: a non-empty text/],
      ['claude_start', { cwd: spool.work }, /prompt: is required \(string\)/],
      ['gemini_start', { prompt: 'x', cwd: spool.work, context_files: ['../../etc/passwd'] }, /context_files\[0\]: "\.\.\/\.\.\/etc\/passwd" is outside cwd/],
      ['gemini_start', { prompt: 'x', cwd: spool.work, context_files: ['big.txt'] }, /context_files\[0\]: "big\.txt" is 307200 bytes; at most 262144/],
      ['codex_start', { prompt: 'x', cwd: spool.work, timeout_minutes: -5 }, /timeout_minutes: must be above 0; got -5/],
      ['codex_start', { prompt: 'x', cwd: spool.work, timeout_minutes: 0 }, /timeout_minutes: must be above 0; got 0/],
      ['codex_wait', { job_id: '../x' }, /job_id: "\.\.\/x" is not a job id/],
      ['codex_wait', { job_id: '0hofwkskze9k7j2qzbazu7a' }, /job_id "0hofwkskze9k7j2qzbazu7a": no such job/],
      ['job_cancel', { job_id: '/' }, /job_id: "\/" is not a job id/],
      ['job_wait', { job_id: 42 }, /job_id: Invalid input: expected string, received number/],
      ['job_wait', { job_id: 'x', timeout_seconds: 'soon' }, /timeout_seconds: Invalid input: expected number/],
      ['job_list', { limit: 0 }, /limit: must be a whole number from 1 to 1000/],
      ['codex_start', { prompt: 'x', cwd: spool.work, colour: 'blue' }, /colour: not a parameter of codex_start/],
      ['agent_start', { agent: 'exec', prompt: 'x', cwd: spool.work }, /prompt: does not apply to exec, which runs argv/],
      ['agent_start', { agent: 'exec', argv: ['true'], model: 'o3', cwd: spool.work }, /model: does not apply to exec/],
      ['agent_start', { agent: 'codex', prompt: 'x', argv: ['ls'], cwd: spool.work }, /argv: applies to exec only; codex takes a prompt/],
      ['agent_start', { agent: 'constructor', prompt: 'x', cwd: spool.work }, /agent "constructor" is not known/],
    ];
    const jobsDir = path.join(spool.home, 'jobs');
    const before = treeSnapshot(spool.home);
    for (const [tool, args, message] of cases) {
      expect(errorText(await call(mcp, tool, args)), `${tool} ${JSON.stringify(args)}`).toMatch(message);
    }
    expect(treeSnapshot(spool.home)).toEqual(before);
    await expect(mcp.client.callTool({ name: 'no_such_tool', arguments: {} })).rejects.toThrow(/not offered by this server/);

    // timeouts out of range are clamped, and the answer says so
    const job = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['true'], cwd: spool.work });
    const huge = await ok(mcp, 'job_wait', { job_id: job.job_id, timeout_seconds: 1e9 });
    expect(huge.notices).toEqual(['timeout_seconds 1000000000 is above the maximum of 55; used 55']);
    const negative = await ok(mcp, 'job_wait', { job_id: job.job_id, timeout_seconds: -3 });
    expect(negative.notices).toEqual(['timeout_seconds -3 is below 0; used 0 (check once, do not wait)']);
    // a missing binary ends the job with agent_not_found and an install hint
    spool.env.PATH = '/usr/bin:/bin';
    const bare = await server(spool);
    const missing = await ok(bare, 'codex_start', { prompt: 'x', cwd: spool.work });
    expect(await waitDone(bare, missing.job_id)).toMatchObject({ status: 'error', error: { code: 'agent_not_found', hint: 'install it: npm install -g @openai/codex' } });
    // a corrupt state.json written by hand is reported, never a crash
    fs.writeFileSync(path.join(jobsDir, job.job_id, 'state.json'), '{"broken');
    expect(await ok(mcp, 'job_wait', { job_id: job.job_id })).toMatchObject({ status: 'error', job_status: 'unreadable', error: { code: 'corrupt_state' } });
    expect(errorText(await call(mcp, 'job_cancel', { job_id: job.job_id }))).toMatch(/state\.json is unreadable/);
    expect((await ok(mcp, 'job_list', {})).jobs.find((j: any) => j.job_id === job.job_id)).toMatchObject({
      status: 'unreadable', error_code: 'corrupt_state', error: { code: 'corrupt_state', message: expect.stringMatching(/state\.json is unreadable/) },
    });
    expect(await ok(mcp, 'queue_status')).toHaveProperty('busy');
  });

  it('waits send progress notifications, so resetTimeoutOnProgress keeps a long wait alive', async () => {
    const spool = stubbedSpool({ progress_seconds: 0.3 });
    const mcp = await server(spool);
    // the job outlasts the client's timeout by far; progress every 0.3 s leaves room for stalls
    const job = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sh', '-c', 'echo working; sleep 6'], cwd: spool.work });
    const progress: Array<{ progress: number; message?: string }> = [];
    const result = await ok(mcp, 'job_wait', { job_id: job.job_id, timeout_seconds: 30 }, {
      timeout: 2000,
      resetTimeoutOnProgress: true,
      onprogress: (p) => progress.push(p),
    });
    expect(result.status).toBe('done');
    expect(progress.length).toBeGreaterThan(3);
    for (let i = 1; i < progress.length; i += 1) expect(progress[i]!.progress).toBeGreaterThan(progress[i - 1]!.progress);
    expect(progress.at(-1)!.message).toMatch(new RegExp(`job ${job.job_id} running, \\d+ s: working`));
    // without the reset the same wait is cut by the client's own timeout
    const again = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sleep', '6'], cwd: spool.work });
    await expect(call(mcp, 'job_wait', { job_id: again.job_id, timeout_seconds: 30 }, { timeout: 2000, onprogress: () => undefined })).rejects.toThrow(/timed out/i);
  });

  it('a cancelled request stops the wait cleanly; the job keeps running and the server keeps answering', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const job = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sleep', '30'], cwd: spool.work });
    await until(() => jobState(spool, job.job_id).status === 'running', 20_000, 'running');
    const controller = new AbortController();
    setTimeout(() => controller.abort('changed my mind'), 300);
    await expect(call(mcp, 'job_wait', { job_id: job.job_id, timeout_seconds: 30 }, { signal: controller.signal })).rejects.toThrow();
    expect(jobState(spool, job.job_id).status).toBe('running');
    expect(pidAlive(jobState(spool, job.job_id).worker.pid)).toBe(true);
    expect(await ok(mcp, 'queue_status')).toMatchObject({ busy: true, running_job_id: job.job_id });
    await ok(mcp, 'job_cancel', { job_id: job.job_id });
  });

  it('two servers share one spool: a notify in one wakes the waiter in the other at once', async () => {
    // the safety poll is far longer than the wait, so only the folder watch can wake it
    // and the done grace too: the answer comes from the notify itself, the worker runs on
    const spool = stubbedSpool({ poll_seconds: 60, done_grace_seconds: 300 });
    const [a, b] = [await server(spool), await server(spool)];
    setCodexDelay(spool, 300_000); // before the start, so the job surely runs until notified
    const job = await ok(a, 'codex_start', { prompt: 'long task', cwd: spool.work });
    await until(() => jobState(spool, job.job_id).status === 'running', 20_000, 'running');
    const waiting = ok(a, 'codex_wait', { job_id: job.job_id, timeout_seconds: 40 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const notifiedAt = Date.now();
    expect(await ok(b, 'agent_notify_done', { job_id: job.job_id, summary: 'finished from window B' })).toMatchObject({ ok: true });
    const result = await waiting;
    expect(result).toMatchObject({ status: 'done', summary: 'finished from window B' });
    console.log(`notify in server B → waiter in server A answered after ${Date.now() - notifiedAt} ms`);
    const state = jobState(spool, job.job_id);
    expect(state).toMatchObject({ status: 'done', exit_code: null, signal: null });
    expect(pidAlive(state.worker.pid)).toBe(true);
  });

  it('answers 20 concurrent waits and starts together (the event loop never blocks)', async () => {
    const spool = stubbedSpool({ concurrency: 4 });
    const mcp = await server(spool);
    const slow = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sleep', '2'], cwd: spool.work });
    const waits = Array.from({ length: 20 }, () => ok(mcp, 'job_wait', { job_id: slow.job_id, timeout_seconds: 30 }));
    const starts = Array.from({ length: 10 }, (_, i) => ok(mcp, 'agent_start', { agent: 'exec', argv: ['echo', String(i)], cwd: fs.mkdtempSync(path.join(spool.work, 's')) }));
    const startedJobs = await Promise.all(starts);
    expect(new Set(startedJobs.map((s) => s.job_id)).size).toBe(10);
    expect(await ok(mcp, 'queue_status')).toHaveProperty('pending_count');
    const results = await Promise.all(waits);
    expect(results.every((r) => r.status === 'done' && r.job_id === slow.job_id)).toBe(true);
  });

  it('exposes only the configured tools', async () => {
    const spool = stubbedSpool({ mcp_tools: ['codex', 'queue'] });
    const mcp = await server(spool);
    const names = (await mcp.client.listTools()).tools.map((t) => t.name).sort();
    expect(names).toEqual(['agent_notify_done', 'codex_await_any', 'codex_start', 'codex_wait', 'job_cancel', 'job_list', 'queue_status'].sort());
    await expect(mcp.client.callTool({ name: 'gemini_start', arguments: {} })).rejects.toThrow(/not offered/);
    const flagged = await server(spool, ['--tools', 'claude']);
    expect((await flagged.client.listTools()).tools.map((t) => t.name).sort()).toEqual(['claude_start', 'claude_wait']);
  });

  it('picks up an edited config.json without a restart; a broken edit is reported and the last good config kept', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const file = path.join(spool.home, 'config.json');
    const before = await ok(mcp, 'codex_start', { prompt: 'first', cwd: spool.work });
    expect(jobState(spool, before.job_id).request.policy).toBe('auto-edit');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), default_policy: 'suggest' }));
    const after = await ok(mcp, 'codex_start', { prompt: 'second', cwd: fs.mkdtempSync(path.join(spool.work, 'c')) });
    expect(jobState(spool, after.job_id).request.policy).toBe('suggest');
    fs.writeFileSync(file, JSON.stringify({ default_policy: 'yolo-ish' }));
    const broken = await mcp.client.callTool({ name: 'queue_status', arguments: {} });
    expect(broken.isError).toBe(true);
    expect(JSON.stringify(broken.content)).toMatch(/default_policy/);
    fs.writeFileSync(file, JSON.stringify({ default_policy: 'full-auto' }));
    const fixed = await ok(mcp, 'codex_start', { prompt: 'third', cwd: fs.mkdtempSync(path.join(spool.work, 'c')) });
    expect(jobState(spool, fixed.job_id).request.policy).toBe('full-auto');
  });

  it('logs to stderr only and exits cleanly on stdin EOF; its jobs keep running', async () => {
    const spool = stubbedSpool();
    const child = spawn(process.execPath, [CLI, 'serve'], { env: spool.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const send = (message: object): void => void child.stdin.write(`${JSON.stringify(message)}\n`);
    send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'agent_start', arguments: { agent: 'exec', argv: ['sleep', '5'], cwd: spool.work } } });
    await until(() => stdout.includes('"id":2'), 20_000, 'the start answer');
    child.stdin.end();
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    for (const line of lines) expect(JSON.parse(line).jsonrpc).toBe('2.0');
    const started = JSON.parse(lines.find((l) => l.includes('"id":2'))!);
    const jobId = started.result.structuredContent.job_id;
    await until(() => jobState(spool, jobId).status === 'running', 20_000, 'the job to run after the server left');
  });
});

describe('an orchestrator written for the Python original', () => {
  it('runs its documented loop unchanged: codex_start, then codex_wait until the status is not "timeout"', async () => {
    const spool = stubbedSpool();
    setCodexDelay(spool, 2500);
    const mcp = await server(spool);
    // result = codex_start(prompt=..., cwd=..., approval_policy="full-auto"); job_id = result["job_id"]
    const result = await ok(mcp, 'codex_start', {
      prompt: 'In app/services/foo.rb line 42, change X to Y. Do not change anything else.',
      cwd: spool.work,
      approval_policy: 'full-auto',
    });
    const jobId = result.job_id;
    let answer: any;
    let timeouts = 0;
    for (;;) {
      answer = await ok(mcp, 'codex_wait', { job_id: jobId, timeout_seconds: 1 });
      if (answer.status === 'timeout') {
        timeouts += 1;
        continue;
      }
      break;
    }
    expect(timeouts).toBeGreaterThan(0);
    expect(['done', 'error', 'cancelled']).toContain(answer.status);
    expect(answer).toMatchObject({ status: 'done', exit_code: 0, cwd: spool.work });
    for (const key of ['output', 'prompt', 'started_at', 'finished_at', 'token_usage']) expect(answer).toHaveProperty(key);
    expect(await ok(mcp, 'queue_status')).toMatchObject({ busy: false, pending_count: 0 });
    expect((await ok(mcp, 'job_list', { limit: 20 })).jobs[0]).toMatchObject({ job_id: jobId, status: 'done' });
  });
});

function setCodexDelay(spool: TestSpool, ms: number): void {
  const file = path.join(spool.home, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), agents: { codex: { env: { STUB_SLEEP_MS: String(ms) } } } }));
}

describe('MCP Tasks (2025-11-25), backed by the spool', () => {
  it('a task-augmented start returns a task; tasks/get, tasks/result and tasks/list work, also from a new server process', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const created = await mcp.client.request(
      { method: 'tools/call', params: { name: 'codex_start', arguments: { prompt: 'as a task', cwd: spool.work }, task: { ttl: 600_000 } } },
      CreateTaskResultSchema,
    );
    const taskId = created.task.taskId;
    expect(created.task).toMatchObject({ status: 'working', ttl: 600_000, pollInterval: expect.any(Number) });
    expect(jobState(spool, taskId).request.agent).toBe('codex');
    const result = await mcp.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
    expect(result.structuredContent).toMatchObject({ job_id: taskId, status: 'done', output: 'Hello from the fake model.' });
    expect(result._meta?.['io.modelcontextprotocol/related-task']).toEqual({ taskId });
    await mcp.close();

    const fresh = await server(spool);
    expect(await fresh.client.experimental.tasks.getTask(taskId)).toMatchObject({ taskId, status: 'completed', ttl: 600_000 });
    const listed = await fresh.client.experimental.tasks.listTasks();
    expect(listed.tasks.map((t) => t.taskId)).toContain(taskId);
    const plain = await ok(fresh, 'agent_start', { agent: 'exec', argv: ['true'], cwd: spool.work });
    expect((await fresh.client.experimental.tasks.listTasks()).tasks.map((t) => t.taskId)).not.toContain(plain.job_id);
  });

  it('tasks/cancel really stops the worker', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const created = await mcp.client.request(
      { method: 'tools/call', params: { name: 'agent_start', arguments: { agent: 'exec', argv: ['sleep', '300'], cwd: spool.work }, task: { ttl: 60_000 } } },
      CreateTaskResultSchema,
    );
    const taskId = created.task.taskId;
    await until(() => jobState(spool, taskId).worker, 20_000, 'the worker to start');
    const worker = jobState(spool, taskId).worker.pid;
    const cancelled = await mcp.client.experimental.tasks.cancelTask(taskId);
    expect(cancelled.status).toBe('cancelled');
    expect(pidAlive(worker)).toBe(false);
    expect(jobState(spool, taskId).status).toBe('cancelled');
    await expect(mcp.client.experimental.tasks.cancelTask(taskId)).rejects.toThrow(McpError);
  });

  it('clients without tasks see plain tools: the same start answers a job id at once', async () => {
    const spool = stubbedSpool();
    const mcp = await server(spool);
    const start = await ok(mcp, 'agent_start', { agent: 'exec', argv: ['sleep', '300'], cwd: spool.work });
    expect(start.status).toBe('pending');
    await ok(mcp, 'job_cancel', { job_id: start.job_id });
  });
});
