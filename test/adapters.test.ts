import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readContextFiles } from '../lib/agents/context-files.js';
import { assemblePrompt, jobFooter } from '../lib/agents/prompt.js';
import * as jobs from '../lib/jobs.js';
import { ROOT, assertSchemaValid, cleanupSpools, cli, jobState, makeSpool, startAgentJob, treeSnapshot, waitJob, type TestSpool } from './helpers/spool.js';

afterAll(cleanupSpools);

/**
 * Stub CLIs named codex, claude, gemini and cursor-agent on the job's PATH record how they
 * were started and replay a recorded transcript: every policy must build the documented argv.
 */
const STUB = path.join(ROOT, 'test/stubs/agent-stub.mjs');
const FIXTURES = path.join(ROOT, 'test/fixtures');

interface StubSpool extends TestSpool {
  records: string;
}

function stubSpool(config: Record<string, unknown> = {}): StubSpool {
  const spool = makeSpool(config);
  const bin = path.join(spool.work, 'bin');
  const records = path.join(spool.work, 'records');
  fs.mkdirSync(bin);
  fs.mkdirSync(records);
  for (const name of ['codex', 'claude', 'gemini', 'cursor-agent']) fs.symlinkSync(STUB, path.join(bin, name));
  spool.env.PATH = `${bin}:${spool.env.PATH}`;
  spool.env.STUB_RECORD_DIR = records;
  delete spool.env.IS_SANDBOX;
  return { ...spool, records };
}

function setConfig(spool: TestSpool, patch: Record<string, unknown>): void {
  const file = path.join(spool.home, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
}

interface Record_ {
  name: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  stdin: string;
  stdinBytes: number;
}

function lastRecord(spool: StubSpool, name: string): Record_ {
  const files = fs.readdirSync(spool.records).filter((f) => f.startsWith(`${name}.`));
  const newest = files.map((f) => path.join(spool.records, f)).sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs).at(-1);
  if (!newest) throw new Error(`no record of ${name}`);
  return JSON.parse(fs.readFileSync(newest, 'utf8'));
}



function promptOf(spool: TestSpool, id: string): string {
  return fs.readFileSync(path.join(spool.home, 'jobs', id, 'prompt.txt'), 'utf8');
}

const EXPECTED_ARGV: Record<string, Record<string, (cwd: string) => string[]>> = {
  codex: {
    suggest: (cwd) => ['exec', '--json', '--skip-git-repo-check', '-C', cwd, '-s', 'read-only', '--'],
    'auto-edit': (cwd) => ['exec', '--json', '--skip-git-repo-check', '-C', cwd, '-s', 'workspace-write', '--'],
    'full-auto': (cwd) => ['exec', '--json', '--skip-git-repo-check', '-C', cwd, '--dangerously-bypass-approvals-and-sandbox', '--'],
  },
  claude: {
    suggest: () => ['-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'plan', '--'],
    'auto-edit': () => ['-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'acceptEdits', '--'],
    'full-auto': () => ['-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'bypassPermissions', '--'],
  },
  gemini: {
    suggest: () => ['-o', 'stream-json', '--approval-mode', 'plan'],
    'auto-edit': () => ['-o', 'stream-json', '--approval-mode', 'auto_edit'],
    'full-auto': () => ['-o', 'stream-json', '--approval-mode', 'yolo'],
  },
  cursor: {
    suggest: (cwd) => ['-p', '--output-format', 'stream-json', '--trust', '--workspace', cwd, '--mode', 'ask', '--'],
    'auto-edit': (cwd) => ['-p', '--output-format', 'stream-json', '--trust', '--workspace', cwd, '--'],
    'full-auto': (cwd) => ['-p', '--output-format', 'stream-json', '--trust', '--workspace', cwd, '--force', '--'],
  },
};
const BINARY: Record<string, string> = { codex: 'codex', claude: 'claude', gemini: 'gemini', cursor: 'cursor-agent' };
const ANSWER: Record<string, string> = {
  codex: 'Hello from the fake model.', claude: 'Hello from the fake model.', gemini: 'Hello from the fake model.', cursor: 'Hello from the stub cursor.',
};

/** The argv the stub received, with the prompt element (if any) as the last one. */
function expectPromptArg(agent: string, argv: string[], prompt: string): void {
  if (agent === 'gemini') expect(argv.at(-1)).toBe(`--prompt=${prompt}`);
  else expect(argv.at(-1)).toBe(prompt);
}

/** Every policy of every agent is checked as a pure function (adapter-argv.test.ts); here each agent runs once, for real. */
const WIRED: Array<[string, string]> = [['codex', 'suggest'], ['claude', 'full-auto'], ['gemini', 'auto-edit'], ['cursor', 'full-auto']];

describe('a runner starts each agent with the documented argv, in its cwd, and records its answer', () => {
  const spool = stubSpool({ concurrency: 4 });
  for (const [agent, policy] of WIRED) {
    it(`${agent} ${policy}`, async () => {
      const cwd = fs.mkdtempSync(path.join(spool.work, `${agent}-`));
      const id = await startAgentJob(spool, [agent, '--policy', policy, '--cwd', cwd, 'fix', 'the', 'bug']);
      const state = await waitJob(spool, id);
      expect(state).toMatchObject({ status: 'done', request: { policy, agent }, result: { final_message: ANSWER[agent] } });
      assertSchemaValid(state);
      const record = lastRecord(spool, BINARY[agent]!);
      const prompt = promptOf(spool, id);
      expect(prompt).toBe(`fix the bug\n\n${jobFooter(id)}\n`);
      const expectedPrefix = EXPECTED_ARGV[agent]![policy]!(cwd);
      expect(record.argv.slice(0, expectedPrefix.length)).toEqual(expectedPrefix);
      expect(record.argv).toHaveLength(expectedPrefix.length + 1);
      expectPromptArg(agent, record.argv, prompt);
      expect(record.cwd).toBe(cwd);
      expect(record.stdinBytes).toBe(0);
      expect(record.env).toMatchObject({ AGENT_ASYNC_JOB_ID: id, AGENT_ASYNC_JOB_DIR: path.join(spool.home, 'jobs', id) });
      if (agent === 'gemini') expect(record.env).toMatchObject({ GEMINI_CLI_NO_RELAUNCH: 'true', GEMINI_CLI_TRUST_WORKSPACE: 'true' });
      const asRoot = process.getuid?.() === 0;
      expect(record.env.IS_SANDBOX).toBe(agent === 'claude' && policy === 'full-auto' && asRoot ? '1' : undefined);
      expect(fs.readFileSync(path.join(spool.home, 'jobs', id, 'result.md'), 'utf8')).toBe(`${ANSWER[agent]}\n`);
    });
  }

  it('the default policy comes from config (shipped as auto-edit)', async () => {
    const id = await startAgentJob(spool, ['claude', 'hi']);
    expect((await waitJob(spool, id)).request.policy).toBe('auto-edit');
    setConfig(spool, { default_policy: 'suggest' });
    const next = await startAgentJob(spool, ['claude', 'hi']);
    expect((await waitJob(spool, next)).request.policy).toBe('suggest');
    expect(lastRecord(spool, 'claude').argv).toContain('plan');
    setConfig(spool, { default_policy: 'auto-edit' });
  });

  it('an unknown policy or model is refused before anything is queued', () => {
    const before = treeSnapshot(spool.home);
    const bad = cli(spool, ['start', 'codex', '--policy', 'yolo', 'hi']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Invalid values:[\s\S]*policy[\s\S]*Choices: "suggest", "auto-edit", "full-auto"/);
    const badModel = cli(spool, ['start', 'codex', '--model', '--yolo', 'hi']);
    expect(badModel.code).toBe(2);
    const badModel2 = cli(spool, ['start', 'codex', '--model=-rf', 'hi']);
    expect(badModel2.code).toBe(2);
    expect(badModel2.stderr).toMatch(/model: "-rf" is not a model name/);
    const empty = cli(spool, ['start', 'codex']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/prompt: is required/);
    expect(treeSnapshot(spool.home)).toEqual(before);
  });
});

describe('prompt delivery works for any prompt', () => {
  const spool = stubSpool({ concurrency: 4 });

  it('codex: a dash-leading prompt stays one argument', async () => {
    const id = await startAgentJob(spool, ['codex', '--', '-rf --help is not a flag here']);
    expect((await waitJob(spool, id)).status).toBe('done');
    const record = lastRecord(spool, BINARY.codex!);
    expectPromptArg('codex', record.argv, promptOf(spool, id));
    expect(promptOf(spool, id).startsWith('-rf --help is not a flag here\n')).toBe(true);
  });

  it('claude: a 1 MiB prompt goes through stdin, which is then closed', async () => {
    const file = path.join(spool.work, 'big-claude.txt');
    fs.writeFileSync(file, `${'x'.repeat(1024)}\n`.repeat(1024));
    const id = await startAgentJob(spool, ['claude', '--prompt-file', file]);
    expect((await waitJob(spool, id)).status).toBe('done');
    const record = lastRecord(spool, BINARY.claude!);
    const prompt = promptOf(spool, id);
    expect(Buffer.byteLength(prompt)).toBeGreaterThan(1024 * 1024);
    expect(record.stdin).toBe(prompt);
    expect(record.argv.join(' ')).not.toContain('xxxx');
    expect(record.argv.at(-1)).not.toBe('--');
  });
});

describe('agent settings, continuing, context files, custom agents, failures', () => {
  it('binary path, extra args and env per agent come from config', async () => {
    const spool = stubSpool();
    const renamed = path.join(spool.work, 'my-codex');
    fs.symlinkSync(STUB, renamed);
    const transcript = path.join(FIXTURES, 'transcripts/codex_exec_json_ok.jsonl');
    setConfig(spool, { agents: { codex: { binary: renamed, extra_args: ['-c', 'model_reasoning_effort="high"'], env: { CUSTOM_FLAG: 'on', STUB_TRANSCRIPT: transcript } } } });
    const id = await startAgentJob(spool, ['codex', '--model', 'gpt-6.1-sol', 'hi']);
    expect((await waitJob(spool, id)).status).toBe('done');
    const record = lastRecord(spool, 'my-codex');
    expect(record.argv).toEqual(['exec', '--json', '--skip-git-repo-check', '-C', spool.work, '-m', 'gpt-6.1-sol', '-s', 'workspace-write',
      '-c', 'model_reasoning_effort="high"', '--', promptOf(spool, id)]);
    expect(record.env.CUSTOM_FLAG).toBe('on');
  });

  it("continuing a job resumes the worker's own session, in the same cwd", async () => {
    const spool = stubSpool();
    // each agent's resume argv is checked as a pure function (adapter-argv.test.ts); here one runs for real
    const expectations: Record<string, (session: string, prompt: string) => string[]> = {
      claude: (s, p) => ['-p', '--output-format', 'stream-json', '--verbose', '--permission-mode', 'acceptEdits', '--resume', s, '--', p],
    };
    for (const [agent, argvFor] of Object.entries(expectations)) {
      const first = await startAgentJob(spool, [agent, 'first task']);
      const parent = await waitJob(spool, first);
      expect(parent.session_id).toBeTruthy();
      const cont = cli(spool, ['continue', first, 'and', 'now', 'the', 'tests', '--json']);
      expect(cont.code, cont.stderr).toBe(0);
      const next = JSON.parse(cont.stdout).job_id;
      const state = await waitJob(spool, next);
      expect(state).toMatchObject({ status: 'done', request: { continue_of: first, resume_session: parent.session_id, cwd: spool.work } });
      const record = lastRecord(spool, BINARY[agent]!);
      expect(record.argv).toEqual(argvFor(parent.session_id, promptOf(spool, next)));
      expect(promptOf(spool, next).startsWith('and now the tests\n')).toBe(true);
    }
  });

  it('codex usage is cumulative per thread: a continued job stores its own turn', async () => {
    const spool = stubSpool();
    const first = await startAgentJob(spool, ['codex', 'one']);
    expect((await waitJob(spool, first)).usage).toMatchObject({ input_tokens: 42, output_tokens: 5, cached_input_tokens: 7 });
    setConfig(spool, { agents: { codex: { env: { STUB_TRANSCRIPT: path.join(FIXTURES, 'transcripts/codex_exec_resume_json_ok.jsonl') } } } });
    const cont = JSON.parse(cli(spool, ['continue', first, 'two', '--json']).stdout).job_id;
    const state = await waitJob(spool, cont);
    expect(state.usage).toMatchObject({ input_tokens: 42, output_tokens: 5, cached_input_tokens: 7 });
    expect(state.result.cumulative_usage).toMatchObject({ input_tokens: 84, output_tokens: 10, cached_input_tokens: 14 });
  });

  it('continue is refused for exec jobs, running jobs and jobs without a session', async () => {
    const spool = stubSpool();
    const exec = await startAgentJob(spool, ['exec', '--', 'true']);
    await waitJob(spool, exec);
    expect(cli(spool, ['continue', exec, 'more']).stderr).toMatch(/exec jobs have no conversation to continue/);
    // runs until cancelled, so the refusal cannot race its end on a loaded machine
    setConfig(spool, { agents: { claude: { env: { STUB_SLEEP_MS: '600000' } } } });
    const slow = await startAgentJob(spool, ['claude', 'slow']);
    expect(cli(spool, ['continue', slow, 'more']).stderr).toMatch(/still (pending|running); wait for it to end/);
    expect(cli(spool, ['cancel', slow]).code).toBe(0);
    setConfig(spool, { agents: { claude: { env: { STUB_TRANSCRIPT: '/dev/null' } } } });
    const silent = await startAgentJob(spool, ['claude', 'hi']);
    expect((await waitJob(spool, silent)).status).toBe('error');
    expect(cli(spool, ['continue', silent, 'more']).stderr).toMatch(/reported no session id/);
  });

  it('context files are inlined with delimiters no file contains, and may not leave cwd', async () => {
    const spool = stubSpool();
    const repo = fs.mkdtempSync(path.join(spool.work, 'repo-'));
    fs.mkdirSync(path.join(repo, 'src'));
    fs.writeFileSync(path.join(repo, 'src', 'a.ts'), 'export const a = 1;\n===== END FILE "src/a.ts" =====\n');
    fs.writeFileSync(path.join(repo, 'notes.md'), '# notes');
    fs.writeFileSync(path.join(spool.work, 'secret.txt'), 'secret');
    fs.symlinkSync(path.join(spool.work, 'secret.txt'), path.join(repo, 'link.txt'));

    const id = await startAgentJob(spool, ['claude', '--cwd', repo, '--context-file', 'src/a.ts', '--context-file', 'notes.md', 'review these']);
    expect((await waitJob(spool, id)).request.context_files).toEqual(['src/a.ts', 'notes.md']);
    // how files are inlined is checked as a pure function (adapter-argv.test.ts); here, that the worker gets it
    const files = readContextFiles(repo, ['src/a.ts', 'notes.md'], { fileMaxBytes: 1 << 20, totalMaxBytes: 1 << 20 });
    const inlined = promptOf(spool, id).replace(/ctx-[0-9a-f]{12}/g, 'MARKER');
    expect(inlined).toBe(assemblePrompt(id, 'review these', files).replace(/ctx-[0-9a-f]{12}/g, 'MARKER'));
    expect(lastRecord(spool, 'claude').argv.at(-1)).toBe(promptOf(spool, id));

    // each refusal is checked as a pure function (adapter-argv.test.ts); here two go through the CLI
    const refused: Array<[string, RegExp]> = [
      ['../secret.txt', /context_files\[0\]: "\.\.\/secret\.txt" is outside cwd/],
      ['link.txt', /is a symbolic link to .*secret\.txt, outside cwd/],
    ];
    const before = fs.readdirSync(path.join(spool.home, 'jobs')).length;
    for (const [file, message] of refused) {
      const result = cli(spool, ['start', 'claude', '--cwd', repo, '--context-file', file, 'x']);
      expect(result.code, file).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(fs.readdirSync(path.join(spool.home, 'jobs'))).toHaveLength(before);
  });

  it('custom agents: argv template, prompt via argv or stdin, text or jsonl output', async () => {
    const spool = stubSpool();
    const fake = path.join(spool.work, 'bin', 'aider');
    fs.symlinkSync(STUB, fake);
    const jsonl = path.join(spool.work, 'custom.jsonl');
    fs.writeFileSync(jsonl, [
      '{"event":"start","session":"sess-42"}',
      'plain progress text',
      '{"event":"done","answer":{"text":"custom answer"},"tokens":{"in":11,"out":3}}',
    ].join('\n'));
    setConfig(spool, {
      agents: {
        aider: {
          command: ['aider', '--message', '{prompt}', '--model', '{model}', '--dir', '{cwd}'],
          output: 'jsonl',
          jsonl: {
            final_message: { path: 'answer.text', where: { event: 'done' } },
            session_id: 'session',
            input_tokens: 'tokens.in',
            output_tokens: 'tokens.out',
          },
          policy_args: { 'full-auto': ['--yes-always'] },
          resume_args: ['--restore', '{session_id}'],
          env: { STUB_TRANSCRIPT: jsonl },
        },
        texty: { command: ['aider', '--stdin-mode'], prompt_via: 'stdin', env: { STUB_TRANSCRIPT: path.join(FIXTURES, 'cursor/README.md') } },
      },
    });
    const id = await startAgentJob(spool, ['aider', '--policy', 'full-auto', 'refactor it']);
    const state = await waitJob(spool, id);
    expect(state).toMatchObject({ status: 'done', session_id: 'sess-42', result: { final_message: 'custom answer' }, usage: { input_tokens: 11, output_tokens: 3 } });
    expect(lastRecord(spool, 'aider').argv).toEqual(['--yes-always', '--message', promptOf(spool, id), '--dir', spool.work]);

    const withModel = await startAgentJob(spool, ['aider', '--model', 'sonnet', 'x']);
    await waitJob(spool, withModel);
    expect(lastRecord(spool, 'aider').argv).toEqual(['--message', promptOf(spool, withModel), '--model', 'sonnet', '--dir', spool.work]);
    const cont = JSON.parse(cli(spool, ['continue', id, 'more', '--json']).stdout).job_id;
    await waitJob(spool, cont);
    expect(lastRecord(spool, 'aider').argv.slice(0, 3)).toEqual(['--yes-always', '--restore', 'sess-42']);

    const text = await startAgentJob(spool, ['texty', 'via stdin']);
    const textState = await waitJob(spool, text);
    expect(textState.result.final_message).toBe(fs.readFileSync(path.join(FIXTURES, 'cursor/README.md'), 'utf8').trim());
    const record = lastRecord(spool, 'aider');
    expect(record.argv).toEqual(['--stdin-mode']);
    expect(record.stdin).toBe(promptOf(spool, text));

    setConfig(spool, { agents: { broken: { command: [] } } });
    const bad = cli(spool, ['start', 'exec', '--', 'true']);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/agents\.broken\.command: Too small/);
  });

  it('input that does not fit the agent is refused with the field named, and nothing is queued', () => {
    const spool = stubSpool();
    const library = jobs.openContext({ home: spool.home, env: spool.env });
    const before = treeSnapshot(spool.home);
    const refused = (args: string[], message: RegExp): void => {
      const result = cli(spool, ['start', ...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    };
    refused(['toString', 'hi'], /agent "toString" is not known; allowed: exec, codex/);
    refused(['__proto__', 'hi'], /agent "__proto__" is not known/);
    refused(['exec', '--model', 'sonnet', '--', 'true'], /model: does not apply to exec/);
    refused(['exec', '--policy', 'suggest', '--', 'true'], /approval_policy: does not apply to exec/);
    refused(['exec', '--timeout', '0', '--', 'true'], /timeout: must be above 0; got 0/);
    expect(() => jobs.submit(library, { agent: 'codex', prompt: 'x', argv: ['ls'], cwd: spool.work })).toThrow(/argv: applies to exec only; codex takes a prompt/);
    expect(() => jobs.submit(library, { agent: 'exec', prompt: 'x', argv: ['ls'], cwd: spool.work })).toThrow(/prompt: does not apply to exec/);
    expect(treeSnapshot(spool.home)).toEqual(before);
  });

  it('config: inherited names are unknown keys; a custom agent must take the prompt somewhere and start with a program', () => {
    const spool = stubSpool();
    const configError = (config: Record<string, unknown>, message: RegExp): void => {
      fs.writeFileSync(path.join(spool.home, 'config.json'), JSON.stringify(config));
      const result = cli(spool, ['ls']);
      expect(result.code).toBe(78);
      expect(result.stderr).toMatch(message);
    };
    configError({ constructor: 1 }, /unknown key "constructor"/);
    configError({ agents: { aider: { command: ['aider', '--yes'] } } }, /agents\.aider\.command: has no \{prompt\}/);
    configError({ agents: { aider: { command: ['{prompt}'] } } }, /agents\.aider\.command\.0: must be the program/);
    fs.writeFileSync(path.join(spool.home, 'config.json'), JSON.stringify({ agents: { aider: { command: ['aider', '--yes'], prompt_via: 'stdin' } } }));
    expect(cli(spool, ['ls']).code).toBe(0);
  });

  it('custom agents: a value put into the template is not expanded again; no resume_args, no continue', async () => {
    const spool = stubSpool();
    fs.symlinkSync(STUB, path.join(spool.work, 'bin', 'aider'));
    const jsonl = path.join(spool.work, 'custom.jsonl');
    fs.writeFileSync(jsonl, '{"session":"sess-7"}\n{"answer":"ok"}\n');
    setConfig(spool, {
      agents: { aider: { command: ['aider', '--dir', '{cwd}', '--message', '{prompt}'], output: 'jsonl', jsonl: { final_message: 'answer', session_id: 'session' }, env: { STUB_TRANSCRIPT: jsonl } } },
    });
    const odd = path.join(spool.work, 'a{prompt}b{model}');
    fs.mkdirSync(odd);
    const id = await startAgentJob(spool, ['aider', '--cwd', odd, 'do it']);
    expect(await waitJob(spool, id)).toMatchObject({ status: 'done', session_id: 'sess-7' });
    expect(lastRecord(spool, 'aider').argv).toEqual(['--dir', odd, '--message', promptOf(spool, id)]);
    const refused = cli(spool, ['continue', id, 'more']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/agent aider cannot continue a session \(give it resume_args in config\.json\)/);
  });

  it('failures get actionable hints: not installed, not logged in', async () => {
    const spool = stubSpool();
    setConfig(spool, { agents: { gemini: { binary: 'gemini-not-installed' } } });
    const missing = await waitJob(spool, await startAgentJob(spool, ['gemini', 'hi']));
    expect(missing).toMatchObject({ status: 'error', error: { code: 'agent_not_found', hint: 'install it: npm install -g @google/gemini-cli' } });

    setConfig(spool, { agents: { codex: { env: { STUB_TRANSCRIPT: path.join(FIXTURES, 'transcripts/codex_exec_json_http401.jsonl'), STUB_EXIT: '1' } } } });
    const auth = await waitJob(spool, await startAgentJob(spool, ['codex', 'hi']));
    expect(auth).toMatchObject({
      status: 'error',
      exit_code: 1,
      session_id: '01a20a1b-dfc4-7642-8aac-dc60c4648dd4',
      error: { code: 'agent_error', message: expect.stringMatching(/401 Unauthorized/), hint: expect.stringMatching(/codex login/) },
    });
    const shown = cli(spool, ['show', auth.id]);
    expect(shown.stdout).toMatch(/hint\s+codex is not logged in/);
  });

  it('list-agents shows each agent, its binary, version and whether it is installed', () => {
    const spool = stubSpool();
    setConfig(spool, { agents: { cursor: { binary: 'cursor-agent-missing' }, aider: { command: ['aider', '{prompt}'] } } });
    const probes = JSON.parse(cli(spool, ['list-agents', '--json']).stdout).workers;
    const byName = Object.fromEntries(probes.map((p: any) => [p.agent, p]));
    expect(Object.keys(byName)).toEqual(['exec', 'codex', 'claude', 'gemini', 'cursor', 'aider']);
    expect(byName.codex).toMatchObject({ binary: 'codex', installed: true, version: 'codex 9.9.9-stub' });
    expect(byName.cursor).toMatchObject({ binary: 'cursor-agent-missing', installed: false, install_hint: expect.stringContaining('cursor.com/install') });
    expect(byName.aider).toMatchObject({ installed: false });
    expect(cli(spool, ['list-agents']).stdout).toMatch(/claude\s+claude\s+yes\s+claude 9\.9\.9-stub/);
  });

  it('states of agent jobs match the schema, and show/ls describe them', async () => {
    const spool = stubSpool();
    const id = await startAgentJob(spool, ['gemini', '--model', 'gemini-2.5-flash', 'hi']);
    const state = await waitJob(spool, id);
    assertSchemaValid(state);
    expect(jobState(spool, id).usage).toMatchObject({ input_tokens: 42, output_tokens: 5, cached_input_tokens: 7 });
    expect(cli(spool, ['show', id]).stdout).toMatch(/usage\s+42 in, 5 out, 7 cached/);
    expect(cli(spool, ['ls']).stdout).toMatch(/gemini auto-edit gemini-2\.5-flash/);
  });
});
