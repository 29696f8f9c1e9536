import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv';
import type Ajv2020Module from 'ajv/dist/2020.js';
import type addFormatsModule from 'ajv-formats';
import { optionalDuration } from '../../lib/cli/duration.js';
import { snapshotJson } from '../../lib/cli/output.js';
import * as jobs from '../../lib/jobs.js';
import { mayKillProcess } from '../../lib/signals.js';
import { isTerminal } from '../../lib/spool/state.js';

/**
 * Test helpers at the true edges: real temp spools, the real built CLI in child processes,
 * and a JSON Schema validator that knows nothing of our zod code.
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin', 'agent-async.js');
export const DIST = path.join(ROOT, 'dist');

export interface TestSpool {
  home: string;
  env: NodeJS.ProcessEnv;
  /** A scratch folder outside the spool, for cwds and ledgers. */
  work: string;
}

/** Settings that keep tests quick: short idle time, short graces, fast polls. */
export const FAST_CONFIG = {
  runner_idle_seconds: 2,
  kill_grace_seconds: 1,
  done_grace_seconds: 1,
  poll_seconds: 0.25,
  // each spare supervisor is a Node start; the tests that need them say so
  warm_supervisors: 0,
};

const created: TestSpool[] = [];

export function makeSpool(config: Record<string, unknown> = {}): TestSpool {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-test-'));
  const home = path.join(base, 'spool');
  const work = path.join(base, 'work');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ ...FAST_CONFIG, ...config }, null, 2));
  const env: NodeJS.ProcessEnv = { ...process.env, AGENT_ASYNC_HOME: home };
  for (const key of Object.keys(env)) if (key.startsWith('AGENT_ASYNC_') && key !== 'AGENT_ASYNC_HOME') delete env[key];
  const spool = { home, env, work };
  created.push(spool);
  return spool;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How long `cli` lets a command run before it kills it and fails with what it printed so far. */
const CLI_TIMEOUT_MS = 120_000;

export function cli(spool: TestSpool, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? spool.work,
    env: { ...spool.env, ...options.env },
    encoding: 'utf8',
    input: options.input,
    timeout: CLI_TIMEOUT_MS,
  });
  if (result.error || result.status === null) throw cliDidNotEnd(args, result, CLI_TIMEOUT_MS);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A command that hung (or died of a signal), with what it had printed: where it was stuck. */
function cliDidNotEnd(args: string[], result: { error?: NodeJS.ErrnoException; signal: NodeJS.Signals | null; stdout: string; stderr: string }, timeoutMs: number): Error {
  const why = result.error?.code === 'ETIMEDOUT'
    ? `did not end within ${timeoutMs / 1000} s and was killed`
    : result.error ? `failed: ${result.error.message}` : `was killed by ${result.signal}`;
  const shown = (text: string | undefined): string => (text ? text.slice(-4000) : '(nothing)');
  return new Error(`agent-async ${args.join(' ')} ${why}\n── its stderr so far:\n${shown(result.stderr)}\n── its stdout so far:\n${shown(result.stdout)}`);
}

/**
 * `cli` without blocking this process (for a command that needs it meanwhile: a relay, a
 * server). With `timeoutMs`, a command still running then is killed and the call fails with
 * what it printed so far.
 */
export function cliAsync(spool: TestSpool, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? spool.work, env: spool.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
      child.kill('SIGKILL');
      const error = Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });
      reject(cliDidNotEnd(args, { error, signal: null, stdout, stderr }, options.timeoutMs!));
    }, options.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Starts an exec job through the CLI and returns its id (for tests of the CLI's `start` itself). */
export function startJobByCli(spool: TestSpool, argv: string[], flags: string[] = []): string {
  const result = cli(spool, ['start', 'exec', ...flags, '--', ...argv]);
  if (result.code !== 0) throw new Error(`start failed (${result.code}): ${result.stderr}`);
  return result.stdout.trim();
}

/** The flags of `start` that tests set up jobs with, as the submit input they stand for. */
const START_FLAGS: Record<string, (input: jobs.SubmitInput, value: string, spool: TestSpool) => void> = {
  '--cwd': (input, value, spool) => (input.cwd = path.resolve(spool.work, value)),
  '--timeout': (input, value) => (input.timeout_seconds = optionalDuration(value, 'timeout')),
  '--stall-timeout': (input, value) => (input.stall_seconds = optionalDuration(value, 'stall-timeout')),
  '--policy': (input, value) => (input.approval_policy = value as jobs.SubmitInput['approval_policy']),
  '--model': (input, value) => (input.model = value),
  '--context-file': (input, value) => (input.context_files = [...(input.context_files ?? []), value]),
  '--isolation': (input, value) => (input.isolation = value as jobs.SubmitInput['isolation']),
  '--base': (input, value) => (input.base = value),
};

/**
 * The submit input of `start <agent> [flags] <prompt words>` run in spool.work, or undefined
 * when the arguments use more than START_FLAGS knows (the caller then goes through the CLI).
 */
function startInput(spool: TestSpool, agent: string, flagsAndWords: string[], argv?: string[]): jobs.SubmitInput | undefined {
  const input: jobs.SubmitInput = { agent, cwd: spool.work };
  let i = 0;
  for (; i < flagsAndWords.length && flagsAndWords[i]!.startsWith('--'); i += 2) {
    const apply = START_FLAGS[flagsAndWords[i]!];
    if (apply === undefined || flagsAndWords[i + 1] === undefined) return undefined;
    apply(input, flagsAndWords[i + 1]!, spool);
  }
  const words = flagsAndWords.slice(i);
  if (argv !== undefined) {
    if (words.length > 0) return undefined;
    input.argv = argv;
  } else {
    input.prompt = words.join(' ');
  }
  return input;
}

/**
 * Queues a job as `start <agent> [flags] <prompt words>` would, in this process when it can: the
 * same submit the CLI makes (which starts the runner), without a CLI process per job (its
 * start-up costs more CPU than most jobs). cli.test.ts tests the CLI's own `start`.
 */
export async function startAgentJob(spool: TestSpool, args: string[]): Promise<string> {
  const input = startInput(spool, args[0]!, args.slice(1));
  if (input === undefined) {
    const result = cli(spool, ['start', ...args]);
    if (result.code !== 0) throw new Error(`start failed (${result.code}): ${result.stderr}`);
    return result.stdout.trim();
  }
  return (await jobs.submit(spoolContext(spool), input)).job_id;
}

/** Queues an exec job as `start exec [flags] -- argv` would, in this process (see startAgentJob). */
export async function startJob(spool: TestSpool, argv: string[], flags: string[] = []): Promise<string> {
  const input = startInput(spool, 'exec', flags, argv);
  if (input === undefined) return startJobByCli(spool, argv, flags);
  return (await jobs.submit(spoolContext(spool), input)).job_id;
}

/** A folder under the spool's work area, made if missing (a job's own cwd). */
export function dirIn(spool: TestSpool, name: string): string {
  const dir = path.join(spool.work, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** The context the CLI would open for this spool (config.json read anew, as each CLI run does). */
export function spoolContext(spool: TestSpool): jobs.JobsContext {
  return jobs.openContext({ home: spool.home, env: spool.env });
}

/**
 * A job that holds the queue (concurrency 1) until `release()` is called, so a test can set
 * things up behind it without racing the runner.
 */
export async function gateJob(spool: TestSpool): Promise<{ id: string; release: () => void }> {
  const gate = path.join(spool.work, `gate-${Math.random().toString(36).slice(2)}`);
  const id = await startJob(spool, ['sh', '-c', `while [ ! -e '${gate}' ]; do sleep 0.05; done`]);
  return { id, release: () => fs.writeFileSync(gate, '') };
}

export function readJson<T = any>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

export function jobState(spool: TestSpool, id: string): any {
  return readJson(path.join(spool.home, 'jobs', id, 'state.json'));
}

/** agent-async's own notes about a job's run (notes.log), '' when it has none. */
export function jobNotes(spool: TestSpool, id: string): string {
  const file = path.join(spool.home, 'jobs', id, 'notes.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

/** Waits for a job to end, in this process, and answers what `wait <id> --json` prints for it. */
export async function waitJob(spool: TestSpool, id: string, timeout = '60s'): Promise<any> {
  const answer = await jobs.waitForEnd(spoolContext(spool), [id], { any: false, totalSeconds: optionalDuration(timeout, 'timeout') });
  return snapshotJson(answer.settled[0] ?? answer.open[0]!);
}

/** `wait <id> --json` through the CLI (for tests of the CLI's `wait` itself). */
export function waitJobByCli(spool: TestSpool, id: string, timeout = '60s'): any {
  const result = cli(spool, ['wait', id, '--timeout', timeout, '--json']);
  const parsed = JSON.parse(result.stdout);
  return parsed.finished[0] ?? parsed.open[0];
}

let schema: { validate: ValidateFunction; errorsText: (errors: ValidateFunction['errors']) => string } | undefined;

/**
 * The shipped schema, compiled on first use: loading ajv and compiling cost ~0.8 s of CPU, which
 * most files that import these helpers never need.
 */
function stateSchema(): NonNullable<typeof schema> {
  if (schema === undefined) {
    const require = createRequire(import.meta.url);
    const { default: Ajv2020 } = require('ajv/dist/2020.js') as typeof Ajv2020Module;
    const { default: addFormats } = require('ajv-formats') as typeof addFormatsModule;
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    addFormats(ajv);
    schema = { validate: ajv.compile(readJson(path.join(ROOT, 'schema', 'state.schema.json'))), errorsText: (errors) => ajv.errorsText(errors) };
  }
  return schema;
}

/** Validates a state against the shipped JSON Schema; throws with the schema's complaint. */
export function assertSchemaValid(state: unknown): void {
  const { validate, errorsText } = stateSchema();
  if (!validate(state)) {
    throw new Error(`state does not match schema/state.schema.json: ${errorsText(validate.errors)}\n${JSON.stringify(state)}`);
  }
}

export function allStates(spool: TestSpool): any[] {
  const jobsDir = path.join(spool.home, 'jobs');
  if (!fs.existsSync(jobsDir)) return [];
  return fs.readdirSync(jobsDir).map((id) => readJson(path.join(jobsDir, id, 'state.json')));
}

/**
 * An `active/` marker of a job that has ended: it is removed just after the terminal state is
 * written (which wakes the waiters), so a snapshot taken right after a wait may or may not see it.
 */
function endedJobMarker(home: string, rel: string): boolean {
  if (!rel.startsWith('active/')) return false;
  try {
    const state = readJson(path.join(home, 'jobs', path.basename(rel), 'state.json'));
    return isTerminal(state.status);
  } catch {
    return false;
  }
}

/**
 * Lists the files of a spool with their contents, to prove that a bad call changed nothing
 * (runner.* and tmp/ belong to the runner, which comes and goes on its own).
 */
export function treeSnapshot(dir: string): Record<string, string> {
  const snapshot: Record<string, string> = {};
  const walk = (current: string): void => {
    for (const name of fs.readdirSync(current)) {
      const full = path.join(current, name);
      const rel = path.relative(dir, full);
      if (rel.startsWith('runner.') || rel.startsWith('tmp/') || endedJobMarker(dir, rel)) continue;
      const stat = fs.lstatSync(full);
      if (stat.isDirectory()) {
        snapshot[`${rel}/`] = '';
        walk(full);
      } else {
        snapshot[rel] = fs.readFileSync(full, 'utf8');
      }
    }
  };
  walk(dir);
  return snapshot;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Signals one process by a pid a test read somewhere (a pid file, runner.json, a job's state);
 * false when it is gone. Throws for a pid that names no single process, or this process or one
 * of its ancestors: kill(0) reaches the caller's whole process group, which a test shares with
 * vitest, npm and the shell that started them (a pid file read before its writer wrote the
 * number gives Number('') = 0).
 */
export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!mayKillProcess(pid)) throw new Error(`refusing to send ${signal} to pid ${pid}: not one process of this test's (0, 1, NaN, this process or an ancestor)`);
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Every process whose environment names this spool (runner, supervisors, workers). */
export function spoolProcesses(home: string): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const environ = fs.readFileSync(`/proc/${name}/environ`, 'utf8');
      if (environ.split('\0').includes(`AGENT_ASYNC_HOME=${home}`) && pidAlive(Number(name))) found.push(Number(name));
    } catch {
      // gone or not ours
    }
  }
  return found;
}

export function killSpoolProcesses(home: string): void {
  for (const pid of spoolProcesses(home)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Polls `probe` until it returns something other than undefined, null or false. */
export async function until<T>(probe: () => T | undefined | null | false, timeoutMs: number, what: string, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Kills whatever a test left running and removes its spools (call in afterAll). */
export function cleanupSpools(): void {
  for (const spool of created.splice(0)) {
    killSpoolProcesses(spool.home);
    fs.rmSync(path.dirname(spool.home), { recursive: true, force: true });
  }
}

export function runNode(script: string, args: string[], options: SpawnOptions = {}) {
  return spawn(process.execPath, [script, ...args], options);
}

/** Everything a child process writes to one of its streams, once it has ended. */
export function collectOutput(child: ChildProcess, stream: 'stdout' | 'stderr'): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    child[stream]?.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('close', () => resolve(text));
  });
}
