import fs from 'node:fs';
import path from 'node:path';
import { removeQuietly } from './fsx.js';
import type { SpoolPaths } from './layout.js';

/**
 * Removes what crashes leave behind: temp files and half-built job folders in `tmp/` (a kill
 * between write and rename leaks one) once they are older than `maxAgeMs`, as Maildir does.
 */
export function sweepTmp(paths: SpoolPaths, maxAgeMs: number, now = Date.now()): number {
  let removed = 0;
  let names: string[];
  try {
    names = fs.readdirSync(paths.tmp);
  } catch {
    return 0;
  }
  for (const name of names) {
    const file = path.join(paths.tmp, name);
    try {
      if (now - fs.lstatSync(file).mtimeMs < maxAgeMs) continue;
    } catch {
      continue;
    }
    removeQuietly(file);
    removed += 1;
  }
  return removed;
}
