import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError, errnoCode } from '../errors.js';

/** Where every file of a spool lives. Nothing here touches the disk except `ensureSpool`. */
export interface SpoolPaths {
  home: string;
  config: string;
  jobs: string;
  tmp: string;
  active: string;
  index: string;
  runnerLock: string;
  runnerInfo: string;
  runnerStarting: string;
  runnerLog: string;
}

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.AGENT_ASYNC_HOME;
  if (fromEnv && fromEnv.trim() !== '') return path.resolve(fromEnv);
  return path.join(os.homedir(), '.agent-async');
}

export function spoolPaths(home: string = defaultHome()): SpoolPaths {
  const root = path.resolve(home);
  return {
    home: root,
    config: path.join(root, 'config.json'),
    jobs: path.join(root, 'jobs'),
    tmp: path.join(root, 'tmp'),
    active: path.join(root, 'active'),
    index: path.join(root, 'index'),
    runnerLock: path.join(root, 'runner.lock'),
    runnerInfo: path.join(root, 'runner.json'),
    runnerStarting: path.join(root, 'runner.starting'),
    runnerLog: path.join(root, 'runner.log'),
  };
}

/** Files inside one job folder (`jobs/<id>/`). */
export const JOB_FILES = {
  state: 'state.json',
  prompt: 'prompt.txt',
  output: 'output.log',
  /** agent-async's own lines about the run (why the worker was stopped, …) */
  notes: 'notes.log',
  result: 'result.md',
  exit: 'exit.json',
  done: 'done',
  /** a done report handed to the job's live supervisor before `done` is flushed (spool/done-report.ts) */
  doneHint: '.done-hint',
  cancel: 'cancel',
  /** isolated jobs: the patch of the job's changes, written at its end */
  patch: 'changes.patch',
  /** present when the job was started as an MCP task */
  task: 'task.json',
} as const;

/**
 * The empty file a job's supervisor makes ahead for the done hint (fsx.ts prepareSlot), so that
 * a report does not wait for a file to be made. One name per job, known without reading the
 * state: a report fills it before it reads anything. Its supervisor removes it when the worker
 * exits; a runner that finalizes the job after its supervisor died removes it too.
 */
export const DONE_HINT_SLOT = `.${JOB_FILES.doneHint}.slot.tmp`;

export function doneHintSlot(paths: SpoolPaths, id: string): string {
  return path.join(paths.jobs, id, DONE_HINT_SLOT);
}

export function jobDir(paths: SpoolPaths, id: string): string {
  return path.join(paths.jobs, id);
}

export function jobFile(paths: SpoolPaths, id: string, name: string): string {
  return path.join(paths.jobs, id, name);
}

const ensured = new Set<string>();

/**
 * Creates the spool folders (mode 0700) once per process. A spool root that was already there
 * is used as it is, never chmodded (it may be a shared folder such as /tmp), and refused when
 * another user owns it or others can write to it: they could plant or rewrite jobs there.
 */
export function ensureSpool(paths: SpoolPaths): void {
  if (ensured.has(paths.home)) return;
  makeFolder(paths.home, true);
  checkSpoolRoot(paths.home);
  for (const dir of [paths.jobs, paths.tmp, paths.active, paths.index]) makeFolder(dir, false);
  ensured.add(paths.home);
}

/**
 * mkdir, mode 0700, leaving an existing folder as it is. Parents are made only when missing:
 * a recursive mkdir reports a read-only filesystem as ENOENT, which would hide the cause.
 */
function makeFolder(dir: string, withParents: boolean): void {
  try {
    fs.mkdirSync(dir, { mode: DIR_MODE });
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || !withParents) throw error;
    fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  }
}

function refuseRoot(home: string, why: string): never {
  throw new UserError(
    'config_invalid',
    `the spool ${home} ${why}, so anyone could plant or change jobs there; agent-async never changes the mode of a folder it did not create. ` +
      'Set AGENT_ASYNC_HOME (or --home) to a folder of your own (a new one is created with mode 0700), or make this one private yourself',
    'AGENT_ASYNC_HOME',
  );
}

function checkSpoolRoot(home: string): void {
  const stat = fs.statSync(home);
  if (!stat.isDirectory()) {
    throw new UserError('config_invalid', `the spool ${home} is not a folder; set AGENT_ASYNC_HOME (or --home) to a folder`, 'AGENT_ASYNC_HOME');
  }
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) refuseRoot(home, `belongs to another user (uid ${stat.uid})`);
  if ((stat.mode & 0o022) !== 0) refuseRoot(home, `can be written by other users (mode ${(stat.mode & 0o7777).toString(8)})`);
}
