import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { FILE_MODE } from './layout.js';

let tempCounter = 0;

/** `<pid>.<n>.<random>.tmp`: a name ending no other process or call can pick. */
function uniqueTempSuffix(): string {
  tempCounter += 1;
  return `${process.pid}.${tempCounter}.${Math.random().toString(36).slice(2, 8)}.tmp`;
}

/** A temp-file name in `tmpDir` that no other process or call can pick. */
export function tempName(tmpDir: string, label: string): string {
  return path.join(tmpDir, `${label}.${uniqueTempSuffix()}`);
}

/**
 * How much a write must survive: `none` only promises readers never see a part of it (the
 * rename does that), `file` also fsyncs the content, `folder` also fsyncs the target's folder
 * so the rename itself survives a power loss.
 */
export type Durability = 'none' | 'file' | 'folder';

/**
 * The temp file a write to `target` goes through: a dot-file in the target's own folder,
 * named after the writer's pid so a sweep can tell whose it was.
 *
 * Why next to the target and not in the spool's `tmp/`: a rename inside one folder locks only
 * that folder, while a rename across folders also takes the filesystem's rename lock, and a
 * shared `tmp/` made every write of every job wait for the one folder lock. Measured with 500
 * jobs: 32% of all CPU time went to creating files in the shared `tmp/` (docs/BENCHMARKS.md).
 */
export function tempFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${uniqueTempSuffix()}`);
}

/** Names that `tempFor` makes: `.<name>.<pid>.<n>.<random>.tmp`. */
export const TEMP_FILE_PATTERN = /^\..+\.(\d+)\.\d+\.[a-z0-9]*\.tmp$/;

/**
 * Replaces `target` atomically: the temp file is written next to it (see `tempFor`) and renamed
 * over it. Readers see the old or the new content, never a part.
 */
export function writeFileAtomic(target: string, data: string | Uint8Array, durability: Durability = 'file'): void {
  const temp = tempFor(target);
  const fd = fs.openSync(temp, 'wx', FILE_MODE);
  try {
    fs.writeFileSync(fd, data);
    if (durability !== 'none') fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    removeQuietly(temp);
    throw error;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(temp, target);
  } catch (error) {
    removeQuietly(temp);
    throw error;
  }
  if (durability === 'folder') fsyncDir(path.dirname(target));
}

export function writeJsonAtomic(target: string, value: unknown, durability: Durability = 'file'): void {
  writeFileAtomic(target, `${JSON.stringify(value, null, 2)}\n`, durability);
}

export function fsyncDir(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function removeQuietly(file: string): void {
  try {
    fs.rmSync(file, { force: true, recursive: true });
  } catch {
    // best effort: a sweep removes leftovers later
  }
}

export type JsonRead<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'missing' }
  | { kind: 'corrupt'; reason: string };

/** Reads and parses a JSON file, telling a missing file from a damaged one. */
export function readJsonFile<T = unknown>(file: string): JsonRead<T> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'corrupt', reason: `cannot read: ${(error as Error).message}` };
  }
  try {
    return { kind: 'ok', value: JSON.parse(text) as T };
  } catch (error) {
    return { kind: 'corrupt', reason: `not valid JSON: ${(error as Error).message}` };
  }
}

export function fileExists(file: string): boolean {
  try {
    fs.accessSync(file);
    return true;
  } catch {
    return false;
  }
}

/** Creates an empty marker file; returns false when it already exists. */
export function createMarker(file: string): boolean {
  try {
    fs.closeSync(fs.openSync(file, 'wx', FILE_MODE));
    return true;
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw error;
  }
}

/** Reads at most `maxBytes` of a small text file (a `done` summary, a request file). */
export function readTextCapped(file: string, maxBytes: number): string | undefined {
  // the usual case (no `done` file) without the cost of an ENOENT error's stack
  if (!fs.existsSync(file)) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    // sized by the file, not by the cap: callers pass generous caps (a prompt may be 64 MiB)
    const buffer = Buffer.alloc(Math.min(maxBytes, fs.fstatSync(fd).size));
    let length = 0;
    while (length < buffer.length) {
      const read = fs.readSync(fd, buffer, length, buffer.length - length, length);
      if (read === 0) break;
      length += read;
    }
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
