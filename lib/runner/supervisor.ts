import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { getAdapter } from '../agents/registry.js';
import type { AgentAdapter, Invocation } from '../agents/types.js';
import type { Config } from '../config.js';
import { SPOOL_UNWRITABLE, type RunJobMessage, type SupervisorReply } from './messages.js';
import { errnoCode } from '../errors.js';
import { NotARegularFile, describeSpaceProblem, entryExists, freeBytes, formatBytes, isSpaceError, readRegularFile } from '../spool/fsx.js';
import { JOB_FILES, jobDir, jobFile, type SpoolPaths } from '../spool/layout.js';
import { IllegalTransition, isTerminal, type JobError, type JobRequest, type JobState, type TerminalStatus, type WorkerInfo } from '../spool/state.js';
import {
  JobStateWriter,
  applyTransition,
  auditJobFolder,
  cancelRequested,
  claimJob,
  readState,
  releaseClaim,
  writeExitRecord,
  type ExitRecord,
} from '../spool/store.js';
import { watchFoldersNative } from '../spool/watch.js';
import { JOB_FOLDER_HINT, decideEnd, jobLimits, recordEnd, type JobLimits } from './outcome.js';
import { finishWorkspace, prepareWorkspace } from './workspace.js';
import { groupMembers, jobProcesses, processGroupOf, processStartTime, selfIdentity, terminateJobProcesses } from './processes.js';
import { traceStep } from './trace.js';
import { resolveExecutable } from '../which.js';
import { DirectOutput, NOTE_PREFIX, OutputSink, checkCwd, openOutputLog } from './worker-io.js';

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
/** Largest prompt.txt a worker is started with. */
const PROMPT_MAX_BYTES = 64 * 1024 * 1024;
/** A worker that ran shorter than this cannot have seen the pid counter wrap around (processes.jobProcesses). */
const QUICK_JOB_MS = 60_000;
/** While the disk is full, the end of a job is written again after these waits (doubling). */
const SPACE_RETRY_FIRST_MS = 500;
const SPACE_RETRY_MAX_MS = 10_000;
/** A failed job whose spool disk has less than this left gets a word about it. */
const LOW_SPACE_BYTES = 1024 * 1024;

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
  // a full disk before the start: the job stays pending, and the runner offers it again later
  const giveBack = (error: unknown): void => {
    reply({ type: 'claim_failed', jobId: id, reason: `${SPOOL_UNWRITABLE}: ${describeSpaceProblem(error, paths.home)}` });
  };
  const before = readState(paths, id);
  if (before.kind !== 'ok' || before.state.status !== 'pending') {
    reply({ type: 'claim_failed', jobId: id, reason: before.kind === 'ok' ? before.state.status : before.kind });
    return;
  }
  const me = selfIdentity();
  try {
    if (!claimJob(paths, id, attempt, { role: 'supervisor', ...me, epoch, at: new Date().toISOString() })) {
      reply({ type: 'claim_failed', jobId: id, reason: `claim.${attempt} is taken` });
      return;
    }
  } catch (error) {
    if (!isSpaceError(error)) throw error;
    return giveBack(error);
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

  const refuse = (error: JobError): void => {
    const state = applyUnlessMoved(paths, id, { name: 'fail_to_start', attempt, error }, log);
    finished(state ? 'error' : 'unknown');
  };
  const prepared = prepareWorker(paths, id, claimed.state.request, config);
  if ('code' in prepared) return refuse(prepared);
  // output.log exists before the job is seen running, so every reader of a running job finds it
  let outputFd: number;
  try {
    outputFd = openOutputLog(jobFile(paths, id, JOB_FILES.output));
  } catch (error) {
    if (error instanceof NotARegularFile) return refuse(badJobFile(`output.log is a ${error.kind}, not a regular file`));
    if (!isSpaceError(error)) throw error;
    releaseClaim(paths, id, attempt);
    return giveBack(error);
  }

  let running: JobState;
  try {
    running = applyTransition(paths, id, { name: 'start', attempt, epoch, supervisor: me });
  } catch (error) {
    const now = readState(paths, id);
    if (now.kind === 'ok' && now.state.status === 'running' && now.state.attempt === attempt) {
      running = now.state; // the state landed; only the folder sync after it failed
    } else {
      closeFd(outputFd);
      if (!isSpaceError(error)) throw error;
      releaseClaim(paths, id, attempt);
      return giveBack(error);
    }
  }
  traceStep('started', id);
  const writer = new JobStateWriter(paths, running);
  const workspace = await prepareWorkspace(paths, running, config, (chunk) => appendOutput(outputFd, chunk));
  if (workspace.kind === 'failed') return finished(await endBeforeWorker(paths, writer, workspace.error, outputFd, log));
  const worker = workerIn(paths, id, prepared, workspace.cwd, config);
  if ('code' in worker) return finished(await endBeforeWorker(paths, writer, worker, outputFd, log));
  const limits = jobLimits(prepared.request, config);
  const parser = prepared.adapter.createParser();
  const { exit, unrecordedWorker, outputLoss } = await runWorker({
    paths,
    id,
    attempt,
    file: worker.file,
    invocation: worker.invocation,
    outputFd,
    onLine: parser ? (line, stream) => parser.line(line, stream) : undefined,
    onExited: () => reply({ type: 'exited', jobId: id }),
    cwd: workspace.cwd,
    workspaceEnv: workspace.env,
    searchPath: worker.searchPath,
    limits,
    config,
    writer,
    log,
  });
  // what the worker did to its folder, seen before anything of ours is written into it again
  const faults = auditJobFolder(paths, id);
  writer.checkDisk();
  const end = { exit, adapter: prepared.adapter, parsed: parser?.result() ?? null, limits, worker: unrecordedWorker, faults: [...writer.faults, ...faults] };
  const changes = await finishWorkspace(paths, writer.state, log, () => decideEnd(paths, writer.state, end).status === 'done');
  const ended = await recordEndDurably(paths, id, exit, log, (diskNote) => recordEnd(paths, writer.state, {
    ...end,
    changes,
    diskNote: diskNote ?? outputLoss ?? lowSpaceNote(paths, exit),
    commit: (change) => writer.apply(change),
  }, log));
  traceStep('recorded', id);
  finished(ended && isTerminal(ended.status) ? ended.status : 'unknown');
}

/** An isolated job's command names its worktree (codex -C, cursor --workspace, {cwd}), so it is built for it. */
function workerIn(paths: SpoolPaths, id: string, prepared: PreparedWorker, cwd: string, config: Config): PreparedWorker | JobError {
  return cwd === prepared.request.cwd ? prepared : prepareWorker(paths, id, { ...prepared.request, cwd }, config);
}

/** A job whose worktree could not be made ends here, with what is left of the worktree removed. */
async function endBeforeWorker(paths: SpoolPaths, writer: JobStateWriter, error: JobError, outputFd: number, log: Log): Promise<TerminalStatus | 'unknown'> {
  appendOutput(outputFd, Buffer.from(`${NOTE_PREFIX}${error.message.split('\n')[0]}\n`));
  closeFd(outputFd);
  const changes = await finishWorkspace(paths, writer.state, log, () => false);
  const outcome = { status: 'error' as const, error, exit_code: null, signal: null, notified: null, result: null, session_id: null, usage: null, changes };
  const state = applyUnlessMoved(paths, writer.state.id, { name: 'finish', outcome }, log);
  return state && isTerminal(state.status) ? state.status : 'unknown';
}

function appendOutput(fd: number, chunk: Buffer): void {
  try {
    fs.writeSync(fd, chunk);
  } catch {
    // output.log is the job's log, not its record: a full disk loses setup's output only
  }
}

function badJobFile(fault: string): JobError {
  return { code: 'bad_job_file', message: fault, hint: JOB_FOLDER_HINT };
}

interface PreparedWorker {
  request: JobRequest;
  adapter: AgentAdapter;
  invocation: Invocation;
  file: string;
  searchPath: string;
}

/** The adapter, the command line, the cwd and the binary of a job, or why it cannot start. */
function prepareWorker(paths: SpoolPaths, id: string, request: JobRequest, config: Config): PreparedWorker | JobError {
  let adapter: AgentAdapter;
  let invocation: Invocation;
  try {
    adapter = getAdapter(request.agent, config);
    let prompt = '';
    if (adapter.takesPrompt) {
      const read = readRegularFile(jobFile(paths, id, JOB_FILES.prompt), PROMPT_MAX_BYTES);
      if (read.kind === 'refused') return badJobFile(`prompt.txt cannot be used: ${read.reason}`);
      if (read.kind === 'missing') return badJobFile('prompt.txt is missing');
      prompt = read.data.toString('utf8');
    }
    invocation = adapter.buildInvocation({ request, prompt, stdinThreshold: config.prompt_stdin_bytes });
  } catch (error) {
    return { code: 'spawn_failed', message: `could not build the command: ${(error as Error).message}` };
  }
  const cwdError = checkCwd(request.cwd);
  if (cwdError) return cwdError;
  const searchPath = request.env_path ?? process.env.PATH ?? '';
  const resolved = resolveExecutable(invocation.argv[0] ?? '', request.cwd, searchPath);
  if (!resolved.ok) {
    return resolved.error.code === 'agent_not_found' ? { ...resolved.error, hint: `install it: ${adapter.installHint}` } : resolved.error;
  }
  return { request, adapter, invocation, file: resolved.file, searchPath };
}

/**
 * Writes the end of a job (exit.json, then the terminal state), and while the disk is full keeps
 * it in memory and writes it again, so neither the worker's exit status nor the real cause is
 * lost (this supervisor stays alive meanwhile, so no runner takes the job for lost). `record`
 * gets what the disk said, to be told in the job's end.
 */
async function recordEndDurably(
  paths: SpoolPaths,
  id: string,
  exit: ExitRecord,
  log: Log,
  record: (diskNote: string | null) => JobState | undefined,
): Promise<JobState | undefined> {
  let diskNote: string | null = null;
  for (let delay = SPACE_RETRY_FIRST_MS; ; delay = Math.min(delay * 2, SPACE_RETRY_MAX_MS)) {
    try {
      try {
        writeExitRecord(paths, id, exit);
      } catch (error) {
        // the terminal state holds the same facts: it is the one that must land
        if (!isSpaceError(error)) throw error;
      }
      return record(diskNote);
    } catch (error) {
      if (!isSpaceError(error)) throw error;
      const problem = describeSpaceProblem(error, paths.home);
      if (diskNote === null) log(`job ${id}: cannot record its end (exit code ${exit.exit_code ?? '-'}, signal ${exit.signal ?? '-'}): ${problem} Keeping it and trying again.`);
      diskNote = `the spool's disk was full when the job ended, so its end was recorded late: ${problem}`;
      await sleep(delay);
    }
  }
}

/** A word about the spool's disk for a job that failed while it was (nearly) full. */
function lowSpaceNote(paths: SpoolPaths, exit: ExitRecord): string | null {
  if (exit.exit_code === 0 && exit.signal === null) return null;
  const free = freeBytes(paths.home);
  return free !== null && free < LOW_SPACE_BYTES ? `the spool's disk (${paths.home}) had ${formatBytes(free)} free when the job ended` : null;
}

function closeFd(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // closed already
  }
}

interface WorkerRun {
  paths: SpoolPaths;
  id: string;
  attempt: number;
  file: string;
  invocation: Invocation;
  /** output.log, opened for appending. */
  outputFd: number;
  onLine: ((line: string, stream: 'stdout' | 'stderr') => void) | undefined;
  onExited: () => void;
  cwd: string;
  /** AGENT_ASYNC_WORKTREE for an isolated job. */
  workspaceEnv: Record<string, string>;
  searchPath: string;
  limits: JobLimits;
  config: Config;
  writer: JobStateWriter;
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
  /** Output that could not be written to output.log (a full disk), said in words. */
  outputLoss: string | null;
}

function lossNote(sink: OutputSink | DirectOutput): string | null {
  const { bytes, error } = sink.lost;
  return bytes === 0 ? null : `${bytes} bytes of its output could not be written to output.log (${error?.message ?? 'write failed'})`;
}

async function runWorker(run: WorkerRun): Promise<WorkerEnd> {
  const { paths, id, invocation, config } = run;
  // a stream to parse needs pipes; otherwise the worker writes straight to output.log
  const sink: OutputSink | DirectOutput = run.onLine ? new OutputSink(run.outputFd, run.onLine) : new DirectOutput(run.outputFd);
  const stdin = invocation.stdin === null ? 'ignore' : 'pipe';
  const startedAt = new Date().toISOString();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...invocation.env,
    PATH: run.searchPath,
    AGENT_ASYNC_JOB_ID: id,
    AGENT_ASYNC_JOB_DIR: jobDir(paths, id),
    AGENT_ASYNC_HOME: paths.home,
    ...run.workspaceEnv,
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
    return { exit: record, unrecordedWorker: undefined, outputLoss: null };
  }
  const spawnError = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (error) => resolve(error));
  });
  if (spawnError || child.pid === undefined) {
    const record = spawnFailure(run, startedAt, spawnError);
    sink.note(record.spawn_error!.message);
    sink.close();
    return { exit: record, unrecordedWorker: undefined, outputLoss: null };
  }
  const pid = child.pid;
  traceStep('spawned', id);
  const worker: WorkerInfo = { pid, pgid: pid, argv: invocation.argv, start_time: processStartTime(pid) };
  let recorded = false;
  const recordWorker = (): void => {
    if (recorded) return;
    try {
      run.writer.apply({ name: 'record_worker', worker });
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
    if (entryExists(jobFile(paths, id, JOB_FILES.cancel))) stop('cancelled');
    else if (!doneSeen && entryExists(jobFile(paths, id, JOB_FILES.done))) {
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
  const survivors: number[] = stopped.done ? await stopped.done : [];
  survivors.push(...await stopLeftovers(run, pid, Date.now() - Date.parse(startedAt) < QUICK_JOB_MS, (where) => {
    recordWorker();
    sink.note(`the worker exited but left processes ${where}; stopping them`);
  }));
  run.onExited();
  await Promise.race([outputDone, sleep(OUTPUT_DRAIN_MS)]);
  child.stdout?.destroy();
  child.stderr?.destroy();
  const outputLoss = lossNote(sink);
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
      survivors: [...new Set(survivors)],
    },
    unrecordedWorker: recorded ? undefined : worker,
    outputLoss,
  };
}

/**
 * Stops what a worker left behind once it has gone: what is left in its process group, and
 * every other process that carries its job id (a daemon it started with setsid, one that forked
 * twice), so a job leaves nothing running. Returns the pids that outlived KILL.
 */
async function stopLeftovers(run: WorkerRun, workerPid: number, quick: boolean, beforeStopping: (where: string) => void): Promise<number[]> {
  const inGroup = groupMembers(workerPid).length > 0;
  const elsewhere = jobProcesses(run.id, quick ? workerPid : undefined).filter((pid) => !inGroup || processGroupOf(pid) !== workerPid);
  if (!inGroup && elsewhere.length === 0) return [];
  const places = [...(inGroup ? ['in its group'] : []), ...(elsewhere.length > 0 ? ['outside it (found by their job id)'] : [])];
  beforeStopping(places.join(' and '));
  if (elsewhere.length > 0) run.log(`job ${run.id}: stopping ${elsewhere.length} process(es) its worker left: ${elsewhere.join(', ')}`);
  const targets = [...(inGroup ? [workerPid] : []), ...elsewhere.filter((pid) => pid !== workerPid)];
  const stopped = await Promise.all(targets.map((pid) => terminateJobProcesses({ pid, pgid: pid }, LEFTOVER_GRACE_MS)));
  return stopped.flat();
}
