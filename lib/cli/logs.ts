import * as jobs from '../jobs.js';
import { isTerminal } from '../jobs.js';

const FOLLOW_POLL_MS = 500;
const TAIL_CHUNK_BYTES = 64 * 1024;

/**
 * Where the last `lines` lines of `text` start, in bytes from its start; undefined when it
 * holds fewer (the caller reads further back). A final newline does not start a line.
 */
export function lastLinesStart(text: string, lines: number): number | undefined {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  let at = body.length;
  for (let found = 0; found < lines; found += 1) {
    at = body.lastIndexOf('\n', at - 1);
    if (at < 0) return undefined;
  }
  return Buffer.byteLength(text.slice(0, at + 1));
}

/**
 * The byte offset of the last `lines` lines of a job's output, reading back a growing chunk
 * up to one page (256 KiB): more lines than fit in that start at the page's first whole line.
 * Reads the spool, or in fleet mode the queue's pages.
 */
export async function tailLinesOffset(ctx: jobs.JobsContext, id: string, lines: number): Promise<number> {
  if (lines === 0) return (await jobs.readTail(ctx, id, 1)).size;
  for (let back = TAIL_CHUNK_BYTES; ; back *= 2) {
    const page = await jobs.readTail(ctx, id, back);
    const start = lastLinesStart(page.data, lines);
    if (start !== undefined) return page.offset + start;
    if (page.offset === 0) return 0; // fewer lines than asked: all of them
    if (back >= jobs.OUTPUT_PAGE_MAX) return page.offset + Buffer.byteLength(page.data.slice(0, page.data.indexOf('\n') + 1)); // as many whole lines as one page holds
  }
}

export interface FollowOptions {
  follow: boolean;
  /** Byte offset to start at (negative: that many bytes before the end). */
  start: number;
  write: (page: jobs.OutputPage) => void;
}

/**
 * Prints `output.log` from `start` (negative: that many bytes before the end) and, with
 * `follow`, keeps printing what the worker appends until the job has ended and all of its
 * output is out. Reads page by page, so a huge log never sits in memory.
 */
export async function followOutput(ctx: jobs.JobsContext, id: string, options: FollowOptions): Promise<void> {
  let offset = options.start;
  let wake: (() => void) | undefined;
  const closeWatch = options.follow
    ? await jobs.watchJobFiles(ctx.paths, [id], ['output', 'state'], () => wake?.(), ctx.config.watch_mode).catch(() => undefined)
    : undefined;
  try {
    for (;;) {
      const page = jobs.readOutput(ctx.paths, id, offset, jobs.OUTPUT_PAGE_MAX);
      if (page.data.length > 0) options.write(page);
      offset = page.next_offset;
      if (!page.eof) continue;
      if (!options.follow) return;
      const read = jobs.readJob(ctx.paths, id);
      if (read.kind !== 'ok' || isTerminal(read.state.status)) {
        const last = jobs.readOutput(ctx.paths, id, offset, jobs.OUTPUT_PAGE_MAX);
        if (last.data.length > 0) {
          options.write(last);
          offset = last.next_offset;
          continue;
        }
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, FOLLOW_POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    await closeWatch?.();
  }
}

const QUEUE_FOLLOW_WAIT_MS = 30_000;

/**
 * followOutput for fleet mode: the output is read from the queue's pages, whatever host runs
 * the job, and `follow` wakes on the queue's notification of a new page or of the job's end.
 */
export async function followQueueOutput(ctx: jobs.JobsContext, id: string, options: FollowOptions): Promise<void> {
  let offset = options.start;
  for (;;) {
    const page = await jobs.readOutputPage(ctx, { job_id: id, offset }, jobs.OUTPUT_PAGE_MAX);
    if (page.data.length > 0) options.write(page);
    offset = page.next_offset;
    if (!page.eof) continue;
    if (!options.follow) return;
    const waited = await jobs.awaitOutput(ctx, id, offset, QUEUE_FOLLOW_WAIT_MS);
    if (waited.ended && waited.size <= offset) return;
  }
}
