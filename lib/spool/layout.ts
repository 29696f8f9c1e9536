import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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
  result: 'result.md',
  exit: 'exit.json',
  done: 'done',
  cancel: 'cancel',
} as const;

export function jobDir(paths: SpoolPaths, id: string): string {
  return path.join(paths.jobs, id);
}

export function jobFile(paths: SpoolPaths, id: string, name: string): string {
  return path.join(paths.jobs, id, name);
}

const ensured = new Set<string>();

/** Creates the spool folders (mode 0700) once per process. */
export function ensureSpool(paths: SpoolPaths): void {
  if (ensured.has(paths.home)) return;
  for (const dir of [paths.home, paths.jobs, paths.tmp, paths.active, paths.index]) {
    fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  }
  const stat = fs.statSync(paths.home);
  if ((stat.mode & 0o077) !== 0 && stat.uid === process.getuid?.()) {
    fs.chmodSync(paths.home, DIR_MODE);
  }
  ensured.add(paths.home);
}
