import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { getAdapter } from '../agents/registry.js';
import type { AgentAdapter, Invocation } from '../agents/types.js';
import type { Config } from '../config.js';
import type { RunJobMessage, SupervisorReply } from './messages.js';
import { errnoCode } from '../errors.js';
import { fileExists } from '../spool/fsx.js';
import { JOB_FILES, jobDir, jobFile, type SpoolPaths } from '../spool/layout.js';
import { IllegalTransition, isTerminal, type JobError, type JobState, type TerminalStatus, type WorkerInfo } from '../spool/state.js';
import {
  applyTransition,
  cancelRequested,
  claimJob,
  readState,
  writeExitRecord,
  type ExitRecord,
} from '../spool/store.js';
import { watchFoldersNative } from '../spool/watch.js';
import { jobLimits, recordEnd, type JobLimits } from './outcome.js';
import { groupMembers, processStartTime, selfIdentity, terminateJobProcesses } from './processes.js';
import { traceStep } from './trace.js';
import { resolveExecutable } from '../which.js';
import { DirectOutput, OutputSink, checkCwd } from './worker-io.js';

/**
 * A supervisor runs one job at a time in its own process, apart from the runner: it claims
 * the job, starts the worker (no shell, own process group), streams its output to
 * `output.log`, enforces the limits and the cancel/done requests, and records how the worker
 * ended in `exit.json` and `state.json`. If the runner dies meanwhile the supervisor carries
 * on, so a worker's exit status is never lost (nq's lesson). Idle supervisors are reused for
 * the next job, which saves a Node start-up per job.
 */

/** Time the leftovers of a worker that exited on its own get between TERM and KILL. */
const LEFTOVER_GRACE_MS = 2_000;
/**
 * How long a worker runs before it is written to state.json as running (with its pid, for
 * `status` and for a runner that must stop it after this supervisor died).
 */
const WORKER_RECORD_DELAY_MS = 25;
/** How long output pipes may stay open after the worker and its group are gone. */
const OUTPUT_DRAIN_MS = 2_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Log = (message: string) => void;

/** Applies a transition unless the job has moved on meanwhile (then logs it and returns undefined). */
function applyUnlessMoved(paths: SpoolPaths, id: string, change: Parameters<typeof applyTransition>[2], log: Log): JobState | undefined {
  try {
    return applyTransition(paths, id, change);
  } catch (error) {
    if (error instanceof IllegalTransition) {
      log(`job ${id}: not recorded, the job was already ${error.from}`);
      return undefined;
    }
    throw error;
  }
}

export async function superviseJob(
  paths: SpoolPaths,
  message: RunJobMessage,
  config: Config,
  reply: (reply: SupervisorReply) => void,
  log: Log,
): Promise<void> {
  const { jobId: id, attempt, epoch } = message;
  traceStep('received', id);
  const finished = (status: TerminalStatus | 'unknown'): void => reply({ type: 'finished', jobId: id, status });
  const before = readState(paths, id);
  if (before.kind !== 'ok' || before.state.status !== 'pending') {
    reply({ type: 'claim_failed', jobId: id, reason: before.kind === 'ok' ? before.state.status : before.kind });
    return;
  }
  const me = selfIdentity();
  if (!claimJob(paths, id, attempt, { role: 'supervisor', ...me, epoch, at: new Date().toISOString() })) {
    reply({ type: 'claim_failed', jobId: id, reason: `claim.${attempt} is taken` });
    return;
  }

  traceStep('claimed', id);
  const claimed = readState(paths, id);
  if (claimed.kind !== 'ok' || claimed.state.status !== 'pending' || claimed.state.attempt >= attempt) {
    log(`job ${id}: claimed attempt ${attempt} but the job is no longer pending; leaving it`);
    finished('unknown');
    return;
  }
  if (cancelRequested(paths, id)) {
    applyUnlessMoved(paths, id, { name: 'cancel_pending', attempt }, log);
    finished('cancelled');
    return;
  }

  const request = claimed.state.request;
  const refuse = (error: JobError): void => {
    const state = applyUnlessMoved(paths, id, { name: 'fail_to_start', attempt, error }, log);
    finished(state ? 'error' : 'unknown');
  };
  let adapter: AgentAdapter;
  let invocation: Invocation;
  try {
    adapter = getAdapter(request.agent, config);
    const prompt = adapter.takesPrompt ? fs.readFileSync(jobFile(paths, id, JOB_FILES.prompt), 'utf8') : '';
    invocation = adapter.buildInvocation({ request, prompt, stdinThreshold: config.prompt_stdin_bytes });
  } catch (error) {
    refuse({ code: 'spawn_failed', message: `could not build the command: ${(error as Error).message}` });
    return;
  }
  const cwdError = checkCwd(request.cwd);
  if (cwdError) return refuse(cwdError);
  const searchPath = request.env_path ?? process.env.PATH ?? '';
  const resolved = resolveExecutable(invocation.argv[0] ?? '', request.cwd, searchPath);
  if (!resolved.ok) {
    return refuse(resolved.error.code === 'agent_not_found' ? { ...resolved.error, hint: `install it: ${adapter.installHint}` } : resolved.error);
  }

  const running = applyTransition(paths, id, { name: 'start', attempt, epoch, supervisor: me });
  traceStep('started', id);
  const limits = jobLimits(request, config);
  const parser = adapter.createParser();
  const { exit, unrecordedWorker } = await runWorker({
    paths,
    id,
    attempt,
    file: resolved.file,
    invocation,
    onLine: parser ? (line, stream) => parser.line(line, stream) : undefined,
    onExited: () => reply({ type: 'exited', jobId: id }),
    cwd: request.cwd,
    searchPath,
    limits,
    config,
    log,
  });
  writeExitRecord(paths, id, exit);
  const ended = recordEnd(paths, running, { exit, adapter, parsed: parser?.result() ?? null, limits, worker: unrecordedWorker }, log);
  traceStep('recorded', id);
  finished(ended && isTerminal(ended.status) ? ended.status : 'unknown');
}

interface WorkerRun {
  paths: SpoolPaths;
  id: string;
  attempt: number;
  file: string;
  invocation: Invocation;
  onLine: ((line: string, stream: 'stdout' | 'stderr') => void) | undefined;
  onExited: () => void;
  cwd: string;
  searchPath: string;
  limits: JobLimits;
  config: Config;
  log: Log;
}

type StopReason = 'cancelled' | 'timed_out' | 'stalled' | 'done_grace';

function spawnFailure(run: WorkerRun, startedAt: string, error: unknown): ExitRecord {
  const code = errnoCode(error) ?? 'UNKNOWN';
  const reasons: Record<string, string> = {
    E2BIG: 'the argument list is too long for the system (E2BIG)',
    EACCES: 'permission denied (EACCES)',
    ENOENT: 'the command or the cwd vanished before it could start (ENOENT)',
    ENOEXEC: 'the file is not an executable the system can run (ENOEXEC)',
  };
  return {
    schema_version: 1,
    attempt: run.attempt,
    pid: null,
    exit_code: null,
    signal: null,
    reason: 'spawn_failed',
    started_at: startedAt,
    ended_at: new Date().toISOString(),
    spawn_error: { code, message: `could not start ${run.file}: ${reasons[code] ?? (error as Error).message}` },
    survivors: [],
  };
}

interface WorkerEnd {
  exit: ExitRecord;
  /** The worker, when it had exited before it could be recorded as running. */
  unrecordedWorker: WorkerInfo | undefined;
}

async function runWorker(run: WorkerRun): Promise<WorkerEnd> {
  const { paths, id, invocation, config } = run;
  const outputFile = jobFile(paths, id, JOB_FILES.output);
  // a stream to parse needs pipes; otherwise the worker writes straight to output.log
  const sink: OutputSink | DirectOutput = run.onLine ? new OutputSink(outputFile, run.onLine) : new DirectOutput(outputFile);
  const stdin = invocation.stdin === null ? 'ignore' : 'pipe';
  const startedAt = new Date().toISOString();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...invocation.env,
    PATH: run.searchPath,
    AGENT_ASYNC_JOB_ID: id,
    AGENT_ASYNC_JOB_DIR: jobDir(paths, id),
    AGENT_ASYNC_HOME: paths.home,
  };
  let child: ChildProcess;
  try {
    child = spawn(run.file, invocation.argv.slice(1), {
      cwd: run.cwd,
      env,
      argv0: invocation.argv[0],
      detached: true,
      stdio: sink instanceof DirectOutput ? [stdin, sink.fd, sink.fd] : [stdin, 'pipe', 'pipe'],
    });
  } catch (error) {
    const record = spawnFailure(run, startedAt, error);
    sink.note(record.spawn_error!.message);
    sink.close();
    return { exit: record, unrecordedWorker: undefined };
  }
  const spawnError = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (error) => resolve(error));
  });
  if (spawnError || child.pid === undefined) {
    const record = spawnFailure(run, startedAt, spawnError);
    sink.note(record.spawn_error!.message);
    sink.close();
    return { exit: record, unrecordedWorker: undefined };
  }
  const pid = child.pid;
  traceStep('spawned', id);
  const worker: WorkerInfo = { pid, pgid: pid, argv: invocation.argv, start_time: processStartTime(pid) };
  let recorded = false;
  const recordWorker = (): void => {
    if (recorded) return;
    try {
      applyTransition(paths, id, { name: 'record_worker', worker });
      recorded = true;
    } catch (error) {
      // this supervisor still holds the worker; only its record for others is missing
      run.log(`job ${id}: could not record the worker (pid ${pid}): ${(error as Error).message}`);
    }
  };
  // A worker that ends within WORKER_RECORD_DELAY_MS is never written as running: its end
  // records it, which saves a synced state write for every quick command. One that is
  // stopped, or that leaves processes in its group, is recorded before they are signalled.
  // Should this supervisor die before the record, the runner finds the worker by the job id
  // in its environment (reconcile.ts).
  const recordTimer = setTimeout(recordWorker, WORKER_RECORD_DELAY_MS);
  if (child.stdin) {
    child.stdin.on('error', () => undefined);
    child.stdin.end(invocation.stdin ?? '');
  }
  const outputDone = sink instanceof OutputSink
    ? Promise.all([sink.attach(child.stdout!, true), sink.attach(child.stderr!, false)])
    : Promise.resolve();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );

  const stopped: { reason: StopReason | null; done: Promise<number[]> | null } = { reason: null, done: null };
  const stop = (reason: StopReason): void => {
    if (stopped.done) return;
    recordWorker();
    stopped.reason = reason;
    sink.note(`stopping the job (${reason.replace('_', ' ')})`);
    stopped.done = terminateJobProcesses({ pid, pgid: pid }, config.kill_grace_seconds * 1000);
  };
  const timers: NodeJS.Timeout[] = [setTimeout(() => stop('timed_out'), run.limits.timeoutSeconds * 1000)];
  if (run.limits.stallSeconds !== null) {
    const limitMs = run.limits.stallSeconds * 1000;
    timers.push(setInterval(() => {
      if (Date.now() - sink.lastOutputAt > limitMs) stop('stalled');
    }, Math.min(1000, limitMs / 4)));
  }
  let doneSeen = false;
  const checkRequests = (): void => {
    if (stopped.done) return;
    if (fileExists(jobFile(paths, id, JOB_FILES.cancel))) stop('cancelled');
    else if (!doneSeen && fileExists(jobFile(paths, id, JOB_FILES.done))) {
      doneSeen = true;
      timers.push(setTimeout(() => stop('done_grace'), config.done_grace_seconds * 1000));
    }
  };
  timers.push(setInterval(checkRequests, config.poll_seconds * 1000));
  // a cancel or done request is noticed at once; the poll covers a watch that fails
  const closeWatch = watchFoldersNative(paths, [id], checkRequests, [JOB_FILES.cancel, JOB_FILES.done]);
  checkRequests();

  const { code, signal } = await exited;
  traceStep('exited', id);
  clearTimeout(recordTimer);
  for (const timer of timers) clearTimeout(timer);
  closeWatch();
  let survivors: number[] = stopped.done ? await stopped.done : [];
  if (!stopped.done && groupMembers(pid).length > 0) {
    recordWorker();
    sink.note('the worker exited but left processes in its group; stopping them');
    survivors = await terminateJobProcesses({ pid, pgid: pid }, LEFTOVER_GRACE_MS);
  }
  run.onExited();
  await Promise.race([outputDone, sleep(OUTPUT_DRAIN_MS)]);
  child.stdout?.destroy();
  child.stderr?.destroy();
  sink.close();
  if (survivors.length > 0) run.log(`job ${id}: processes still alive after KILL: ${survivors.join(', ')}`);
  return {
    exit: {
      schema_version: 1,
      attempt: run.attempt,
      pid,
      exit_code: code,
      signal,
      reason: stopped.reason ?? 'exited',
      started_at: startedAt,
      ended_at: new Date().toISOString(),
      spawn_error: null,
      survivors,
    },
    unrecordedWorker: recorded ? undefined : worker,
  };
}
