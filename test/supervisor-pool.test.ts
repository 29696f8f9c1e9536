import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../lib/config.js';
import type { SupervisorReply } from '../lib/runner/messages.js';
import { SupervisorPool } from '../lib/runner/supervisor-pool.js';
import { spoolPaths } from '../lib/spool/layout.js';
import { ROOT, until } from './helpers/spool.js';

const FAKE = path.join(ROOT, 'test/helpers/fake-supervisor.mjs');
const config = {} as unknown as Config; // the stand-in never reads it

let pool: SupervisorPool | undefined;
const dirs: string[] = [];
/** The stand-ins this process forked that still run (a slow one may still be booting). */
function standInsAlive(): number[] {
  const listed = spawnSync('ps', ['--ppid', String(process.pid), '-o', 'pid=,args='], { encoding: 'utf8' }).stdout;
  return listed.split('\n').filter((line) => line.includes(path.basename(FAKE))).map((line) => Number.parseInt(line, 10));
}

afterEach(async () => {
  pool?.releaseAll();
  // released, each stand-in exits once it sees its channel closed; until then it may still
  // write to its ledger, so the folder goes only when none is left
  await until(() => standInsAlive().length === 0, 60_000, 'the released stand-ins to exit');
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  delete process.env.FAKE_DIR;
  delete process.env.FAKE_BOOT_MS;
  delete process.env.FAKE_EXIT_AT_START;
});

function makePool(env: Record<string, string>, execPath?: string): { replies: SupervisorReply[]; ledger: () => string[][] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-async-pool-'));
  dirs.push(dir);
  Object.assign(process.env, { FAKE_DIR: dir, ...env });
  const replies: SupervisorReply[] = [];
  const logFd = fs.openSync(path.join(dir, 'log'), 'a');
  pool = new SupervisorPool(spoolPaths(path.join(dir, 'home')), logFd, {
    onReply: (_jobId, reply) => replies.push(reply),
    onLost: (jobId) => replies.push({ type: 'claim_failed', jobId, reason: 'lost' }),
    log: () => undefined,
  }, { entry: FAKE, execPath });
  const ledger = (): string[][] => {
    const file = path.join(dir, 'ledger');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').map((line) => line.split(' ')) : [];
  };
  return { replies, ledger };
}

const run = (jobId: string) => ({ type: 'run' as const, jobId, attempt: 1, epoch: 1, config });

describe('the supervisor pool', () => {
  it('gives a job to the first supervisor that is free, not to one still starting up', async () => {
    const { replies, ledger } = makePool({ FAKE_BOOT_MS: '4000' });
    pool!.dispatch(run('first-400'));
    await until(() => ledger().some(([event]) => event === 'run'), 20_000, 'the first job to run');
    // every supervisor is busy: one more starts (slowly), but the busy one is free sooner
    pool!.dispatch(run('second-50'));
    await until(() => replies.some((r) => r.type === 'finished' && r.jobId === 'second-50'), 20_000, 'the second job to finish');
    const rows = ledger();
    const pidOf = (jobId: string): string | undefined => rows.find(([event, id]) => event === 'run' && id === jobId)?.[2];
    expect(pidOf('second-50')).toBe(pidOf('first-400'));
    expect(rows.filter(([event]) => event === 'ready'), 'the second job waited for the slow start-up').toHaveLength(1);
  });

  it('hands queued jobs out oldest first', async () => {
    const { replies, ledger } = makePool({ FAKE_BOOT_MS: '4000' });
    pool!.dispatch(run('a-300'));
    await until(() => ledger().some(([event]) => event === 'run'), 20_000, 'the first job to run');
    for (const jobId of ['b-10', 'c-10', 'd-10']) pool!.dispatch(run(jobId));
    await until(() => replies.filter((r) => r.type === 'finished').length === 4, 30_000, 'all four jobs to finish');
    expect(ledger().filter(([event]) => event === 'run').map(([, id]) => id)).toEqual(['a-300', 'b-10', 'c-10', 'd-10']);
  });

  it('gives a job back to the runner when the supervisor started for it exits before it is ready', async () => {
    const { replies } = makePool({ FAKE_EXIT_AT_START: '1' });
    pool!.dispatch(run('doomed-10'));
    const back = await until(() => replies.find((r) => r.type === 'claim_failed'), 20_000, 'the job to be given back');
    expect(back).toMatchObject({ jobId: 'doomed-10', reason: expect.stringMatching(/^no supervisor could start: it exited while starting up/) });
  });

  it('gives a job back to the runner when no supervisor process can be started at all (Node moved away)', async () => {
    const { replies } = makePool({}, '/nonexistent/node');
    pool!.dispatch(run('doomed-10'));
    const back = await until(() => replies.find((r) => r.type === 'claim_failed'), 20_000, 'the job to be given back');
    expect(back).toMatchObject({ jobId: 'doomed-10', reason: expect.stringMatching(/^no supervisor could start: .*ENOENT/) });
  });
});
