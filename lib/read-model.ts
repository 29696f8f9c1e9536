import fs from 'node:fs';
import { oneLine, type ActivityReader } from './agents/activity.js';
import { stripFooter } from './agents/prompt.js';
import { openRegularFile, readJsonFile, readTextCapped, writeJsonAtomic } from './spool/fsx.js';
import { isJobId } from './spool/ids.js';
import { walkIndex } from './spool/index.js';
import { JOB_FILES, jobDir, jobFile, type SpoolPaths } from './spool/layout.js';
import type { JobState } from './spool/state.js';
import { readSnapshot, type JobSnapshot } from './spool/store.js';
import { watchJobFolders, type WatchMode } from './spool/watch.js';

/**
 * What the faces read of the spool, and nothing else: one job, the newest jobs, pages of a
 * job's output, its prompt, the folders a live view watches, and the side files a face keeps
 * in a job folder (the MCP server's task.json). `lib/jobs.ts` re-exports all of it.
 */

export { JOB_STATUSES, changesOf, isTerminal, type JobChanges, type JobState, type JobStatus } from './spool/state.js';
export { isJobId } from './spool/ids.js';
export type { JobSnapshot } from './spool/store.js';
export type { SpoolPaths } from './spool/layout.js';
export type { WatchMode } from './spool/watch.js';

/** The state of a job whose id is already known to be well formed. */
export function readJob(paths: SpoolPaths, id: string): JobSnapshot {
  return readSnapshot(paths, id);
}

/** Job ids, newest first, from the time index (reads one small bucket at a time). */
export function newestJobIds(paths: SpoolPaths): Generator<string> {
  return walkIndex(paths, 'newest');
}

export interface OutputPage {
  job_id: string;
  offset: number;
  next_offset: number;
  size: number;
  eof: boolean;
  data: string;
}

/** The largest page read in one go (the CLI's `logs`); the MCP tool allows smaller ones. */
export const OUTPUT_PAGE_MAX = 256 * 1024;

/** Backs `end` off so a page never ends inside a UTF-8 character. */
function utf8Boundary(buffer: Buffer, end: number): number {
  let cut = end;
  while (cut > 0 && cut > end - 4 && ((buffer[cut] ?? 0) & 0xc0) === 0x80) cut -= 1;
  return cut === 0 ? end : cut;
}

/**
 * A page of `output.log` by byte offset; a negative offset counts from the end (a tail).
 * Costs O(page), whatever the size of the log.
 */
export function readOutput(paths: SpoolPaths, id: string, offset = 0, maxBytes = 64 * 1024): OutputPage {
  const file = jobFile(paths, id, JOB_FILES.output);
  const limit = Math.max(1, Math.min(Math.floor(maxBytes), OUTPUT_PAGE_MAX));
  // never blocks: a named pipe (or anything but a regular file) put there reads as empty
  let opened: { fd: number; size: number } | undefined;
  try {
    opened = openRegularFile(file);
  } catch {
    opened = undefined;
  }
  if (!opened) return { job_id: id, offset: 0, next_offset: 0, size: 0, eof: true, data: '' };
  const { fd, size } = opened;
  try {
    const start = offset < 0 ? Math.max(0, size + Math.floor(offset)) : Math.min(Math.floor(offset), size);
    const buffer = Buffer.alloc(Math.min(limit + 4, size - start));
    const length = fs.readSync(fd, buffer, 0, buffer.length, start);
    return cutPage(id, { start, bytes: buffer.subarray(0, length), size, limit, tail: offset < 0 });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A page from raw bytes read at `start` (up to `limit` + 4 of them): never ends inside a UTF-8
 * character, and a tail (`tail`: the read counted from the end) never starts inside one.
 * Shared by the spool's `output.log` and the queue's output pages.
 */
export function cutPage(id: string, read: { start: number; bytes: Buffer; size: number; limit: number; tail: boolean }): OutputPage {
  const { bytes, size, limit } = read;
  let end = Math.min(bytes.length, limit);
  if (end < bytes.length) end = utf8Boundary(bytes, end);
  let begin = 0;
  if (read.tail) while (begin < end && ((bytes[begin] ?? 0) & 0xc0) === 0x80) begin += 1;
  const start = read.start + begin;
  return {
    job_id: id,
    offset: start,
    next_offset: start + end - begin,
    size,
    eof: start + end - begin >= size,
    data: bytes.subarray(begin, end).toString('utf8'),
  };
}

/** The last line a job printed, whitespace folded (for live views). */
export function lastOutputLine(paths: SpoolPaths, id: string, bytes = 512): string {
  const tail = readOutput(paths, id, -bytes, bytes).data;
  return tail.trimEnd().split('\n').at(-1)?.replace(/\s+/g, ' ').trim() ?? '';
}

export const ACTIVITY_TAIL_BYTES = 32 * 1024;

/**
 * The newest line of a job's output that `reader` makes sense of (its adapter's view of what
 * the worker is doing), in one short line; null when none of the last 32 KiB does.
 */
export function lastActivity(paths: SpoolPaths, id: string, reader: ActivityReader): string | null {
  return activityIn(readOutput(paths, id, -ACTIVITY_TAIL_BYTES, ACTIVITY_TAIL_BYTES), reader);
}

/** The newest line of a tail page (from the spool or the queue) that `reader` makes sense of. */
export function activityIn(page: OutputPage, reader: ActivityReader): string | null {
  const lines = page.data.split('\n');
  if (page.offset > 0) lines.shift(); // the first line is cut
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const activity = reader(lines[i]!);
    if (activity !== null && activity.trim() !== '') return oneLine(activity);
  }
  return null;
}

const PROMPT_READ_MAX = 64 * 1024 * 1024;

/** The task an agent job was given (its prompt.txt without the footer); undefined when missing. */
export function readTask(paths: SpoolPaths, state: JobState, maxBytes = PROMPT_READ_MAX): string | undefined {
  const prompt = readTextCapped(jobFile(paths, state.id, JOB_FILES.prompt), maxBytes);
  return prompt === undefined ? undefined : stripFooter(prompt, state.id);
}

/** Calls `onChange` when one of `files` changes in the jobs' folders; resolves to the closer. */
export function watchJobFiles(
  paths: SpoolPaths,
  ids: readonly string[],
  files: ReadonlyArray<keyof typeof JOB_FILES>,
  onChange: () => void,
  mode: WatchMode,
): Promise<() => Promise<void>> {
  return watchJobFolders(paths, ids, onChange, files.map((name) => JOB_FILES[name]), mode);
}

/** The folders whose changes a live view of these running jobs must redraw on. */
export function queueFolders(paths: SpoolPaths, runningIds: readonly string[]): string[] {
  return [paths.active, ...runningIds.map((id) => jobDir(paths, id))];
}

const SIDE_FILE = /^[a-z][a-z0-9-]*\.json$/;

function sideFile(paths: SpoolPaths, id: string, name: string): string {
  if (!isJobId(id) || !SIDE_FILE.test(name) || name === JOB_FILES.state || name === JOB_FILES.exit) {
    throw new Error(`not a side file of a job: ${id}/${name}`);
  }
  return jobFile(paths, id, name);
}

/** A face's own JSON file in a job folder (e.g. task.json); undefined when absent or unreadable. */
export function readSideFile(paths: SpoolPaths, id: string, name: string): unknown {
  const read = readJsonFile(sideFile(paths, id, name));
  return read.kind === 'ok' ? read.value : undefined;
}

export function writeSideFile(paths: SpoolPaths, id: string, name: string, value: unknown): void {
  writeJsonAtomic(sideFile(paths, id, name), value);
}
