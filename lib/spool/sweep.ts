import fs from 'node:fs';
import path from 'node:path';
import { TEMP_FILE_PATTERN, removeQuietly } from './fsx.js';
import { jobDir, type SpoolPaths } from './layout.js';

/**
 * Removes what crashes leave behind, as Maildir does: a kill between a write and its rename
 * leaks the temp file (a `.<name>.<pid>.….tmp` next to the file it was for), and a kill while
 * a job is being published leaks its half-built folder in `tmp/`.
 */

function olderThan(file: string, maxAgeMs: number, now: number): boolean {
  try {
    return now - fs.lstatSync(file).mtimeMs >= maxAgeMs;
  } catch {
    return false;
  }
}

function names(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes the entries of `dir` that `accept` names and that are older than `maxAgeMs`; returns how many went. */
function sweepFolder(dir: string, maxAgeMs: number, now: number, accept: (name: string) => boolean): number {
  let removed = 0;
  for (const name of names(dir)) {
    if (!accept(name)) continue;
    const file = path.join(dir, name);
    if (!olderThan(file, maxAgeMs, now)) continue;
    removeQuietly(file);
    removed += 1;
  }
  return removed;
}

/**
 * Sweeps everything in `tmp/`, and the temp files in the spool's own folder and in the folders
 * of `jobIds` (the jobs still being written to), once older than `maxAgeMs`.
 */
export function sweepTmp(paths: SpoolPaths, maxAgeMs: number, jobIds: readonly string[] = [], now = Date.now()): number {
  const isTemp = (name: string): boolean => TEMP_FILE_PATTERN.test(name);
  let removed = sweepFolder(paths.tmp, maxAgeMs, now, () => true);
  removed += sweepFolder(paths.home, maxAgeMs, now, isTemp);
  for (const id of jobIds) removed += sweepFolder(jobDir(paths, id), maxAgeMs, now, isTemp);
  return removed;
}

/** Removes, whatever their age, the temp files a process that is known to be dead left in a job folder. */
export function sweepTempsOf(paths: SpoolPaths, id: string, deadPid: number): number {
  return sweepFolder(jobDir(paths, id), 0, Date.now(), (name) => Number(TEMP_FILE_PATTERN.exec(name)?.[1]) === deadPid);
}
