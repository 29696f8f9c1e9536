// Fleet mode (PostgreSQL queue) benchmark: node bench/fleet.mjs [--quick] [--json]
// Starts its own throwaway PostgreSQL cluster (test/helpers/pg-cluster.mjs; needs initdb and
// pg_ctl, and root or the postgres user) and measures, on loopback:
//  - cross-host wake-up: a terminal write in one process ("host B") to the answer of a LISTEN
//    waiter in another ("host A"): from the write sent, and from its commit acknowledged
//    (target p99 <= 20 ms, SPEC section 10);
//  - submit and claim latency of one statement each, next to a bare `SELECT 1` round trip;
//  - trivial-job throughput (claim, start, one output page, finish) with 1 and 3 runner processes
//    of the protocol (test/helpers/fleet-runner.mjs), the queue's own ceiling;
//  - trivial-job throughput end to end: `agent-async runner` processes in fleet mode (each host
//    its own HOME and spool, concurrency 4, the exec agent running `true`), 1 and 3 of them,
//    and in the same run one runner of the filesystem spool on the same job count.
// `fleetBench()` returns the figures for bench.mjs; run alone it prints a Markdown table.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { FleetQueue, activeJobIds, awaitAnyEnded, claimJobs, listRunners, registerRunner, submitJob } from '../dist/fleet/index.js';
import * as jobs from '../dist/jobs.js';
import { newSubmission } from '../test/helpers/fleet-fixtures.mjs';
import { startCluster } from '../test/helpers/pg-cluster.mjs';
import { CLI, ROOT, killSpool, lines, makeSpool, now, removeTree, runChild, sleep, stats } from './lib.mjs';

const WARM_UP = 20;

async function wakeLatency(cluster, database, n) {
  const env = { ...process.env, AGENT_ASYNC_QUEUE_URL: cluster.url(database) };
  const waiter = await FleetQueue.open(cluster.url(database), { role: 'bench waiter' });
  try {
    const ids = [];
    for (let i = 0; i < n + WARM_UP; i += 1) ids.push((await submitJob(waiter.db, newSubmission())).state.id);
    const writer = runChild(path.join(ROOT, 'bench', 'fleet-writer.mjs'), [], env);
    const next = lines(writer);
    const ready = await next();
    if (ready !== `ready ${ids.length}`) throw new Error(`fleet writer: ${ready}`);
    const fromSent = [];
    const fromAcked = [];
    for (const [i, id] of ids.entries()) {
      let answered;
      const woke = awaitAnyEnded(waiter, [id], { timeoutMs: 30_000, pollMs: 30_000, onArmed: () => writer.stdin.write(`end ${id}\n`) })
        .then((result) => {
          answered = now();
          if (result.wokeBy !== 'notify') throw new Error(`woke by ${result.wokeBy}, not by a notification`);
        });
      const [, sent, acked] = (await next()).split(' ').map(Number);
      await woke;
      if (i < WARM_UP) continue;
      fromSent.push(answered - sent);
      fromAcked.push(answered - acked);
    }
    writer.stdin.end();
    await new Promise((resolve) => writer.on('exit', resolve));
    return { fromSent: stats(fromSent), fromAcked: stats(fromAcked) };
  } finally {
    await waiter.close();
  }
}

async function statementLatency(queue, n) {
  // a bare round trip, taken in turn with the submits: the floor of this machine at this moment
  const submit = [];
  const roundTrip = [];
  for (let i = 0; i < n + WARM_UP; i += 1) {
    let t0 = now();
    await submitJob(queue.db, newSubmission());
    if (i >= WARM_UP) submit.push(now() - t0);
    t0 = now();
    await queue.db.query('SELECT 1');
    if (i >= WARM_UP) roundTrip.push(now() - t0);
  }
  const { token } = await registerRunner(queue.db, { host: 'claimer', pid: process.pid, agents: ['exec'], capacity: 1_000_000, leaseMs: 600_000, version: 'bench' });
  const claim = [];
  for (let i = 0; i < n + WARM_UP; i += 1) {
    const t0 = now();
    const claimed = await claimJobs(queue.db, token, 1);
    if (claimed.length !== 1) throw new Error('nothing left to claim');
    if (i >= WARM_UP) claim.push(now() - t0);
  }
  return { roundTrip: stats(roundTrip), submit: stats(submit), claim: stats(claim) };
}

async function throughput(cluster, runners, jobs) {
  const database = await cluster.createDatabase(`tp${runners}`);
  const queue = await FleetQueue.open(cluster.url(database), { role: 'bench' });
  const ledger = path.join(cluster.base, `throughput-${runners}.ledger`);
  const env = { ...process.env, AGENT_ASYNC_QUEUE_URL: cluster.url(database) };
  const children = Array.from({ length: runners }, (_, i) => runChild(path.join(ROOT, 'test', 'helpers', 'fleet-runner.mjs'), [
    `r${i}`, ledger, JSON.stringify({ capacity: 4, jobMs: 0, exitWhenIdle: true }),
  ], env));
  try {
    while ((fs.existsSync(ledger) ? fs.readFileSync(ledger, 'utf8').match(/^registered /gm)?.length ?? 0 : 0) < runners) await sleep(20);
    const t0 = now();
    for (let i = 0; i < jobs; i += 1) await submitJob(queue.db, newSubmission());
    while ((await activeJobIds(queue.db)).length > 0) await sleep(10);
    const seconds = (now() - t0) / 1000;
    await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', resolve)))));
    return { runners, jobs, seconds, jobsPerSecond: jobs / seconds };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await queue.close();
  }
}

/** Each host's runner and the filesystem spool's: the default concurrency, jobs of one cwd side by side. */
const RUNNER_CONFIG = { concurrency: 4, exclusive_cwd: false };

/** An `agent-async runner` in fleet mode: a host with its own HOME and spool, named `name`. */
function fleetHost(name, url, pgpassFile) {
  const spool = makeSpool(RUNNER_CONFIG);
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AGENT_ASYNC_')));
  Object.assign(env, { HOME: spool.base, AGENT_ASYNC_HOME: spool.home, AGENT_ASYNC_QUEUE_URL: url, AGENT_ASYNC_HOST_NAME: name, PGPASSFILE: pgpassFile });
  const child = spawn(process.execPath, [CLI, 'runner'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  child.stderr.on('data', (chunk) => (said += chunk.toString()));
  return { name, spool, child, said: () => said };
}

async function stopHost(host) {
  if (host.child.exitCode === null) {
    host.child.kill('SIGTERM');
    await new Promise((resolve) => (host.child.exitCode !== null ? resolve() : host.child.on('exit', resolve)));
  }
  killSpool(host.spool); // the supervisors it kept
  removeTree(host.spool.base);
}

/** Polls until `done()` holds; the submitting side's view of "all ended", the same for both stores. */
async function until(done) {
  while (!(await done())) await sleep(10);
}

/**
 * `jobs` trivial jobs (exec `true`) submitted from this process without pause, timed from the
 * first submit until none is pending or running, through `runners` real fleet runners. The
 * jobs are unpinned (any host takes them); a warm-up job pinned to each host goes first.
 */
async function fleetRunnerThroughput(cluster, runners, count) {
  const database = await cluster.createDatabase(`rr${runners}`);
  const url = cluster.url(database);
  const queue = await FleetQueue.open(url, { role: 'bench' });
  const hosts = Array.from({ length: runners }, (_, i) => fleetHost(`r${i}`, url, cluster.pgpassFile));
  try {
    await until(async () => {
      const dead = hosts.find((host) => host.child.exitCode !== null);
      if (dead) throw new Error(`the runner of ${dead.name} exited: ${dead.said()}`);
      const live = new Set((await listRunners(queue.db)).filter((runner) => runner.live).map((runner) => runner.host));
      return hosts.every((host) => live.has(host.name));
    });
    for (const host of hosts) await submitJob(queue.db, newSubmission({ host: host.name }));
    await until(async () => (await activeJobIds(queue.db)).length === 0);
    const t0 = now();
    for (let i = 0; i < count; i += 1) await submitJob(queue.db, newSubmission());
    await until(async () => (await activeJobIds(queue.db)).length === 0);
    const seconds = (now() - t0) / 1000;
    const { rows } = await queue.db.query("SELECT count(*)::int AS n FROM agent_async.jobs WHERE status = 'done'");
    if (rows[0].n !== count + runners) throw new Error(`fleet runners: ${rows[0].n} of ${count + runners} jobs ended done`);
    return { store: 'fleet', runners, concurrency: RUNNER_CONFIG.concurrency, jobs: count, seconds, jobsPerSecond: count / seconds };
  } finally {
    await Promise.all(hosts.map(stopHost));
    await queue.close();
  }
}

/** The same measure on the filesystem spool: one runner, submitted through lib/jobs.ts in this process. */
async function spoolRunnerThroughput(count) {
  const spool = makeSpool(RUNNER_CONFIG);
  const ctx = jobs.openContext({ home: spool.home, env: spool.env });
  const submit = () => jobs.submit(ctx, { agent: 'exec', argv: ['true'], cwd: os.tmpdir() });
  try {
    await submit();
    await until(async () => (await jobs.openJobIds(ctx)).length === 0);
    const t0 = now();
    const ids = [];
    for (let i = 0; i < count; i += 1) ids.push((await submit()).job_id);
    await until(async () => (await jobs.openJobIds(ctx)).length === 0);
    const seconds = (now() - t0) / 1000;
    const ended = await Promise.all(ids.map((id) => jobs.snapshotOf(ctx, id)));
    const done = ended.filter((snap) => snap.kind === 'ok' && snap.state.status === 'done').length;
    if (done !== count) throw new Error(`filesystem spool: ${done} of ${count} jobs ended done`);
    return { store: 'spool', runners: 1, concurrency: RUNNER_CONFIG.concurrency, jobs: count, seconds, jobsPerSecond: count / seconds };
  } finally {
    killSpool(spool);
    removeTree(spool.base);
  }
}

export async function fleetBench({ quick = false, log = () => undefined } = {}) {
  const cluster = await startCluster({ log });
  process.env.PGPASSFILE = cluster.pgpassFile;
  try {
    const database = await cluster.createDatabase('bench');
    const queue = await FleetQueue.open(cluster.url(database), { role: 'bench' });
    try {
      log('fleet: wake-up across processes');
      const wake = await wakeLatency(cluster, database, quick ? 100 : 500);
      log('fleet: submit and claim latency');
      const statements = await statementLatency(queue, quick ? 200 : 1000);
      log('fleet: throughput with 1 and 3 runners');
      const jobs = quick ? 200 : 1000;
      const one = await throughput(cluster, 1, jobs);
      const three = await throughput(cluster, 3, jobs);
      const endToEnd = quick ? 40 : 200;
      log(`fleet: ${endToEnd} trivial jobs through agent-async runners: the filesystem spool, 1 and 3 fleet hosts`);
      const loadBefore = os.loadavg()[0];
      const runnerThroughput = [await spoolRunnerThroughput(endToEnd), await fleetRunnerThroughput(cluster, 1, endToEnd), await fleetRunnerThroughput(cluster, 3, endToEnd)];
      return {
        wake, ...statements, throughput: [one, three], runnerThroughput, runnerLoad: [loadBefore, os.loadavg()[0]],
        server: (await queue.db.ping()).serverVersion, loadAverage: os.loadavg()[0],
      };
    } finally {
      await queue.close();
    }
  } finally {
    await cluster.destroy();
  }
}

const ms = (v) => (v < 10 ? v.toFixed(2) : v.toFixed(1));

/** What the end-to-end throughput rows measured, and on what. */
function runnerThroughputContext(result) {
  const [before, after] = result.runnerLoad;
  return `End to end: \`agent-async runner\` processes (concurrency ${RUNNER_CONFIG.concurrency} each, every fleet host with its own HOME and spool on this one machine), `
    + `exec jobs of \`true\` submitted from one process without pause, timed from the first submit until none is open; load average ${before.toFixed(1)} before, ${after.toFixed(1)} after.`;
}

function table(result) {
  const row = (what, s, target = '') => `| ${what} | ${ms(s.p50)} | ${ms(s.p99)} | ${s.n} | ${target} |`;
  return [
    `PostgreSQL ${result.server}, ${os.cpus().length} cores, loopback, load average ${result.loadAverage.toFixed(1)} at the end`,
    '',
    '| what | p50 ms | p99 ms | n | target |',
    '|---|---|---|---|---|',
    row('terminal write sent (host B) → waiter answered (host A)', result.wake.fromSent, 'p99 ≤ 20 ms'),
    row('commit acknowledged (host B) → waiter answered (host A)', result.wake.fromAcked),
    row('`SELECT 1` round trip (the floor, taken in turn with the submits)', result.roundTrip),
    row('submit (insert + notify)', result.submit),
    row('claim (one job)', result.claim),
    '',
    '| runners | trivial jobs | seconds | jobs/s |',
    '|---|---|---|---|',
    ...result.throughput.map((t) => `| ${t.runners} | ${t.jobs} | ${t.seconds.toFixed(2)} | ${t.jobsPerSecond.toFixed(0)} |`),
    '',
    runnerThroughputContext(result),
    '',
    '| store | runners | trivial jobs | seconds | jobs/s |',
    '|---|---|---|---|---|',
    ...result.runnerThroughput.map((t) => `| ${t.store === 'spool' ? 'filesystem spool' : 'fleet (PostgreSQL)'} | ${t.runners} | ${t.jobs} | ${t.seconds.toFixed(2)} | ${t.jobsPerSecond.toFixed(0)} |`),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const result = await fleetBench({ quick, log: (message) => process.stderr.write(`${message}\n`) });
  process.stdout.write(process.argv.includes('--json') ? `${JSON.stringify(result, null, 2)}\n` : `${table(result)}\n`);
}
