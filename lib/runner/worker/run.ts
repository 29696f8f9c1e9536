import type { Invocation } from '../../agents/types.js';
import type { Config } from '../../config.js';
import { discardSlot, prepareSlot } from '../../spool/fsx.js';
import { JOB_FILES, doneHintSlot, type SpoolPaths } from '../../spool/layout.js';
import type { WorkerInfo } from '../../spool/state.js';
import type { ExitRecord, JobStateWriter } from '../../spool/store.js';
import type { JobLimits } from '../core/outcome.js';
import { traceStep } from '../trace.js';
import { DirectOutput, OutputSink, type JobNotes } from '../worker-io.js';
import { enforceLimits } from './limits.js';
import { drainOutput, exitOf, stopLeftovers } from './reap.js';
import { spawnWorker } from './spawn.js';

/**
 * One run of a worker, top to bottom: spawn it, record it, enforce its limits while it runs,
 * then reap it (its exit, its leftovers, the rest of its output).
 */

/**
 * How long a worker runs before it is written to state.json as running (with its pid, for
 * `status` and for a runner that must stop it after this supervisor died).
 */
const WORKER_RECORD_DELAY_MS = 25;
/** A worker that ran shorter than this cannot have seen the pid counter wrap around (processes.jobProcesses). */
const QUICK_JOB_MS = 60_000;

export interface WorkerRun {
  paths: SpoolPaths;
  id: string;
  attempt: number;
  /** The resolved binary. */
  file: string;
  invocation: Invocation;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** output.log, opened for appending. */
  outputFd: number;
  /** Complete output lines, for a stream parser; undefined: the output goes straight to output.log. */
  onLine: ((line: string, stream: 'stdout' | 'stderr') => void) | undefined;
  /**
   * Processes of the job were started before the worker (an isolated job's worktree.setup):
   * leftovers are looked for among all processes, not only those started since the worker.
   */
  startedBefore?: boolean;
  /** The worker and its group are gone: its slot is free while its end is recorded. */
  onExited: () => void;
  /** A `done` report arrived while the worker runs (the worker is recorded before). */
  onDone: (worker: WorkerInfo) => void;
  notes: JobNotes;
  limits: JobLimits;
  config: Config;
  writer: JobStateWriter;
  log: (message: string) => void;
}

export interface WorkerEnd {
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

export async function runWorker(run: WorkerRun): Promise<WorkerEnd> {
  const { id, config } = run;
  // a stream to parse needs pipes; otherwise the worker writes straight to output.log
  const sink = run.onLine ? new OutputSink(run.outputFd, run.notes, run.onLine) : new DirectOutput(run.outputFd, run.notes);
  const startedAt = new Date().toISOString();
  const spawned = await spawnWorker({ file: run.file, invocation: run.invocation, cwd: run.cwd, env: run.env, attempt: run.attempt, sink }, startedAt);
  if (spawned.kind === 'failed') {
    run.notes.note(spawned.exit.spawn_error!.message);
    sink.close();
    return { exit: spawned.exit, unrecordedWorker: undefined, outputLoss: null };
  }
  const { child, worker, outputDone } = spawned;
  traceStep('spawned', id);
  const exited = exitOf(child);

  let recorded = false;
  const recordWorker = (): void => {
    if (recorded) return;
    try {
      run.writer.apply({ name: 'record_worker', worker });
      recorded = true;
    } catch (error) {
      // this supervisor still holds the worker; only its record for others is missing
      run.log(`job ${id}: could not record the worker (pid ${worker.pid}): ${(error as Error).message}`);
    }
  };
  // A worker that ends within WORKER_RECORD_DELAY_MS is never written as running: its end
  // records it, which saves a synced state write for every quick command. One that is
  // stopped, reports done, or leaves processes in its group is recorded first. Should this
  // supervisor die before the record, the runner finds the worker by the job id in its
  // environment (reconcile.ts).
  // and the terminal write's temp file is made now, not when waiters await the end
  const recordTimer = setTimeout(() => {
    recordWorker();
    prepareAhead(run);
  }, WORKER_RECORD_DELAY_MS);
  const limits = enforceLimits({
    paths: run.paths,
    id,
    pid: worker.pid,
    limits: run.limits,
    killGraceMs: config.kill_grace_seconds * 1000,
    doneGraceMs: config.done_grace_seconds * 1000,
    pollMs: config.poll_seconds * 1000,
    lastOutputAt: () => sink.lastOutputAt,
    beforeStop: (reason) => {
      recordWorker();
      run.notes.note(`stopping the job (${reason.replace('_', ' ')})`);
    },
    onDone: () => {
      recordWorker();
      run.onDone(worker);
    },
  });

  const { code, signal } = await exited;
  traceStep('exited', id);
  clearTimeout(recordTimer);
  discardSlot(doneSlotOf(run));
  limits.close();
  const stopped = limits.stopped;
  const survivors = stopped ? await stopped.survivors : [];
  const quick = !run.startedBefore && Date.now() - Date.parse(startedAt) < QUICK_JOB_MS;
  survivors.push(...await stopLeftovers(id, worker.pid, quick, (where, elsewhere) => {
    recordWorker();
    run.notes.note(`the worker exited but left processes ${where}; stopping them`);
    if (elsewhere.length > 0) run.log(`job ${id}: stopping ${elsewhere.length} process(es) its worker left: ${elsewhere.join(', ')}`);
  }));
  run.onExited();
  await drainOutput(outputDone);
  traceStep('reaped', id);
  const outputLoss = lossNote(sink);
  sink.close();
  if (survivors.length > 0) run.log(`job ${id}: processes still alive after KILL: ${survivors.join(', ')}`);
  return {
    exit: {
      schema_version: 1,
      attempt: run.attempt,
      pid: worker.pid,
      exit_code: code,
      signal,
      reason: stopped?.reason ?? 'exited',
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
 * Files made while the worker runs for the writes that others then await: the temp files of
 * exit.json and the terminal state, and the done hint's for a report from another process
 * (creating a file is the slowest step of a write on some filesystems: fsx.ts prepareTemp).
 */
function prepareAhead(run: WorkerRun): void {
  run.writer.prepareAhead([JOB_FILES.state, JOB_FILES.exit]);
  try {
    prepareSlot(doneSlotOf(run));
  } catch {
    // a report makes its own
  }
}

const doneSlotOf = (run: WorkerRun): string => doneHintSlot(run.paths, run.id);
