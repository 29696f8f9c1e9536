import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import treeKill from 'tree-kill';
import { signalGuard } from '../signals.js';
import type { ProcessIdentity } from '../spool/state.js';

/**
 * Process facts the runner and supervisors rely on: who is alive (telling a live process
 * from a reused pid by its start time), which processes belong to a job, and the kill
 * sequence. Linux reads /proc; other systems ask `ps`.
 */

const HAS_PROC = process.platform === 'linux' && fs.existsSync('/proc/self/stat');
let cachedBootId: string | null | undefined;

function bootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgid: number;
  startTicks: string;
}

function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTicks: fields[19] ?? '',
  };
}

function allProcStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}

interface PsRow {
  pid: number;
  ppid: number;
  pgid: number;
  zombie: boolean;
}

function psTable(): PsRow[] {
  const out = execFileSync('ps', ['-A', '-o', 'pid=,ppid=,pgid=,stat='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 4)
    .map(([pid, ppid, pgid, stat]) => ({
      pid: Number(pid),
      ppid: Number(ppid),
      pgid: Number(pgid),
      zombie: (stat ?? '').startsWith('Z'),
    }));
}

function processTable(): PsRow[] {
  if (!HAS_PROC) return psTable();
  return allProcStats().map((s) => ({ pid: s.pid, ppid: s.ppid, pgid: s.pgid, zombie: s.state === 'Z' }));
}

function startTimeOf(stat: ProcStat): string {
  return `${bootId() ?? 'boot'}:${stat.startTicks}`;
}

/** A string that changes when `pid` is reused by another process; null when unknown. */
export function processStartTime(pid: number): string | null {
  if (HAS_PROC) {
    const stat = readProcStat(pid);
    return stat ? startTimeOf(stat) : null;
  }
  try {
    const started = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return started === '' ? null : started;
  } catch {
    return null;
  }
}

/** The PID namespace a process lives in (`pid:[4026531836]`), null where /proc cannot say. */
function pidNamespaceOf(pid: number | 'self'): string | null {
  if (!HAS_PROC) return null;
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  self ??= { pid: process.pid, start_time: processStartTime(process.pid), host: os.hostname(), pid_ns: pidNamespaceOf('self') };
  return self;
}

export function identityOf(pid: number): ProcessIdentity {
  return { pid, start_time: processStartTime(pid), host: os.hostname(), pid_ns: pidNamespaceOf(pid) };
}

/** The /proc stat of a process that has not exited (a zombie has); undefined otherwise. */
function livingProcStat(pid: number): ProcStat | undefined {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' ? stat : undefined;
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return HAS_PROC ? livingProcStat(pid) !== undefined : true;
}

export type Liveness = 'alive' | 'dead' | 'unknown';

/**
 * Whether the process an identity describes still runs: 'unknown' on another host or in another
 * PID namespace (a container with the host's name that shares the spool), where its pid means
 * nothing here.
 */
export function liveness(identity: ProcessIdentity): Liveness {
  if (identity.host !== os.hostname()) return 'unknown';
  if (identity.pid_ns && identity.pid_ns !== selfIdentity().pid_ns) return 'unknown';
  if (HAS_PROC) {
    // one read of /proc/<pid>/stat answers both questions (this is asked on every submit)
    const stat = livingProcStat(identity.pid);
    if (stat === undefined) return 'dead';
    return identity.start_time === null || startTimeOf(stat) === identity.start_time ? 'alive' : 'dead';
  }
  if (!pidExists(identity.pid)) return 'dead';
  if (identity.start_time === null) return 'alive';
  const now = processStartTime(identity.pid);
  if (now === null) return 'dead';
  return now === identity.start_time ? 'alive' : 'dead';
}

/** The process group of a living process; undefined when it is gone (or unknown off Linux). */
export function processGroupOf(pid: number): number | undefined {
  return HAS_PROC ? livingProcStat(pid)?.pgid : undefined;
}

/** Living members of a process group (zombies do not count). */
export function groupMembers(pgid: number): number[] {
  // kill(-0) would ask about the caller's own group, and (-1) about every process
  if (!Number.isSafeInteger(pgid) || pgid <= 1) return [];
  try {
    process.kill(-pgid, 0);
  } catch {
    return []; // no process at all in the group: no need to read the process table
  }
  return processTable()
    .filter((row) => row.pgid === pgid && !row.zombie)
    .map((row) => row.pid);
}

function environHolds(pid: number, entry: Buffer): boolean {
  for (let look = 0; ; look += 1) {
    let environ: Buffer;
    try {
      environ = fs.readFileSync(`/proc/${pid}/environ`);
    } catch {
      return false; // gone, or another user's
    }
    if (environ.length > 0 || look === EMPTY_ENVIRON_LOOKS || !inExec(pid)) {
      return environ.subarray(0, entry.length - 1).equals(entry.subarray(1)) || environ.includes(entry);
    }
    // a process in the middle of execve shows no environment for a moment: look again
    Atomics.wait(SLEEPER, 0, 0, EMPTY_ENVIRON_WAIT_MS);
  }
}

const EMPTY_ENVIRON_LOOKS = 3;
const EMPTY_ENVIRON_WAIT_MS = 5;
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** A living user process with an empty environment: one between two programs (kernel threads have none for good). */
function inExec(pid: number): boolean {
  const stat = livingProcStat(pid);
  return stat !== undefined && stat.ppid !== 2 && pid !== 2;
}

function jobEnvironEntry(jobId: string): Buffer {
  return Buffer.from(`\0AGENT_ASYNC_JOB_ID=${jobId}\0`);
}

function procPids(): number[] {
  return fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
}

/**
 * Whether the process group a job recorded for its worker is still that worker's, so that it
 * may be signalled: its leader is the same process (same start time), or a member carries the
 * job id in its environment (a group lives as long as one member does, and its number is not
 * handed out again meanwhile). A worker recorded long ago whose group number now belongs to
 * someone else's processes (the pid counter wrapped) is not.
 */
export function workerGroupIsJobs(worker: { pid: number; pgid: number; start_time: string | null }, jobId: string): boolean {
  const members = groupMembers(worker.pgid);
  if (members.length === 0) return false;
  if (members.includes(worker.pid) && worker.start_time !== null && processStartTime(worker.pid) === worker.start_time) return true;
  if (!HAS_PROC) return worker.start_time === null;
  const entry = jobEnvironEntry(jobId);
  return members.some((pid) => pid !== process.pid && environHolds(pid, entry));
}

/**
 * The process groups a job's worker started, found without knowing the worker's pid (its
 * supervisor may have died before recording it): the living group leaders whose environment
 * holds `AGENT_ASYNC_JOB_ID=<jobId>`. The worker leads its own group, and so does a descendant
 * that escaped it with setsid. Linux only (/proc/<pid>/environ); elsewhere none are found.
 */
export function jobGroupLeaders(jobId: string): number[] {
  if (!HAS_PROC) return [];
  const entry = jobEnvironEntry(jobId);
  return procPids().filter((pid) => {
    if (pid === process.pid) return false;
    const stat = readProcStat(pid);
    return stat !== undefined && stat.pgid === stat.pid && stat.state !== 'Z' && stat.state !== 'X' && environHolds(pid, entry);
  });
}

/** Pids probed one by one, rather than listing /proc, when no more than this many were handed out since. */
const DIRECT_PROBE_MAX = 256;

function lastPidHandedOut(): number | null {
  try {
    const last = Number(fs.readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8'));
    return Number.isInteger(last) && last > 0 ? last : null;
  } catch {
    return null;
  }
}

/**
 * The pids handed out after `after`: a process a job started has a pid above its worker's, or
 * one below the last pid handed out once the counter wrapped around. Only for a job that ran a
 * short while, during which the counter cannot have gone all the way round.
 */
function pidsSince(after: number): number[] {
  const last = lastPidHandedOut();
  if (last !== null && last >= after && last - after <= DIRECT_PROBE_MAX) {
    // most of them have exited again: a stat that throws nothing tells them apart cheaply
    return Array.from({ length: last - after }, (_, i) => after + 1 + i).filter((pid) => fs.statSync(`/proc/${pid}`, { throwIfNoEntry: false }) !== undefined);
  }
  const all = procPids();
  if (last === null) return all;
  return last >= after ? all.filter((pid) => pid > after) : all.filter((pid) => pid > after || pid <= last);
}

function isThreadGroupLeader(pid: number): boolean {
  try {
    return new RegExp(`^Tgid:\\s*${pid}$`, 'm').test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Every living process whose environment holds `AGENT_ASYNC_JOB_ID=<jobId>`: the job's worker
 * and whatever it started, wherever that went (a group and session of its own after setsid, a
 * daemon that forked twice), short of a process that cleared its environment. With `after`
 * (the pid of a worker that ran a short while) only the pids handed out since are looked at,
 * which are few. Linux only (/proc/<pid>/environ); elsewhere none are found.
 */
export function jobProcesses(jobId: string, after?: number): number[] {
  if (!HAS_PROC) return [];
  const entry = jobEnvironEntry(jobId);
  const candidates = after === undefined ? procPids() : pidsSince(after);
  // threads first: a pid counted since the worker is often a thread of another process, whose
  // environment (its process's) costs a walk of that process's memory to read
  return candidates.filter((pid) => pid !== process.pid && isThreadGroupLeader(pid) && environHolds(pid, entry) && livingProcStat(pid) !== undefined);
}

/** All living descendants of `pid`, in and out of its process group (none for a pid that names no single process). */
export function descendants(pid: number): number[] {
  if (!Number.isSafeInteger(pid) || pid <= 1) return [];
  const children = new Map<number, number[]>();
  for (const row of processTable()) {
    if (row.zombie) continue;
    const list = children.get(row.ppid) ?? [];
    list.push(row.pid);
    children.set(row.ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    for (const child of children.get(next) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function treeKillQuietly(pid: number, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => treeKill(pid, signal, () => resolve()));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface JobProcesses {
  pid: number;
  pgid: number;
}

/**
 * Ends a job's processes: TERM to its process group and to every descendant that left the
 * group (snapshotted while the tree is intact), up to `graceMs` for them to go, then KILL to
 * the group, a fresh tree walk (tree-kill) and the snapshot. Returns the pids still alive
 * afterwards (normally none; a double-forked `setsid` escapee cannot be tracked).
 * A target that is not a job's (a pid or group of 0 or 1, this process, an ancestor of it, or
 * their group: lib/signals.ts) is left alone, whatever a caller passes: a kill(-0) there would
 * end the caller's own process group, and a tree walk from pid 0 every process there is.
 */
export async function terminateJobProcesses(target: JobProcesses, graceMs: number): Promise<number[]> {
  const { mayKillProcess, mayKillGroup, signalProcess, signalGroup } = signalGuard();
  const treeOk = mayKillProcess(target.pid);
  const groupOk = mayKillGroup(target.pgid);
  if (!treeOk && !groupOk) return [];
  // each pid with its start time: one that is gone and comes back later is someone else's
  const tracked = new Map<number, string>();
  const track = (pid: number): void => {
    const started = processStartTime(pid);
    if (started !== null && mayKillProcess(pid)) tracked.set(pid, started);
  };
  if (treeOk) for (const pid of [target.pid, ...descendants(target.pid)]) track(pid);
  const stillOurs = (pid: number): boolean => tracked.has(pid) && pidExists(pid) && processStartTime(pid) === tracked.get(pid);
  const survivors = (): number[] => {
    const left = new Set(groupOk ? groupMembers(target.pgid) : []);
    for (const pid of tracked.keys()) if (stillOurs(pid)) left.add(pid);
    return [...left];
  };

  if (groupOk) signalGroup(target.pgid, 'SIGTERM');
  for (const pid of tracked.keys()) signalProcess(pid, 'SIGTERM');
  const termDeadline = Date.now() + graceMs;
  while (survivors().length > 0 && Date.now() < termDeadline) await sleep(50);
  if (survivors().length === 0) return [];

  if (treeOk && stillOurs(target.pid)) {
    for (const pid of descendants(target.pid)) track(pid);
    await treeKillQuietly(target.pid, 'SIGKILL');
  }
  if (groupOk) signalGroup(target.pgid, 'SIGKILL');
  for (const pid of tracked.keys()) if (stillOurs(pid)) signalProcess(pid, 'SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (survivors().length > 0 && Date.now() < killDeadline) await sleep(25);
  return survivors();
}
