import fs from 'node:fs';
import readline from 'node:readline';
import { getAdapter } from '../agents/registry.js';
import { emptyParse, type AgentAdapter, type ParsedStream } from '../agents/types.js';
import { loadConfig } from '../config.js';
import { readTextCapped } from '../spool/fsx.js';
import { JOB_FILES, jobFile, type SpoolPaths } from '../spool/layout.js';
import { IllegalTransition, type JobState } from '../spool/state.js';
import { applyTransition, cancelRequested, readClaims, readExitRecord, type ClaimInfo } from '../spool/store.js';
import { decideOutcome } from './outcome.js';
import { groupMembers, liveness, terminateJobProcesses } from './processes.js';

/**
 * What a runner does with jobs whose owner is gone. It never re-runs a job that may have
 * started: a `running` job whose supervisor died is finalized from what the spool holds
 * (its exit record, a cancel request, a `done` report) or else as `runner_lost`.
 */

/** A claim whose owner never wrote owner.json is presumed dead after this long. */
const OWNERLESS_CLAIM_MS = 30_000;

export type ClaimStatus = { kind: 'free'; nextAttempt: number } | { kind: 'held'; attempt: number };

/** Whether a pending job is free to claim, and with which attempt number. */
export function claimStatus(claims: ClaimInfo[], state: JobState): ClaimStatus {
  let next = state.attempt + 1;
  for (const claim of claims) {
    next = Math.max(next, claim.attempt + 1);
    if (claim.attempt <= state.attempt) continue;
    const alive = claim.owner ? liveness(claim.owner) !== 'dead' : claim.ageMs < OWNERLESS_CLAIM_MS;
    if (alive) return { kind: 'held', attempt: claim.attempt };
  }
  return { kind: 'free', nextAttempt: next };
}

export function pendingClaimStatus(paths: SpoolPaths, state: JobState): ClaimStatus {
  return claimStatus(readClaims(paths, state.id), state);
}

/** True when the supervisor recorded in a running job's state is gone. */
export function supervisorDead(state: JobState): boolean {
  return state.status === 'running' && (state.supervisor === null || liveness(state.supervisor) === 'dead');
}

/**
 * Reads the stream of an agent job back from output.log (when its supervisor died after the
 * worker ended, nothing else holds what the worker reported).
 */
async function reparse(paths: SpoolPaths, state: JobState): Promise<{ adapter: AgentAdapter; parsed: ParsedStream } | null> {
  let adapter: AgentAdapter;
  try {
    adapter = getAdapter(state.request.agent, loadConfig(paths));
  } catch {
    return null;
  }
  const parser = adapter.createParser();
  if (!parser) return { adapter, parsed: emptyParse() };
  const file = jobFile(paths, state.id, JOB_FILES.output);
  if (fs.existsSync(file)) {
    const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
    for await (const line of lines) if (line.trim() !== '') parser.line(line, 'stdout');
  }
  return { adapter, parsed: parser.result() };
}

/**
 * Finalizes a running job whose supervisor died: stops a worker left behind (nobody could
 * record its end), then writes the outcome the spool supports.
 */
export async function finalizeOrphan(
  paths: SpoolPaths,
  state: JobState,
  killGraceMs: number,
  log: (message: string) => void,
): Promise<JobState | undefined> {
  const worker = state.worker;
  if (worker && groupMembers(worker.pgid).length > 0) {
    log(`job ${state.id}: supervisor pid ${state.supervisor?.pid} died; stopping its worker group ${worker.pgid}`);
    await terminateJobProcesses({ pid: worker.pid, pgid: worker.pgid }, killGraceMs);
  }
  const record = readExitRecord(paths, state.id);
  const exit = record?.attempt === state.attempt ? record : null;
  const stream = exit ? await reparse(paths, state) : null;
  const outcome = decideOutcome({
    exit,
    verdict: stream && exit ? stream.adapter.judge(stream.parsed, exit.exit_code, exit.signal) : null,
    parsed: stream?.parsed ?? null,
    cancelRequested: cancelRequested(paths, state.id),
    doneSummary: readTextCapped(jobFile(paths, state.id, JOB_FILES.done), 64 * 1024)?.trim() ?? null,
    doneAt: null,
    timeoutSeconds: state.request.timeout_seconds,
    stallSeconds: state.request.stall_seconds,
  });
  if (outcome.error?.code === 'runner_lost') {
    const supervisor = state.supervisor ? `pid ${state.supervisor.pid}` : 'unknown';
    outcome.error = {
      code: 'runner_lost',
      message: `the job's supervisor (${supervisor}) died before the worker's exit was recorded; the job was not re-run`,
      hint: `start it again with: agent-async retry ${state.id}`,
    };
  }
  try {
    return applyTransition(paths, state.id, { name: outcome.error?.code === 'runner_lost' ? 'lose' : 'finish', outcome });
  } catch (error) {
    if (error instanceof IllegalTransition) return undefined;
    throw error;
  }
}
