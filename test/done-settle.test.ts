import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { enforceLimits, type Limits } from '../lib/runner/worker/limits.js';
import { JOB_FILES, jobDir, jobFile, spoolPaths } from '../lib/spool/layout.js';

/**
 * An empty `done` file is "being written" until the supervisor has seen it empty for 100 ms. Its
 * age is the supervisor's own, not the file's mtime: an mtime ahead of the clock (a clock stepped
 * back, a file server ahead, `touch -d`) must not keep the job from ending, and a `done` being
 * written must not hide the done hint from any look (the poll, the settle re-check, a hint that
 * came before the watch).
 */

const open: Limits[] = [];
afterEach(() => {
  for (const limits of open.splice(0)) limits.close();
});

function jobFolder(): { paths: ReturnType<typeof spoolPaths>; id: string } {
  const paths = spoolPaths(fs.mkdtempSync(path.join(os.tmpdir(), 'aa-settle-')));
  const id = 'job-settle';
  fs.mkdirSync(jobDir(paths, id), { recursive: true });
  return { paths, id };
}

function watchLimits(paths: ReturnType<typeof spoolPaths>, id: string, onDone: () => void): Limits {
  const limits = enforceLimits({
    paths,
    id,
    pid: 2 ** 22 + 12345, // never signalled: no limit is reached within the test
    limits: { timeoutSeconds: 3600, stallSeconds: null },
    killGraceMs: 1000,
    doneGraceMs: 3_600_000,
    pollMs: 50,
    lastOutputAt: () => Date.now(),
    beforeStop: () => undefined,
    onDone,
  });
  open.push(limits);
  return limits;
}

const emptyDoneFromTheFuture = (paths: ReturnType<typeof spoolPaths>, id: string, aheadMs: number): void => {
  const file = jobFile(paths, id, JOB_FILES.done);
  fs.writeFileSync(file, '');
  const at = new Date(Date.now() + aheadMs);
  fs.utimesSync(file, at, at);
};

describe('an empty done file whose mtime is ahead of the clock', () => {
  it('still ends the job once it has been seen empty for the settle time', async () => {
    const { paths, id } = jobFolder();
    let done = 0;
    watchLimits(paths, id, () => { done += 1; });
    emptyDoneFromTheFuture(paths, id, 3_600_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(done, 'an empty done file (touch done) 1 h "in the future" never counted').toBe(1);
  });

  it('does not hide a done hint that the poll finds', async () => {
    const { paths, id } = jobFolder();
    // both there before the watch begins (as when the watch missed them, or in a poll-only folder)
    emptyDoneFromTheFuture(paths, id, 3_600_000);
    fs.writeFileSync(jobFile(paths, id, JOB_FILES.doneHint), 'from notify-done');
    let done = 0;
    watchLimits(paths, id, () => { done += 1; });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(done, 'the .done-hint was never looked at: `done` is looked at first and answers "being written"').toBe(1);
  });
});

describe('closing the limits while an empty done file settles', () => {
  it('leaves no timer behind', async () => {
    const { paths, id } = jobFolder();
    const before = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    fs.writeFileSync(jobFile(paths, id, JOB_FILES.done), '');
    let done = 0;
    const limits = watchLimits(paths, id, () => { done += 1; });
    await new Promise((resolve) => setTimeout(resolve, 30));
    limits.close();
    open.splice(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(done).toBe(0);
    expect(process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length).toBeLessThanOrEqual(before);
  });
});
