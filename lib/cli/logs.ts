import * as jobs from '../jobs.js';
import { isTerminal } from '../jobs.js';

const FOLLOW_POLL_MS = 500;

/**
 * Prints `output.log` from `start` (negative: that many bytes before the end) and, with
 * `follow`, keeps printing what the worker appends until the job has ended and all of its
 * output is out. Reads page by page, so a huge log never sits in memory.
 */
export async function followOutput(
  ctx: jobs.JobsContext,
  id: string,
  options: { follow: boolean; start: number; write: (text: string) => void },
): Promise<void> {
  let offset = options.start;
  let wake: (() => void) | undefined;
  const closeWatch = options.follow
    ? await jobs.watchJobFiles(ctx.paths, [id], ['output', 'state'], () => wake?.(), ctx.config.watch_mode).catch(() => undefined)
    : undefined;
  try {
    for (;;) {
      const page = jobs.readOutput(ctx.paths, id, offset, jobs.OUTPUT_PAGE_MAX);
      if (page.data.length > 0) options.write(page.data);
      offset = page.next_offset;
      if (!page.eof) continue;
      if (!options.follow) return;
      const read = jobs.readJob(ctx.paths, id);
      if (read.kind !== 'ok' || isTerminal(read.state.status)) {
        const last = jobs.readOutput(ctx.paths, id, offset, jobs.OUTPUT_PAGE_MAX);
        if (last.data.length > 0) {
          options.write(last.data);
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
