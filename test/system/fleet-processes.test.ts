import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  FleetQueue, Outbox, appendOutput, claimJobs, getJob, heartbeat, listJobs, readOutput, reapExpired, registerRunner, submitJob, transitionJob,
  type LeaseToken,
} from '../../lib/fleet/index.js';
import { QUEUE_SCHEMA_VERSION } from '../../lib/fleet/schema.js';
import { newSubmission, outcome, supervisorOf } from '../helpers/fleet-fixtures.mjs';
import { need, useTestCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { ROOT } from '../helpers/spool.js';

/**
 * The fleet queue with several real processes: migrations raced by many initialisers, claims
 * raced by many runners, runners SIGKILLed and SIGSTOPped (their leases reaped, their late
 * writes fenced), waiters in other processes that must not miss an end across a killed
 * connection, a PostgreSQL restart and a crash, and ends delivered from the write-ahead
 * buffer after the server was away. Helpers run from dist/ (npm run build).
 */
const pg = await useTestCluster();
const HELPERS = path.join(ROOT, 'test', 'helpers');
const children: ChildProcess[] = [];
const queues: FleetQueue[] = [];
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-fleet-'));

beforeAll(() => {
  if (pg.cluster) process.env.PGPASSFILE = pg.cluster.pgpassFile; // the password comes from a pgpass file
});

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

afterAll(async () => {
  await Promise.all(queues.map((queue) => queue.close()));
  fs.rmSync(scratch, { recursive: true, force: true });
});

interface Helper {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first stdout line that matches. */
  line: (match: (line: string) => boolean) => Promise<string>;
  exited: Promise<number | null>;
}

function start(cluster: PgCluster, database: string, script: string, args: string[]): Helper {
  // the URL has no password and goes through the environment, never argv (ps shows argv)
  const env = { ...process.env, AGENT_ASYNC_QUEUE_URL: cluster.url(database), PGPASSFILE: cluster.pgpassFile };
  const child = spawn(process.execPath, [path.join(HELPERS, script), ...args], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  const waiting: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiting.filter((w) => w.match(line))) {
      waiting.splice(waiting.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    line: (match) => new Promise((resolve, reject) => {
      const seen = lines.find(match);
      if (seen) return resolve(seen);
      waiting.push({ match, resolve });
      void exited.then(() => reject(new Error(`${script} exited before the line; it printed: ${lines.join(' | ')}`)));
    }),
  };
}

async function open(url: string): Promise<FleetQueue> {
  const queue = await FleetQueue.open(url, { role: 'test' });
  queues.push(queue);
  return queue;
}

/** The superuser through the unix socket: not subject to the test role's connection limit. */
function adminUrl(cluster: PgCluster, database: string): string {
  return `postgres://postgres@/${database}?host=${encodeURIComponent(cluster.socketDir)}&port=${cluster.port}`;
}

function ledger(file: string): string[][] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => line.split(' ')) : [];
}

async function until<T>(read: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function setup(prefix: string): Promise<{ cluster: PgCluster; database: string; queue: FleetQueue }> {
  const cluster = need(pg);
  const database = await cluster.createDatabase(prefix);
  return { cluster, database, queue: await open(cluster.url(database)) };
}

describe.skipIf(!pg.cluster)(`fleet queue across processes ${pg.skip ?? ''}`, () => {
  it('applies the migrations once when several processes initialise the same queue at once', async () => {
    const cluster = need(pg);
    const database = await cluster.createDatabase('race');
    const inits = Array.from({ length: 5 }, (_, i) => start(cluster, database, 'fleet-init.mjs', [`proc-${i}`]));
    await Promise.all(inits.map((init) => init.line((l) => l === 'ready')));
    for (const init of inits) init.child.stdin!.write('go\n');
    const reports = await Promise.all(inits.map(async (init) => JSON.parse(await init.line((l) => l.startsWith('{'))) as { ok: boolean; applied: number[]; version: number }));
    expect(reports.every((report) => report.ok && report.version === QUEUE_SCHEMA_VERSION)).toBe(true);
    expect(reports.filter((report) => report.applied.length > 0).map((report) => report.applied)).toEqual([[1, 2]]);
    const queue = await open(cluster.url(database));
    const rows = await queue.db.query('SELECT version, applied_by FROM agent_async.schema_version');
    expect(rows.rows).toHaveLength(2);
  });

  it('starts every job exactly once when four runner processes race over 200 jobs', async () => {
    const { cluster, database, queue } = await setup('claims');
    const file = path.join(scratch, 'claims.ledger');
    // jobs that take a moment: one host alone would need ~7 s for all 200, so the other three, registered already, take part
    const runners = ['h1', 'h2', 'h3', 'h4'].map((host) => start(cluster, database, 'fleet-runner.mjs', [host, file, JSON.stringify({ capacity: 3, jobMs: 100, leaseMs: 10_000, exitWhenIdle: true })]));
    await until(() => (ledger(file).filter((line) => line[0] === 'registered').length === 4 ? true : undefined));
    const ids = await Promise.all(Array.from({ length: 200 }, async () => (await submitJob(queue.db, newSubmission())).state.id));
    expect(await Promise.all(runners.map((runner) => runner.exited))).toEqual([0, 0, 0, 0]);
    const lines = ledger(file);
    const starts = lines.filter((line) => line[0] === 'start').map((line) => line[1]);
    expect(starts).toHaveLength(200);
    expect(new Set(starts).size).toBe(200);
    expect(lines.filter((line) => line[0] === 'refused')).toEqual([]);
    const hosts = new Set(lines.filter((line) => line[0] === 'start').map((line) => line[2]));
    expect(hosts.size).toBeGreaterThan(1);
    const jobs = await listJobs(queue.db, { limit: 1000 });
    expect(jobs.map((job) => job.state.status).every((status) => status === 'done')).toBe(true);
    expect(new Set(jobs.map((job) => job.state.id))).toEqual(new Set(ids));
    const events = await queue.db.query<{ kind: string; n: number }>(
      `SELECT kind, count(*)::int AS n FROM agent_async.events WHERE kind IN ('claimed', 'running') GROUP BY job_id, kind HAVING count(*) > 1`,
    );
    expect(events.rows).toEqual([]);
  });

  it('SIGKILLed and SIGSTOPped runners: their jobs end runner_lost (never re-run), their late writes are refused, the rest runs elsewhere', async () => {
    const { cluster, database, queue } = await setup('chaos');
    const file = path.join(scratch, 'chaos.ledger');
    const ids = await Promise.all(Array.from({ length: 30 }, async () => (await submitJob(queue.db, newSubmission())).state.id));
    // two hosts whose jobs never end by themselves, one that runs everything quickly
    const killed = start(cluster, database, 'fleet-runner.mjs', ['killed', file, JSON.stringify({ capacity: 2, jobMs: 600_000, leaseMs: 3000 })]);
    const stopped = start(cluster, database, 'fleet-runner.mjs', ['stopped', file, JSON.stringify({ capacity: 2, jobMs: 600_000, leaseMs: 3000 })]);
    const startsOf = (host: string): string[] => ledger(file).filter((line) => line[0] === 'start' && line[2] === host).map((line) => line[1]!);
    await until(() => (startsOf('killed').length === 2 && startsOf('stopped').length === 2 ? true : undefined));
    killed.child.kill('SIGKILL');
    stopped.child.kill('SIGSTOP');
    const healthy = start(cluster, database, 'fleet-runner.mjs', ['healthy', file, JSON.stringify({ capacity: 4, jobMs: 5, leaseMs: 3000 })]);
    // the healthy host reaps both leases once they expire by the database clock
    await until(async () => {
      const rows = await queue.db.query<{ host: string; state: string }>("SELECT host, state FROM agent_async.runners WHERE host IN ('killed', 'stopped')");
      return rows.rows.every((row) => row.state === 'lost') && rows.rows.length === 2 ? true : undefined;
    });
    stopped.child.kill('SIGCONT');
    expect(await stopped.exited).toBe(3); // it learnt that its lease was lost, stopped its jobs, and left
    await until(async () => ((await queue.db.query("SELECT 1 FROM agent_async.jobs WHERE status IN ('pending', 'running')")).rowCount === 0 ? true : undefined));
    healthy.child.kill('SIGTERM');
    await healthy.exited;

    const lines = ledger(file);
    const starts = lines.filter((line) => line[0] === 'start').map((line) => line[1]);
    expect(new Set(starts).size).toBe(starts.length); // none ran twice
    const lostJobs = [...startsOf('killed'), ...startsOf('stopped')];
    const jobs = new Map((await listJobs(queue.db, { limit: 100 })).map((job) => [job.state.id, job]));
    for (const id of ids) {
      const job = jobs.get(id)!;
      if (lostJobs.includes(id)) {
        expect(job.state.status).toBe('error');
        expect(job.state.error?.code).toBe('runner_lost');
      } else {
        expect(job.state.status).toBe('done');
        expect(job.runnerHost).toBe('healthy');
        expect((await readOutput(queue.db, id, 0, 1000)).data.toString()).toBe(`${id} ran on healthy\n`);
      }
    }
    // the stopped runner woke, tried to record its two ends with its old epoch, and was refused
    const refused = lines.filter((line) => line[0] === 'refused' && line[2] === 'stopped');
    expect(refused.map((line) => line[1]).sort()).toEqual(startsOf('stopped').sort());
    expect(refused.every((line) => line[4] === 'LeaseLost')).toBe(true);
    expect(lines.some((line) => line[0] === 'lost' && line[1] === 'stopped')).toBe(true);
    expect(lines.filter((line) => line[0] === 'end' && line[2] !== 'healthy')).toEqual([]);
  });

  /** A waiter process on a job; `cut` breaks its connection and ends the job while it cannot listen. */
  async function waiterSurvives(prefix: string, cut: (cluster: PgCluster) => Promise<void>): Promise<void> {
    const { cluster, database, queue } = await setup(prefix);
    await submitJob(queue.db, newSubmission());
    const { token } = await registerRunner(queue.db, { host: 'b', pid: process.pid, agents: ['exec'], capacity: 1, leaseMs: 120_000, version: 'test' });
    const [job] = await claimJobs(queue.db, token, 1);
    const id = job!.state.id;
    await transitionJob(queue.db, id, { epoch: token.epoch, current: job, change: { name: 'start', attempt: 1, epoch: token.epoch, supervisor: supervisorOf('b') } });
    // the safety poll is 10 minutes: only a notification or the re-read after a reconnect can wake it
    const waiter = start(cluster, database, 'fleet-waiter.mjs', [JSON.stringify([id]), '300000', '600000']);
    await waiter.line((l) => l === 'armed');
    // the waiter cannot come back before the end is written; the limit survives a crash too
    // (the test cluster answers a commit once it is written: synchronous_commit on)
    await cluster.admin('ALTER ROLE aa_test CONNECTION LIMIT 0');
    try {
      await cut(cluster);
      // the end is written while the waiter cannot connect: its notification reaches nobody
      const admin = await open(adminUrl(cluster, database));
      await transitionJob(admin.db, id, { epoch: token.epoch, change: { name: 'finish', outcome: outcome('done') } });
      await admin.close();
    } finally {
      await cluster.admin('ALTER ROLE aa_test CONNECTION LIMIT -1');
    }
    const answer = JSON.parse(await waiter.line((l) => l.startsWith('{'))) as { wokeBy: string; settled: Array<{ id: string; status: string }>; connects: number };
    expect(answer.settled).toEqual([{ id, status: 'done' }]);
    expect(answer.wokeBy).toBe('resync');
    expect(answer.connects).toBeGreaterThanOrEqual(2);
    expect(await waiter.exited).toBe(0);
  }

  it('a waiter in another process does not miss an end written while its connection was killed (pg_terminate_backend)', async () => {
    await waiterSurvives('kill_conn', async (cluster) => {
      await cluster.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'aa_test' AND application_name LIKE 'agent-async %'");
      await until(async () => ((await cluster.admin("SELECT 1 FROM pg_stat_activity WHERE usename = 'aa_test' AND application_name = 'agent-async listen'")).length === 0 ? true : undefined));
    });
  });

  it('a waiter does not miss an end written right after a PostgreSQL restart', async () => {
    await waiterSurvives('restart', (cluster) => cluster.restart());
  });

  it('a waiter does not miss an end written after PostgreSQL crashed (SIGKILL) and recovered', async () => {
    await waiterSurvives('crash', async (cluster) => {
      await cluster.kill();
      await cluster.start();
    });
  });

  it('delivers an end recorded while the server was down from the write-ahead buffer, output first; a fenced one is rejected', async () => {
    const { cluster, queue } = await setup('outbox');
    const outbox = new Outbox(path.join(scratch, 'outbox'));
    const startOne = async (host: string, leaseMs: number): Promise<{ id: string; epoch: number; token: LeaseToken }> => {
      await submitJob(queue.db, newSubmission());
      const { token } = await registerRunner(queue.db, { host, pid: process.pid, agents: ['exec'], capacity: 1, leaseMs, version: 'test' });
      const [job] = await claimJobs(queue.db, token, 1);
      await transitionJob(queue.db, job!.state.id, { epoch: token.epoch, current: job, change: { name: 'start', attempt: 1, epoch: token.epoch, supervisor: supervisorOf(host) } });
      return { id: job!.state.id, epoch: token.epoch, token };
    };
    const kept = await startOne('a', 600_000);
    const fenced = await startOne('c', 600_000); // a host whose lease will be reaped while the queue is away from it
    await heartbeat(queue.db, fenced.token, { leaseMs: 200 });
    await appendOutput(queue.db, kept.id, kept.epoch, 0, Buffer.from('line 1\n'));
    const localOutput = Buffer.from('line 1\nline 2 (written while the queue was away)\n');
    const finish = { name: 'finish' as const, outcome: outcome('done') };

    await cluster.stop();
    const endedAt = new Date();
    outbox.record({ job_id: kept.id, host: 'a', epoch: kept.epoch, at: endedAt.toISOString(), change: finish, output_bytes: localOutput.length });
    outbox.record({ job_id: fenced.id, host: 'c', epoch: fenced.epoch, at: endedAt.toISOString(), change: finish, output_bytes: null });
    const away = await outbox.deliver(queue.db, () => localOutput);
    expect(away).toMatchObject({ delivered: [], remaining: 2 });
    expect(away.error).toMatch(/cannot reach PostgreSQL/);
    expect(outbox.pending()).toHaveLength(2);
    await cluster.start();
    await until(async () => ((await reapExpired(queue.db)).runners.some((r) => r.host === 'c') ? true : undefined));

    const report = await outbox.deliver(queue.db, (_id, offset, length) => localOutput.subarray(offset, offset + length));
    expect(report.delivered).toHaveLength(1);
    expect(report.rejected).toHaveLength(1);
    expect(report.rejected[0]!.reason).toMatch(/^fenced: /);
    expect(outbox.pending()).toEqual([]);
    expect(fs.readdirSync(outbox.rejectedDir)).toHaveLength(1);
    const ended = (await getJob(queue.db, kept.id))!;
    expect(ended.state.status).toBe('done');
    expect(ended.state.finished_at).toBe(endedAt.toISOString()); // the time it really ended
    expect((await readOutput(queue.db, kept.id, 0, 1000)).data.equals(localOutput)).toBe(true);
    expect((await getJob(queue.db, fenced.id))!.state.error?.code).toBe('runner_lost'); // the queue's decision stands
    // delivering the same end again (a commit whose answer was never seen) changes nothing
    outbox.record({ job_id: kept.id, host: 'a', epoch: kept.epoch, at: endedAt.toISOString(), change: finish, output_bytes: localOutput.length });
    expect(await outbox.deliver(queue.db, () => localOutput)).toMatchObject({ already: [expect.any(String)], rejected: [] });
    expect((await readOutput(queue.db, kept.id, 0, 1000)).size).toBe(localOutput.length);
  });
});
