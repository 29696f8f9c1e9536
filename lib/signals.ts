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

/** Whether `pid` may be signalled: one process (above 1), not this one nor one of its ancestors. */
export function mayKillProcess(pid: number): boolean {
  return isRealId(pid) && !lineage().pids.has(pid);
}

/** Whether process group `pgid` may be signalled as a whole: a group (above 1) that neither this process nor an ancestor is in. */
export function mayKillGroup(pgid: number): boolean {
  return isRealId(pgid) && !lineage().groups.has(pgid);
}

/** Sends `signal` to one process when mayKillProcess allows it; false when refused or it is gone. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  if (!mayKillProcess(pid)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false; // gone
  }
}

/** Sends `signal` to a whole process group when mayKillGroup allows it; false when refused or it is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!mayKillGroup(pgid)) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // gone
  }
}
