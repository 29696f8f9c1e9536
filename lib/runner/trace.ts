import { logLine } from './log-line.js';

/**
 * Step timestamps for finding where a job's time goes: with AGENT_ASYNC_TRACE=1 in the
 * environment of whoever starts the runner, the runner and its supervisors write
 * `trace <epoch ms> <pid> <step> <job id>` lines to runner.log, and
 * `npm run bench -- --only=trace` turns them into a table (docs/BENCHMARKS.md). Off, a step
 * costs one comparison.
 */

export type TraceStep =
  /** runner: handed to a supervisor */
  | 'dispatched'
  /** supervisor: the run message arrived */
  | 'received'
  | 'claimed'
  /** the running state is on disk */
  | 'started'
  | 'spawned'
  /** a `done` report ended the job (its terminal state is on disk), the worker still runs */
  | 'notified'
  /** the worker's exit event */
  | 'exited'
  /** what the worker left is stopped and its output drained */
  | 'reaped'
  /** exit.json is written (the terminal state follows) */
  | 'exit-written'
  /** runner: the supervisor said the slot is free */
  | 'slot-freed'
  /** the terminal state is on disk */
  | 'recorded';

const enabled = process.env.AGENT_ASYNC_TRACE === '1';

export function traceStep(step: TraceStep, jobId: string): void {
  if (!enabled) return;
  logLine(`trace ${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid} ${step} ${jobId}\n`);
}
