import fs from 'node:fs';
import { configSchema, loadConfig, type Config } from '../config.js';
import { readRegularFile } from '../spool/fsx.js';
import { FILE_MODE, type SpoolPaths } from '../spool/layout.js';
import { awaitsWorkerExit, isTerminal, type JobState } from '../spool/state.js';
import { listActive, readState, requestCancel } from '../spool/store.js';
import { signalProcess } from '../signals.js';
import { readRunnerInfo } from './lease.js';
import { liveness, selfIdentity } from './processes.js';
import { finalizeOrphan } from './reconcile.js';

/**
 * Stopping a spool's queue for good (before an uninstall): nothing of agent-async may keep
 * running from an install that is about to be removed.
 */

export interface StopReport {
  /** The runner that was stopped. */
  runnerPid: number | null;
  /** Running jobs that were cancelled (their workers stopped with their process trees). */
  cancelled: string[];
  /** Running jobs that would not end in time (their ids). */
  stillRunning: string[];
  /** Pending jobs, left queued. */
  pending: string[];
}

const RUNNER_STOP_MS = 10_000;
const POLL_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/** Ended, and its worker gone (a job a done report ended may still have it in its grace). */
function hasEnded(state: JobState): boolean {
  return isTerminal(state.status) && !awaitsWorkerExit(state);
}

function activeStates(paths: SpoolPaths): JobState[] {
  return listActive(paths).flatMap((id) => {
    const read = readState(paths, id);
    return read.kind === 'ok' && !hasEnded(read.state) ? [read.state] : [];
  });
}

/**
 * Holds `runner.starting` for this process, so no supervisor or submit starts a new runner
 * meanwhile (they see a live starter). Returns how to let go of it.
 */
function holdRunnerStart(paths: SpoolPaths): () => void {
  const me = selfIdentity();
  const text = `${me.pid} ${me.start_time ?? ''}\n`;
  fs.rmSync(paths.runnerStarting, { force: true, recursive: true });
  fs.writeFileSync(paths.runnerStarting, text, { mode: FILE_MODE, flag: 'wx' });
  return () => {
    const read = readRegularFile(paths.runnerStarting, text.length + 1);
    if (read.kind === 'ok' && read.data.toString('utf8') === text) fs.rmSync(paths.runnerStarting, { force: true });
  };
}

async function stopRunner(paths: SpoolPaths): Promise<number | null> {
  const info = readRunnerInfo(paths);
  if (!info || liveness(info) !== 'alive') return null;
  const signal = (name: NodeJS.Signals): boolean => signalProcess(info.pid, name);
  signal('SIGTERM');
  if (!(await waitUntil(() => liveness(info) !== 'alive', RUNNER_STOP_MS))) signal('SIGKILL');
  return info.pid;
}

/**
 * Stops the runner (no new runner can start meanwhile), then cancels every running job: its
 * supervisor stops the worker and its whole process tree, records `cancelled` and exits (a job
 * whose supervisor is already gone is finalized here). Idle supervisors exit with the runner.
 * Pending jobs stay queued in the spool. Waits at most the kill grace and 15 s for the jobs.
 */
export async function stopSpool(paths: SpoolPaths, by: string): Promise<StopReport> {
  const report: StopReport = { runnerPid: null, cancelled: [], stillRunning: [], pending: [] };
  if (!fs.existsSync(paths.home)) return report;
  let config: Config;
  try {
    config = loadConfig(paths);
  } catch {
    config = configSchema.parse({}); // a broken config.json must not keep the queue running
  }
  const letGo = holdRunnerStart(paths);
  try {
    report.runnerPid = await stopRunner(paths);
    const running = new Set<string>();
    const cancelRunning = async (): Promise<void> => {
      for (const state of activeStates(paths)) {
        if (state.status === 'pending') continue;
        if (!running.has(state.id)) requestCancel(paths, state.id, by);
        running.add(state.id);
        await finalizeOrphan(paths, state, config, () => undefined);
      }
    };
    // twice: a supervisor that was handed a job just before the runner stopped may start it after the first look
    await cancelRunning();
    const ended = (): boolean => [...running].every((id) => {
      const read = readState(paths, id);
      return read.kind !== 'ok' || hasEnded(read.state);
    });
    await waitUntil(ended, config.kill_grace_seconds * 1000 + 15_000);
    await cancelRunning();
    await waitUntil(ended, config.kill_grace_seconds * 1000 + 15_000);
    for (const id of running) {
      const read = readState(paths, id);
      (read.kind === 'ok' && !hasEnded(read.state) ? report.stillRunning : report.cancelled).push(id);
    }
    report.pending = activeStates(paths).filter((state) => state.status === 'pending').map((state) => state.id);
  } finally {
    letGo();
  }
  return report;
}
