import * as jobs from '../jobs.js';
import { JOB_FILES } from '../spool/layout.js';
import { isTerminal } from '../spool/state.js';
import { readState } from '../spool/store.js';
import { watchJobFolders } from '../spool/watch.js';

const FOLLOW_POLL_MS = 500;

/**
 * Prints `output.log` from `start` (negative: that many bytes before the end) and, with
 * `follow`, keeps printing what the worker appends until the job has ended and all of its
 * output is out. Reads page by page, so a huge log never sits in memory.
 */
export async function followOutput(
  spool: jobs.Spool,
  id: string,
  options: { follow: boolean; start: number; write: (text: string) => void },
): Promise<void> {
  let offset = options.start;
  let wake: (() => void) | undefined;
  const closeWatch = options.follow
    ? await watchJobFolders(spool.paths, [id], () => wake?.(), [JOB_FILES.output, JOB_FILES.state], spool.config.watch_mode).catch(() => undefined)
    : undefined;
  try {
    for (;;) {
      const page = jobs.readOutput(spool, id, offset, jobs.OUTPUT_PAGE_MAX);
      if (page.data.length > 0) options.write(page.data);
      offset = page.next_offset;
      if (!page.eof) continue;
      if (!options.follow) return;
      const read = readState(spool.paths, id);
      if (read.kind !== 'ok' || isTerminal(read.state.status)) {
        const last = jobs.readOutput(spool, id, offset, jobs.OUTPUT_PAGE_MAX);
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
