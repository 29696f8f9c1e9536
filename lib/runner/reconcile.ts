import fs from 'node:fs';
import { getAdapter } from '../agents/registry.js';
import type { AgentAdapter, ParsedStream } from '../agents/types.js';
import type { Config } from '../config.js';
import { NotARegularFile, discardSlot, openRegularFile } from '../spool/fsx.js';
import { JOB_FILES, doneHintSlot, jobFile, type SpoolPaths } from '../spool/layout.js';
import { IllegalTransition, awaitsWorkerExit, type JobState } from '../spool/state.js';
import type { ClaimStatus } from './core/schedule.js';
import { applyTransition, auditJobFolder, claimJob, readClaims, readExitRecord, removeFromActive, type ClaimInfo, type ClaimOwner } from '../spool/store.js';
import { sweepTempsOf } from '../spool/sweep.js';
import { jobLimits } from './core/outcome.js';
import { decideEnd, recordEnd } from './record-end.js';
import { finishWorkspace } from './workspace.js';
import { jobGroupLeaders, jobProcesses, liveness, terminateJobProcesses, workerGroupIsJobs } from './processes.js';
import { LineSplitter } from './worker-io.js';

/**
 * What a runner does with jobs whose owner is gone. It never re-runs a job that may have
 * started: a `running` job whose supervisor died is finalized from what the spool holds
 * (its exit record, a cancel request, a `done` report) or else as `runner_lost`.
 */

/** A claim whose owner never wrote owner.json is presumed dead after this long. */
const OWNERLESS_CLAIM_MS = 30_000;

/**
 * Whether a pending job is free to claim, and with which attempt number. Any claim whose owner
 * lives holds it, whatever attempt the state names: a pending state never names one legitimately
 * (only a start or an end records it), so a state.json rewritten by a worker while its
 * supervisor still runs cannot get the job started a second time.
 */
export function claimStatus(claims: ClaimInfo[], state: JobState): ClaimStatus {
  let next = state.attempt + 1;
  for (const claim of claims) {
    next = Math.max(next, claim.attempt + 1);
    const alive = claim.owner ? liveness(claim.owner) !== 'dead' : claim.ageMs < OWNERLESS_CLAIM_MS;
    if (alive) return { kind: 'held', attempt: claim.attempt };
  }
  return { kind: 'free', nextAttempt: next };
}

export function pendingClaimStatus(paths: SpoolPaths, state: JobState): ClaimStatus {
  return claimStatus(readClaims(paths, state.id), state);
}

/**
 * Cancels a pending job that nobody has claimed: claims it (so no supervisor can start it
 * meanwhile) and records `cancelled`. Null when it is claimed or has moved on already.
 */
export function cancelPendingJob(paths: SpoolPaths, state: JobState, owner: ClaimOwner): JobState | null {
  const claim = pendingClaimStatus(paths, state);
  if (claim.kind === 'held' || !claimJob(paths, state.id, claim.nextAttempt, owner)) return null;
  return cancelClaimedJob(paths, state.id, claim.nextAttempt);
}

/**
 * Records `cancelled` for a pending job under the claim its caller holds: the one place a
 * pending job is cancelled (by a canceller, the runner, or the supervisor that claimed it).
 * Null when it moved on meanwhile.
 */
export function cancelClaimedJob(paths: SpoolPaths, id: string, attempt: number): JobState | null {
  try {
    return applyTransition(paths, id, { name: 'cancel_pending', attempt });
  } catch (error) {
    if (error instanceof IllegalTransition) return null; // it started meanwhile
    throw error;
  }
}

function supervisorGone(state: JobState): boolean {
  return state.supervisor === null || liveness(state.supervisor) === 'dead';
}

/** A running job whose recorded supervisor is gone: nobody can record its end (`runner_lost`). */
export function isRunnerLost(state: JobState): boolean {
  return state.status === 'running' && supervisorGone(state);
}

/** A job a `done` report ended whose supervisor died while its worker had its grace. */
export function isExitOrphaned(state: JobState): boolean {
  return awaitsWorkerExit(state) && supervisorGone(state);
}

/** Finalizes a job whose supervisor is gone: `runner_lost` or an orphaned exit. */
export async function finalizeOrphan(paths: SpoolPaths, state: JobState, config: Config, log: (message: string) => void): Promise<JobState | undefined> {
  if (isRunnerLost(state)) return finalizeRunnerLost(paths, state, config, log);
  if (!isExitOrphaned(state)) return undefined;
  await stopJobProcesses(paths, state, config, log);
  removeSupervisorLeftovers(paths, state);
  // exit.json holds the exit when the supervisor died between writing it and the state
  const record = readExitRecord(paths, state.id);
  let ended: JobState | undefined = state;
  if (record?.attempt === state.attempt) {
    try {
      ended = applyTransition(paths, state.id, { name: 'record_exit', exit_code: record.exit_code, signal: record.signal });
    } catch (error) {
      if (!(error instanceof IllegalTransition)) throw error;
    }
  }
  removeFromActive(paths, state.id);
  return ended;
}

/**
 * What a dead supervisor left in its job's folder: the temp file of a write it was killed in,
 * those it made ahead, and the done hint's slot (a report that came later would fill it for
 * nobody).
 */
function removeSupervisorLeftovers(paths: SpoolPaths, state: JobState): void {
  if (state.supervisor) sweepTempsOf(paths, state.id, state.supervisor.pid);
  discardSlot(doneHintSlot(paths, state.id));
}

/** The most of output.log read back for an agent job's stream (its end, where the result is). */
const REPARSE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Reads the stream of an agent job back from output.log (when its supervisor died after the
 * worker ended, nothing else holds what the worker reported). stdout and stderr are mixed
 * there (agent-async's own notes are in notes.log). Only a regular file is read, its last
 * 64 MiB at most, line by line with the parser's line cap.
 */
async function reparse(paths: SpoolPaths, state: JobState, config: Config): Promise<{ adapter: AgentAdapter; parsed: ParsedStream | null } | null> {
  let adapter: AgentAdapter;
  try {
    adapter = getAdapter(state.request.agent, config);
  } catch {
    return null;
  }
  const parser = adapter.createParser();
  if (!parser) return { adapter, parsed: null };
  let opened;
  try {
    opened = openRegularFile(jobFile(paths, state.id, JOB_FILES.output));
  } catch (error) {
    if (error instanceof NotARegularFile) return { adapter, parsed: parser.result() };
    throw error;
  }
  if (opened?.size === 0) fs.closeSync(opened.fd);
  else if (opened) {
    const start = Math.max(0, opened.size - REPARSE_MAX_BYTES);
    // read from the middle of the file, the first line is a part of one
    let skipFirst = start > 0;
    const splitter = new LineSplitter((line) => {
      if (skipFirst) skipFirst = false;
      else if (line.trim() !== '') parser.line(line, 'stdout');
    });
    const stream = fs.createReadStream('', { fd: opened.fd, start, end: opened.size - 1, autoClose: true });
    for await (const chunk of stream) splitter.push(chunk as Buffer);
    splitter.end();
  }
  return { adapter, parsed: parser.result() };
}

/**
 * Finalizes a running job whose supervisor died: stops a worker left behind (nobody could
 * record its end) and whatever else carries its job id, then writes the outcome the spool
 * supports.
 */
async function finalizeRunnerLost(paths: SpoolPaths, state: JobState, config: Config, log: (message: string) => void): Promise<JobState | undefined> {
  await stopJobProcesses(paths, state, config, log);
  removeSupervisorLeftovers(paths, state);
  const faults = auditJobFolder(paths, state.id);
  const record = readExitRecord(paths, state.id);
  const exit = record?.attempt === state.attempt ? record : null;
  const stream = exit ? await reparse(paths, state, config) : null;
  const end = { exit, adapter: stream?.adapter ?? null, parsed: stream?.parsed ?? null, limits: jobLimits(state.request, config), faults };
  const changes = await finishWorkspace(paths, state, log, () => decideEnd(paths, state, end).status === 'done');
  return recordEnd(paths, state, { ...end, changes }, log);
}

/** Stops the worker of a job whose supervisor died, and whatever else carries its job id. */
async function stopJobProcesses(paths: SpoolPaths, state: JobState, config: Config, log: (message: string) => void): Promise<void> {
  const graceMs = config.kill_grace_seconds * 1000;
  const worker = state.worker;
  if (worker && workerGroupIsJobs(worker, state.id)) {
    log(`job ${state.id}: supervisor pid ${state.supervisor?.pid} died; stopping its worker group ${worker.pgid}`);
    await terminateJobProcesses({ pid: worker.pid, pgid: worker.pgid }, graceMs);
  }
  if (!worker) {
    // The supervisor died before it recorded the worker (it does 25 ms after the start): the
    // worker's group, and any that left it, are found by the job id in their environment.
    const leaders = jobGroupLeaders(state.id);
    if (leaders.length > 0) log(`job ${state.id}: stopping ${leaders.length} process group(s) of its unrecorded worker: ${leaders.join(', ')}`);
    await Promise.all(leaders.map((leader) => terminateJobProcesses({ pid: leader, pgid: leader }, graceMs)));
  }
  const rest = jobProcesses(state.id);
  if (rest.length > 0) {
    log(`job ${state.id}: stopping ${rest.length} more process(es) carrying its id: ${rest.join(', ')}`);
    await Promise.all(rest.map((pid) => terminateJobProcesses({ pid, pgid: pid }, graceMs)));
  }
}
