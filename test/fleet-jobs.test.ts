import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FleetQueue, appendOutput, claimJobs, getJob, registerRunner, transitionJob, type FleetJob, type LeaseToken,
} from '../lib/fleet/index.js';
import * as jobs from '../lib/jobs.js';
import { newJobId } from '../lib/spool/ids.js';
import { compactAnswer } from '../lib/mcp/results.js';
import { loadJobs } from '../lib/mcp/lazy-jobs.js';
import { outcome, supervisorOf } from './helpers/fleet-fixtures.mjs';
import { call, connect, errorText, ok } from './helpers/mcp.js';
import { need, useTestCluster } from './helpers/pg-cluster.js';
import { relayPgpass, startRelay } from './helpers/pg-relay.js';
import { cleanupSpools, cli, cliAsync, makeSpool, type TestSpool } from './helpers/spool.js';

/**
 * lib/jobs.ts in fleet mode, against a real throwaway PostgreSQL: submit, get, list, wait,
 * cancel, notify, output and gc go to the queue; the CLI and the MCP server answer from it.
 * The runner's half is played by the test itself through lib/fleet (register, claim, start,
 * output, finish), on hosts whose names no local runner takes, so nothing else runs the jobs.
 */
const pg = await useTestCluster();
await loadJobs(); // results.ts reads through the MCP face's binding of lib/jobs.ts

const queues: FleetQueue[] = [];
const SECRET_FREE = (text: string): void => {
  if (pg.cluster) expect(text).not.toContain(pg.cluster.password);
};

beforeAll(() => {
  if (pg.cluster) process.env.PGPASSFILE = pg.cluster.pgpassFile; // the password comes from a pgpass file
});

afterAll(async () => {
  await jobs.closeStores();
  await Promise.all(queues.map((queue) => queue.close()));
  cleanupSpools();
});

interface Fleet {
  spool: TestSpool;
  ctx: jobs.JobsContext;
  queue: FleetQueue;
  url: string;
}

/** A spool in fleet mode on a fresh database, as host "host-a". */
async function fleetSpool(config: Record<string, unknown> = {}): Promise<Fleet> {
  const cluster = need(pg);
  const url = cluster.url(await cluster.createDatabase('jobs'));
  const spool = makeSpool({ queue_url: url, host_name: 'host-a', ...config });
  // this process finds the password through process.env; the local runner that submit starts
  // (spool.env) finds none, so it never joins the queue and the test alone plays the runners
  delete spool.env.PGPASSFILE;
  const ctx = jobs.openContext({ home: spool.home, env: spool.env });
  const queue = await FleetQueue.open(url, { role: 'test runner' });
  queues.push(queue);
  return { spool, ctx, queue, url };
}

async function runnerOn(queue: FleetQueue, host: string, agents = ['exec'], labels: string[] = []): Promise<LeaseToken> {
  const registered = await registerRunner(queue.db, { host, pid: process.pid, agents, labels, capacity: 4, leaseMs: 60_000, version: 'test' });
  return registered.token;
}

/** Claims the job (it must be the one claimable) and records its start, as a runner's supervisor does. */
async function claimAndStart(queue: FleetQueue, token: LeaseToken, id: string): Promise<FleetJob> {
  const [claimed] = await claimJobs(queue.db, token, 1);
  expect(claimed?.state.id).toBe(id);
  return transitionJob(queue.db, id, {
    epoch: token.epoch, current: claimed,
    change: { name: 'start', attempt: claimed!.claimAttempt, epoch: token.epoch, supervisor: supervisorOf(token.host) },
  });
}

function finish(queue: FleetQueue, id: string, token: LeaseToken, status: 'done' | 'cancelled' = 'done'): Promise<FleetJob> {
  return transitionJob(queue.db, id, { epoch: token.epoch, change: { name: 'finish', outcome: outcome(status) } });
}

async function until<T>(probe: () => Promise<T | undefined | null | false>, what: string): Promise<T> {
  for (let i = 0; i < 400; i += 1) {
    const value = await probe();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const execJob = (fleet: Fleet, extra: Partial<jobs.SubmitInput> = {}) =>
  jobs.submit(fleet.ctx, { agent: 'exec', argv: ['true'], cwd: fleet.spool.work, ...extra });

describe.skipIf(!pg.cluster)(`lib/jobs.ts on the queue ${pg.skip ?? ''}`, () => {
  it('submits to the queue, not the spool: pinned to the submitting host, prompt.txt stored, read back by get and list', async () => {
    const fleet = await fleetSpool();
    const exec = await execJob(fleet);
    const agent = await jobs.submit(fleet.ctx, { agent: 'codex', prompt: 'explain the tests', cwd: fleet.spool.work, labels: ['gpu'] });
    expect(fs.existsSync(path.join(fleet.spool.home, 'jobs', exec.job_id))).toBe(false);
    const row = await getJob(fleet.queue.db, exec.job_id);
    expect(row).toMatchObject({ needs: { agent: 'exec', host: 'host-a', labels: [] }, submittedHost: 'host-a' });
    expect(row!.state).toEqual(exec.state);
    expect((await getJob(fleet.queue.db, agent.job_id))!.needs).toEqual({ agent: 'codex', host: 'host-a', labels: ['gpu'], features: [] });

    const shown = await jobs.findJob(fleet.ctx, { job_id: agent.job_id });
    expect(shown).toEqual({ id: agent.job_id, kind: 'ok', state: agent.state });
    expect(jobs.taskOf(fleet.ctx, agent.state)).toBe('explain the tests');
    const listed = await jobs.listJobs(fleet.ctx, { limit: 10 });
    expect(listed.map((snap) => snap.id)).toEqual([agent.job_id, exec.job_id]);
    expect((await jobs.listJobs(fleet.ctx, { status: 'done' }))).toEqual([]);
    expect(await jobs.openJobIds(fleet.ctx)).toEqual([exec.job_id, agent.job_id]);
    await expect(jobs.findJob(fleet.ctx, { job_id: newJobId() })).rejects.toThrow(/no such job in the queue/);
  });

  it('wait wakes on the end a runner of another host records; the answer has the output tail of the queue', async () => {
    const fleet = await fleetSpool();
    const job = await execJob(fleet, { host: 'worker-b' });
    const waiting = jobs.wait(fleet.ctx, { job_id: job.job_id, timeout_seconds: 30 });
    const token = await runnerOn(fleet.queue, 'worker-b');
    await claimAndStart(fleet.queue, token, job.job_id);
    await appendOutput(fleet.queue.db, job.job_id, token.epoch, 0, Buffer.from('first line\nlast line é\n'));
    await finish(fleet.queue, job.job_id, token);
    const answer = await waiting;
    expect(answer.timed_out).toBe(false);
    expect(answer.snapshot.kind === 'ok' && answer.snapshot.state.status).toBe('done');
    const compact: Record<string, unknown> = compactAnswer(fleet.ctx, (answer.snapshot as { state: jobs.JobState }).state);
    expect(compact.output).toBe('first line\nlast line é');

    const any = await jobs.awaitAny(fleet.ctx, { job_ids: [job.job_id], timeout_seconds: 5 });
    expect(any.finished.map((snap) => snap.id)).toEqual([job.job_id]);
    const all = await jobs.waitForEnd(fleet.ctx, [job.job_id], { any: false, totalSeconds: 5 });
    expect(all.timedOut).toBe(false);
  });

  it('a job pinned to an unknown host, or needing an agent no host has, stays pending with its reason in the wait answer', async () => {
    const fleet = await fleetSpool();
    await runnerOn(fleet.queue, 'host-a', ['exec']);
    const lost = await execJob(fleet, { host: 'nowhere' });
    const codex = await jobs.submit(fleet.ctx, { agent: 'codex', prompt: 'hello', cwd: fleet.spool.work });
    const pinned = await jobs.wait(fleet.ctx, { job_id: lost.job_id, timeout_seconds: 0 });
    expect(pinned.timed_out).toBe(true);
    expect(pinned.notices).toEqual([`job ${lost.job_id} is pending: no runner has ever registered as host "nowhere" (known hosts: host-a); start \`agent-async runner\` there, or fix the job's host`]);
    const agent = await jobs.awaitAny(fleet.ctx, { job_ids: [codex.job_id], timeout_seconds: 0 });
    expect(agent.notices).toEqual([`job ${codex.job_id} is pending: host "host-a" has no codex CLI (it has: exec); install it there`]);
  });

  it('cancel: a pending job at once; a running one through its holder, waited for', async () => {
    const fleet = await fleetSpool();
    const pending = await execJob(fleet, { host: 'worker-b' });
    const cancelled = await jobs.cancel(fleet.ctx, { job_id: pending.job_id });
    expect(cancelled.result).toBe('cancelled');
    expect(cancelled.state.status).toBe('cancelled');
    expect((await jobs.cancel(fleet.ctx, { job_id: pending.job_id })).result).toBe('already_finished');

    const running = await execJob(fleet, { host: 'worker-b' });
    const token = await runnerOn(fleet.queue, 'worker-b');
    await claimAndStart(fleet.queue, token, running.job_id);
    const cancelling = jobs.cancel(fleet.ctx, { job_id: running.job_id }, { waitSeconds: 30 });
    const asked = await until(async () => {
      const row = await getJob(fleet.queue.db, running.job_id);
      return row?.cancelRequest ? row : undefined;
    }, 'the cancel request');
    expect(asked.cancelRequest!.by).toMatch(/^host-a pid \d+$/);
    await finish(fleet.queue, running.job_id, token, 'cancelled');
    expect(await cancelling).toMatchObject({ result: 'cancelled', state: { status: 'cancelled' } });
  });

  it('notify-done reaches the holder of a running job; a pending one is refused', async () => {
    const fleet = await fleetSpool();
    const job = await execJob(fleet, { host: 'worker-b' });
    await expect(jobs.notifyJobDone(fleet.ctx, { job_id: job.job_id, summary: 'x' })).rejects.toThrow(/has not started yet/);
    const token = await runnerOn(fleet.queue, 'worker-b');
    await claimAndStart(fleet.queue, token, job.job_id);
    const answer = await jobs.notifyJobDone(fleet.ctx, { job_id: job.job_id, summary: 'all green' });
    expect(answer).toMatchObject({ accepted: true });
    expect((await getJob(fleet.queue.db, job.job_id))!.doneRequest).toMatchObject({ summary: 'all green' });
  });

  it('output pages come from the queue, cut on UTF-8 boundaries like the spool; logs follows from another host', async () => {
    const fleet = await fleetSpool();
    const job = await execJob(fleet, { host: 'worker-b' });
    const token = await runnerOn(fleet.queue, 'worker-b');
    await claimAndStart(fleet.queue, token, job.job_id);
    const text = 'aé€😀z\n'; // 1 + 2 + 3 + 4 + 2 bytes
    await appendOutput(fleet.queue.db, job.job_id, token.epoch, 0, Buffer.from(text));
    const pages: string[] = [];
    for (let offset = 0; ;) {
      const page = await jobs.readOutputPage(fleet.ctx, { job_id: job.job_id, offset, max_bytes: 4 });
      expect(page.data).not.toContain('\uFFFD');
      pages.push(page.data);
      offset = page.next_offset;
      if (page.eof) break;
    }
    expect(pages.join('')).toBe(text);
    expect(pages[0]).toBe('aé');
    const tail = await jobs.readOutputPage(fleet.ctx, { job_id: job.job_id, offset: -5 });
    expect(tail).toMatchObject({ data: 'z\n', job_status: 'running' }); // a tail never starts inside 😀

    const viewer = { ...fleet.spool, env: { ...fleet.spool.env, PGPASSFILE: need(pg).pgpassFile } }; // logs starts no runner
    const follower = cli(viewer, ['logs', job.job_id, '--tail', '1']);
    expect(follower.stdout).toBe(text);
    const followed = import('./helpers/spool.js').then(({ cliAsync }) => cliAsync(viewer, ['logs', job.job_id, '-f']));
    // the follower is at the end of what is stored and listening for more
    await until(async () => {
      const listening = await fleet.queue.db.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
      );
      return listening.rowCount! > 0;
    }, 'the follower to listen');
    await appendOutput(fleet.queue.db, job.job_id, token.epoch, Buffer.byteLength(text), Buffer.from('more\n'));
    await finish(fleet.queue, job.job_id, token);
    const result = await followed;
    expect(result.stdout).toBe(`${text}more\n`);
    expect(result.code).toBe(0);
  });

  it('gc removes finished jobs from the queue (and the spool), never open ones', async () => {
    const fleet = await fleetSpool();
    const open = await execJob(fleet, { host: 'worker-b' });
    const ended = await execJob(fleet, { host: 'worker-b' });
    await jobs.cancel(fleet.ctx, { job_id: ended.job_id });
    expect((await jobs.collectGarbage(fleet.ctx, { older_than_seconds: 0, dry_run: true })).queue_removed).toBeNull();
    const report = await jobs.collectGarbage(fleet.ctx, { older_than_seconds: 0 });
    expect(report.queue_removed).toBe(1);
    expect(await getJob(fleet.queue.db, ended.job_id)).toBeNull();
    expect(await getJob(fleet.queue.db, open.job_id)).not.toBeNull();
  });

  it('retry and continue: the original read from the queue; continue goes to the host that ran the session', async () => {
    const fleet = await fleetSpool();
    const job = await jobs.submit(fleet.ctx, { agent: 'codex', prompt: 'first turn', cwd: fleet.spool.work, host: 'worker-b' });
    const token = await runnerOn(fleet.queue, 'worker-b', ['codex']);
    await claimAndStart(fleet.queue, token, job.job_id);
    await transitionJob(fleet.queue.db, job.job_id, { epoch: token.epoch, change: { name: 'finish', outcome: outcome('done', { session_id: 'sess-1' }) } });
    const again = await jobs.retry(fleet.ctx, { job_id: job.job_id, labels: ['gpu'] });
    expect((await getJob(fleet.queue.db, again.job_id))!.needs).toEqual({ agent: 'codex', host: 'host-a', labels: ['gpu'], features: [] });
    expect(await jobs.findJob(fleet.ctx, { job_id: again.job_id })).toMatchObject({ state: { request: { retry_of: job.job_id } } });
    expect(jobs.taskOf(fleet.ctx, (await jobs.findJob(fleet.ctx, { job_id: again.job_id }) as { state: jobs.JobState }).state)).toBe('first turn');
    const next = await jobs.continueJob(fleet.ctx, { job_id: job.job_id, prompt: 'second turn' });
    expect((await getJob(fleet.queue.db, next.job_id))!.needs.host).toBe('worker-b');
    expect(next.state.request.resume_session).toBe('sess-1');
  });
});

describe('host and labels without fleet mode (no PostgreSQL needed)', () => {
  it('host and labels: refused outside fleet mode and when malformed, naming the field', () => {
    const spool = makeSpool();
    const ctx = jobs.openContext({ home: spool.home, env: spool.env });
    // refused while the input is checked, before anything is queued
    const submit = (extra: Partial<jobs.SubmitInput>) => () => jobs.submit(ctx, { agent: 'exec', argv: ['true'], cwd: spool.work, ...extra });
    expect(submit({ host: 'b' })).toThrow(/^host: applies in fleet mode only \(queue_url is not set/);
    expect(submit({ labels: ['gpu'] })).toThrow(/^labels: applies in fleet mode only/);
    expect(submit({ host: 'no such host' })).toThrow(/^host: "no such host" is not a host name/);
    expect(submit({ labels: ['GPU'] })).toThrow(/^labels: "GPU" is not a label/);
    const refused = cli(spool, ['start', 'exec', '--host', 'b', '--', 'true']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/host: applies in fleet mode only/);
  });
});

describe.skipIf(!pg.cluster)(`the CLI and the MCP server in fleet mode ${pg.skip ?? ''}`, () => {
  it('queue init applies the schema once; status and doctor show every host and why a job waits', async () => {
    const cluster = need(pg);
    const url = cluster.url(await cluster.createDatabase('cli'));
    const spool = makeSpool({ queue_url: url, host_name: 'host-a' });
    spool.env.PGPASSFILE = cluster.pgpassFile;
    const init = cli(spool, ['queue', 'init']);
    expect(init.stderr).toBe('');
    expect(init.stdout).toMatch(/^queue postgres:\/\/aa_test@127\.0\.0\.1:\d+\/cli_\d+: schema version 2 \(applied migrations 1, 2\)\n$/);
    expect(cli(spool, ['queue', 'init']).stdout).toMatch(/schema version 2 \(already up to date\)/);

    const queue = await FleetQueue.open(url);
    queues.push(queue);
    await runnerOn(queue, 'worker-b', ['exec', 'claude'], ['gpu']);
    const started = cli(spool, ['start', 'exec', '--host', 'nowhere', '--label', 'gpu', '--', 'echo', 'hi']);
    expect(started.code).toBe(0);
    const id = started.stdout.trim();

    const status = JSON.parse(cli(spool, ['status', '--json']).stdout);
    // (the local runner `start` started may have registered host-a as well)
    expect(status.hosts).toEqual(expect.arrayContaining([expect.objectContaining({ host: 'worker-b', state: 'active', live: true, agents: ['claude', 'exec'], labels: ['gpu'], load: 0, capacity: 4 })]));
    expect(status.pending).toEqual([expect.objectContaining({ runner_host: null, reason: { code: 'unknown_host', message: expect.stringMatching(/"nowhere" \(known hosts: [^)]*worker-b/) } })]);
    const text = cli(spool, ['queue', 'status']).stdout;
    expect(text).toMatch(/worker-b\s+active\s+0\/4\s+agents claude,exec\s+labels gpu/);
    expect(text).toContain(`${id}  exec`);

    const doctor = cli(spool, ['doctor', '--json']);
    const checks = JSON.parse(doctor.stdout).checks as Array<{ level: string; what: string; detail: string }>;
    expect(checks).toEqual(expect.arrayContaining([
      expect.objectContaining({ level: 'ok', what: 'queue schema', detail: 'version 2' }),
      expect.objectContaining({ level: 'ok', what: 'host worker-b' }),
      expect.objectContaining({ what: 'host host-a (this)' }),
      expect.objectContaining({ level: 'warn', what: `job ${id}`, detail: expect.stringContaining('no runner has ever registered as host "nowhere"') }),
    ]));

    const waited = cli(spool, ['wait', id, '--timeout', '0']);
    expect(waited.code).toBe(124);
    expect(waited.stderr).toContain(`job ${id} is pending: no runner has ever registered as host "nowhere"`);
  });

  it('a command whose queue stops answering at its goodbye still ends, and says so', async () => {
    const cluster = need(pg);
    const database = await cluster.createDatabase('goodbye');
    queues.push(await FleetQueue.open(cluster.url(database))); // the schema, applied directly
    const relay = await startRelay(cluster.port, 'ignore-goodbye');
    try {
      const spool = makeSpool({ queue_url: `postgres://${cluster.role}@127.0.0.1:${relay.port}/${database}`, host_name: 'host-a' });
      spool.env.PGPASSFILE = relayPgpass(path.join(spool.work, 'pgpass'), relay.port, cluster.role, cluster.password);
      const listed = await cliAsync(spool, ['ls'], { timeoutMs: 60_000 });
      expect(listed).toMatchObject({ code: 0, stdout: 'no jobs\n' });
      expect(listed.stderr).toMatch(/^agent-async: the queue's server \(queue_url\) did not hang up (a connection|\d+ connections) after this command said goodbye; cut after a short wait \(is PostgreSQL paused or cut off\?\)\n$/);
    } finally {
      await relay.close();
    }
  });

  it('the MCP tools answer from the queue with the same keys as from the spool', async () => {
    const cluster = need(pg);
    const url = cluster.url(await cluster.createDatabase('mcp'));
    const spool = makeSpool({ queue_url: url, host_name: 'host-a' });
    spool.env.PGPASSFILE = cluster.pgpassFile;
    const local = makeSpool();
    const [fleetServer, spoolServer] = await Promise.all([connect(spool), connect(local)]);
    try {
      const queue = await FleetQueue.open(url);
      queues.push(queue);
      const started = await ok(fleetServer, 'agent_start', { agent: 'exec', argv: ['echo', 'hi'], cwd: spool.work, host: 'worker-b' });
      const token = await runnerOn(queue, 'worker-b');
      await claimAndStart(queue, token, started.job_id);
      await appendOutput(queue.db, started.job_id, token.epoch, 0, Buffer.from('hi\n'));
      await finish(queue, started.job_id, token);
      const fleetAnswer = await ok(fleetServer, 'job_wait', { job_id: started.job_id, timeout_seconds: 20 });
      expect(fleetAnswer).toMatchObject({ status: 'done', output: 'hi' });

      const localStart = await ok(spoolServer, 'agent_start', { agent: 'exec', argv: ['echo', 'hi'], cwd: local.work });
      const localAnswer = await ok(spoolServer, 'job_wait', { job_id: localStart.job_id, timeout_seconds: 30 });
      expect(Object.keys(fleetAnswer).sort()).toEqual(Object.keys(localAnswer).sort());
      expect(Object.keys(started).sort()).toEqual(Object.keys(localStart).sort());
      const [fleetList, localList] = [await ok(fleetServer, 'job_list', {}), await ok(spoolServer, 'job_list', {})];
      expect(Object.keys(fleetList.jobs[0]).sort()).toEqual(Object.keys(localList.jobs[0]).sort());
      const [fleetPage, localPage] = [
        await ok(fleetServer, 'job_output', { job_id: started.job_id }),
        await ok(spoolServer, 'job_output', { job_id: localStart.job_id }),
      ];
      expect(fleetPage).toEqual({ ...localPage, job_id: started.job_id });
      // queue_status answers the spool's keys, and in fleet mode the hosts and why jobs wait
      const spoolStatus = await ok(spoolServer, 'queue_status', {});
      expect(spoolStatus.fleet).toBeUndefined();
      expect(Object.keys(await ok(fleetServer, 'queue_status', {})).sort()).toEqual([...Object.keys(spoolStatus), 'fleet'].sort());

      const pinned = await ok(fleetServer, 'agent_start', { agent: 'exec', argv: ['true'], cwd: spool.work, host: 'nowhere' });
      const waiting = await ok(fleetServer, 'job_wait', { job_id: pinned.job_id, timeout_seconds: 0 });
      expect(waiting).toMatchObject({ status: 'timeout', job_status: 'pending' });
      expect(waiting.notices).toEqual([expect.stringContaining('no runner has ever registered as host "nowhere"')]);
      const { fleet } = await ok(fleetServer, 'queue_status', {});
      expect(fleet).toMatchObject({ queue: expect.stringMatching(/^postgres:\/\/aa_test@127\.0\.0\.1:\d+\/mcp_\d+$/), host: 'host-a' });
      const workerB = fleet.hosts.find((host: { host: string }) => host.host === 'worker-b');
      expect(workerB).toMatchObject({ state: 'active', live: true, agents: ['exec'], labels: [], load: 0, capacity: 4 });
      expect(workerB.lease_expires_in_ms).toBeGreaterThan(0);
      expect(fleet.pending_reasons).toEqual([{ job_id: pinned.job_id, code: 'unknown_host', message: expect.stringContaining('no runner has ever registered as host "nowhere"') }]);
      const cancelled = await ok(fleetServer, 'job_cancel', { job_id: pinned.job_id });
      expect(cancelled).toMatchObject({ status: 'cancelled', cancelled: true });
      const refused = errorText(await call(spoolServer, 'agent_start', { agent: 'exec', argv: ['true'], cwd: local.work, host: 'b' }));
      expect(refused).toMatch(/host: applies in fleet mode only/);
    } finally {
      await Promise.all([fleetServer.close(), spoolServer.close()]);
    }
  });

  it('a wrong password, an unreachable server and a newer schema give the documented message on both faces, never the password', async () => {
    const cluster = need(pg);
    const database = await cluster.createDatabase('bad');
    const wrongPass = path.join(cluster.base, 'wrong-pgpass');
    fs.writeFileSync(wrongPass, `127.0.0.1:${cluster.port}:*:aa_test:not-the-password\n`, { mode: 0o600 });
    const cases: Array<{ url: string; env: NodeJS.ProcessEnv; message: RegExp }> = [
      { url: cluster.url(database), env: { PGPASSFILE: wrongPass }, message: /PostgreSQL refused the password of user "aa_test" \(password from PGPASSFILE/ },
      { url: `postgres://aa_test@127.0.0.1:1/${database}`, env: { PGPASSFILE: cluster.pgpassFile }, message: /cannot reach PostgreSQL: connection refused/ },
    ];
    const newer = await cluster.createDatabase('newer');
    const queue = await FleetQueue.open(cluster.url(newer));
    await queue.db.query('INSERT INTO agent_async.schema_version (version, description, applied_by) VALUES (99, $1, $2)', ['from the future', 'test']);
    await queue.close();
    cases.push({ url: cluster.url(newer), env: { PGPASSFILE: cluster.pgpassFile }, message: /the queue's schema is version 99, newer than this agent-async knows \(2\)/ });
    for (const { url, env, message } of cases) {
      const spool = makeSpool({ queue_url: url, host_name: 'host-a' });
      Object.assign(spool.env, env);
      const listed = cli(spool, ['ls']);
      expect(listed.code).toBe(78);
      expect(listed.stderr).toMatch(message);
      expect(listed.stderr).toMatch(/^agent-async: queue_url \(postgres:\/\/aa_test@127\.0\.0\.1:\d+\/\w+\)/);
      SECRET_FREE(listed.stderr + listed.stdout);
      const doctor = cli(spool, ['doctor']);
      expect(doctor.stdout).toMatch(message);
      SECRET_FREE(doctor.stdout + doctor.stderr);
      const server = await connect(spool);
      try {
        const text = errorText(await call(server, 'job_list', {}));
        expect(text).toMatch(message);
        SECRET_FREE(text + server.stderr());
      } finally {
        await server.close();
      }
    }
  });
});
