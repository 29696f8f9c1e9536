import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FleetQueue, LeaseLost, QueueError, appendOutput, awaitAnyEnded, claimJobs, getJob, heartbeat, listRunners, pendingReasons,
  readJobFile, readOutput, reapExpired, registerRunner, requestCancel, requestDone, submitJob, transitionJob, waitForOutput, writeJobFile,
  type LeaseToken,
} from '../lib/fleet/index.js';
import { QUEUE_SCHEMA_VERSION } from '../lib/fleet/schema.js';
import { newSubmission, outcome, supervisorOf } from './helpers/fleet-fixtures.mjs';
import { need, useTestCluster } from './helpers/pg-cluster.js';
import { startRelay } from './helpers/pg-relay.js';

const pg = await useTestCluster();

const queues: FleetQueue[] = [];
const warnings: string[] = [];
process.on('warning', (warning) => warnings.push(warning.message));

async function freshQueue(prefix = 'q'): Promise<FleetQueue> {
  const cluster = need(pg);
  const database = await cluster.createDatabase(prefix);
  const queue = await FleetQueue.open(cluster.url(database), { role: 'test' });
  queues.push(queue);
  return queue;
}

async function runner(queue: FleetQueue, host: string, options: { agents?: string[]; labels?: string[]; capacity?: number; leaseMs?: number } = {}): Promise<LeaseToken> {
  const registered = await registerRunner(queue.db, {
    host, pid: process.pid, agents: options.agents ?? ['exec'], labels: options.labels ?? [], capacity: options.capacity ?? 4,
    leaseMs: options.leaseMs ?? 30_000, version: 'test',
  });
  return registered.token;
}

/** Claims one job and records its start, as a runner's supervisor does. */
async function claimAndStart(queue: FleetQueue, token: LeaseToken): Promise<string> {
  const [claimed] = await claimJobs(queue.db, token, 1);
  if (!claimed) throw new Error('nothing claimed');
  await transitionJob(queue.db, claimed.state.id, {
    epoch: token.epoch, current: claimed,
    change: { name: 'start', attempt: claimed.claimAttempt, epoch: token.epoch, supervisor: supervisorOf(token.host) },
  });
  return claimed.state.id;
}

/** A fresh queue with one job running on host-a (and `waiting` more pending behind it). */
async function oneRunning(waiting = 0): Promise<{ queue: FleetQueue; token: LeaseToken; id: string }> {
  const queue = await freshQueue();
  for (let i = 0; i <= waiting; i += 1) await submitJob(queue.db, newSubmission());
  const token = await runner(queue, 'host-a');
  return { queue, token, id: await claimAndStart(queue, token) };
}

/** Records the end of a job held by `epoch`. */
function finish(queue: FleetQueue, id: string, epoch: number, status: 'done' | 'cancelled' = 'done'): ReturnType<typeof transitionJob> {
  return transitionJob(queue.db, id, { epoch, change: { name: 'finish', outcome: outcome(status) } });
}

/**
 * Shortens a runner's lease to the minimum and waits until the database clock says it has
 * expired: set-up runs under long leases, so a slow machine never expires one early.
 */
async function expireSoon(queue: FleetQueue, token: LeaseToken): Promise<void> {
  await heartbeat(queue.db, token, { leaseMs: 200 });
  await untilExpired(queue, token.host);
}

/** Waits until the database clock says the lease has expired (no wall-clock assumption here). */
async function untilExpired(queue: FleetQueue, host: string): Promise<void> {
  for (;;) {
    const view = (await listRunners(queue.db)).find((r) => r.host === host);
    if (view && view.leaseRemainingMs < 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Whether `promise` settles within `ms`: a hang detector (a close that never returns), not a timing. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = await Promise.race([promise.then(() => true, () => true), late]);
  clearTimeout(timer);
  return settled;
}

beforeAll(() => {
  if (pg.cluster) process.env.PGPASSFILE = pg.cluster.pgpassFile; // the password comes from a pgpass file
});

afterAll(async () => {
  await Promise.all(queues.map((queue) => queue.close()));
});

describe.skipIf(!pg.cluster)(`fleet queue on a real PostgreSQL ${pg.skip ?? ''}`, () => {
  it('initialises the schema once and refuses a database of a newer schema', async () => {
    const cluster = need(pg);
    const database = await cluster.createDatabase('schema');
    const first = await FleetQueue.open(cluster.url(database));
    expect(first.schema).toEqual({ version: QUEUE_SCHEMA_VERSION, applied: [1, 2] });
    await first.close();
    const second = await FleetQueue.open(cluster.url(database));
    expect(second.schema).toEqual({ version: QUEUE_SCHEMA_VERSION, applied: [] });
    await second.db.query('INSERT INTO agent_async.schema_version (version, description, applied_by) VALUES (99, $1, $2)', ['from the future', 'test']);
    await second.close();
    const refused = await FleetQueue.open(cluster.url(database, { password: true })).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(QueueError);
    expect((refused as QueueError).queueCode).toBe('queue_schema_newer');
    expect((refused as QueueError).field).toBe('queue_url');
    expect((refused as Error).message).toMatch(/schema is version 99, newer than this agent-async knows \(2\); upgrade agent-async/);
    expect((refused as Error).message).not.toContain(cluster.password);
  });

  it('submits, claims in FIFO order, and keeps the state JSON and the columns together', async () => {
    const queue = await freshQueue();
    const a = await submitJob(queue.db, newSubmission({ files: { 'prompt.txt': 'do the thing' } }));
    const b = await submitJob(queue.db, newSubmission());
    expect(a.state.status).toBe('pending');
    expect(await readJobFile(queue.db, a.state.id, 'prompt.txt')).toEqual(Buffer.from('do the thing'));
    const token = await runner(queue, 'host-a');
    const claimed = await claimJobs(queue.db, token, 5);
    expect(claimed.map((job) => job.state.id)).toEqual([a.state.id, b.state.id]);
    expect(claimed[0]!.leaseEpoch).toBe(token.epoch);
    expect(claimed[0]!.claimAttempt).toBe(1);
    expect(claimed[0]!.state.status).toBe('pending'); // claimed, not started: the supervisor starts it
    const started = await transitionJob(queue.db, a.state.id, {
      epoch: token.epoch, change: { name: 'start', attempt: 1, epoch: token.epoch, supervisor: supervisorOf('host-a') },
    });
    expect(started.state).toMatchObject({ status: 'running', attempt: 1, runner_epoch: token.epoch, seq: 1 });
    const ended = await transitionJob(queue.db, a.state.id, { epoch: token.epoch, change: { name: 'finish', outcome: outcome('done') } });
    expect(ended.state).toMatchObject({ status: 'done', exit_code: 0, seq: 2 });
    const rows = await queue.db.query('SELECT status, seq, finished_at FROM agent_async.jobs WHERE id = $1', [a.state.id]);
    expect(rows.rows[0]).toMatchObject({ status: 'done', seq: 2 });
    expect(rows.rows[0]!.finished_at).toBeInstanceOf(Date);
    // the state machine still rules: a finished job cannot start again
    await expect(transitionJob(queue.db, a.state.id, {
      epoch: token.epoch, change: { name: 'start', attempt: 2, epoch: token.epoch, supervisor: supervisorOf() },
    })).rejects.toThrow(/not allowed from status 'done'/);
  });

  it('claims only what a runner can take: agent, pinned host, labels, capacity', async () => {
    const queue = await freshQueue();
    const codex = await submitJob(queue.db, newSubmission({ agent: 'codex' }));
    const pinned = await submitJob(queue.db, newSubmission({ host: 'host-b' }));
    const gpu = await submitJob(queue.db, newSubmission({ labels: ['gpu'] }));
    const plain = await Promise.all([1, 2, 3].map(() => submitJob(queue.db, newSubmission())));
    const a = await runner(queue, 'host-a', { agents: ['exec'], capacity: 2 });
    const first = await claimJobs(queue.db, a, 10);
    expect(first.map((job) => job.state.id)).toEqual(plain.slice(0, 2).map((job) => job.state.id));
    expect(await claimJobs(queue.db, a, 10)).toEqual([]); // full
    const b = await runner(queue, 'host-b', { agents: ['exec', 'codex'], labels: ['gpu'], capacity: 10 });
    const second = await claimJobs(queue.db, b, 10);
    expect(second.map((job) => job.state.id).sort()).toEqual([codex, pinned, gpu, plain[2]!].map((job) => job.state.id).sort());
  });

  it('a runner whose code is older than what a job needs never claims it, and the job says why it waits', async () => {
    const queue = await freshQueue();
    const remote = await submitJob(queue.db, newSubmission({ features: ['isolated-remote'] }));
    const plain = await submitJob(queue.db, newSubmission());
    expect(remote.needs.features).toEqual(['isolated-remote']);
    // a runner of queue schema 1 registers without features; the claim function is the database's
    const old = await runner(queue, 'host-old');
    await queue.db.query(`UPDATE agent_async.runners SET info = '{"spool": "/x"}', version = '0.0.9' WHERE host = 'host-old'`);
    expect((await claimJobs(queue.db, old, 10)).map((job) => job.state.id)).toEqual([plain.state.id]);
    const reasons = await pendingReasons(queue.db, [remote]);
    expect(reasons.get(remote.state.id)).toEqual({
      code: 'runner_outdated',
      message: 'the job needs isolated-remote (an isolated job whose snapshot is on a git remote), which the agent-async of host-old 0.0.9 cannot run; upgrade agent-async there',
    });
    expect((await listRunners(queue.db)).find((r) => r.host === 'host-old')!.features).toEqual([]);
    const current = await runner(queue, 'host-new');
    expect((await listRunners(queue.db)).find((r) => r.host === 'host-new')!.features).toEqual(['isolated-remote']);
    expect((await claimJobs(queue.db, current, 10)).map((job) => job.state.id)).toEqual([remote.state.id]);
  });

  it('the migration to version 2 gives pending remote jobs their feature, takes back a claim a runner of version 1 has not started, and the database derives the feature of every later insert', async () => {
    const cluster = need(pg);
    const database = await cluster.createDatabase('v1');
    const queue = await FleetQueue.open(cluster.url(database));
    const old = await runner(queue, 'host-old');
    const claimedByOld = await submitJob(queue.db, newSubmission());
    const waiting = await submitJob(queue.db, newSubmission());
    const plain = await submitJob(queue.db, newSubmission());
    // back to version 1: no features anywhere, a runner that names none, two jobs whose snapshot
    // is on a remote, one of them claimed by that runner (as its claim function did), not started
    await queue.db.query('DROP TRIGGER jobs_features ON agent_async.jobs');
    await queue.db.query('DROP FUNCTION agent_async.jobs_features(), agent_async.job_features(jsonb, text[]), agent_async.runner_features(jsonb)');
    await queue.db.query('ALTER TABLE agent_async.jobs DROP COLUMN features');
    await queue.db.query('DELETE FROM agent_async.schema_version WHERE version = 2');
    await queue.db.query(`UPDATE agent_async.runners SET info = '{}' WHERE host = 'host-old'`);
    await queue.db.query(`UPDATE agent_async.jobs SET state = jsonb_set(state, '{request,worktree}', '{"remote_url": "file:///r.git"}') WHERE id = ANY($1)`, [[claimedByOld.state.id, waiting.state.id]]);
    await queue.db.query(`UPDATE agent_async.jobs SET lease_epoch = $1, runner_host = 'host-old', claim_attempt = 1 WHERE id = $2`, [old.epoch, claimedByOld.state.id]);
    await queue.close();
    const again = await FleetQueue.open(cluster.url(database));
    queues.push(again);
    expect(again.schema).toEqual({ version: 2, applied: [2] });
    const rows = await again.db.query<{ id: string; features: string[]; lease_epoch: string | null }>('SELECT id, features, lease_epoch FROM agent_async.jobs');
    const byId = Object.fromEntries(rows.rows.map((row) => [row.id, row]));
    expect(byId[claimedByOld.state.id]).toEqual({ id: claimedByOld.state.id, features: ['isolated-remote'], lease_epoch: null });
    expect(byId[waiting.state.id]!.features).toEqual(['isolated-remote']);
    expect(byId[plain.state.id]!.features).toEqual([]);
    const released = await again.db.query('SELECT 1 FROM agent_async.events WHERE job_id = $1 AND kind = $2', [claimedByOld.state.id, 'released']);
    expect(released.rowCount).toBe(1);
    // the runner of version 1 takes the plain job only
    expect((await claimJobs(again.db, old, 10)).map((job) => job.state.id)).toEqual([plain.state.id]);
    // a process that checked the schema before the upgrade inserts without features: the database adds them
    await again.db.query(
      `INSERT INTO agent_async.jobs (id, status, seq, state, agent, labels, submitted_host)
       SELECT $2, status, seq, jsonb_set(state, '{id}', to_jsonb($2::text)), agent, labels, submitted_host FROM agent_async.jobs WHERE id = $1`,
      [waiting.state.id, `${waiting.state.id.slice(0, -1)}${waiting.state.id.endsWith('0') ? '1' : '0'}`],
    );
    const inserted = await again.db.query<{ features: string[] }>('SELECT features FROM agent_async.jobs WHERE id <> ALL($1)', [[claimedByOld.state.id, waiting.state.id, plain.state.id]]);
    expect(inserted.rows).toEqual([{ features: ['isolated-remote'] }]);
  });

  it('says why a job waits: unknown host, host down, agent nowhere, labels missing, busy', async () => {
    const queue = await freshQueue();
    const reasonsFor = async (...subs: ReturnType<typeof newSubmission>[]): Promise<string[]> => {
      const jobs = await Promise.all(subs.map((sub) => submitJob(queue.db, sub)));
      const reasons = await pendingReasons(queue.db, jobs);
      return jobs.map((job) => `${reasons.get(job.state.id)?.code}: ${reasons.get(job.state.id)?.message}`);
    };
    expect((await reasonsFor(newSubmission()))[0]).toMatch(/^no_runner: no runner is running/);
    await runner(queue, 'host-a', { agents: ['exec', 'claude'], labels: ['big-ram'], capacity: 0 });
    const [unknown, agent, labels, busy] = await reasonsFor(
      newSubmission({ host: 'nowhere' }), newSubmission({ agent: 'gemini' }), newSubmission({ labels: ['gpu'] }), newSubmission(),
    );
    expect(unknown).toMatch(/^unknown_host: no runner has ever registered as host "nowhere" \(known hosts: host-a\)/);
    expect(agent).toMatch(/^agent_missing: no running host has the gemini CLI/);
    expect(labels).toMatch(/^labels_missing: no running host with exec has the labels gpu/);
    expect(busy).toMatch(/^busy: waiting for a free slot \(host-a 0\/0\)/);
    await expireSoon(queue, await runner(queue, 'host-down'));
    expect((await reasonsFor(newSubmission({ host: 'host-down' })))[0]).toMatch(/^host_down: the runner of host "host-down" is not running/);
  });

  it('fences a runner whose lease expired and was reaped: no claim, write, output, file or heartbeat of it is accepted', async () => {
    const { queue, token: a, id: running } = await oneRunning(1);
    const [claimedOnly] = await claimJobs(queue.db, a, 1);
    await appendOutput(queue.db, running, a.epoch, 0, Buffer.from('before the partition\n'));
    // A stops renewing (killed, partitioned, suspended); the database clock expires its lease
    await expireSoon(queue, a);
    // never by its own host (its renewal may be stuck on a dead connection while another works)
    expect((await reapExpired(queue.db, { exceptHost: 'host-a' })).runners).toEqual([]);
    const report = await reapExpired(queue.db);
    expect(report.runners).toEqual([{ host: 'host-a', epoch: a.epoch }]);
    expect(report.lost).toEqual([running]);
    expect(report.released).toEqual([claimedOnly!.state.id]);

    const lost = (await getJob(queue.db, running))!;
    expect(lost.state.status).toBe('error');
    expect(lost.state.error).toMatchObject({ code: 'runner_lost' });
    expect(lost.state.error?.message).toMatch(/host-a .* stopped renewing its lease/);
    expect(lost.leaseEpoch).toBeNull();
    const released = (await getJob(queue.db, claimedOnly!.state.id))!;
    expect(released).toMatchObject({ leaseEpoch: null, runnerHost: null });
    expect(released.state.status).toBe('pending');

    // A wakes up and tries everything with its old epoch
    await expect(finish(queue, running, a.epoch)).rejects.toBeInstanceOf(LeaseLost);
    await expect(appendOutput(queue.db, running, a.epoch, 21, Buffer.from('after'))).rejects.toBeInstanceOf(LeaseLost);
    await expect(writeJobFile(queue.db, running, a.epoch, 'result.md', 'late')).rejects.toBeInstanceOf(LeaseLost);
    await expect(heartbeat(queue.db, a)).rejects.toBeInstanceOf(LeaseLost);
    await expect(claimJobs(queue.db, a, 1)).rejects.toBeInstanceOf(LeaseLost);
    await expect(transitionJob(queue.db, released.state.id, {
      epoch: a.epoch, change: { name: 'start', attempt: 1, epoch: a.epoch, supervisor: supervisorOf() },
    })).rejects.toBeInstanceOf(LeaseLost);
    expect((await readOutput(queue.db, running, 0, 1000)).data.toString()).toBe('before the partition\n');
    expect((await getJob(queue.db, running))!.state.status).toBe('error');

    // another runner takes the released job: its second claim
    const b = await runner(queue, 'host-b');
    const [again] = await claimJobs(queue.db, b, 1);
    expect(again).toMatchObject({ leaseEpoch: b.epoch, claimAttempt: 2 });
  });

  it('renews a lease that expired but that nobody reaped: coming back in time keeps the jobs', async () => {
    const { queue, token: a, id } = await oneRunning(1);
    await expireSoon(queue, a);
    expect(await claimJobs(queue.db, a, 1)).toEqual([]); // not lost, but it must renew before it claims
    await heartbeat(queue.db, a, { leaseMs: 60_000 });
    expect(await claimJobs(queue.db, a, 1)).toHaveLength(1);
    expect((await reapExpired(queue.db)).runners).toEqual([]);
    const ended = await finish(queue, id, a.epoch);
    expect(ended.state.status).toBe('done');
  });

  it('a new runner on the same host takes over a dead one and adopts its jobs; the old epoch is fenced', async () => {
    const queue = await freshQueue();
    await submitJob(queue.db, newSubmission());
    const old = await runner(queue, 'host-a');
    const id = await claimAndStart(queue, old);
    const refused = await registerRunner(queue.db, { host: 'host-a', pid: 2, agents: ['exec'], capacity: 1, leaseMs: 30_000, version: 'test' }).catch((e: unknown) => e);
    expect((refused as QueueError).queueCode).toBe('queue_host_taken');
    const next = await registerRunner(queue.db, { host: 'host-a', pid: 2, agents: ['exec'], capacity: 1, leaseMs: 30_000, version: 'test', takeOverEpoch: old.epoch });
    expect(next.previousEpoch).toBe(old.epoch);
    expect(next.adopted.map((job) => job.state.id)).toEqual([id]);
    expect(next.adopted[0]!.leaseEpoch).toBe(next.token.epoch);
    await expect(finish(queue, id, old.epoch)).rejects.toBeInstanceOf(LeaseLost);
    await expect(heartbeat(queue.db, old)).rejects.toBeInstanceOf(LeaseLost);
    const ended = await finish(queue, id, next.token.epoch);
    expect(ended.state.status).toBe('done');
  });

  it('cancels an unclaimed job at once and asks the holder of a claimed one; done requests reach the holder', async () => {
    const queue = await freshQueue();
    const waiting = await submitJob(queue.db, newSubmission());
    const cancelled = await requestCancel(queue.db, waiting.state.id, 'test');
    expect(cancelled.result).toBe('cancelled');
    expect(cancelled.job.state.status).toBe('cancelled');
    expect((await requestCancel(queue.db, waiting.state.id, 'test')).result).toBe('already_finished');

    await submitJob(queue.db, newSubmission());
    const token = await runner(queue, 'host-a');
    const id = await claimAndStart(queue, token);
    expect((await requestDone(queue.db, id, 'all good'))?.doneRequest).toMatchObject({ summary: 'all good' });
    const asked = await requestCancel(queue.db, id, 'pid 42 on host-z');
    expect(asked.result).toBe('requested');
    const seen = (await getJob(queue.db, id))!;
    expect(seen.cancelRequest).toMatchObject({ by: 'pid 42 on host-z' });
    expect(seen.state.status).toBe('running');
    const ended = await finish(queue, id, token.epoch, 'cancelled');
    expect(ended.state.status).toBe('cancelled');
  });

  it('pages output: appends in pieces, reads any range and the tail, stores nothing twice, refuses a gap', async () => {
    const { queue, token, id } = await oneRunning();
    const text = Buffer.from('héllo wörld\n'.repeat(20_000)); // ~260 KB: several pages, multi-byte characters cut
    const binary = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256)); // NULs included
    let end = 0;
    for (let at = 0; at < text.length; at += 50_000) end = await appendOutput(queue.db, id, token.epoch, end, text.subarray(at, at + 50_000));
    end = await appendOutput(queue.db, id, token.epoch, end, binary);
    const all = Buffer.concat([text, binary]);
    expect(end).toBe(all.length);
    // a replay of bytes already stored (an unseen commit) changes nothing; a gap is refused
    expect(await appendOutput(queue.db, id, token.epoch, 100, all.subarray(100, 5000))).toBe(5000);
    expect(await appendOutput(queue.db, id, token.epoch, all.length - 10, Buffer.concat([all.subarray(all.length - 10), Buffer.from('more')]))).toBe(all.length + 4);
    const stored = Buffer.concat([all, Buffer.from('more')]);
    await expect(appendOutput(queue.db, id, token.epoch, stored.length + 1, Buffer.from('x'))).rejects.toThrow(/output gap/);

    let read = Buffer.alloc(0);
    for (let offset = 0; ;) {
      const page = await readOutput(queue.db, id, offset, 40_000);
      read = Buffer.concat([read, page.data]);
      offset = page.nextOffset;
      if (page.eof) break;
    }
    expect(read.equals(stored)).toBe(true);
    const middle = await readOutput(queue.db, id, 65_530, 20);
    expect(middle.data.equals(stored.subarray(65_530, 65_550))).toBe(true);
    const tail = await readOutput(queue.db, id, -1000, 64_000);
    expect(tail).toMatchObject({ offset: stored.length - 1000, nextOffset: stored.length, size: stored.length, eof: true });
    expect(tail.data.equals(stored.subarray(-1000))).toBe(true);
    const pages = await queue.db.query<{ n: number; biggest: number }>('SELECT count(*)::int AS n, max(byte_length) AS biggest FROM agent_async.output_pages WHERE job_id = $1', [id]);
    expect(pages.rows[0]!.biggest).toBeLessThanOrEqual(64 * 1024);
    expect(await readOutput(queue.db, 'nojob0000000000000000000', 0, 10)).toMatchObject({ size: 0, eof: true, offset: 0 });
  });

  it('wakes a waiter when a job ends, and a follower when output arrives', async () => {
    const { queue, token, id } = await oneRunning();
    const waiter = await FleetQueue.open(need(pg).url(queue.db.target.database));
    queues.push(waiter);
    const outputWait = waitForOutput(waiter, id, 0, { timeoutMs: 60_000, pollMs: 600_000 });
    const ended = awaitAnyEnded(waiter, [id], { timeoutMs: 60_000, pollMs: 600_000 });
    await waiter.listener().armed(10_000);
    await appendOutput(queue.db, id, token.epoch, 0, Buffer.from('progress\n'));
    expect(await outputWait).toMatchObject({ size: 9, ended: false });
    await finish(queue, id, token.epoch);
    const result = await ended;
    expect(result.settled.map((snap) => snap.id)).toEqual([id]);
    expect(['notify', 'initial']).toContain(result.wokeBy);
    const timedOut = await awaitAnyEnded(waiter, ['z'.repeat(23)], { timeoutMs: 0, pollMs: 1000 });
    expect(timedOut.settled[0]).toMatchObject({ kind: 'missing' });
  });

  it('closes a listener whose LISTEN is still in flight: the close ends that connection too, and returns', async () => {
    const cluster = need(pg);
    const database = await cluster.createDatabase('listen');
    const relay = await startRelay(cluster.port, 'hold-listen');
    try {
      const url = cluster.url(database, { password: true }).replace(`:${cluster.port}/`, `:${relay.port}/`);
      const queue = await FleetQueue.open(url, { role: 'test' });
      void queue.listener().armed(60_000);
      await relay.listenHeld; // connected, its first LISTEN sent and not yet answered
      const closing = queue.close();
      relay.release(); // the server answers it now: a listener that went on would wait for ever
      expect(await settlesWithin(closing, 20_000)).toBe(true);
      expect(queue.listener().listening).toBe(false);
    } finally {
      await relay.close();
    }
  });

  it('stores the files a holder writes, fenced', async () => {
    const { queue, token, id } = await oneRunning();
    await writeJobFile(queue.db, id, token.epoch, 'changes.patch', 'diff --git a b\n');
    await writeJobFile(queue.db, id, token.epoch, 'changes.patch', 'diff --git a b (2)\n');
    expect((await readJobFile(queue.db, id, 'changes.patch'))?.toString()).toBe('diff --git a b (2)\n');
    await expect(writeJobFile(queue.db, id, token.epoch, '../x', 'no')).rejects.toThrow(/not allowed/);
  });
});

describe.skipIf(!pg.cluster)(`fleet connection errors name queue_url and never the password ${pg.skip ?? ''}`, () => {
  const expectQueueError = async (url: string, code: string, pattern: RegExp): Promise<QueueError> => {
    const error = await FleetQueue.open(url, { connectTimeoutMs: 3000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueError);
    const queueError = error as QueueError;
    expect(queueError.queueCode).toBe(code);
    expect(queueError.field).toBe('queue_url');
    expect(queueError.message).toMatch(pattern);
    expect(queueError.message).not.toContain(need(pg).password);
    expect(queueError.message).not.toContain('s3cr%40t');
    expect(queueError.message).not.toContain('s3cr@t');
    expect(JSON.stringify(queueError)).not.toContain(need(pg).password);
    return queueError;
  };

  it('refuses what is not a PostgreSQL URL', async () => {
    await expectQueueError('mysql://u:s3cr%40t@db/x', 'queue_url_invalid', /^queue_url: "mysql:\/\/u:\*\*\*@db\/x" is not a PostgreSQL URL; expected postgres:\/\//);
    await expectQueueError('postgres://u:s3cr%40t@db', 'queue_url_invalid', /names no database/);
    await expectQueueError('', 'queue_url_invalid', /queue_url: is empty/);
    await expectQueueError('postgres://u@db:99999x/x', 'queue_url_invalid', /./);
  });

  it('says when the server cannot be reached', async () => {
    const cluster = need(pg);
    const closed = net.createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expectQueueError(`postgres://aa_test:${cluster.password}@127.0.0.1:${port}/x`, 'queue_unreachable', /^queue_url \(postgres:\/\/aa_test@127\.0\.0\.1:\d+\/x\): cannot reach PostgreSQL: connection refused \(ECONNREFUSED\)/);
  });

  it('says when the password is wrong, naming where it came from', async () => {
    const cluster = need(pg);
    await expectQueueError(cluster.url('postgres').replace('aa_test@', 'aa_test:s3cr%40t@'), 'queue_auth_failed', /refused the password of user "aa_test" \(password from the URL\)/);
    const wrongFile = path.join(cluster.base, 'wrong-pgpass');
    fs.writeFileSync(wrongFile, `127.0.0.1:${cluster.port}:*:aa_test:s3cr@t\n`, { mode: 0o600 });
    const saved = process.env.PGPASSFILE;
    process.env.PGPASSFILE = wrongFile;
    try {
      await expectQueueError(cluster.url('postgres'), 'queue_auth_failed', /password from PGPASSFILE/);
      fs.writeFileSync(wrongFile, '');
      await expectQueueError(cluster.url('postgres'), 'queue_no_password', /asks for a password for user "aa_test" and none was found; put it in ~\/\.pgpass/);
    } finally {
      process.env.PGPASSFILE = saved;
    }
  });

  it("looks the password up itself: node-postgres's deprecated pgpass lookup never runs", () => {
    expect(warnings.filter((message) => /pgpass/i.test(message))).toEqual([]);
  });

  it('says when the database does not exist', async () => {
    await expectQueueError(need(pg).url('no_such_db', { password: true }), 'queue_no_database', /database "no_such_db" does not exist; create it/);
  });

  it('passes TLS options through (sslmode, sslrootcert)', async () => {
    const cluster = need(pg);
    if (!cluster.caFile) return; // no openssl here: the cluster speaks no TLS
    const database = await cluster.createDatabase('tls');
    const verified = await FleetQueue.open(cluster.url(database, { query: `?sslmode=verify-full&sslrootcert=${encodeURIComponent(cluster.caFile)}` }));
    const ssl = await verified.db.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(ssl.rows[0]!.ssl).toBe(true);
    await verified.close();
    await expectQueueError(cluster.url(database, { query: '?sslmode=verify-full', password: true }), 'queue_tls', /TLS failed: .*self.signed/i);
    await expectQueueError(cluster.url(database, { query: '?sslrootcert=/nonexistent/ca.pem' }), 'queue_tls', /cannot read \/nonexistent\/ca\.pem/);
  });
});
