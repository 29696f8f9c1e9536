import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as jobs from '../lib/jobs.js';
import { cleanupSpools, dirIn, jobNotes, makeSpool, startJob, until, waitJob } from './helpers/spool.js';

afterAll(cleanupSpools);

describe('done reports that meet another end of the job', () => {
  it('notify-done while a cancel is stopping the worker is not answered as recorded (the job ends cancelled)', async () => {
    const spool = makeSpool({ kill_grace_seconds: 3, done_grace_seconds: 300 });
    // a worker that ignores TERM: the cancel's terminal write waits for the kill grace
    const id = await startJob(spool, ['sh', '-c', `trap '' TERM; echo up; while :; do sleep 0.1; done`], ['--cwd', dirIn(spool, 'c')]);
    const ctx = jobs.openContext({ home: spool.home, env: spool.env });
    await until(() => fs.existsSync(path.join(spool.home, 'jobs', id, 'output.log')) && fs.readFileSync(path.join(spool.home, 'jobs', id, 'output.log'), 'utf8').includes('up'), 30_000, 'the worker to run');
    expect((await jobs.cancel(ctx, { job_id: id }, { waitSeconds: 0 })).result).toBe('stopping');
    await until(() => jobNotes(spool, id).includes('stopping the job (cancelled)'), 30_000, 'the supervisor to stop the worker');
    const answer = await jobs.notifyDone(ctx, { job_id: id, summary: 'too late' });
    const end = await waitJob(spool, id);
    expect(end.status).toBe('cancelled');
    expect(answer, `answered ${JSON.stringify({ accepted: answer.accepted, status: answer.state.status, message: answer.message })}`).toMatchObject({ accepted: false });
  });

  it('an empty done file stamped in the future (clock stepped back) ends the job without waiting for its worker to exit, as `touch done` does', async () => {
    const spool = makeSpool({ done_grace_seconds: 1 });
    const id = await startJob(spool, ['sh', '-c', 'touch -d "@$(( $(date +%s) + 3600 ))" "$AGENT_ASYNC_JOB_DIR/done"; sleep 30'], ['--cwd', dirIn(spool, 'f')]);
    const started = Date.now();
    const end = await waitJob(spool, id);
    expect(end).toMatchObject({ status: 'done', notified: { summary: '' } });
    expect(Date.now() - started, 'the job ran until its worker exited by itself').toBeLessThan(15_000);
  });
});
