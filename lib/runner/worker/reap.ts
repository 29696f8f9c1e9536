import type { ChildProcess } from 'node:child_process';
import { groupMembers, jobProcesses, processGroupOf, terminateJobProcesses } from '../processes.js';

/** After a worker: its exit status, what it left running, and the last of its output. */

/** Time the leftovers of a worker that exited on its own get between TERM and KILL. */
const LEFTOVER_GRACE_MS = 2_000;
/** How long output pipes may stay open after the worker and its group are gone. */
const OUTPUT_DRAIN_MS = 2_000;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function exitOf(child: ChildProcess): Promise<ExitStatus> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/**
 * Stops what a worker left behind once it has gone: what is left in its process group, and
 * every other process that carries its job id (a daemon it started with setsid, one that forked
 * twice), so a job leaves nothing running. `quick`: the worker ran too short for the pid
 * counter to have wrapped (processes.jobProcesses). Returns the pids that outlived KILL.
 */
export async function stopLeftovers(
  jobId: string,
  workerPid: number,
  quick: boolean,
  beforeStopping: (where: string, elsewhere: number[]) => void,
): Promise<number[]> {
  const inGroup = groupMembers(workerPid).length > 0;
  const elsewhere = jobProcesses(jobId, quick ? workerPid : undefined).filter((pid) => !inGroup || processGroupOf(pid) !== workerPid);
  if (!inGroup && elsewhere.length === 0) return [];
  const places = [...(inGroup ? ['in its group'] : []), ...(elsewhere.length > 0 ? ['outside it (found by their job id)'] : [])];
  beforeStopping(places.join(' and '), elsewhere);
  const targets = [...(inGroup ? [workerPid] : []), ...elsewhere.filter((pid) => pid !== workerPid)];
  const stopped = await Promise.all(targets.map((pid) => terminateJobProcesses({ pid, pgid: pid }, LEFTOVER_GRACE_MS)));
  // one that left the group between the look and the kill (its setsid) is found again by its job id
  const escaped = jobProcesses(jobId, quick ? workerPid : undefined);
  stopped.push(...await Promise.all(escaped.map((pid) => terminateJobProcesses({ pid, pgid: pid }, LEFTOVER_GRACE_MS))));
  return stopped.flat();
}

/** Waits for the output pipes to close (a grandchild may hold them), at most OUTPUT_DRAIN_MS; closing the sink closes them. */
export async function drainOutput(outputDone: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([outputDone, new Promise((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)))]);
  clearTimeout(timer);
}
