import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint, git } from '../helpers/git-repo.js';
import { assertSchemaValid, cleanupSpools, cli, cliAsync, makeSpool, type TestSpool } from '../helpers/spool.js';
import { ensureAgentClis } from './clis.js';
import { startFakeModelServer, type FakeModelServer } from './fake-model-server.js';

/**
 * End to end with the real codex, claude and gemini CLIs (pinned npm versions) driven through
 * agent-async against a fake model server on 127.0.0.1: the final message and usage are the
 * fake model's, auto-edit lets a tool call write in cwd and suggest does not, and a continued
 * job reuses the worker's session.
 */

let server: FakeModelServer;
let bin: string;

beforeAll(async () => {
  bin = ensureAgentClis();
  server = await startFakeModelServer();
}, 20 * 60_000);

afterAll(async () => {
  cleanupSpools();
  await server?.close();
});

interface E2eSpool extends TestSpool {
  homes: string;
}

function e2eSpool(): E2eSpool {
  const spool = makeSpool({ concurrency: 1, kill_grace_seconds: 2, job_timeout_seconds: 120 });
  const homes = path.join(spool.work, 'homes');
  for (const dir of ['codex', 'claude', 'claude-config', 'gemini/.gemini']) fs.mkdirSync(path.join(homes, dir), { recursive: true });
  fs.writeFileSync(path.join(homes, 'gemini/.gemini/settings.json'), JSON.stringify({
    security: { auth: { selectedType: 'gemini-api-key' } },
    general: { maxAttempts: 1 },
  }));
  const url = server.url;
  const config = JSON.parse(fs.readFileSync(path.join(spool.home, 'config.json'), 'utf8'));
  config.agents = {
    codex: {
      extra_args: [
        '-c', 'model_provider="fake"',
        '-c', `model_providers.fake={name="fake",base_url="${url}/v1",env_key="FAKE_API_KEY",wire_api="responses",request_max_retries=0,stream_max_retries=0}`,
      ],
      env: { CODEX_HOME: path.join(homes, 'codex'), FAKE_API_KEY: 'dummy' },
    },
    claude: {
      env: {
        ANTHROPIC_API_KEY: 'dummy',
        ANTHROPIC_BASE_URL: url,
        CLAUDE_CONFIG_DIR: path.join(homes, 'claude-config'),
        CLAUDE_CODE_MAX_RETRIES: '0',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        HOME: path.join(homes, 'claude'),
      },
    },
    gemini: {
      env: { GEMINI_CLI_HOME: path.join(homes, 'gemini'), GEMINI_API_KEY: 'dummy', GOOGLE_GEMINI_BASE_URL: url },
    },
  };
  fs.writeFileSync(path.join(spool.home, 'config.json'), JSON.stringify(config));
  spool.env.PATH = `${bin}:${spool.env.PATH}`;
  return { ...spool, homes };
}

const MODEL: Record<string, string[]> = {
  codex: ['--model', 'fake-model'],
  claude: [],
  gemini: ['--model', 'gemini-2.5-flash'],
};

/** Usage as agent-async stores it: input includes cached tokens (claude: + cache creation). */
const EXPECTED_USAGE: Record<string, object> = {
  codex: { input_tokens: 42, output_tokens: 5, cached_input_tokens: 7 },
  claude: { input_tokens: 52, output_tokens: 5, cached_input_tokens: 7 },
  gemini: { input_tokens: 42, output_tokens: 5, cached_input_tokens: 7 },
};

function startAgent(spool: TestSpool, agent: string, args: string[]): string {
  const result = cli(spool, ['start', agent, ...MODEL[agent]!, ...args]);
  if (result.code !== 0) throw new Error(`start ${agent} failed: ${result.stderr}`);
  return result.stdout.trim();
}

// The fake server lives in this process, so waiting must not block it: async CLI calls only.
async function finished(spool: TestSpool, id: string): Promise<any> {
  const waited = await cliAsync(spool, ['wait', id, '--timeout', '180s', '--json']);
  const answer = JSON.parse(waited.stdout);
  const state = answer.finished[0] ?? answer.open[0];
  if (state.status !== 'done') {
    const log = fs.readFileSync(path.join(spool.home, 'jobs', id, 'output.log'), 'utf8');
    throw new Error(`job ${id} ended ${state.status}: ${JSON.stringify(state.error)}\n${log.slice(-4000)}`);
  }
  assertSchemaValid(state);
  return state;
}

describe.each(['codex', 'claude', 'gemini'])('%s, the real CLI, through agent-async', (agent) => {
  let spool: E2eSpool;
  beforeAll(() => {
    spool = e2eSpool();
  });

  it("completes with the fake model's answer as final_message and the right usage; a continued job reuses the session", async () => {
    server.mode = 'ok';
    server.reply = `Hello from the fake model to ${agent}.`;
    const first = await finished(spool, startAgent(spool, agent, ['say hello']));
    expect(first.result.final_message).toBe(`Hello from the fake model to ${agent}.`);
    expect(first.usage).toMatchObject(EXPECTED_USAGE[agent]!);
    expect(first.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(fs.readFileSync(path.join(spool.home, 'jobs', first.id, 'result.md'), 'utf8')).toBe(`Hello from the fake model to ${agent}.\n`);

    server.reply = `Second answer for ${agent}.`;
    const before = server.requests.length;
    const cont = cli(spool, ['continue', first.id, 'and once more', '--json']);
    expect(cont.code, cont.stderr).toBe(0);
    const second = await finished(spool, JSON.parse(cont.stdout).job_id);
    expect(second).toMatchObject({ session_id: first.session_id, request: { continue_of: first.id, resume_session: first.session_id } });
    expect(second.result.final_message).toBe(`Second answer for ${agent}.`);
    // its own turn's usage, also for codex, whose stream reports the thread's running total
    expect(second.usage).toMatchObject(EXPECTED_USAGE[agent]!);
    const history = JSON.stringify(server.requests.slice(before).map((r) => r.body));
    expect(history, 'the resumed request carries the first turn').toContain('say hello');
  }, 240_000);

  it('auto-edit lets a tool call write a file in cwd; suggest does not', async () => {
    server.mode = 'tool';
    server.reply = 'Tool done.';
    const results: Record<string, boolean> = {};
    for (const policy of ['auto-edit', 'suggest']) {
      const cwd = fs.mkdtempSync(path.join(spool.work, `${policy}-`));
      const before = server.requests.length;
      const state = await finished(spool, startAgent(spool, agent, ['--policy', policy, '--cwd', cwd, 'run the tool']));
      expect(state.result.final_message).toBe('Tool done.');
      results[policy] = fs.existsSync(path.join(cwd, 'fake_tool_output.txt'));
      // the tool call was made and its result (success or refusal) went back to the model
      const sent = JSON.stringify(server.requests.slice(before).map((r) => r.body));
      expect(sent).toMatch(/function_call_output|tool_result|functionResponse/);
      if (agent === 'codex') {
        const metadata = server.requests.slice(before).map((r) => r.headers['x-codex-turn-metadata']).find(Boolean);
        expect(JSON.parse(String(metadata)).sandbox_mode ?? JSON.parse(String(metadata)).sandbox).toBe(policy === 'auto-edit' ? 'workspace-write' : 'read-only');
      }
    }
    expect(results).toEqual({ 'auto-edit': true, suggest: false });
    server.mode = 'ok';
  }, 240_000);

  it.runIf(agent === 'codex')("isolated: the file its tool call writes is on the job's branch and nowhere else", async () => {
    server.mode = 'tool';
    server.reply = 'Tool done.';
    const repo = fs.mkdtempSync(path.join(spool.work, 'repo-'));
    git(repo, 'init', '-q');
    fs.writeFileSync(path.join(repo, 'README.md'), 'hello\n');
    git(repo, 'add', '-A');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qm', 'initial');
    fs.writeFileSync(path.join(repo, 'README.md'), 'hello, uncommitted\n');
    const before = await fingerprint(repo);
    const id = startAgent(spool, agent, ['--policy', 'auto-edit', '--cwd', repo, '--isolation', 'worktree', 'run the tool']);
    const state = await finished(spool, id);
    expect(state.result.final_message).toBe('Tool done.');
    expect(state.changes.files.map((file: { path: string }) => file.path), fs.readFileSync(path.join(spool.home, 'jobs', id, 'output.log'), 'utf8').slice(-3000)).toEqual(['fake_tool_output.txt']);
    expect(git(repo, 'show', `agent-async/${id}:fake_tool_output.txt`)).toBe('fake-tool-ran');
    // nowhere else: not in the user's files, index or refs, and no ref but the job's holds it
    expect(await fingerprint(repo)).toEqual(before);
    expect(git(repo, 'for-each-ref', '--format=%(refname)', '--contains', state.changes.head_commit)).toBe(`refs/heads/agent-async/${id}`);
    expect(fs.existsSync(path.join(spool.home, 'worktrees', id))).toBe(false);
    server.mode = 'ok';
  }, 240_000);
});
