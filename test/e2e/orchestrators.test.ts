import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, killSpoolProcesses, readJson } from '../helpers/spool.js';
import { ensureAgentClis } from './clis.js';
import { startFakeModelServer, type FakeModelServer } from './fake-model-server.js';
import { orchestration, type Orchestration } from './fake-orchestrator.js';

/**
 * The real Claude Code, codex and gemini CLIs, each as the orchestrator: the MCP client of
 * `agent-async serve`, registered ONLY by `agent-async add-agent` into a fresh HOME, driven by
 * a scripted model on 127.0.0.1 to call codex_start and then codex_wait until the job ends,
 * while the real codex CLI is the worker (pointed at the same fake model, whose answer waits
 * until the orchestrator has seen a wait time out, so the loop really loops).
 *
 * The server the client starts is slow on purpose, as on a loaded machine: the `node` that
 * add-agent registered starts it only once the client has sent its first main-loop request to
 * the model (or after 5 s). A client that does not wait for the server (codex without
 * `required = true`) offers the model no agent-async tool, and the test fails.
 */

let server: FakeModelServer;
let bin: string;
const roots: string[] = [];

beforeAll(async () => {
  bin = ensureAgentClis();
  server = await startFakeModelServer();
}, 20 * 60_000);

afterAll(async () => {
  for (const root of roots) {
    killSpoolProcesses(path.join(root, 'spool'));
    fs.rmSync(root, { recursive: true, force: true });
  }
  await server?.close();
});

interface Setup {
  root: string;
  home: string;
  spool: string;
  work: string;
  marker: string;
  /** PATH without the registered node's folder, so nothing but the server starts slowly. */
  path: string;
}

const SYSTEM_PATH = [path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');

function setUp(client: string): Setup {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `aa-orch-${client}-`));
  roots.push(root);
  const at = (name: string): string => path.join(root, name);
  const [home, spool, work, workerHome, nodeBin] = [at('home'), at('spool'), at('work'), at('worker-codex'), at('node-bin')];
  for (const dir of [home, work, workerHome, nodeBin]) fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(spool, { mode: 0o700 });
  fs.writeFileSync(path.join(spool, 'config.json'), JSON.stringify({
    concurrency: 1,
    runner_idle_seconds: 2,
    kill_grace_seconds: 2,
    job_timeout_seconds: 180,
    agents: {
      codex: {
        extra_args: [
          '-c', 'model_provider="fake"',
          '-c', `model_providers.fake={name="fake",base_url="${server.url}/v1",env_key="FAKE_API_KEY",wire_api="responses",request_max_retries=0,stream_max_retries=0}`,
        ],
        env: { CODEX_HOME: workerHome, FAKE_API_KEY: 'dummy' },
      },
    },
  }));
  // the `node` add-agent finds on PATH, and registers
  fs.symlinkSync(process.execPath, path.join(nodeBin, 'node'));
  return { root, home, spool, work, marker: path.join(root, 'model-called'), path: `${bin}:${SYSTEM_PATH}` };
}

function addAgent(setup: Setup, client: string, flags: string[]): any {
  const result = spawnSync(process.execPath, [CLI, 'add-agent', client, ...flags, '--json'], {
    encoding: 'utf8',
    env: { HOME: setup.home, PATH: `${path.join(setup.root, 'node-bin')}:${setup.path}`, AGENT_ASYNC_HOME: setup.spool },
    timeout: 120_000,
  });
  if (result.status !== 0) throw new Error(`add-agent ${client} failed (${result.status}): ${result.stderr}${result.stdout}`);
  return JSON.parse(result.stdout);
}

/** Swaps the registered `node` for one that starts the server late (see the top of this file). */
function makeServerSlow(setup: Setup): void {
  const node = path.join(setup.root, 'node-bin', 'node');
  fs.rmSync(node);
  fs.writeFileSync(node, `#!/bin/sh
i=0
while [ ! -e '${setup.marker}' ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
exec '${process.execPath}' "$@"
`, { mode: 0o755 });
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The fake model lives in this process: the orchestrator must run without blocking it.
function runClient(setup: Setup, argv: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: setup.work,
      env: { HOME: setup.home, PATH: setup.path, TERM: 'dumb', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 200_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const TASK = 'Hand the greeting task to a codex worker through agent-async and report its answer.';

const CLIENTS: Record<string, { flags: string[]; run: (setup: Setup) => Promise<Run>; prepare?: (setup: Setup) => void }> = {
  'claude-code': {
    flags: ['--allow-tools'],
    run: (setup) => runClient(setup, [path.join(bin, 'claude'), '-p', TASK, '--output-format', 'stream-json', '--verbose'], {
      ANTHROPIC_API_KEY: 'dummy',
      ANTHROPIC_BASE_URL: server.url,
      CLAUDE_CODE_MAX_RETRIES: '0',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    }),
  },
  codex: {
    flags: [],
    run: (setup) => runClient(setup, [
      path.join(bin, 'codex'), 'exec', '--json', '--skip-git-repo-check', '-m', 'fake-orchestrator',
      '-c', 'model_provider="fake"',
      '-c', `model_providers.fake={name="fake",base_url="${server.url}/v1",env_key="FAKE_API_KEY",wire_api="responses",request_max_retries=0,stream_max_retries=0}`,
      '--', TASK,
    ], { FAKE_API_KEY: 'dummy' }),
  },
  gemini: {
    flags: ['--allow-tools'],
    // the user's own settings before the registration: the API-key auth the fake model needs
    prepare: (setup) => {
      fs.mkdirSync(path.join(setup.home, '.gemini'));
      fs.writeFileSync(path.join(setup.home, '.gemini', 'settings.json'), '{\n  "security": { "auth": { "selectedType": "gemini-api-key" } },\n  "general": { "maxAttempts": 1 }\n}\n');
    },
    run: (setup) => runClient(setup, [path.join(bin, 'gemini'), '-m', 'gemini-2.5-flash', '-o', 'stream-json', `--prompt=${TASK}`], {
      GEMINI_API_KEY: 'dummy',
      GOOGLE_GEMINI_BASE_URL: server.url,
      GEMINI_CLI_TRUST_WORKSPACE: 'true',
      GEMINI_CLI_NO_RELAUNCH: 'true',
    }),
  },
};

function report(o: Orchestration, run: Run): string {
  return `steps: ${JSON.stringify(o.steps)}\nexit ${run.code}\nstdout: ${run.stdout.slice(-3000)}\nstderr: ${run.stderr.slice(-3000)}`;
}

describe.each(Object.keys(CLIENTS))('%s as the orchestrator, registered only by add-agent', (client) => {
  it('starts a codex job through agent-async, loops on the wait while it times out, and reports the worker\'s answer', async () => {
    const setup = setUp(client);
    CLIENTS[client]!.prepare?.(setup);
    const added = addAgent(setup, client, CLIENTS[client]!.flags);
    expect(added.server.args).toEqual([path.join(path.dirname(CLI), 'agent-async.js'), 'serve', '--home', setup.spool]);
    makeServerSlow(setup);

    const reply = `Worker done for ${client}.`;
    const o = orchestration({
      startTool: 'codex_start',
      waitTool: 'codex_wait',
      startArgs: { prompt: 'Say hello.', cwd: setup.work, model: 'fake-worker', approval_policy: 'auto-edit' },
      waitSeconds: 2,
      orchestratorModel: 'fake-orchestrator',
      workerReply: reply,
      onFirstRequest: () => fs.writeFileSync(setup.marker, ''),
    });
    server.orchestration = o;
    const run = await CLIENTS[client]!.run(setup);
    server.orchestration = null;

    const ended = o.answers.at(-1);
    expect(ended?.status, report(o, run)).toBe('done');
    expect(run.code, report(o, run)).toBe(0);
    expect(run.stdout).toContain(`orchestrator: job ${ended!.job_id} ended done: ${reply}`);
    // the start answered at once, then at least one wait timed out before the job ended
    expect(['pending', 'running']).toContain(o.answers[0]!.status);
    expect(o.answers.some((answer) => answer.status === 'timeout')).toBe(true);
    const state = readJson(path.join(setup.spool, 'jobs', ended!.job_id, 'state.json'));
    expect(state).toMatchObject({ status: 'done', request: { agent: 'codex', cwd: setup.work, policy: 'auto-edit' }, result: { final_message: reply } });
  }, 300_000);
});
