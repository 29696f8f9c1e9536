import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * The one way agent-async signals a process or a process group: never the caller's own process,
 * its ancestors or their process groups, and never a pid that names no single process.
 *
 * kill(2) reads its target loosely: 0 is the caller's own process group, -1 every process the
 * caller may signal, and -pgid with a pgid of 0 is the caller's group again. A pid read from a
 * file that was not fully written (Number('') is 0), a missing group, or a pid that is now
 * someone else's (the counter wraps) would otherwise end the process that asked, and whoever
 * shares its group: a CLI or an MCP server in a user's shell job, a test runner with its shell.
 */

interface Link {
  ppid: number;
  pgid: number;
}

function linkOf(pid: number): Link | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), pgid: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

function linkByPs(pid: number): Link | undefined {
  try {
    const [ppid, pgid] = execFileSync('ps', ['-o', 'ppid=,pgid=', '-p', String(pid)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
    return ppid === undefined || pgid === undefined || Number.isNaN(ppid) || Number.isNaN(pgid) ? undefined : { ppid, pgid };
  } catch {
    return undefined;
  }
}

const HAS_PROC = process.platform === 'linux' && fs.existsSync('/proc/self/stat');

/**
 * This process and its ancestors up to init, with their process groups: what a signal must never
 * reach. Read anew each time (a parent that dies hands us to another).
 */
function lineage(): { pids: Set<number>; groups: Set<number> } {
  const pids = new Set<number>();
  const groups = new Set<number>();
  const read = HAS_PROC ? linkOf : linkByPs;
  for (let pid = process.pid; pid > 1 && !pids.has(pid) && pids.size < 1000;) {
    pids.add(pid);
    const link = read(pid);
    if (link === undefined) break;
    if (link.pgid > 0) groups.add(link.pgid);
    pid = link.ppid;
  }
  return { pids, groups };
}

const isRealId = (id: number): boolean => Number.isSafeInteger(id) && id > 1;

/** The checks and sends below, against this process's lineage read once (for a caller that signals many pids in one go). */
export interface SignalGuard {
  mayKillProcess: (pid: number) => boolean;
  mayKillGroup: (pgid: number) => boolean;
  signalProcess: (pid: number, signal: NodeJS.Signals) => boolean;
  signalGroup: (pgid: number, signal: NodeJS.Signals) => boolean;
}

export function signalGuard(): SignalGuard {
  const { pids, groups } = lineage();
  const guard: SignalGuard = {
    /** One process (above 1), not this one nor one of its ancestors. */
    mayKillProcess: (pid) => isRealId(pid) && !pids.has(pid),
    /** A group (above 1) that neither this process nor an ancestor is in. */
    mayKillGroup: (pgid) => isRealId(pgid) && !groups.has(pgid),
    /** false when refused or the process is gone */
    signalProcess: (pid, signal) => guard.mayKillProcess(pid) && sendQuietly(pid, signal),
    /** false when refused or the group is gone */
    signalGroup: (pgid, signal) => guard.mayKillGroup(pgid) && sendQuietly(-pgid, signal),
  };
  return guard;
}

function sendQuietly(target: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch {
    return false; // gone
  }
}

export const mayKillProcess = (pid: number): boolean => signalGuard().mayKillProcess(pid);
export const mayKillGroup = (pgid: number): boolean => signalGuard().mayKillGroup(pgid);
export const signalProcess = (pid: number, signal: NodeJS.Signals): boolean => signalGuard().signalProcess(pid, signal);
export const signalGroup = (pgid: number, signal: NodeJS.Signals): boolean => signalGuard().signalGroup(pgid, signal);
