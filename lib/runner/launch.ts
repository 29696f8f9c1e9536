import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { PACKAGE_ROOT } from '../version.js';
import { openRegularFile, readRegularFile } from '../spool/fsx.js';
import { FILE_MODE, ensureSpool, type SpoolPaths } from '../spool/layout.js';
import { leaderAlive } from './lease.js';
import { identityOf, liveness } from './processes.js';

/**
 * Makes sure a runner is alive: anything that queues work or waits on pending work calls
 * `ensureRunner`, which starts a detached runner when none leads. `runner.starting` (made
 * with O_EXCL) keeps a burst of submits from starting a herd of contenders.
 */

// Always the built files, also when this module runs from source (tests).
export const RUNNER_ENTRY = path.join(PACKAGE_ROOT, 'dist', 'runner', 'runner-entry.js');
export const SUPERVISOR_ENTRY = path.join(PACKAGE_ROOT, 'dist', 'runner', 'supervisor-main.js');

const STARTING_GRACE_MS = 3_000;
const LOG_ROTATE_BYTES = 5 * 1024 * 1024;

export type EnsureResult = 'running' | 'starting' | 'started';

const STARTING_MARKER_MAX_BYTES = 256;

function startingMarkerBusy(paths: SpoolPaths): boolean {
  const stat = fs.lstatSync(paths.runnerStarting, { throwIfNoEntry: false });
  if (!stat) return false;
  const read = readRegularFile(paths.runnerStarting, STARTING_MARKER_MAX_BYTES, 'truncate');
  // anything but a small regular file there is debris: it is replaced
  if (read.kind !== 'ok') return false;
  const [pid, startTime] = read.data.toString('utf8').trim().split(' ');
  if (pid && /^\d+$/.test(pid)) {
    return liveness({ pid: Number(pid), start_time: startTime || null, host: hostName() }) === 'alive';
  }
  return Date.now() - stat.mtimeMs < STARTING_GRACE_MS;
}

let cachedHost: string | undefined;
function hostName(): string {
  cachedHost ??= identityOf(process.pid).host;
  return cachedHost;
}

function takeStartingMarker(paths: SpoolPaths): boolean {
  for (let tries = 0; tries < 2; tries += 1) {
    try {
      fs.closeSync(fs.openSync(paths.runnerStarting, 'wx', FILE_MODE));
      return true;
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error;
      if (startingMarkerBusy(paths)) return false;
      fs.rmSync(paths.runnerStarting, { force: true, recursive: true });
    }
  }
  return false;
}

/**
 * Opens `runner.log` for appending (rotating it once it grows past 5 MiB). Anything but a
 * regular file there (a named pipe would block the open) is moved aside first.
 */
export function openRunnerLog(paths: SpoolPaths): number {
  const stat = fs.lstatSync(paths.runnerLog, { throwIfNoEntry: false });
  if (stat && (!stat.isFile() || stat.size > LOG_ROTATE_BYTES)) {
    fs.rmSync(`${paths.runnerLog}.1`, { force: true, recursive: true });
    fs.renameSync(paths.runnerLog, `${paths.runnerLog}.1`);
  }
  return openRegularFile(paths.runnerLog, 'append')!.fd;
}

/**
 * The environment of the runner and its supervisors: the caller's, without the job identity a
 * worker carries. A runner started by a submit from inside a job must not look like a process
 * of that job: finalizing a lost job stops every process that carries its id.
 */
export function runnerEnvironment(env: NodeJS.ProcessEnv, paths: SpoolPaths): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = { ...env, AGENT_ASYNC_HOME: paths.home };
  delete clean.AGENT_ASYNC_JOB_ID;
  delete clean.AGENT_ASYNC_JOB_DIR;
  return clean;
}

export function ensureRunner(paths: SpoolPaths, env: NodeJS.ProcessEnv = process.env): EnsureResult {
  if (leaderAlive(paths)) return 'running';
  ensureSpool(paths);
  if (!takeStartingMarker(paths)) return 'starting';
  const logFd = openRunnerLog(paths);
  try {
    const child = spawn(process.execPath, [RUNNER_ENTRY], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: runnerEnvironment(env, paths),
      cwd: paths.home,
    });
    child.on('error', () => fs.rmSync(paths.runnerStarting, { force: true }));
    if (child.pid !== undefined) {
      const started = identityOf(child.pid).start_time ?? '';
      fs.writeFileSync(paths.runnerStarting, `${child.pid} ${started}\n`, { mode: FILE_MODE });
    }
    child.unref();
  } finally {
    fs.closeSync(logFd);
  }
  return 'started';
}

/** Called by a runner once it leads or gives up, so the next ensureRunner is not held back. */
export function clearStartingMarker(paths: SpoolPaths): void {
  const read = readRegularFile(paths.runnerStarting, STARTING_MARKER_MAX_BYTES, 'truncate');
  if (read.kind !== 'ok') return;
  const [pid] = read.data.toString('utf8').trim().split(' ');
  if (pid === undefined || pid === '' || Number(pid) === process.pid) fs.rmSync(paths.runnerStarting, { force: true });
}
