import fs from 'node:fs';
import { getAdapter } from '../agents/registry.js';
import type { AgentAdapter, Invocation } from '../agents/types.js';
import type { Config } from '../config.js';
import { SPOOL_UNWRITABLE, type RunJobMessage, type SupervisorReply } from './messages.js';
import { NotARegularFile, describeSpaceProblem, freeBytes, formatBytes, isSpaceError, readRegularFile } from '../spool/fsx.js';
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
import { JOB_FOLDER_HINT, jobLimits } from './core/outcome.js';
import { jobProcesses, selfIdentity, terminateJobProcesses } from './processes.js';
import { cancelClaimedJob } from './reconcile.js';
import { decideEnd, notifiedEnd, recordEnd } from './record-end.js';
import { traceStep } from './trace.js';
import { resolveExecutable } from '../which.js';
import { JobNotes, checkCwd, openOutputLog } from './worker-io.js';
import { cancelSignal } from './worker/limits.js';
import { runWorker } from './worker/run.js';
import { finishWorkspace, prepareWorkspace, type Workspace } from './workspace.js';

/**
 * A supervisor runs one job at a time in its own process, apart from the runner: it claims
 * the job, starts the worker (worker/run.ts: no shell, own process group), streams its output
 * to `output.log`, enforces the limits and the cancel/done requests, and records how the worker
 * ended in `exit.json` and `state.json`. If the runner dies meanwhile the supervisor carries
 * on, so a worker's exit status is never lost (nq's lesson). Idle supervisors are reused for
 * the next job, which saves a Node start-up per job.
 */

/** Largest prompt.txt a worker is started with. */
const PROMPT_MAX_BYTES = 64 * 1024 * 1024;
/** While the disk is full, the end of a job is written again after these waits (doubling). */
const SPACE_RETRY_FIRST_MS = 500;
const SPACE_RETRY_MAX_MS = 10_000;
/** A failed job whose spool disk has less than this left gets a word about it. */
const LOW_SPACE_BYTES = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Log = (message: string) => void;
type Reply = (reply: SupervisorReply) => void;

/** Applies a transition unless the job has moved on meanwhile (then logs it and returns undefined). */
function applyUnlessMoved(apply: () => JobState, id: string, log: Log): JobState | undefined {
  try {
    return apply();
  } catch (error) {
    if (error instanceof IllegalTransition) {
      log(`job ${id}: not recorded, the job was already ${error.from}`);
      return undefined;
    }
    throw error;
  }
}

/** A job this supervisor has started: its worker is about to run. */
interface StartedJob {
  writer: JobStateWriter;
  prepared: PreparedWorker;
  outputFd: number;
}

export async function superviseJob(paths: SpoolPaths, message: RunJobMessage, config: Config, reply: Reply, log: Log): Promise<void> {
  const { jobId: id } = message;
  traceStep('received', id);
  const finished = (status: TerminalStatus | 'unknown'): void => reply({ type: 'finished', jobId: id, status });
  const started = claimAndStart(paths, message, config, reply, log);
  if (!started) return;
  const { writer, outputFd } = started;
  const place = await placeWorker(paths, started, config);
  if (place === 'cancelled' || 'code' in place) return finished(await endBeforeWorker(paths, writer, place, outputFd, config, log));
  const { prepared, workspaceEnv } = place;
  const isolated = prepared.request.isolation === 'worktree';
  const limits = jobLimits(prepared.request, config);
  const parser = prepared.adapter.createParser();
  // a `done` report ends the job at once; the worker keeps its grace to exit
  // (an isolated job's work is its branch, complete only when its worker is gone: it ends then)
  const endOnNotify = (worker: WorkerInfo): void => {
    if (isolated) return;
    try {
      writer.checkDisk();
      const faults = [...writer.faults, ...auditJobFolder(paths, id)];
      const change = notifiedEnd(paths, writer.state, { adapter: prepared.adapter, parsed: parser?.result() ?? null, limits, worker, faults, liveSupervisor: true });
      if (!change) return;
      writer.applyChecked(change);
      traceStep('notified', id);
    } catch (error) {
      // the worker's end records the job, from the same report
      log(`job ${id}: could not record the done report yet: ${(error as Error).message}`);
    }
  };
  try {
    const end = await runWorker({
      paths,
      id,
      attempt: message.attempt,
      file: prepared.file,
      invocation: prepared.invocation,
      cwd: prepared.cwd,
      env: { ...prepared.env, ...workspaceEnv },
      startedBefore: isolated && config.worktree.setup !== null,
      outputFd,
      onLine: parser ? (line, stream) => parser.line(line, stream) : undefined,
      onExited: () => reply({ type: 'exited', jobId: id }),
      onDone: endOnNotify,
      notes: new JobNotes(jobFile(paths, id, JOB_FILES.notes)),
      limits,
      config,
      writer,
      log,
    });
    // what the worker did to its folder, seen before anything of ours is written into it again
    const faults = auditFolder(paths, writer);
    const endFacts = { exit: end.exit, adapter: prepared.adapter, parsed: parser?.result() ?? null, limits, worker: end.unrecordedWorker, faults, liveSupervisor: true };
    const changes = writer.state.status === 'done' ? null : await finishWorkspace(paths, writer.state, log, () => decideEnd(paths, writer.state, endFacts).status === 'done');
    const ended = writer.state.status === 'done'
      ? await recordExitAfterNotify(paths, writer, end.exit, log)
      : await recordEndDurably(paths, writer, end.exit, log, (diskNote) => recordEnd(paths, writer.state, {
        ...endFacts,
        changes,
        diskNote: diskNote ?? end.outputLoss ?? lowSpaceNote(paths, end.exit),
        // the worker and what it left are stopped: auditFolder's check stands
        commit: (change) => writer.applyChecked(change),
      }, log));
    traceStep('recorded', id);
    finished(ended && isTerminal(ended.status) ? ended.status : 'unknown');
  } finally {
    writer.release();
  }
}

/** The job files the worker broke, and a state.json it changed. */
function auditFolder(paths: SpoolPaths, writer: JobStateWriter): string[] {
  const broken = auditJobFolder(paths, writer.state.id);
  writer.checkDisk();
  return [...writer.faults, ...broken];
}

/** A job its done report ended: only its worker's exit is added (exit.json, then `record_exit`). */
function recordExitAfterNotify(paths: SpoolPaths, writer: JobStateWriter, exit: ExitRecord, log: Log): Promise<JobState | undefined> {
  const change = { name: 'record_exit' as const, exit_code: exit.exit_code, signal: exit.signal };
  return recordEndDurably(paths, writer, exit, log, () => applyUnlessMoved(() => writer.apply(change), writer.state.id, log));
}

/**
 * Claims the job under the attempt the runner chose, reads its state once, and starts it:
 * the running state is on disk and output.log exists when this returns. Null when it did not
 * start (claimed by someone else, moved on, cancelled, refused, or a full disk), said to the
 * runner.
 */
function claimAndStart(paths: SpoolPaths, message: RunJobMessage, config: Config, reply: Reply, log: Log): StartedJob | null {
  const { jobId: id, attempt, epoch } = message;
  const finished = (status: TerminalStatus | 'unknown'): void => reply({ type: 'finished', jobId: id, status });
  // a full disk before the start: the job stays pending, and the runner offers it again later
  const giveBack = (error: unknown): null => {
    reply({ type: 'claim_failed', jobId: id, reason: `${SPOOL_UNWRITABLE}: ${describeSpaceProblem(error, paths.home)}` });
    return null;
  };
  const me = selfIdentity();
  try {
    if (!claimJob(paths, id, attempt, { role: 'supervisor', ...me, epoch, at: new Date().toISOString() })) {
      reply({ type: 'claim_failed', jobId: id, reason: `claim.${attempt} is taken` });
      return null;
    }
  } catch (error) {
    if (!isSpaceError(error)) throw error;
    return giveBack(error);
  }
  traceStep('claimed', id);
  // the one read of the state before the start: after the claim, nobody else may change it
  const claimed = readState(paths, id);
  if (claimed.kind !== 'ok' || claimed.state.status !== 'pending' || claimed.state.attempt >= attempt) {
    releaseClaim(paths, id, attempt);
    reply({ type: 'claim_failed', jobId: id, reason: claimed.kind === 'ok' ? `the job is ${claimed.state.status}` : `state.json is ${claimed.kind}` });
    return null;
  }
  if (cancelRequested(paths, id)) {
    finished(cancelClaimedJob(paths, id, attempt) ? 'cancelled' : 'unknown');
    return null;
  }
  const refuse = (error: JobError): null => {
    const state = applyUnlessMoved(() => applyTransition(paths, id, { name: 'fail_to_start', attempt, error }), id, log);
    finished(state ? 'error' : 'unknown');
    return null;
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
  const start = { name: 'start' as const, attempt, epoch, supervisor: me };
  let writer: JobStateWriter;
  try {
    writer = JobStateWriter.start(paths, claimed.state, start);
  } catch (error) {
    const now = readState(paths, id);
    if (now.kind === 'ok' && now.state.status === 'running' && now.state.attempt === attempt) {
      writer = new JobStateWriter(paths, now.state); // the state landed; only the folder sync after it failed
    } else {
      closeFd(outputFd);
      if (!isSpaceError(error)) throw error;
      releaseClaim(paths, id, attempt);
      return giveBack(error);
    }
  }
  traceStep('started', id);
  return { writer, prepared, outputFd };
}

/**
 * Where the worker runs: an isolated job's worktree is made now (the job is running, so a
 * runner that dies meanwhile finds it), and its command, which names its folder (codex -C,
 * cursor --workspace, {cwd}), is built for the worktree.
 */
async function placeWorker(paths: SpoolPaths, started: StartedJob, config: Config): Promise<{ prepared: PreparedWorker; workspaceEnv: Record<string, string> } | JobError | 'cancelled'> {
  const { writer, prepared, outputFd } = started;
  // a cancel while the worktree is made stops its setup (which can take long: `npm ci`)
  const cancel = cancelSignal(paths, writer.state.id, config.poll_seconds * 1000);
  let workspace: Workspace;
  try {
    workspace = await prepareWorkspace(paths, writer.state, config, (chunk) => appendOutput(outputFd, chunk), cancel.signal);
  } finally {
    cancel.close();
  }
  if (workspace.kind === 'cancelled') return 'cancelled';
  if (workspace.kind === 'failed') return workspace.error;
  if (workspace.cwd === prepared.cwd) return { prepared, workspaceEnv: workspace.env };
  const inWorktree = prepareWorker(paths, writer.state.id, { ...prepared.request, cwd: workspace.cwd }, config);
  return 'code' in inWorktree ? inWorktree : { prepared: inWorktree, workspaceEnv: workspace.env };
}

/**
 * A job whose worktree could not be made (`error`), or that was cancelled while it was made,
 * ends here, with what is left of the worktree removed.
 */
async function endBeforeWorker(paths: SpoolPaths, writer: JobStateWriter, error: JobError | 'cancelled', outputFd: number, config: Config, log: Log): Promise<TerminalStatus | 'unknown'> {
  closeFd(outputFd);
  const cancelled = error === 'cancelled';
  new JobNotes(jobFile(paths, writer.state.id, JOB_FILES.notes)).note(cancelled ? 'cancelled while its worktree was being made; worktree.setup was stopped' : error.message.split('\n')[0]!);
  await stopSetupLeftovers(writer.state.id, config, log);
  const changes = await finishWorkspace(paths, writer.state, log, () => false);
  const ending = cancelled ? { status: 'cancelled' as const, error: null } : { status: 'error' as const, error };
  const outcome = { ...ending, exit_code: null, signal: null, notified: null, result: null, session_id: null, usage: null, changes };
  const state = applyUnlessMoved(() => writer.apply({ name: 'finish', outcome }), writer.state.id, log);
  return state && isTerminal(state.status) ? state.status : 'unknown';
}

/** What worktree.setup left running (a daemon it started) goes with the job, found by the job id. */
async function stopSetupLeftovers(id: string, config: Config, log: Log): Promise<void> {
  const left = jobProcesses(id);
  if (left.length === 0) return;
  log(`job ${id}: stopping ${left.length} process(es) its worktree.setup left: ${left.join(', ')}`);
  await Promise.all(left.map((pid) => terminateJobProcesses({ pid, pgid: pid }, config.kill_grace_seconds * 1000)));
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
  /** The resolved binary. */
  file: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** The adapter, the command line, the place and the binary of a job, or why it cannot start. */
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
  const { cwd, env } = workerPlace(paths, id, request, invocation);
  const cwdError = checkCwd(cwd);
  if (cwdError) return cwdError;
  const resolved = resolveExecutable(invocation.argv[0] ?? '', cwd, env.PATH ?? '');
  if (!resolved.ok) {
    return resolved.error.code === 'agent_not_found' ? { ...resolved.error, hint: `install it: ${adapter.installHint}` } : resolved.error;
  }
  return { request, adapter, invocation, file: resolved.file, cwd, env };
}

/**
 * Where a worker runs and with what environment: the job's cwd; the supervisor's environment
 * with the adapter's additions, the submitter's PATH (to find the binary) and the job's identity.
 */
function workerPlace(paths: SpoolPaths, id: string, request: JobRequest, invocation: Invocation): { cwd: string; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...invocation.env,
    PATH: request.env_path ?? process.env.PATH ?? '',
    AGENT_ASYNC_JOB_ID: id,
    AGENT_ASYNC_JOB_DIR: jobDir(paths, id),
    AGENT_ASYNC_HOME: paths.home,
  };
  return { cwd: request.cwd, env };
}

/**
 * Writes the end of a job (exit.json, then the terminal state), and while the disk is full keeps
 * it in memory and writes it again, so neither the worker's exit status nor the real cause is
 * lost (this supervisor stays alive meanwhile, so no runner takes the job for lost). `record`
 * gets what the disk said, to be told in the job's end.
 */
async function recordEndDurably(
  paths: SpoolPaths,
  writer: JobStateWriter,
  exit: ExitRecord,
  log: Log,
  record: (diskNote: string | null) => JobState | undefined,
): Promise<JobState | undefined> {
  const { id } = writer.state;
  let diskNote: string | null = null;
  for (let delay = SPACE_RETRY_FIRST_MS; ; delay = Math.min(delay * 2, SPACE_RETRY_MAX_MS)) {
    try {
      try {
        writeExitRecord(paths, id, exit, writer.takeAhead(JOB_FILES.exit));
        traceStep('exit-written', id);
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

