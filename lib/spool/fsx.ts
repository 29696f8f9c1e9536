import fs from 'node:fs';
import path from 'node:path';
import { UserError, errnoCode } from '../errors.js';
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

export interface WriteOptions {
  /**
   * A folder standing where the file belongs is removed first (for the spool's own files: a
   * worker or a person may have made one; a rename replaces anything else by itself).
   */
  replaceFolder?: boolean;
  /** Called after the content is written (and synced), just before the rename replaces the target. */
  beforeRename?: () => void;
  /** The temp file made ahead for this write (`prepareTemp`); consumed, or a new one is made when it is no longer in place. */
  prepared?: PreparedTemp | null;
}

/** A temp file made ahead of the write that will use it: its path, open descriptor and inode. */
export interface PreparedTemp {
  readonly path: string;
  readonly fd: number;
  readonly ino: number;
}

/**
 * Makes the temp file of a later write to `target` now. Creating a file (a new inode) is the
 * slowest step of an atomic write on some filesystems (0.5-1 ms on the bench machine's ext4,
 * where the rename takes 0.05 ms), so a writer whose next write is awaited makes it while
 * nothing waits on it.
 */
export function prepareTemp(target: string): PreparedTemp {
  const temp = tempFor(target);
  const fd = fs.openSync(temp, 'wx', FILE_MODE);
  return { path: temp, fd, ino: fs.fstatSync(fd).ino };
}

/**
 * Makes an empty file at `slot`, a fixed name where another process takes it (`takeSlot`) as
 * the temp file of its write: a file made ahead for a writer that cannot make its own early.
 * An existing slot is left as it is.
 */
export function prepareSlot(slot: string): void {
  createMarker(slot);
}

/**
 * Takes the file made ahead at `slot` as the temp file of a write to `target`, or null. One
 * taker wins (the rename); the file is used only when it is an empty regular file of this user with
 * no other name (never a link, a pipe or a device, nor a hard link to a file elsewhere, which
 * the write would change), opened without following a link or blocking.
 */
export function takeSlot(slot: string, target: string): PreparedTemp | null {
  const temp = tempFor(target);
  try {
    fs.renameSync(slot, temp);
  } catch {
    return null;
  }
  try {
    const seen = fs.lstatSync(temp);
    if (!ownPlainFile(seen)) throw new NotARegularFile(temp, entryKindOf(seen));
    const fd = fs.openSync(temp, O_WRONLY | NEVER_BLOCK);
    const stat = fs.fstatSync(fd);
    if (ownPlainFile(stat) && stat.ino === seen.ino && stat.size === 0) return { path: temp, fd, ino: stat.ino };
    fs.closeSync(fd);
  } catch {
    // not usable: the write makes its own
  }
  try {
    fs.unlinkSync(temp); // only this name: never a folder someone made there, nor what a link points to
  } catch {
    // left for the sweep
  }
  return null;
}

/** Removes an untaken slot (a regular file only). */
export function discardSlot(slot: string): void {
  try {
    if (fs.lstatSync(slot, { throwIfNoEntry: false })?.isFile()) fs.unlinkSync(slot);
  } catch {
    // gone with its folder, or left for the sweep
  }
}

function ownPlainFile(stat: fs.Stats): boolean {
  return stat.isFile() && stat.nlink === 1 && stat.uid === process.getuid?.();
}

/** Closes and removes a prepared temp file that no write used. */
export function discardTemp(prepared: PreparedTemp): void {
  fs.closeSync(prepared.fd);
  if (stillInPlace(prepared)) removeQuietly(prepared.path);
}

/** Whether the prepared file is still the one at its path (the folder may be someone else's to change too). */
function stillInPlace(prepared: PreparedTemp): boolean {
  return fs.lstatSync(prepared.path, { throwIfNoEntry: false })?.ino === prepared.ino;
}

/**
 * Replaces `target` atomically: the temp file is written next to it (see `tempFor`) and renamed
 * over it. Readers see the old or the new content, never a part. A named pipe, a device or a
 * link at `target` is replaced itself (never followed, never opened).
 */
export function writeFileAtomic(target: string, data: string | Uint8Array, durability: Durability = 'file', options: WriteOptions = {}): void {
  const { prepared } = options;
  const temp = prepared ? prepared.path : tempFor(target);
  const fd = prepared ? prepared.fd : fs.openSync(temp, 'wx', FILE_MODE);
  const stillOurs = (): boolean => !prepared || stillInPlace(prepared);
  try {
    const length = writeWhole(fd, data);
    // a prepared file is cut to what was written: also what a writer that held it open added
    // meanwhile (and its mtime is then this write's, even when nothing was written)
    if (prepared) fs.ftruncateSync(fd, length);
    if (durability !== 'none') fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    if (stillOurs()) removeQuietly(temp);
    throw error;
  }
  // A flushed file is closed after its rename, one step less before readers see it; an
  // unflushed one before (a network filesystem sends its content to the server at the close).
  const closeAfterRename = durability !== 'none';
  if (!closeAfterRename) fs.closeSync(fd);
  // a prepared file swapped for another meanwhile: written again through a new one
  if (!stillOurs()) {
    if (closeAfterRename) fs.closeSync(fd);
    return writeFileAtomic(target, data, durability, { ...options, prepared: null });
  }
  try {
    options.beforeRename?.();
    renameOver(temp, target, options);
  } catch (error) {
    removeQuietly(temp);
    throw error;
  } finally {
    if (closeAfterRename) fs.closeSync(fd);
  }
  if (durability === 'folder') fsyncDir(path.dirname(target));
}

/** Writes all of `data` from the start of the file; returns its length in bytes. */
function writeWhole(fd: number, data: string | Uint8Array): number {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at, at);
  return bytes.length;
}

function renameOver(temp: string, target: string, options: WriteOptions): void {
  try {
    fs.renameSync(temp, target);
  } catch (error) {
    const code = errnoCode(error);
    const folderInTheWay = (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') && fs.lstatSync(target, { throwIfNoEntry: false })?.isDirectory();
    if (!options.replaceFolder || !folderInTheWay) throw error;
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(temp, target);
  }
}

export function writeJsonAtomic(target: string, value: unknown, durability: Durability = 'file', options: WriteOptions = {}): void {
  writeFileAtomic(target, `${JSON.stringify(value, null, 2)}\n`, durability, options);
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

// ── reading files that someone else may have replaced ──────────────────────────────────────

/**
 * What stands at a path. A job folder is writable by its worker (and the whole spool by
 * anyone with the user's rights), so any file agent-async reads may have been replaced by a
 * named pipe (opening one for reading blocks until a writer comes), a device, a folder, a link
 * out of the spool, or a huge file. Every read of a spool file goes through `openRegularFile`.
 */
export type EntryKind = 'file' | 'directory' | 'symbolic link' | 'named pipe (FIFO)' | 'socket' | 'character device' | 'block device' | 'special file';

export function entryKindOf(entry: fs.Stats | fs.Dirent): EntryKind {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'directory';
  if (entry.isSymbolicLink()) return 'symbolic link';
  if (entry.isFIFO()) return 'named pipe (FIFO)';
  if (entry.isSocket()) return 'socket';
  if (entry.isCharacterDevice()) return 'character device';
  if (entry.isBlockDevice()) return 'block device';
  return 'special file';
}

/** Thrown where a regular file is needed and something else stands at the path. */
export class NotARegularFile extends Error {
  constructor(readonly file: string, readonly kind: EntryKind) {
    super(`${file} is a ${kind}, not a regular file`);
    this.name = 'NotARegularFile';
  }
}

const { O_RDONLY, O_WRONLY, O_APPEND, O_CREAT, O_EXCL } = fs.constants;
/** No final link followed; no pipe or device can block the open or become a controlling terminal. */
const NEVER_BLOCK = (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);

export interface OpenedFile {
  fd: number;
  size: number;
  mtimeMs: number;
}

function openedAs(file: string, flags: number, mode?: number): OpenedFile {
  const fd = fs.openSync(file, flags | NEVER_BLOCK, mode);
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw new NotARegularFile(file, entryKindOf(stat));
  }
  return { fd, size: stat.size, mtimeMs: stat.mtimeMs };
}

/**
 * Opens a regular file for reading, or for appending (created, mode 0600, when missing),
 * without ever blocking: the path is looked at first without following a link and only a
 * regular file is opened, so a device is never opened at all; O_NOFOLLOW and O_NONBLOCK cover
 * a swap between the look and the open, and fstat checks what was opened. Undefined when
 * nothing is there (reading). Throws `NotARegularFile` for anything else.
 */
export function openRegularFile(file: string, mode: 'read' | 'append' = 'read'): OpenedFile | undefined {
  const flags = mode === 'read' ? O_RDONLY : O_WRONLY | O_APPEND;
  for (let attempt = 0; ; attempt += 1) {
    const seen = fs.lstatSync(file, { throwIfNoEntry: false });
    if (seen !== undefined && !seen.isFile()) throw new NotARegularFile(file, entryKindOf(seen));
    try {
      if (seen !== undefined) return openedAs(file, flags);
      if (mode === 'read') return undefined;
      return openedAs(file, flags | O_CREAT | O_EXCL, FILE_MODE);
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ELOOP') throw new NotARegularFile(file, 'symbolic link');
      if (code === 'ENXIO') throw new NotARegularFile(file, 'named pipe (FIFO)');
      // removed or made between the look and the open: look again
      if ((code === 'ENOENT' || code === 'EEXIST') && attempt < 2) continue;
      if (code === 'ENOENT' && mode === 'read') return undefined;
      throw error;
    }
  }
}

export type FileRead =
  | { kind: 'ok'; data: Buffer; size: number; mtimeMs: number }
  | { kind: 'missing' }
  | { kind: 'refused'; reason: string };

/**
 * Reads a regular file of at most `maxBytes` (`truncate`: its first `maxBytes`), never
 * blocking and never following a final link; anything else is `refused` with the reason.
 */
export function readRegularFile(file: string, maxBytes: number, overCap: 'refuse' | 'truncate' = 'refuse'): FileRead {
  let opened: OpenedFile | undefined;
  try {
    opened = openRegularFile(file);
  } catch (error) {
    if (error instanceof NotARegularFile) return { kind: 'refused', reason: `it is a ${error.kind}, not a regular file` };
    if (errnoCode(error) === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'refused', reason: `cannot read: ${(error as Error).message}` };
  }
  if (!opened) return { kind: 'missing' };
  try {
    if (opened.size > maxBytes && overCap === 'refuse') {
      return { kind: 'refused', reason: `it is ${opened.size} bytes, more than the ${maxBytes} read from such a file` };
    }
    // sized by the file, not by the cap: callers pass generous caps (a prompt may be 64 MiB)
    const buffer = Buffer.alloc(Math.min(maxBytes, opened.size));
    let length = 0;
    while (length < buffer.length) {
      const read = fs.readSync(opened.fd, buffer, length, buffer.length - length, length);
      if (read === 0) break;
      length += read;
    }
    return { kind: 'ok', data: buffer.subarray(0, length), size: opened.size, mtimeMs: opened.mtimeMs };
  } finally {
    fs.closeSync(opened.fd);
  }
}

export type JsonRead<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'missing' }
  | { kind: 'corrupt'; reason: string };

/** Largest JSON file read whole (config, runner.json, exit records, claim owners, …). */
export const JSON_MAX_BYTES = 1024 * 1024;

/** Reads and parses a JSON file, telling a missing file from a damaged one (or one that is no regular file). */
export function readJsonFile<T = unknown>(file: string, maxBytes = JSON_MAX_BYTES): JsonRead<T> {
  const read = readRegularFile(file, maxBytes);
  if (read.kind === 'missing') return read;
  if (read.kind === 'refused') return { kind: 'corrupt', reason: read.reason };
  try {
    return { kind: 'ok', value: JSON.parse(read.data.toString('utf8')) as T };
  } catch (error) {
    return { kind: 'corrupt', reason: `not valid JSON: ${(error as Error).message}` };
  }
}

/** What stands at `file` (a file, a folder, a dangling link, …), or undefined; never follows a link. */
export function entryStat(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** True when anything stands at `file`; never follows a link. */
export function entryExists(file: string): boolean {
  return entryStat(file) !== undefined;
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

/**
 * Reads at most `maxBytes` of a small text file (a `done` summary, a prompt); undefined when
 * nothing readable is there (missing, or no regular file: see `readRegularFile`).
 */
export function readTextCapped(file: string, maxBytes: number): string | undefined {
  const read = readRegularFile(file, maxBytes, 'truncate');
  return read.kind === 'ok' ? read.data.toString('utf8') : undefined;
}

// ── a full or read-only disk ───────────────────────────────────────────────────────────────

const SPACE_ERRORS: Record<string, string> = {
  ENOSPC: 'no space is left on its device (ENOSPC)',
  EDQUOT: 'the disk quota is used up (EDQUOT)',
  EROFS: 'its filesystem is read-only (EROFS)',
};

/** A write failed because the disk is full, a quota is used up or the filesystem is read-only. */
export function isSpaceError(error: unknown): boolean {
  const code = errnoCode(error);
  return code !== undefined && Object.hasOwn(SPACE_ERRORS, code);
}

/** Bytes an unprivileged writer can still use on the filesystem of `dir` (or of its nearest existing parent). */
export function freeBytes(dir: string): number | null {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    try {
      const stats = fs.statfsSync(current);
      return stats.bavail * stats.bsize;
    } catch {
      if (path.dirname(current) === current) return null;
    }
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** What a full (or read-only) spool disk means, in words: the spool, the cause, the free space. */
export function describeSpaceProblem(error: unknown, home: string): string {
  const code = errnoCode(error) ?? 'ENOSPC';
  const free = freeBytes(home);
  const fix = code === 'EROFS'
    ? 'mount it writable, or set AGENT_ASYNC_HOME to a folder on a writable disk'
    : 'free some space (agent-async gc removes finished jobs) and try again';
  return `cannot write to the spool ${home}: ${SPACE_ERRORS[code] ?? code}; ${free === null ? 'free space unknown' : `${formatBytes(free)} free there`}. ${fix[0]!.toUpperCase()}${fix.slice(1)}.`;
}

/** The error a face shows for a write to the spool that failed for want of space; undefined for any other error. */
export function spoolSpaceError(error: unknown, home: string): UserError | undefined {
  if (!isSpaceError(error)) return undefined;
  return new UserError('no_space', describeSpaceProblem(error, home), 'AGENT_ASYNC_HOME');
}
