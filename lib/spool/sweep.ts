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

/** Sweeps temp files older than `maxAgeMs` from one folder; returns how many went. */
function sweepTempFiles(dir: string, maxAgeMs: number, now: number): number {
  let removed = 0;
  for (const name of names(dir)) {
    if (!TEMP_FILE_PATTERN.test(name)) continue;
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
  let removed = 0;
  for (const name of names(paths.tmp)) {
    const file = path.join(paths.tmp, name);
    if (!olderThan(file, maxAgeMs, now)) continue;
    removeQuietly(file);
    removed += 1;
  }
  removed += sweepTempFiles(paths.home, maxAgeMs, now);
  for (const id of jobIds) removed += sweepTempFiles(jobDir(paths, id), maxAgeMs, now);
  return removed;
}

/** Removes, whatever their age, the temp files a process that is known to be dead left in a job folder. */
export function sweepTempsOf(paths: SpoolPaths, id: string, deadPid: number): number {
  let removed = 0;
  const dir = jobDir(paths, id);
  for (const name of names(dir)) {
    if (Number(TEMP_FILE_PATTERN.exec(name)?.[1]) !== deadPid) continue;
    removeQuietly(path.join(dir, name));
    removed += 1;
  }
  return removed;
}
