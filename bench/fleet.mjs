// Fleet mode (PostgreSQL queue) benchmark: node bench/fleet.mjs [--quick] [--json]
// Starts its own throwaway PostgreSQL cluster (test/helpers/pg-cluster.mjs; needs initdb and
// pg_ctl, and root or the postgres user) and measures, on loopback:
//  - cross-host wake-up: a terminal write in one process ("host B") to the answer of a LISTEN
//    waiter in another ("host A"): from the write sent, and from its commit acknowledged
//    (target p99 <= 20 ms, SPEC section 10);
//  - submit and claim latency of one statement each, next to a bare `SELECT 1` round trip;
//  - trivial-job throughput (claim, start, one output page, finish) with 1 and 3 runner processes.
// `fleetBench()` returns the figures for bench.mjs; run alone it prints a Markdown table.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetQueue, activeJobIds, awaitAnyEnded, claimJobs, registerRunner, submitJob } from '../dist/fleet/index.js';
import { newSubmission } from '../test/helpers/fleet-fixtures.mjs';
import { startCluster } from '../test/helpers/pg-cluster.mjs';
import { ROOT, lines, now, runChild, sleep, stats } from './lib.mjs';

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
      return { wake, ...statements, throughput: [one, three], server: (await queue.db.ping()).serverVersion, loadAverage: os.loadavg()[0] };
    } finally {
      await queue.close();
    }
  } finally {
    await cluster.destroy();
  }
}

const ms = (v) => (v < 10 ? v.toFixed(2) : v.toFixed(1));

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
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const result = await fleetBench({ quick, log: (message) => process.stderr.write(`${message}\n`) });
  process.stdout.write(process.argv.includes('--json') ? `${JSON.stringify(result, null, 2)}\n` : `${table(result)}\n`);
}
