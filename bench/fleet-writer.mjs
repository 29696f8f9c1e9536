// "Host B" of the fleet wake-up benchmark: holds a runner lease, claims and starts every
// pending job, prints "ready <n>", then for each stdin line "end <id>" records that job's
// terminal state and prints "<id> <sent> <acked>" (wall-clock ms: the write sent, its commit
// acknowledged). The queue: AGENT_ASYNC_QUEUE_URL (password from PGPASSFILE).
import readline from 'node:readline';
import { FleetQueue, claimJobs, registerRunner, transitionJob } from '../dist/fleet/index.js';
import { outcome, supervisorOf } from '../test/helpers/fleet-fixtures.mjs';
import { now } from './lib.mjs';

const queue = await FleetQueue.open(process.env.AGENT_ASYNC_QUEUE_URL, { role: 'bench writer' });
const { token } = await registerRunner(queue.db, { host: 'b', pid: process.pid, agents: ['exec'], capacity: 100_000, leaseMs: 600_000, version: 'bench' });
const claimed = await claimJobs(queue.db, token, 100_000);
// the runner knows the state it wrote last, so its terminal write is one statement
const running = new Map();
for (const job of claimed) {
  running.set(job.state.id, await transitionJob(queue.db, job.state.id, {
    epoch: token.epoch, current: job, change: { name: 'start', attempt: job.claimAttempt, epoch: token.epoch, supervisor: supervisorOf('b') },
  }));
}
process.stdout.write(`ready ${claimed.length}\n`);
for await (const line of readline.createInterface({ input: process.stdin })) {
  const id = line.split(' ')[1];
  const sent = now();
  await transitionJob(queue.db, id, { epoch: token.epoch, current: running.get(id), change: { name: 'finish', outcome: outcome('done') } });
  process.stdout.write(`${id} ${sent} ${now()}\n`);
}
await queue.close();
