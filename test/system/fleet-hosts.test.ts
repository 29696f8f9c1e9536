import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FleetQueue, getJob, readOutput, requestCancel, requestDone } from '../../lib/fleet/index.js';
import { Hosts, registered, submitWorkerJob, terminal, until, type Host } from '../helpers/fleet-hosts.js';
import { makeNetns, netnsUnavailable, relayPgpass, type Netns } from '../helpers/netns.js';
import { FAST_CONFIG, ROOT } from '../helpers/spool.js';
import { need, useTestCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { seeded } from '../helpers/seeded.mjs';

/**
 * Fleet mode end to end: three runner hosts, each a real `agent-async runner` process with its
 * own HOME and spool, sharing one queue in a throwaway PostgreSQL cluster. Jobs are submitted
 * with lib/fleet's submitJob (what the faces do in fleet mode; in the chaos test from two
 * submitter processes) and run by the hosts' local runners; their workers record every start in
 * a per-job ledger. Children run from dist/.
 */
const pg = await useTestCluster();
const queues: FleetQueue[] = [];
let hosts: Hosts | undefined;
const netnsSkip = netnsUnavailable();
let netns: Netns | undefined;

beforeAll(() => {
  if (pg.cluster) process.env.PGPASSFILE = pg.cluster.pgpassFile;
});

afterEach((context) => {
  // what each runner said, when a test failed
  if (context.task.result?.state === 'fail') for (const host of hosts?.all ?? []) process.stderr.write(`--- ${host.name} (pid ${host.child.pid})\n${host.log()}`);
  hosts?.cleanup();
  hosts = undefined;
});

afterAll(async () => {
  await netns?.destroy();
  await Promise.all(queues.map((queue) => queue.close()));
});

async function setup(prefix: string): Promise<{ queue: FleetQueue; hosts: Hosts }> {
  const cluster = need(pg);
  const database = await cluster.createDatabase(prefix);
  const queue = await FleetQueue.open(cluster.url(database), { role: 'test' });
  queues.push(queue);
  hosts = new Hosts(cluster, database);
  return { queue, hosts };
}

async function startsInEvents(queue: FleetQueue, ids: string[]): Promise<Map<string, number>> {
  const rows = await queue.db.query<{ job_id: string; n: number }>(
    "SELECT job_id, count(*)::int AS n FROM agent_async.events WHERE kind = 'running' AND job_id = ANY($1::text[]) GROUP BY job_id",
    [ids],
  );
  return new Map(rows.rows.map((row) => [row.job_id, row.n]));
}

describe.skipIf(!pg.cluster)(`fleet hosts: runners on three hosts share one queue ${pg.skip ?? ''}`, () => {
  it('runs a pinned job on its host, spreads the others (each exactly once), and the output is readable from the queue', async () => {
    const { queue, hosts } = await setup('hosts');
    // no lease may run out here: a lease long enough for a loaded machine
    for (const name of ['h1', 'h2', 'h3']) hosts.start(name, { leaseSeconds: 8 });
    await registered(queue, ['h1', 'h2', 'h3']);

    const pinned = await submitWorkerJob(queue, hosts, { mode: 'quick', args: ['5'], host: 'h2' });
    const pinnedJob = await terminal(queue, pinned);
    expect(pinnedJob.state.status).toBe('done');
    expect(pinnedJob.runnerHost).toBe('h2');
    expect(hosts.starts(pinned).map((line) => line[2])).toEqual(['h2']);
    const expected = Array.from({ length: 5 }, (_, i) => `line ${i} of ${pinned}\n`).join('');
    expect((await readOutput(queue.db, pinned, 0, 1 << 20)).data.toString('utf8')).toBe(expected);
    // the local spool of h2 holds the same job, as a local job would be
    const local = JSON.parse(fs.readFileSync(path.join(hosts.all[1]!.home, 'jobs', pinned, 'state.json'), 'utf8'));
    expect(local.status).toBe('done');

    const ids = await Promise.all(Array.from({ length: 12 }, () => submitWorkerJob(queue, hosts, { mode: 'sleep', args: ['300', '2'] })));
    const jobs = await Promise.all(ids.map((id) => terminal(queue, id)));
    expect(jobs.map((job) => job.state.status)).toEqual(ids.map(() => 'done'));
    for (const id of ids) expect(hosts.starts(id)).toHaveLength(1);
    expect([...(await startsInEvents(queue, ids)).values()]).toEqual(ids.map(() => 1));
    expect(new Set(jobs.map((job) => job.runnerHost)).size).toBeGreaterThan(1);
    for (const job of jobs) {
      const output = (await readOutput(queue.db, job.state.id, 0, 1 << 20)).data.toString('utf8');
      expect(output).toBe(`line 0 of ${job.state.id}\nline 1 of ${job.state.id}\nend\n`);
      expect(hosts.starts(job.state.id)[0]![2]).toBe(job.runnerHost);
    }
  });

  it('the faces and the runners together: a job started with the CLI on host a, pinned to h2, runs in h2\'s spool; a\'s CLI waits for it and reads its output', async () => {
    const { queue, hosts } = await setup('faces');
    for (const name of ['h1', 'h2']) hosts.start(name, { leaseSeconds: 8 });
    await registered(queue, ['h1', 'h2']);
    const home = path.join(hosts.base, 'a', 'spool');
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ ...FAST_CONFIG, host_name: 'a', lease_seconds: 8 }));
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: path.join(hosts.base, 'a'), AGENT_ASYNC_HOME: home, AGENT_ASYNC_QUEUE_URL: need(pg).url(hosts.database), PGPASSFILE: need(pg).pgpassFile };
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin', 'agent-async.js'), ...args], { env, encoding: 'utf8', cwd: hosts.base });
    const started = cli(['start', 'exec', '--host', 'h2', '--json', '--', 'sh', '-c', 'echo "ran in $AGENT_ASYNC_HOME"']);
    expect(started.status, started.stderr).toBe(0);
    const id = JSON.parse(started.stdout).job_id as string;
    const waited = cli(['wait', id, '--timeout', '60s', '--json']);
    expect(waited.status, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout).finished[0]).toMatchObject({ id, status: 'done', exit_code: 0 });
    const h2 = hosts.all.find((host) => host.name === 'h2')!;
    expect(cli(['logs', id]).stdout).toBe(`ran in ${h2.home}\n`);
    // the job's folder is in h2's spool, not in a's: a reads it from the queue
    expect(fs.existsSync(path.join(h2.home, 'jobs', id, 'state.json'))).toBe(true);
    expect(fs.existsSync(path.join(home, 'jobs', id))).toBe(false);
    const status = cli(['status']);
    expect(status.stdout).toMatch(/\bh1\b.*active/);
    expect(status.stdout).toMatch(/\bh2\b.*active/);
  });

  it('a cancel and a done report made on another host reach the worker', async () => {
    const { queue, hosts } = await setup('requests');
    for (const name of ['h1', 'h2', 'h3']) hosts.start(name, { leaseSeconds: 8 });
    await registered(queue, ['h1', 'h2', 'h3']);
    const cancelled = await submitWorkerJob(queue, hosts, { mode: 'hold', host: 'h1' });
    const finished = await submitWorkerJob(queue, hosts, { mode: 'hold', host: 'h3' });
    await until(() => (hosts.starts(cancelled).length > 0 && hosts.starts(finished).length > 0 ? true : undefined));
    await until(async () => ((await getJob(queue.db, cancelled))?.state.worker ? true : undefined));
    await requestCancel(queue.db, cancelled, 'h2');
    await until(async () => ((await getJob(queue.db, finished))?.state.worker ? true : undefined));
    await requestDone(queue.db, finished, 'all done, said on h2');
    const [c, f] = await Promise.all([terminal(queue, cancelled), terminal(queue, finished)]);
    expect(c.state.status).toBe('cancelled');
    expect(f.state.status).toBe('done');
    expect(f.state.notified?.summary).toBe('all done, said on h2');
    // the output the worker wrote before it was stopped is there
    expect((await readOutput(queue.db, cancelled, 0, 1000)).data.toString('utf8')).toBe('holding\n');
    expect(hosts.starts(cancelled)).toHaveLength(1);
    expect(hosts.starts(finished)).toHaveLength(1);
  });

  it('a host SIGKILLed whole (runner, supervisors, workers): its running jobs end runner_lost once its lease is reaped, never re-run; its restart runs what waited', async () => {
    const { queue, hosts } = await setup('killed');
    const [, , h3] = ['h1', 'h2', 'h3'].map((name) => hosts.start(name));
    await registered(queue, ['h1', 'h2', 'h3']);
    const held = await Promise.all([1, 2].map(() => submitWorkerJob(queue, hosts, { mode: 'hold', host: 'h3' })));
    await until(async () => ((await Promise.all(held.map((id) => getJob(queue.db, id)))).every((job) => job?.state.worker) ? true : undefined));
    await until(() => (held.every((id) => hosts.starts(id).length === 1) ? true : undefined));
    const waiting = await submitWorkerJob(queue, hosts, { mode: 'quick', host: 'h3' }); // h3 is full (concurrency 2)
    await hosts.killHost(h3!);
    // h1 or h2 reaps the lease once it has expired by the database clock
    for (const id of held) {
      const job = await terminal(queue, id);
      expect(job.state.status).toBe('error');
      expect(job.state.error?.code).toBe('runner_lost');
    }
    expect((await getJob(queue.db, waiting))?.state.status).toBe('pending');
    // back on h3: the job that waited runs; the local copies of the lost ones are ended there too
    const restarted = await hosts.restartUntilLeading(h3!);
    expect((await terminal(queue, waiting)).state.status).toBe('done');
    for (const id of held) {
      await until(() => (['error', 'cancelled'].includes(localStatus(restarted.home, id) ?? '') ? true : undefined));
      expect(hosts.starts(id)).toHaveLength(1);
      expect((await getJob(queue.db, id))?.state.error?.code).toBe('runner_lost');
    }
    expect([...(await startsInEvents(queue, [...held, waiting])).values()]).toEqual([1, 1, 1]);
  });

  it('a runner SIGKILLed and restarted before anyone reaped it adopts its running job, which ends once', async () => {
    const { queue, hosts } = await setup('adopted');
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((name) => hosts.start(name));
    await registered(queue, ['h1', 'h2', 'h3']);
    const id = await submitWorkerJob(queue, hosts, { mode: 'hold', host: 'h1' });
    await until(async () => ((await getJob(queue.db, id))?.state.worker ? true : undefined));
    // nobody may reap h1 meanwhile, whatever the machine's speed: the other runners are frozen
    h2!.child.kill('SIGSTOP');
    h3!.child.kill('SIGSTOP');
    try {
      // the runner alone dies: the job's supervisor starts a runner again at once, or the test does
      h1!.child.kill('SIGKILL');
      await h1!.exited;
      await hosts.restartUntilLeading(h1!);
      await until(() => (/adopted 1 jobs/.test(hosts.logOf(h1!)) ? true : undefined));
      // the adopted job is this runner's again: a done report reaches it, its end is mirrored
      await requestDone(queue.db, id, 'finished after the restart');
      const job = await terminal(queue, id);
      expect(job.state.status).toBe('done');
      expect(job.state.notified?.summary).toBe('finished after the restart');
      expect(job.runnerHost).toBe('h1');
    } finally {
      h2!.child.kill('SIGCONT');
      h3!.child.kill('SIGCONT');
    }
    expect(hosts.starts(id)).toHaveLength(1);
    expect((await readOutput(queue.db, id, 0, 1000)).data.toString('utf8')).toBe('holding\n');
    const adopted = await queue.db.query("SELECT 1 FROM agent_async.events WHERE job_id = $1 AND kind = 'adopted'", [id]);
    expect(adopted.rowCount).toBe(1);
  });
});

/** Files of a host's write-ahead buffer: waiting entries, or those the queue refused. */
function outboxFiles(home: string, rejected = false): string[] {
  const dir = path.join(home, 'fleet', 'outbox', ...(rejected ? ['rejected'] : []));
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith('.json')) : [];
}

function localStatus(home: string, id: string): string | undefined {
  const file = path.join(home, 'jobs', id, 'state.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { status: string }).status : undefined;
}

/** A host whose only way to the queue is the veth pair of its namespace. */
async function partitionedHost(hosts: Hosts, name: string, concurrency?: number): Promise<ReturnType<Hosts['start']>> {
  const cluster = need(pg);
  netns ??= await makeNetns(cluster.port);
  const pgpass = relayPgpass(path.join(hosts.base, `${name}.pgpass`), netns.gateway, netns.relayPort, cluster.role, cluster.password);
  return hosts.start(name, { prefix: netns.exec, url: `postgres://${cluster.role}@${netns.gateway}:${netns.relayPort}/${hosts.database}`, pgpassFile: pgpass, concurrency });
}

describe.skipIf(!pg.cluster || netnsSkip)(`fleet hosts: a host in its own network namespace cut off from the database ${pg.skip ?? netnsSkip ?? ''}`, () => {
  it('an end that happens while the host is cut off is delivered from its outbox, output first, when it is back', async () => {
    const { queue, hosts } = await setup('netns_back');
    const far = await partitionedHost(hosts, 'far');
    await registered(queue, ['far']);
    const id = await submitWorkerJob(queue, hosts, { mode: 'sleep', args: ['1500', '400'], host: 'far' });
    await until(async () => ((await getJob(queue.db, id))?.state.worker ? true : undefined));
    netns!.cut();
    try {
      // no other runner is up, so nobody reaps the lease meanwhile: the end waits in the outbox
      await until(() => (localStatus(far.home, id) === 'done' && outboxFiles(far.home).length > 0 ? true : undefined));
      expect((await getJob(queue.db, id))?.state.status).toBe('running');
    } finally {
      netns!.restore();
    }
    const job = await terminal(queue, id);
    expect(job.state.status).toBe('done');
    expect(job.runnerHost).toBe('far');
    const lines = Array.from({ length: 400 }, (_, i) => `line ${i} of ${id}\n`).join('');
    expect((await readOutput(queue.db, id, 0, 1 << 20)).data.toString('utf8')).toBe(`${lines}end\n`);
    await until(() => (outboxFiles(far.home).length === 0 ? true : undefined));
    expect(outboxFiles(far.home, true)).toEqual([]);
    expect(hosts.starts(id)).toHaveLength(1);
  });

  it('when its lease was reaped meanwhile, the job stays runner_lost, its late end goes to rejected/, and the host registers again', async () => {
    const { queue, hosts } = await setup('netns_reaped');
    const far = await partitionedHost(hosts, 'far');
    hosts.start('near');
    await registered(queue, ['far', 'near']);
    const id = await submitWorkerJob(queue, hosts, { mode: 'sleep', args: ['3000', '2'], host: 'far' });
    await until(async () => ((await getJob(queue.db, id))?.state.worker ? true : undefined));
    const epochBefore = (await queue.db.query<{ epoch: string }>("SELECT epoch FROM agent_async.runners WHERE host = 'far'")).rows[0]!.epoch;
    netns!.cut();
    try {
      const lost = await terminal(queue, id); // near reaps far's lease once it expired by the database clock
      expect(lost.state.error?.code).toBe('runner_lost');
      await until(() => (localStatus(far.home, id) === 'done' ? true : undefined));
    } finally {
      netns!.restore();
    }
    // back, far learns that its lease is lost either before or after its next pass records the
    // end: either way the end is in the outbox first (the bridge records it on LeaseLost too)
    await until(() => (outboxFiles(far.home, true).length > 0 ? true : undefined));
    const rejected = JSON.parse(fs.readFileSync(path.join(far.home, 'fleet', 'outbox', 'rejected', outboxFiles(far.home, true)[0]!), 'utf8'));
    expect(rejected.job_id).toBe(id);
    expect(rejected.rejected.reason).toMatch(/fenced/);
    expect((await getJob(queue.db, id))?.state.error?.code).toBe('runner_lost');
    // the host is back under a new epoch and takes work again
    await until(async () => {
      const row = (await queue.db.query<{ epoch: string; state: string }>("SELECT epoch, state FROM agent_async.runners WHERE host = 'far'")).rows[0];
      return row && row.state === 'active' && row.epoch !== epochBefore ? true : undefined;
    });
    const next = await submitWorkerJob(queue, hosts, { mode: 'quick', host: 'far' });
    expect((await terminal(queue, next)).state.status).toBe('done');
    expect(hosts.starts(id)).toHaveLength(1);
  });
});

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const submitterProcesses: ChildProcess[] = [];

/**
 * A chaos submitter (test/helpers/fleet-submitter.mjs): 50 jobs from a process of its own;
 * `done` resolves with the ids the queue confirmed, once it exited 0.
 */
function submitter(cluster: PgCluster, hosts: Hosts, seed: number): { done: Promise<string[]>; submitted: () => number; summary: () => string } {
  const env = { ...process.env, AGENT_ASYNC_QUEUE_URL: cluster.url(hosts.database), PGPASSFILE: cluster.pgpassFile };
  const child = spawn(process.execPath, [path.join(ROOT, 'test', 'helpers', 'fleet-submitter.mjs'), hosts.ledgerDir, '50', String(seed)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  submitterProcesses.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const done = new Promise<string[]>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (code === 0 && /^finished 50 /m.test(out)) resolve([...out.matchAll(/^submitted (\S+)$/gm)].map((match) => match[1]!));
      else reject(new Error(`submitter (seed ${seed}) ended with ${code ?? signal}: ${err}`));
    });
  });
  return {
    done,
    submitted: () => out.split('\n').filter((line) => line.startsWith('submitted ')).length,
    summary: () => /^finished (.*)$/m.exec(out)?.[1] ?? 'not finished',
  };
}

afterEach(() => {
  for (const child of submitterProcesses.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe.skipIf(!pg.cluster)(`fleet hosts: the chaos ledger ${pg.skip ?? ''}`, () => {
  it('2 submitters x 50 jobs on 3 hosts, runners and whole hosts SIGKILLed and restarted, PostgreSQL restarted, a host partitioned: every job ends once, with its reason and its output', async () => {
    const cluster = need(pg);
    const { queue, hosts } = await setup('chaos');
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
    // the chaos and the submitters draw from generators of their own: the seed replays the chaos
    const random = seeded(seed);
    console.log(`fleet chaos: seed ${seed} (CHAOS_SEED=${seed} replays its choices)`);
    const names = ['h1', 'h2', 'h3'];
    // where this machine can make network namespaces, h3 reaches the queue only through its own
    // veth pair, and its partition is that link cut; elsewhere a SIGSTOP past its lease stands in
    const partitioned = netnsSkip ? null : 'h3';
    const current = new Map<string, Host>();
    for (const name of names) current.set(name, name === partitioned ? await partitionedHost(hosts, name, 3) : hosts.start(name, { concurrency: 3 }));
    await registered(queue, names);
    // two submitters, each a process of its own (as the faces of two other machines are)
    const submitters = [1, 2].map((n) => submitter(cluster, hosts, seed + n));
    const submitting = Promise.all(submitters.map((one) => one.done));
    submitting.catch(() => undefined); // awaited once the chaos is over
    const pick = (): string => names[Math.floor(random() * names.length)]!;
    const log: string[] = [];
    const kill = async (): Promise<void> => {
      const name = pick();
      const host = current.get(name)!;
      // the runner alone (its supervisors carry on and start a runner again), or the whole host
      const whole = random() < 0.5;
      if (whole) await hosts.killHost(host);
      else host.child.kill('SIGKILL');
      await host.exited;
      const down = Math.floor(random() * 3000);
      log.push(`SIGKILL ${whole ? 'all of' : 'the runner of'} ${name}, restart after ${down} ms`);
      await pause(down);
      current.set(name, await hosts.restartUntilLeading(host));
    };
    // PostgreSQL restarts under the submitters' inserts: 40 more submits each, with pauses of
    // 60 ms on average, take far longer than the restart
    await until(() => (submitters.every((one) => one.submitted() >= 10) ? true : undefined));
    log.push(`PostgreSQL restart after ${submitters.map((one) => one.submitted()).join(' and ')} submits`);
    await cluster.restart();
    await kill();
    await kill();
    if (partitioned) {
      log.push(`${partitioned} cut off from the database past its lease, then back`);
      netns!.cut();
      try {
        await pause(3500);
      } finally {
        netns!.restore();
      }
    } else {
      const stopped = pick();
      log.push(`SIGSTOP ${stopped} past its lease, then SIGCONT`);
      current.get(stopped)!.child.kill('SIGSTOP');
      await pause(3500);
      current.get(stopped)!.child.kill('SIGCONT');
    }
    await kill();
    const ids = (await submitting).flat();
    await kill();
    console.log(`fleet chaos: ${log.join('; ')}; submitters: ${submitters.map((one) => one.summary()).join(', ')}`);

    expect(ids).toHaveLength(100);
    expect(new Set(ids).size).toBe(100);
    // the queue has exactly the jobs the submitters were told it has
    const queued = await queue.db.query<{ id: string }>('SELECT id FROM agent_async.jobs');
    expect(queued.rows.map((row) => row.id).sort()).toEqual([...ids].sort());
    const jobs = await Promise.all(ids.map((id) => terminal(queue, id)));
    const starts = await startsInEvents(queue, ids);
    const tally: Record<string, number> = {};
    for (const job of jobs) {
      const id = job.state.id;
      const reason = job.state.status === 'error' ? job.state.error?.code : job.state.status;
      tally[reason ?? '?'] = (tally[reason ?? '?'] ?? 0) + 1;
      expect(hosts.starts(id).length, `job ${id} started more than once`).toBeLessThanOrEqual(1);
      expect(starts.get(id) ?? 0, `job ${id} has more than one start in the queue`).toBeLessThanOrEqual(1);
      if (job.state.status === 'done') {
        expect(hosts.starts(id)).toHaveLength(1);
        expect((await readOutput(queue.db, id, 0, 1 << 20)).data.toString('utf8')).toBe(`line 0 of ${id}\nline 1 of ${id}\nend\n`);
      } else {
        // the only way a job of this test fails: its host was lost while it ran
        expect(job.state.error?.code).toBe('runner_lost');
      }
    }
    console.log(`fleet chaos: ${JSON.stringify(tally)}`);
    expect(tally.done ?? 0).toBeGreaterThan(0);
  });
});
