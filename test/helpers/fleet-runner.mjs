// A minimal runner of one host over the fleet queue, using the library as the real runner
// will: it registers, renews its lease, claims what it can take when woken (LISTEN) or on a
// safety poll, "runs" each job (start, wait, one page of output, finish: every write fenced
// by its epoch), reaps expired leases of others, and appends what it did to a ledger:
//   registered <host> <epoch> <pid> | start <id> <host> <epoch> | end <id> <host> <epoch>
//   refused <id> <host> <epoch> <error> | lost <host> <epoch> | reaped <host> <lost ids> | idle <host>
// Usage: node fleet-runner.mjs <host> <ledger> <optionsJson>   (AGENT_ASYNC_QUEUE_URL: the queue)
// options: capacity, leaseMs, jobMs, agents, labels, exitWhenIdle (exit once the queue, after
// it has had work, has no pending or running job left)
import fs from 'node:fs';
import { setInterval } from 'node:timers';
import {
  CHANNELS, FleetQueue, LeaseKeeper, activeJobIds, appendOutput, claimJobs, registerRunner, transitionJob,
} from '../../dist/fleet/index.js';
import { outcome, supervisorOf } from './fleet-fixtures.mjs';

const [host, ledger, optionsJson = '{}'] = process.argv.slice(2);
const options = { capacity: 2, leaseMs: 1000, jobMs: 20, agents: ['exec'], labels: [], exitWhenIdle: false, ...JSON.parse(optionsJson) };
const say = (line) => fs.appendFileSync(ledger, `${line}\n`);
// on a lost lease every job of the epoch is stopped at once (as the real runner kills its
// workers); each then tries to record its end, which the queue must refuse
const stopAll = new globalThis.AbortController();
const work = (ms) => new Promise((resolve) => {
  const stop = () => {
    clearTimeout(timer);
    resolve();
  };
  const timer = setTimeout(() => {
    stopAll.signal.removeEventListener('abort', stop);
    resolve();
  }, ms);
  stopAll.signal.addEventListener('abort', stop, { once: true });
});

const queue = await FleetQueue.open(process.env.AGENT_ASYNC_QUEUE_URL, { role: `runner ${host}` });
const { token } = await registerRunner(queue.db, {
  host, pid: process.pid, agents: options.agents, labels: options.labels, capacity: options.capacity, leaseMs: options.leaseMs, version: 'test',
});
const { epoch } = token;
let lost = false;
const keeper = new LeaseKeeper(queue.db, token, {
  onLost: () => {
    lost = true;
    say(`lost ${host} ${epoch}`);
    stopAll.abort();
  },
}).start();
say(`registered ${host} ${epoch} ${process.pid}`);
const running = new Set();

async function runJob(job) {
  const id = job.state.id;
  try {
    const started = await transitionJob(queue.db, id, {
      epoch, current: job, change: { name: 'start', attempt: job.claimAttempt, epoch, supervisor: supervisorOf(host) },
    });
    say(`start ${id} ${host} ${epoch}`);
    await work(options.jobMs);
    await appendOutput(queue.db, id, epoch, 0, Buffer.from(`${id} ran on ${host}\n`));
    await transitionJob(queue.db, id, { epoch, current: started, change: { name: 'finish', outcome: outcome('done') } });
    say(`end ${id} ${host} ${epoch}`);
  } catch (error) {
    say(`refused ${id} ${host} ${epoch} ${error.name}`);
  } finally {
    running.delete(id);
    void tick();
  }
}

let ticking = false;
let again = false;
async function tick() {
  if (ticking) {
    again = true;
    return;
  }
  ticking = true;
  try {
    const free = options.capacity - running.size;
    if (!lost && free > 0) {
      for (const job of await claimJobs(queue.db, token, free)) {
        running.add(job.state.id);
        void runJob(job);
      }
    }
  } catch {
    // unreachable for a moment, or fenced (the keeper says so): the next tick tries again
  } finally {
    ticking = false;
    if (again) {
      again = false;
      void tick();
    }
  }
}

async function reap() {
  try {
    const report = await keeper.reap();
    if (report && report.runners.length > 0) say(`reaped ${report.runners.map((r) => r.host).join(',')} ${report.lost.join(',') || '-'}`);
  } catch {
    // another reaper holds the rows, or the queue is away
  }
}

let queueHadWork = false;
/** A look is under way: on a loaded machine one can outlast the 250 ms interval, and two would both stop the lease (the second throws). */
let looking = false;

async function finishIfIdle() {
  if (looking) return;
  looking = true;
  try {
    await lookIfIdle();
  } finally {
    looking = false;
  }
}

async function lookIfIdle() {
  if (lost && running.size === 0) {
    await queue.close();
    process.exit(3);
  }
  if (running.size > 0) queueHadWork = true;
  if (!options.exitWhenIdle || running.size > 0) return;
  const active = await activeJobIds(queue.db).catch(() => ['?']);
  if (active.length > 0) {
    queueHadWork = true;
    return;
  }
  // a runner started before the jobs are submitted waits for them instead of leaving at once
  if (!queueHadWork) return;
  say(`idle ${host}`);
  await keeper.stop();
  await queue.close();
  process.exit(0);
}

queue.listener().onNotification((channel) => {
  if (channel === CHANNELS.work) void tick();
});
await queue.listener().armed(10_000);
setInterval(() => void tick(), 200);
setInterval(() => void reap(), Math.max(100, options.leaseMs / 2));
setInterval(() => void finishIfIdle(), 250);
process.on('SIGTERM', () => {
  void keeper.stop().finally(() => process.exit(0));
});
void tick();
