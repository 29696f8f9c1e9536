import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupSpools, cli, gateJob, jobState, makeSpool, pidAlive, startJob, until } from './helpers/spool.js';

afterAll(cleanupSpools);

function procField(pid: number, index: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[index]);
}
const ppidOf = (pid: number): number => procField(pid, 1);
const pgidOf = (pid: number): number => procField(pid, 2);

describe('cancel', () => {
  it('ends the worker, a grandchild, an orphaned grandchild and a setsid grandchild, and keeps the partial output', async () => {
    const spool = makeSpool({ kill_grace_seconds: 1 });
    const pids = path.join(spool.work, 'pids');
    const script = [
      `sh -c 'sleep 300 & echo grandchild $! >> ${pids}; wait' &`,
      `sh -c '(sleep 300 & echo orphan $! >> ${pids})' &`,
      `sh -c 'setsid sleep 300 & echo setsid $! >> ${pids}; wait' &`,
      // ignores TERM, so the KILL after the grace is needed too
      `sh -c 'trap "" TERM; echo stubborn $$ >> ${pids}; while :; do sleep 1; done' &`,
      'echo "partial output before the cancel"',
      'wait',
    ].join('\n');
    const id = await startJob(spool, ['sh', '-c', script]);
    const recorded = await until(() => {
      const lines = fs.existsSync(pids) ? fs.readFileSync(pids, 'utf8').trim().split('\n') : [];
      return lines.length === 4 ? Object.fromEntries(lines.map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)])) : undefined;
    }, 20_000, 'the worker to start its descendants');
    const worker = await until(() => jobState(spool, id).worker, 5000, 'the worker to be recorded');
    expect(worker.pgid).toBe(worker.pid);

    // The set-up is what the test claims it is.
    expect(pgidOf(recorded.grandchild)).toBe(worker.pgid);
    expect(ppidOf(recorded.grandchild)).not.toBe(worker.pid);
    await until(() => ppidOf(recorded.orphan) !== worker.pid && pgidOf(recorded.orphan) === worker.pgid, 5000, 'the orphan to be re-parented');
    // the pid is echoed when the shell forks, a moment before the child calls setsid
    await until(() => pgidOf(recorded.setsid) === recorded.setsid, 5000, 'the setsid grandchild to lead its own group');
    expect(pgidOf(recorded.setsid)).not.toBe(worker.pgid);
    for (const pid of [worker.pid, ...Object.values(recorded)]) expect(pidAlive(pid)).toBe(true);

    const cancel = cli(spool, ['cancel', id, '--json']);
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout)).toMatchObject({ result: 'cancelled', job: { status: 'cancelled' } });
    // "cancelled" is written only once the processes are gone: check at once, no waiting.
    for (const [name, pid] of [['worker', worker.pid], ...Object.entries(recorded)] as Array<[string, number]>) {
      expect(pidAlive(pid), `${name} ${pid} still alive`).toBe(false);
    }
    const state = jobState(spool, id);
    expect(state).toMatchObject({ status: 'cancelled', error: null });
    expect(fs.readFileSync(path.join(spool.home, 'jobs', id, 'exit.json'), 'utf8')).toMatch(/"reason": "cancelled"/);
    expect(cli(spool, ['logs', id]).stdout).toContain('partial output before the cancel');
  });

  it('of a pending job means it never starts', async () => {
    const spool = makeSpool({ concurrency: 1 });
    const marker = path.join(spool.work, 'ran');
    const blocker = await gateJob(spool);
    const queued = await startJob(spool, ['touch', marker]);
    const cancel = cli(spool, ['cancel', queued, '--json']);
    expect(JSON.parse(cancel.stdout)).toMatchObject({ result: 'cancelled', job: { status: 'cancelled', started_at: null } });
    blocker.release();
    expect(cli(spool, ['wait', blocker.id]).code).toBe(0);
    const after = await startJob(spool, ['true']);
    expect(cli(spool, ['wait', after]).code).toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.readdirSync(path.join(spool.home, 'jobs', queued))).toContain('claim.1');
  });

  it('of a finished job changes nothing and says so', async () => {
    const spool = makeSpool();
    const id = await startJob(spool, ['true']);
    expect(cli(spool, ['wait', id]).code).toBe(0);
    const before = fs.readFileSync(path.join(spool.home, 'jobs', id, 'state.json'), 'utf8');
    const cancel = cli(spool, ['cancel', id]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(/had already ended: done/);
    expect(fs.readFileSync(path.join(spool.home, 'jobs', id, 'state.json'), 'utf8')).toBe(before);
  });
});
